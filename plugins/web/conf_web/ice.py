"""STUN and TURN servers given with ``--ice-server``, for the page and for the server's own ICE.

A TURN server given without ``USER:PASSWORD`` gets credentials made for each user from the secret it
shares with the server (``--turn-secret``): the time-limited scheme of coturn's ``use-auth-secret``
(draft-uberti-behave-turn-rest), username ``EXPIRY:USER`` and password
``base64(HMAC-SHA1(secret, username))``, which the TURN server checks without asking anyone.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

from conf_cli import ConfError
from conf_cli.urls import redact_url

_URL = re.compile(
    r"^(?P<scheme>stun|stuns|turn|turns):"
    r"(?:(?P<user>[^:@]+):(?P<password>[^@]+)@)?"
    r"(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)"
    r"(?::(?P<port>\d{1,5}))?"
    r"(?:\?transport=(?P<transport>udp|tcp))?$"
)
MAX_URL = 512
TURN_TTL = 12 * 3600
"""Seconds TURN credentials made from ``--turn-secret`` stay valid: the longest a page can rely on TURN."""


@dataclass(frozen=True)
class IceServer:
    url: str
    username: str | None = None
    credential: str | None = None

    @property
    def turn(self) -> bool:
        return self.url.startswith("turn")

    @property
    def shared(self) -> bool:
        """A TURN server whose credentials are made from ``--turn-secret``, one set per user."""
        return self.turn and self.username is None

    def for_user(self, secret: str | None, user: str, now: float, ttl: int = TURN_TTL) -> IceServer:
        """This server with credentials for ``user`` if they are made from the secret (else as given)."""
        if not self.shared or secret is None:
            return self
        username, credential = turn_credentials(secret, user, now + ttl)
        return dataclasses.replace(self, username=username, credential=credential)

    def for_page(self) -> dict[str, str]:
        """As an ``RTCIceServer`` dictionary for the browser."""
        entry = {"urls": self.url}
        if self.username is not None and self.credential is not None:
            entry.update(username=self.username, credential=self.credential)
        return entry

    def for_aiortc(self) -> Any:
        from aiortc import RTCIceServer

        return RTCIceServer(urls=self.url, username=self.username, credential=self.credential)


def turn_credentials(secret: str, user: str, expiry: float) -> tuple[str, str]:
    """TURN username and password for ``user`` until ``expiry`` (Unix time), from the shared secret."""
    username = f"{int(expiry)}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def parse_ice_server(text: str, *, turn_secret: bool = False) -> IceServer:
    """``stun:HOST[:PORT]`` or ``turn:[USER:PASSWORD@]HOST[:PORT][?transport=udp|tcp]`` → :class:`IceServer`.

    A TURN server without ``USER:PASSWORD`` needs ``turn_secret`` (its credentials are made from it).
    """
    match = _URL.match(text) if len(text) <= MAX_URL else None
    shown = redact_url(text)[:80]
    if match is None or (match["port"] is not None and not 0 < int(match["port"]) < 65536):
        raise ConfError(
            f"bad --ice-server {shown!r}: expected stun:HOST[:PORT] or "
            "turn:USER:PASSWORD@HOST[:PORT][?transport=udp|tcp]"
        )
    scheme = match["scheme"]
    if scheme.startswith("turn") and match["user"] is None and not turn_secret:
        raise ConfError(f"bad --ice-server {shown!r}: a TURN server needs USER:PASSWORD@, or --turn-secret")
    if scheme.startswith("stun") and match["user"] is not None:
        raise ConfError(f"bad --ice-server {shown!r}: a STUN server takes no USER:PASSWORD")
    url = f"{scheme}:{match['host']}"
    if match["port"]:
        url += f":{match['port']}"
    if match["transport"]:
        url += f"?transport={match['transport']}"
    return IceServer(url, match["user"], match["password"])
