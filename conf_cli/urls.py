"""Server URLs: ``SCHEME://HOST:PORT``, where the scheme names the transport."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from conf_cli.errors import ConfError

DEFAULT_PORT = 7450
DEFAULT_SCHEME = "tcp"


@dataclass(frozen=True)
class ServerAddress:
    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_server_url(text: str, *, transport: str | None = None) -> ServerAddress:
    """Parse ``tcp://host:port``, ``host:port`` or ``host``; ``transport`` overrides the scheme."""
    candidate = text if "://" in text else f"{transport or DEFAULT_SCHEME}://{text}"
    try:
        parts = urlsplit(candidate)
        port = parts.port
    except ValueError as exc:
        raise ConfError(f"bad server URL {text!r}: {exc}") from None
    if not parts.hostname:
        raise ConfError(
            f"bad server URL {text!r}: expected SCHEME://HOST:PORT, e.g. tcp://127.0.0.1:{DEFAULT_PORT}"
        )
    scheme = transport or parts.scheme
    return ServerAddress(scheme, parts.hostname, DEFAULT_PORT if port is None else port)
