"""Resume tokens: how a participant whose link dropped takes its seat back. Sans-I/O.

When a participant enters a meeting (and whenever its role or name changes, and every
:data:`REFRESH_SECONDS` while it stays) the server gives it a *resume token* on its encrypted link
(the ``resume_token`` event). After its link drops (the server was killed, the connection was reset,
heartbeats stopped), the client reconnects and sends ``resume`` with the token instead of ``join``: it is
back as the same participant (same seat, name and role) without the passcode.

A token is ``PAYLOAD.TAG``, both unpadded base64url: PAYLOAD is a small JSON object (the meeting, the
seat, the name, the role, the kinds an access token let it publish, whether it records, when it was
issued and when it expires) and TAG is HMAC-SHA256 over PAYLOAD's text with the *resume key*. The resume
key is derived from the server's identity key with HKDF-SHA256 (info :data:`KEY_LABEL`), so every server
holding the same identity (the nodes of one cluster share ``--identity FILE``) can check a token, nobody
without that identity can make or change one (raising one's role, naming another meeting), and the key is
used for nothing else. A token is a bearer secret: it travels only inside the link's encryption, a server
without encryption gives none, and it is never written to a log or to machine-mode output.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from conf_cli.errors import ProtocolError
from conf_cli.protocol.control import MAX_RESUME_TOKEN_CHARS, MEDIA_KINDS, ROLES, check_name

KEY_LABEL = b"conf resume token v1"
"""HKDF info: the resume key is the identity key's for this one purpose."""
VERSION = 1
TTL_SECONDS = 600.0
"""A token is good for this long after it is issued ..."""
REFRESH_SECONDS = 300.0
"""... and a participant who stays gets a new one this often, so it always holds one good for a while."""
LEEWAY_SECONDS = 10.0
"""Clocks of the nodes sharing an identity drift a little."""
MAX_TOKEN_CHARS = MAX_RESUME_TOKEN_CHARS
"""A token's length at most (the largest, a 64-byte name escaped in JSON, is about 500)."""
SEAT_GRACE = 5.0
"""Seconds a vanished participant's seat is kept (nobody is told it left) for it to resume quietly."""
SEAT_CHARS = 16
"""A seat ID: 16 hex digits (64 random bits), the participant's ID that outlives its connections."""
_TOKEN = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_SEAT = re.compile(f"[0-9a-f]{{{SEAT_CHARS}}}")


class ResumeRefused(Exception):
    """A token that lets nobody resume here, and why (in words for the person holding it)."""


def new_seat() -> str:
    """A fresh seat ID."""
    return secrets.token_hex(SEAT_CHARS // 2)


@dataclass(frozen=True)
class Seat:
    """What a resume token says: whose seat, in which meeting, with what."""

    meeting: str
    seat: str
    name: str
    role: str
    issued: float
    expires: float
    can_publish: frozenset[str] | None = None
    """The kinds an access token let this participant publish; None: no such limit."""
    recorder: bool = False


@dataclass(frozen=True)
class ResumeKey:
    """The key that signs and checks resume tokens."""

    secret: bytes

    @classmethod
    def from_identity(cls, seed: bytes) -> ResumeKey:
        """The resume key of the server whose Ed25519 identity key has the 32-byte ``seed``."""
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=KEY_LABEL).derive(seed)
        return cls(derived)

    def issue(self, seat: Seat) -> str:
        """``seat`` as a token."""
        payload: dict[str, Any] = {
            "v": VERSION,
            "m": seat.meeting,
            "s": seat.seat,
            "n": seat.name,
            "r": seat.role,
            "i": int(seat.issued),
            "e": int(seat.expires),
        }
        if seat.can_publish is not None:
            payload["p"] = sorted(seat.can_publish)
        if seat.recorder:
            payload["c"] = True
        text = _b64(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
        return f"{text}.{_b64(self._tag(text))}"

    def read(self, token: str, now: float) -> Seat:
        """The seat ``token`` gives at ``now`` (Unix seconds); ResumeRefused saying why not."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or not _TOKEN.fullmatch(token):
            raise ResumeRefused("this is not a resume token")
        text, tag = token.split(".")
        try:
            given = _unb64(tag)
        except ValueError:
            raise ResumeRefused("this is not a resume token") from None
        if not hmac.compare_digest(given, self._tag(text)):
            raise ResumeRefused(
                "this resume token was not issued by this server's identity, or it was altered"
            )
        try:
            payload = json.loads(_unb64(text))
        except (ValueError, UnicodeDecodeError):
            raise ResumeRefused("this resume token does not parse") from None
        seat = _seat(payload)
        if now > seat.expires + LEEWAY_SECONDS:
            raise ResumeRefused("this resume token has expired; join the meeting again with its passcode")
        if seat.issued > now + LEEWAY_SECONDS:
            raise ResumeRefused("this resume token was issued in the future: a server's clock is wrong")
        return seat

    def _tag(self, text: str) -> bytes:
        return hmac.new(self.secret, text.encode("ascii"), hashlib.sha256).digest()


def seat_for(
    meeting: str,
    seat: str,
    name: str,
    role: str,
    now: float,
    *,
    can_publish: frozenset[str] | None = None,
    recorder: bool = False,
) -> Seat:
    """The seat a token issued at ``now`` (Unix seconds) names, good for :data:`TTL_SECONDS`."""
    return Seat(meeting, seat, name, role, now, now + TTL_SECONDS, can_publish, recorder)


def _seat(payload: Any) -> Seat:
    """A signed payload's fields, each checked (a bug, or another version's token, must not reach the
    meeting rules)."""
    if not isinstance(payload, dict) or payload.get("v") != VERSION:
        raise ResumeRefused("this resume token is of another version; join the meeting again")
    meeting, seat, name, role = (payload.get(key) for key in ("m", "s", "n", "r"))
    if not isinstance(meeting, str) or not 0 < len(meeting) <= 64:
        raise ResumeRefused("this resume token names no meeting")
    if not isinstance(seat, str) or not _SEAT.fullmatch(seat):
        raise ResumeRefused("this resume token names no seat")
    if not isinstance(name, str):
        raise ResumeRefused("this resume token names nobody")
    try:
        check_name(name, "the resume token's name")
    except ProtocolError as exc:
        raise ResumeRefused(str(exc)) from None
    if role not in ROLES:
        raise ResumeRefused("this resume token's role is not one conf knows")
    issued, expires = payload.get("i"), payload.get("e")
    if not all(isinstance(t, int) and not isinstance(t, bool) for t in (issued, expires)):
        raise ResumeRefused("this resume token's times are not numbers")
    assert isinstance(issued, int) and isinstance(expires, int)
    kinds = payload.get("p")
    if kinds is not None and (not isinstance(kinds, list) or any(kind not in MEDIA_KINDS for kind in kinds)):
        raise ResumeRefused("this resume token's kinds are not media kinds")
    return Seat(
        meeting,
        seat,
        name,
        role,
        float(issued),
        float(expires),
        None if kinds is None else frozenset(kinds),
        payload.get("c") is True,
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(str(exc)) from None
