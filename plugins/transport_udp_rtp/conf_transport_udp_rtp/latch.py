"""The rtp:// transport's latch: symmetric RTP with consent (:mod:`conf_cli.latch`, shared with the call
relay), its datagram counters, and the token frame that hands a link its token over the control
connection.

Each link gets a random token in the first frame of its control connection (inside TLS when media is
encrypted). The token itself never travels on UDP: the latch derives from it (purpose ``rtp``) the
USERNAME that names the link in the clear and the key that signs its STUN messages; media goes to an
address only after it answered a consent check signed with that key (see :mod:`conf_cli.latch`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TypeVar

from conf_cli import ProtocolError
from conf_cli.latch import (
    CHECK_ATTEMPTS,
    CHECK_BURST,
    CHECK_RATE,
    CHECK_RTO,
    CHECK_SUFFIX,
    CONSENT_INTERVAL,
    CONSENT_TIMEOUT,
    TOKEN_BYTES,
    Action,
    Address,
    Alive,
    Credentials,
    Latched,
    LatchStats,
    Transmit,
    Unlatched,
    answer_check,
    new_token,
    request_transaction,
)
from conf_cli.latch import Latches as SharedLatches

__all__ = [
    "CHECK_ATTEMPTS",
    "CHECK_BURST",
    "CHECK_RATE",
    "CHECK_RTO",
    "CHECK_SUFFIX",
    "CONSENT_INTERVAL",
    "CONSENT_TIMEOUT",
    "TOKEN_BYTES",
    "Action",
    "Address",
    "Alive",
    "Credentials",
    "Latched",
    "Latches",
    "Transmit",
    "UdpStats",
    "Unlatched",
    "answer_check",
    "new_token",
    "read_token_frame",
    "request_transaction",
    "token_frame",
]

L = TypeVar("L")


@dataclass
class UdpStats(LatchStats):
    """Datagram counters of one RTP listener (all since it started): the latch's, and these."""

    datagrams_in: int = 0
    media_in: int = 0
    dropped_unknown: int = 0  # media from an address no link has latched
    dropped_oversize: int = 0
    dropped_unauthenticated: int = 0  # SRTP that fails authentication, or a replay
    send_dropped: int = 0  # media not sent: no latched address yet, or the socket buffer was full
    protect_refused: int = 0  # media not sent to one receiver: SRTP would not protect it (see srtp.py)


@dataclass
class Latches(SharedLatches[L]):
    """The shared latches, counting into an RTP listener's :class:`UdpStats`."""

    stats: UdpStats = field(default_factory=UdpStats)


# The first frame on every control connection, sent by the server before any conf message: one type octet
# then the token. Its first octet is neither ``{`` (control) nor ``10xxxxxx`` (media), so nothing else on
# the control connection can look like it.
TOKEN_FRAME_TYPE = 0x01


MAX_KEYS_BYTES = 1024


def token_frame(token: bytes, keys: dict[str, str] | None = None) -> bytes:
    """The payload of the token frame (the control framing adds its length prefix): the type, the token,
    then, when media is encrypted, the link's SRTP keys as a JSON object."""
    extra = json.dumps(keys, separators=(",", ":")).encode() if keys is not None else b""
    return bytes((TOKEN_FRAME_TYPE,)) + token + extra


def read_token_frame(payload: bytes) -> tuple[bytes, dict[str, str] | None]:
    """The token and SRTP keys (None: media in plaintext) in a token frame; ProtocolError if it is not one."""
    if len(payload) < 1 + TOKEN_BYTES or payload[0] != TOKEN_FRAME_TYPE:
        raise ProtocolError(
            f"expected the RTP transport's {1 + TOKEN_BYTES}-byte token frame first, got {len(payload)} bytes"
        )
    token, extra = payload[1 : 1 + TOKEN_BYTES], payload[1 + TOKEN_BYTES :]
    if not extra:
        return token, None
    if len(extra) > MAX_KEYS_BYTES:
        raise ProtocolError(f"SRTP keys of {len(extra)} bytes exceed {MAX_KEYS_BYTES}")
    try:
        keys = json.loads(extra)
    except ValueError:
        raise ProtocolError("the SRTP keys in the token frame are not JSON") from None
    if not isinstance(keys, dict) or not all(isinstance(v, str) for v in keys.values()):
        raise ProtocolError("the SRTP keys in the token frame are not an object of strings")
    return token, keys
