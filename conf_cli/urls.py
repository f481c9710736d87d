"""Server URLs: ``SCHEME://HOST:PORT``, where the scheme names the transport."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode, urlsplit

from conf_cli.errors import ConfError

DEFAULT_PORT = 7450
DEFAULT_SCHEME = "tcp"

_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*:(?://)?)(?P<user>[^\s:/@]*):[^\s/]*@")


def redact_url(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``.

    Covers ``rtsp://USER:PASSWORD@...`` and ``turn:USER:PASSWORD@...``: for logs and error messages,
    which must never carry credentials.
    """
    return _PASSWORD.sub(lambda m: f"{m['head']}{m['user']}:***@", text)


@dataclass(frozen=True)
class ServerAddress:
    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def redirected(target: ServerAddress, reached: ServerAddress) -> ServerAddress:
    """Where a redirect to ``target`` goes from a server reached at ``reached``: ``target`` itself, but a
    wildcard host (``0.0.0.0``, ``::``, what a ``--workers`` server on all addresses lists for its
    workers) means the host the client already reached, on ``target``'s port."""
    try:
        wildcard = ipaddress.ip_address(target.host).is_unspecified
    except ValueError:
        return target
    return replace(target, host=reached.host) if wildcard else target


def parse_server_url(text: str, *, transport: str | None = None) -> ServerAddress:
    """Parse ``tcp://host:port``, ``host:port`` or ``host``; ``transport`` overrides the scheme."""
    candidate = text if "://" in text else f"{transport or DEFAULT_SCHEME}://{text}"
    try:
        parts = urlsplit(candidate)
        port = parts.port
    except ValueError as exc:
        raise ConfError(f"bad server URL {redact_url(text)!r}: {exc}") from None
    if not parts.hostname:
        raise ConfError(
            f"bad server URL {redact_url(text)!r}: expected SCHEME://HOST:PORT, e.g. tcp://127.0.0.1:{DEFAULT_PORT}"
        )
    scheme = transport or parts.scheme
    return ServerAddress(scheme, parts.hostname, DEFAULT_PORT if port is None else port)


def invite_link(
    welcome: dict[str, Any], meeting: str, passcode: str | None, name: str | None = None
) -> str | None:
    """The web page's link that joins ``meeting``, if the server serves one (its ``welcome`` lists it).

    ``WEB_URL?meeting=ID&passcode=CODE`` (and ``&name=NAME`` when given): with the passcode in it, the
    page joins at once.
    """
    services = welcome.get("services")
    urls = services.get("web") if isinstance(services, dict) else None
    if not urls or not isinstance(urls[0], str):
        return None
    query = {
        "meeting": meeting,
        **({"passcode": passcode} if passcode else {}),
        **({"name": name} if name else {}),
    }
    return f"{urls[0]}?{urlencode(query)}"
