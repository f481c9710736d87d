"""The server's STUN answerer and call relay on one UDP port. Sans-I/O.

- A Binding request without USERNAME is answered as RFC 5389 (and RFC 8489) section 7.3 says: a success
  response whose XOR-MAPPED-ADDRESS is the request's source address, so a client learns its public
  address (server-reflexive, behind a NAT: the NAT's).
- Each end of a relayed call gets a random relay token with ``call_accepted``, inside the client's
  control connection. The token never travels on UDP: the end latches by symmetric latching with consent
  (:mod:`conf_cli.latch`, purpose ``call relay``, the mechanism rtp:// uses): a USERNAME and a signing
  key derived from the token, a signed increasing number in every request so that a copy is refused,
  and the end's media sent to an address only after that address answered a consent check the server
  signed with a transaction ID of its choosing; consent is refreshed, and expires when it is not.
- Any other datagram (RTP/SRTP/SRTCP: first two bits ``10``) from an end's consented address is
  forwarded, as it is, to the consented address of the other end of the same call; from anywhere else it
  is dropped and counted. The relay never reads the media: calls are encrypted end to end.

Every unsigned STUN answer goes through a :class:`~conf_cli.reflection.ReflectionGuard`: it is never
larger than its request (a request too small for it gets none; conf's clients pad theirs) and one source
host gets at most :data:`ANSWERS_PER_SOURCE` per :data:`ANSWER_WINDOW` seconds, so that a forged source
address cannot turn the call port into an amplifier. Answers to signed requests go only to an address
that consented, and consent checks to addresses that have not are limited per end by the latch.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from conf_cli.errors import ProtocolError
from conf_cli.latch import CALL_RELAY_PURPOSE, Action, Latches, LatchStats, Transmit
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
PURPOSE = CALL_RELAY_PURPOSE
"""The relay tokens' purpose in :meth:`conf_cli.latch.Credentials.of`."""
ANSWERS_PER_SOURCE = 20
ANSWER_WINDOW = 5.0
MAX_DATAGRAM = MAX_STUN_BYTES

Address = tuple  # (host, port) as the socket reports it
Datagram = tuple[bytes, Address]


@dataclass
class RelayStats(LatchStats):
    """The latch's counts (bindings, consent checks, replays refused ...) and the relay's."""

    datagrams_in: int = 0
    stun_answered: int = 0  # plain Binding requests answered with the sender's address
    relayed_packets: int = 0  # media datagrams forwarded from one end of a call to the other
    relayed_bytes: int = 0
    dropped_unknown: int = 0  # media from an address no call end has latched, or whose peer has not
    stun_unanswered: int = 0  # answer larger than the request, or too many answers to one source
    allocations: int = 0  # calls with a relay now


@dataclass(eq=False)
class _End:
    call: str
    token: bytes
    peer: _End | None = None


@dataclass
class CallRelay:
    """Relay allocations (two ends per call) and the STUN answers of the server's call port."""

    stats: RelayStats = field(default_factory=RelayStats)
    _by_call: dict[str, tuple[_End, _End]] = field(default_factory=dict)
    guard: ReflectionGuard = field(
        default_factory=lambda: ReflectionGuard(per_source=ANSWERS_PER_SOURCE, window=ANSWER_WINDOW)
    )
    latches: Latches[_End] = field(init=False)

    def __post_init__(self) -> None:
        self.latches = Latches(stats=self.stats)

    def allocate(self, call: str) -> tuple[bytes, bytes]:
        """Two new relay tokens for ``call``: the caller's and the callee's."""
        self.release(call)
        first, second = (
            _End(call, secrets.token_bytes(TOKEN_BYTES)),
            _End(call, secrets.token_bytes(TOKEN_BYTES)),
        )
        first.peer, second.peer = second, first
        for end in (first, second):
            self.latches.add(end, end.token, PURPOSE)
        self._by_call[call] = (first, second)
        self.stats.allocations = len(self._by_call)
        return first.token, second.token

    def release(self, call: str) -> None:
        ends = self._by_call.pop(call, None)
        for end in ends or ():
            self.latches.remove(end)
            end.peer = None
        self.stats.allocations = len(self._by_call)

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has something to do (None: nothing until a datagram comes)."""
        return self.latches.next_deadline()

    def tick(self, now: float) -> list[Datagram]:
        """Consent checks due at ``now``: retransmissions, refreshes (and expiries, which send nothing)."""
        return self._sends(self.latches.tick(now))

    def datagram(self, data: bytes, source: Address, now: float) -> list[Datagram]:
        """A datagram from ``source`` at ``now`` (seconds, any clock); the datagrams to send in answer
        (a STUN response or consent check, or relayed media)."""
        stats = self.stats
        stats.datagrams_in += 1
        if len(data) > MAX_DATAGRAM:
            stats.dropped_malformed += 1
            return []
        if len(data) >= 12 and data[0] >> 6 == 2:
            end = self.latches.lookup(source)
            peer = end.peer if end is not None else None
            to = self.latches.address_of(peer) if peer is not None else None
            if to is None:
                stats.dropped_unknown += 1
                return []
            stats.relayed_packets += 1
            stats.relayed_bytes += len(data)
            return [(data, to)]
        if is_stun(data):
            return self._stun(data, source, now)
        stats.dropped_malformed += 1
        return []

    def _stun(self, data: bytes, source: Address, now: float) -> list[Datagram]:
        stats = self.stats
        try:
            request = StunMessage.parse(data)
            username = request.username
        except ProtocolError:
            stats.dropped_malformed += 1
            return []
        if username is not None or request.method != BINDING or request.message_class != CLASS_REQUEST:
            return self._sends(self.latches.receive(data, source, now))  # an end's binding, or its consent
        answer = bytes(binding_success(request.transaction_id, source[0], source[1], None))
        if not self.guard.allow(str(source[0]), len(data), len(answer), now):
            stats.stun_unanswered += 1
            return []
        stats.stun_answered += 1
        return [(answer, source)]

    @staticmethod
    def _sends(actions: list[Action]) -> list[Datagram]:
        """The datagrams among the latch's actions (latching and unlatching need nothing more: the relay
        asks the latch where each end's media goes)."""
        return [(a.datagram, a.address) for a in actions if isinstance(a, Transmit)]
