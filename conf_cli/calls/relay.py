"""The server's STUN answerer and call relay on one UDP port. Sans-I/O.

- A Binding request without USERNAME is answered as RFC 5389 (and RFC 8489) section 7.3 says: a success
  response whose XOR-MAPPED-ADDRESS is the request's source address, so a client learns its public
  address (server-reflexive, behind a NAT: the NAT's).
- A Binding request whose USERNAME is a relay token (32 lowercase hex digits) handed out with
  ``call_accepted``, signed with MESSAGE-INTEGRITY keyed by the 16 raw token bytes, latches that end of
  that call to the request's source address; the response is signed with the same key.
- Any other datagram (RTP/SRTP/SRTCP: first two bits ``10``) from a latched address is forwarded, as it
  is, to the latched address of the other end of the same call; from anywhere else it is dropped and
  counted. The relay never reads the media: calls are encrypted end to end.

Every STUN answer goes through a :class:`~conf_cli.reflection.ReflectionGuard`: it is never larger than
its request (a request too small for it gets none; conf's clients pad theirs) and one source host gets
at most :data:`ANSWERS_PER_SOURCE` per :data:`ANSWER_WINDOW` seconds, so that a forged source address
cannot turn the call port into an amplifier. Answers carry no SOFTWARE attribute, to stay small.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field

from conf_cli.errors import ProtocolError
from conf_cli.protocol.stun import (
    BINDING,
    CLASS_REQUEST,
    MAX_STUN_BYTES,
    StunMessage,
    binding_success,
    is_stun,
)
from conf_cli.reflection import ReflectionGuard

TOKEN_BYTES = 16
ANSWERS_PER_SOURCE = 20
ANSWER_WINDOW = 5.0
MAX_DATAGRAM = MAX_STUN_BYTES

Address = tuple  # (host, port) as the socket reports it
Datagram = tuple[bytes, Address]


@dataclass
class RelayStats:
    datagrams_in: int = 0
    stun_answered: int = 0  # plain Binding requests answered with the sender's address
    bindings: int = 0  # signed Binding requests that latched an end of a call
    relayed_packets: int = 0  # media datagrams forwarded from one end of a call to the other
    relayed_bytes: int = 0
    dropped_unknown: int = 0  # media from an address no call end has latched, or whose peer has not
    dropped_malformed: int = 0
    stun_refused: int = 0  # an unknown relay token or a bad signature
    stun_unanswered: int = 0  # answer larger than the request, or too many answers to one source
    allocations: int = 0  # calls with a relay now

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class _End:
    call: str
    token: bytes
    address: Address | None = None
    peer: _End | None = None


@dataclass
class CallRelay:
    """Relay allocations (two ends per call) and the STUN answers of the server's call port."""

    stats: RelayStats = field(default_factory=RelayStats)
    _by_token: dict[str, _End] = field(default_factory=dict)
    _by_address: dict[Address, _End] = field(default_factory=dict)
    _by_call: dict[str, tuple[_End, _End]] = field(default_factory=dict)
    guard: ReflectionGuard = field(
        default_factory=lambda: ReflectionGuard(per_source=ANSWERS_PER_SOURCE, window=ANSWER_WINDOW)
    )

    def allocate(self, call: str) -> tuple[bytes, bytes]:
        """Two new relay tokens for ``call``: the caller's and the callee's."""
        self.release(call)
        first, second = (
            _End(call, secrets.token_bytes(TOKEN_BYTES)),
            _End(call, secrets.token_bytes(TOKEN_BYTES)),
        )
        first.peer, second.peer = second, first
        for end in (first, second):
            self._by_token[end.token.hex()] = end
        self._by_call[call] = (first, second)
        self.stats.allocations = len(self._by_call)
        return first.token, second.token

    def release(self, call: str) -> None:
        ends = self._by_call.pop(call, None)
        for end in ends or ():
            self._by_token.pop(end.token.hex(), None)
            if end.address is not None and self._by_address.get(end.address) is end:
                del self._by_address[end.address]
            end.peer = None
        self.stats.allocations = len(self._by_call)

    def datagram(self, data: bytes, source: Address, now: float) -> list[Datagram]:
        """A datagram from ``source`` at ``now`` (seconds, any clock); the datagrams to send in answer
        (a STUN response, or relayed)."""
        stats = self.stats
        stats.datagrams_in += 1
        if len(data) > MAX_DATAGRAM:
            stats.dropped_malformed += 1
            return []
        if len(data) >= 12 and data[0] >> 6 == 2:
            end = self._by_address.get(source)
            peer = end.peer if end is not None else None
            if peer is None or peer.address is None:
                stats.dropped_unknown += 1
                return []
            stats.relayed_packets += 1
            stats.relayed_bytes += len(data)
            return [(data, peer.address)]
        if is_stun(data):
            return self._stun(data, source, now)
        stats.dropped_malformed += 1
        return []

    def _answer(self, answer: bytes, request: bytes, source: Address, now: float) -> list[Datagram]:
        if not self.guard.allow(str(source[0]), len(request), len(answer), now):
            self.stats.stun_unanswered += 1
            return []
        return [(answer, source)]

    def _stun(self, data: bytes, source: Address, now: float) -> list[Datagram]:
        stats = self.stats
        try:
            request = StunMessage.parse(data)
            username = request.username
        except ProtocolError:
            stats.dropped_malformed += 1
            return []
        if request.method != BINDING or request.message_class != CLASS_REQUEST:
            stats.stun_refused += 1
            return []
        host, port = source[0], source[1]
        if username is None:
            answered = self._answer(
                bytes(binding_success(request.transaction_id, host, port, None)), data, source, now
            )
            stats.stun_answered += len(answered)
            return answered
        end = self._by_token.get(username)
        if end is None or not request.check_integrity(end.token):
            stats.stun_refused += 1
            return []
        stats.bindings += 1
        if end.address != source:
            if end.address is not None and self._by_address.get(end.address) is end:
                del self._by_address[end.address]
            self._by_address[source] = end
            end.address = source
        return self._answer(
            bytes(binding_success(request.transaction_id, host, port, end.token)), data, source, now
        )
