"""STUN and TURN servers given with ``--ice-server``, for the page and for the server's own ICE."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from conf_cli.errors import ConfError

_URL = re.compile(
    r"^(?P<scheme>stun|stuns|turn|turns):"
    r"(?:(?P<user>[^:@]+):(?P<password>[^@]+)@)?"
    r"(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)"
    r"(?::(?P<port>\d{1,5}))?"
    r"(?:\?transport=(?P<transport>udp|tcp))?$"
)
MAX_URL = 512


@dataclass(frozen=True)
class IceServer:
    url: str
    username: str | None = None
    credential: str | None = None

    def for_page(self) -> dict[str, str]:
        """As an ``RTCIceServer`` dictionary for the browser."""
        entry = {"urls": self.url}
        if self.username is not None and self.credential is not None:
            entry.update(username=self.username, credential=self.credential)
        return entry

    def for_aiortc(self) -> Any:
        from aiortc import RTCIceServer

        return RTCIceServer(urls=self.url, username=self.username, credential=self.credential)


def parse_ice_server(text: str) -> IceServer:
    """``stun:HOST[:PORT]`` or ``turn:USER:PASSWORD@HOST[:PORT][?transport=udp|tcp]`` → :class:`IceServer`."""
    match = _URL.match(text) if len(text) <= MAX_URL else None
    if match is None or (match["port"] is not None and not 0 < int(match["port"]) < 65536):
        raise ConfError(
            f"bad --ice-server {text[:80]!r}: expected stun:HOST[:PORT] or "
            "turn:USER:PASSWORD@HOST[:PORT][?transport=udp|tcp]"
        )
    scheme = match["scheme"]
    if scheme.startswith("turn") and match["user"] is None:
        raise ConfError(f"bad --ice-server {text[:80]!r}: a TURN server needs USER:PASSWORD@")
    if scheme.startswith("stun") and match["user"] is not None:
        raise ConfError(f"bad --ice-server {text[:80]!r}: a STUN server takes no USER:PASSWORD")
    url = f"{scheme}:{match['host']}"
    if match["port"]:
        url += f":{match['port']}"
    if match["transport"]:
        url += f"?transport={match['transport']}"
    return IceServer(url, match["user"], match["password"])
