"""Symmetric-RTP latching, sans-I/O: which UDP address speaks for which link.

Each link gets a random token over its control connection. A STUN Binding request whose USERNAME is a
token's hex and whose MESSAGE-INTEGRITY is keyed by that token proves the request's source address belongs
to the link: :meth:`Latches.bind` latches the link to it, replacing any earlier address. Media from an
address no link has latched (never proved, or left behind by a re-latch) is dropped by the edge and
counted in :class:`UdpStats`.

A signed request proves nothing when it is a copy: anyone who sees a link's Binding request on the path
could send it again from their own address and take the link's media. So each link remembers the
transaction IDs of its last :data:`REMEMBERED_TRANSACTIONS` requests and where they came from: a
retransmission from the same address is answered again (RFC 5389 section 7.2.1), the same transaction
from another address is refused as a replay. A client uses a new transaction ID for every binding.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from typing import Generic, TypeVar

from conf_cli.errors import ProtocolError
from conf_cli.protocol.stun import BINDING, CLASS_REQUEST, StunMessage, binding_success

__all__ = [
    "TOKEN_BYTES",
    "BindResult",
    "Latches",
    "UdpStats",
    "new_token",
    "read_token_frame",
    "token_frame",
]

TOKEN_BYTES = 16
SOFTWARE = "conf"
REMEMBERED_TRANSACTIONS = 32

Address = tuple  # (host, port) or (host, port, flowinfo, scope_id) as the socket reports it
L = TypeVar("L")


def new_token() -> bytes:
    return secrets.token_bytes(TOKEN_BYTES)


@dataclass
class UdpStats:
    """Datagram counters of one RTP listener (all since it started)."""

    datagrams_in: int = 0
    media_in: int = 0
    stun_in: int = 0
    bindings: int = 0
    relatches: int = 0
    dropped_unknown: int = 0  # media from an address no link has proved
    dropped_oversize: int = 0
    dropped_malformed: int = 0  # neither RTP/RTCP nor a valid STUN message
    dropped_unauthenticated: int = 0  # SRTP that fails authentication, or a replay
    stun_refused: int = 0  # a STUN request with an unknown token or a bad signature
    stun_replayed: int = 0  # a signed request seen before, from another address
    send_dropped: int = 0  # media not sent: no latched address yet, or the socket buffer was full
    protect_refused: int = 0  # media not sent to one receiver: SRTP would not protect it (see srtp.py)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class BindResult(Generic[L]):
    """The answer to a good Binding request: the link now latched, and the response datagram to send."""

    link: L
    response: bytes
    moved_from: Address | None  # the address this link was latched to before, if it changed


@dataclass
class Latches(Generic[L]):
    """Tokens, links and their latched addresses."""

    stats: UdpStats = field(default_factory=UdpStats)
    _by_token: dict[str, tuple[bytes, L]] = field(default_factory=dict)
    _by_address: dict[Address, L] = field(default_factory=dict)
    _address_of: dict[int, Address] = field(default_factory=dict)  # id(link) -> latched address
    _transactions: dict[int, dict[bytes, Address]] = field(default_factory=dict)  # id(link) -> recent ones

    def add(self, link: L, token: bytes) -> None:
        self._by_token[token.hex()] = (token, link)

    def remove(self, link: L, token: bytes) -> None:
        self._by_token.pop(token.hex(), None)
        self._transactions.pop(id(link), None)
        address = self._address_of.pop(id(link), None)
        if address is not None and self._by_address.get(address) is link:
            del self._by_address[address]

    def lookup(self, address: Address) -> L | None:
        """The link latched to ``address``, or None."""
        return self._by_address.get(address)

    def address_of(self, link: L) -> Address | None:
        return self._address_of.get(id(link))

    def bind(self, data: bytes, source: Address) -> BindResult[L] | None:
        """Handle a STUN datagram from ``source``; None (and counted) if it proves nothing."""
        self.stats.stun_in += 1
        try:
            request = StunMessage.parse(data)
            username = request.username
        except ProtocolError:
            self.stats.dropped_malformed += 1
            return None
        if request.method != BINDING or request.message_class != CLASS_REQUEST or username is None:
            self.stats.stun_refused += 1
            return None
        entry = self._by_token.get(username)
        if entry is None or not request.check_integrity(entry[0]):
            self.stats.stun_refused += 1
            return None
        token, link = entry
        seen = self._transactions.setdefault(id(link), {})
        first_from = seen.get(request.transaction_id)
        if first_from is not None and first_from != source:
            self.stats.stun_replayed += 1
            return None
        if first_from is None:
            seen[request.transaction_id] = source
            if len(seen) > REMEMBERED_TRANSACTIONS:
                del seen[next(iter(seen))]
        self.stats.bindings += 1
        before = self._address_of.get(id(link))
        moved_from = None
        if before != source:
            if before is not None:
                moved_from = before
                self.stats.relatches += 1
                if self._by_address.get(before) is link:
                    del self._by_address[before]
            other = self._by_address.get(source)
            if other is not None and other is not link:
                self._address_of.pop(id(other), None)  # an address proved anew belongs to the newest prover
            self._by_address[source] = link
            self._address_of[id(link)] = source
        response = binding_success(request.transaction_id, source[0], source[1], token, SOFTWARE)
        return BindResult(link, bytes(response), moved_from)


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
