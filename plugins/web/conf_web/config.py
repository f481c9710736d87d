"""The web service's settings, as ``conf server``'s options give them: read by the service, each page's
session and its peer connection."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from conf_web.ice import TURN_TTL, IceServer

MAX_PAGES_PER_ADDRESS = 20  # pages connected at once from one address (--web-max-pages-per-address)


@dataclass(frozen=True)
class WebConfig:
    host: str
    port: int
    cert: Path | None = None
    key: Path | None = None
    ice_servers: list[IceServer] = field(default_factory=list)
    origins: tuple[str, ...] = ()
    """Origins besides the page's own whose pages may open the WebSocket (``--web-origin``)."""
    turn_secret: str | None = None
    turn_ttl: int = TURN_TTL
    pages_per_address: int = MAX_PAGES_PER_ADDRESS

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def ice_addresses(self) -> list[str] | None:
        """The addresses ICE offers as host candidates: the one served on, or every interface's (None)."""
        if self.host in ("", "0.0.0.0", "::"):
            return None
        try:
            return [str(ipaddress.ip_address(self.host))]
        except ValueError:
            return None if not self.loopback else ["127.0.0.1"]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
