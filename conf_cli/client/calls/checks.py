"""Connectivity checks between the two ends of a call: UDP hole punching with signed STUN. Sans-I/O.

Each end sends Binding requests from its call socket to every candidate address of the other (its
addresses on its own networks, and the public address the server's STUN answerer saw), retransmitting
every :data:`CHECK_INTERVAL` seconds. Sending opens the sender's NAT towards the peer; the peer's
requests open the peer's; once both have, requests get through and are answered. Requests and answers
carry USERNAME = the call ID and MESSAGE-INTEGRITY keyed by the call's check key (known only to the two
ends), so nobody else can answer for the peer. A request from an address that is not a candidate (a NAT
that maps each destination apart) adds that address as a candidate (a triggered check, as in ICE).

A NAT that receives a request before its own client has sent anything to that peer remembers it as an
unanswered inbound flow, and may then give its client's first outbound packet to the peer another port
(Linux MASQUERADE does), which the peer's NAT in turn drops. So for the first :data:`OPENING` seconds
requests go out with a small TTL (:data:`OPENING_TTL` hops): enough to pass our own NAT and open it,
too little to reach the peer's. Once both ends have opened theirs, full requests get through both; a
request from the peer proves its NAT open towards us, and ends our opening at once.

:attr:`Checks.reached` is the first peer address that answered one of our requests: media can go there.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from conf_cli.errors import ProtocolError
from conf_cli.protocol.stun import (
    BINDING,
    CLASS_REQUEST,
    CLASS_SUCCESS,
    StunMessage,
    binding_request,
    binding_success,
)

CHECK_INTERVAL = 0.1
OPENING = 0.5
"""Seconds during which requests are sent with :data:`OPENING_TTL` (see :meth:`Checks.opening`)."""
OPENING_TTL = 2
MAX_TARGETS = 16
SOFTWARE = "conf"

Address = tuple  # (host, port)
Datagram = tuple[bytes, Address]


@dataclass
class Checks:
    call_id: str
    key: bytes
    targets: list[Address] = field(default_factory=list)
    reached: Address | None = None
    answered: int = 0  # peer requests we answered
    refused: int = 0  # STUN that was not the peer's
    _sent: dict[bytes, Address] = field(default_factory=dict)
    _next: float = 0.0
    _started: float | None = None

    def add_target(self, address: Address) -> None:
        if address not in self.targets and len(self.targets) < MAX_TARGETS:
            self.targets.append(address)

    def opening(self, now: float) -> bool:
        """True while requests should only open our own NAT (a small TTL)."""
        if self.answered:
            return False
        return self._started is None or now < self._started + OPENING

    def poll(self, now: float) -> list[Datagram]:
        """Requests due now (to every target, until one has answered)."""
        if self._started is None:
            self._started = now
        if self.reached is not None or now < self._next:
            return []
        self._next = now + CHECK_INTERVAL
        out: list[Datagram] = []
        for target in self.targets:
            transaction = secrets.token_bytes(12)
            if len(self._sent) > 256:
                self._sent.pop(next(iter(self._sent)))
            self._sent[transaction] = target
            out.append((bytes(binding_request(transaction, self.call_id, self.key, SOFTWARE)), target))
        return out

    def received(self, data: bytes, source: Address) -> list[Datagram]:
        """A STUN datagram on the call socket: answer the peer's requests, note its answers to ours."""
        try:
            message = StunMessage.parse(data)
            username = message.username
        except ProtocolError:
            self.refused += 1
            return []
        if message.method != BINDING or not message.check_integrity(self.key):
            self.refused += 1
            return []
        if message.message_class == CLASS_REQUEST:
            if username != self.call_id:
                self.refused += 1
                return []
            self.answered += 1
            self.add_target(source)
            host, port = source[0], source[1]
            return [(bytes(binding_success(message.transaction_id, host, port, self.key, SOFTWARE)), source)]
        known = message.transaction_id in self._sent
        if message.message_class == CLASS_SUCCESS and known and self.reached is None:
            self.reached = source
        return []
