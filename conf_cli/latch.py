"""Symmetric latching with consent, sans-I/O: which UDP address speaks for which link (an rtp:// link, one
end of a relayed call), and where the server may send that link's media.

Each link gets a random token over a control connection (inside TLS when media is encrypted). The token
itself never travels on UDP: :class:`Credentials` derives from it a USERNAME, which names the link in the
clear, and a MESSAGE-INTEGRITY key, which never leaves the two ends. Seeing datagrams tells an eavesdropper
the USERNAME and nothing about the key. The derivation is labelled with the token's purpose (``rtp`` for
the rtp:// transport, ``call relay`` for the call relay), so a token can never be taken for another kind.

A signed Binding request from an address the link is not latched to makes that address a *candidate*; it
moves nothing. The server then sends the candidate its own Binding request (a consent check, RFC 7675
style), with a transaction ID of its choosing and signed with the link's key, and latches the link there
only when a success response signed with that key comes back from exactly that address. A copy of a
client's request sent from another address (or a request forged by someone who knows the key, aimed at a
victim's address) therefore gets that address a few small consent checks and no media: nobody there can
answer them. The client's pending requests are answered once its address is latched, so a client knows
its media path works when its first binding completes. While latched, the server repeats the check every
:data:`CONSENT_INTERVAL` seconds (randomized) and, when none has been answered for
:data:`CONSENT_TIMEOUT` seconds, unlatches the link: no more media goes there until consent is proved
again. A NAT rebinding is a new candidate that the real client answers.

Requests are not replayable either: a client's transaction IDs start with a 32-bit counter that grows
with every new binding, under the signature. A request older than the newest one seen is refused; the
same transaction again is a retransmission only from the address it first came from. Consent checks to
addresses that have not consented are limited per link (a burst of :data:`CHECK_BURST`, then one per
``1 / CHECK_RATE`` seconds), so no request, forged or copied, can make the server spray anyone.

:meth:`Latches.receive` takes each STUN datagram and :meth:`Latches.tick` the passing of time, both with
``now`` passed in; both return :data:`Action` values for the edge to carry out. The client's side is
:meth:`Credentials.request` (with :func:`request_transaction`) and :func:`answer_check`.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any, Generic, TypeVar

from conf_cli.errors import ProtocolError
from conf_cli.protocol.stun import (
    BINDING,
    CLASS_REQUEST,
    CLASS_SUCCESS,
    StunMessage,
    binding_request,
    binding_success,
)

__all__ = [
    "CHECK_ATTEMPTS",
    "CHECK_BURST",
    "CHECK_RATE",
    "CONSENT_INTERVAL",
    "CONSENT_TIMEOUT",
    "TOKEN_BYTES",
    "Action",
    "Address",
    "Alive",
    "Credentials",
    "LatchStats",
    "Latched",
    "Latches",
    "Transmit",
    "Unlatched",
    "answer_check",
    "new_token",
    "request_transaction",
]

TOKEN_BYTES = 16
SOFTWARE = "conf"
CALL_RELAY_PURPOSE = "call relay"
"""The purpose of a call relay's tokens in :meth:`Credentials.of` (the server's relay and both ends derive
them).
"""
CHECK_SUFFIX = ":consent"
"""Appended to the link's USERNAME in the server's consent checks: a check is never taken for a client's
request, nor a client's request for a check."""
REMEMBERED_TRANSACTIONS = 32
MAX_PENDING_ANSWERS = 8
"""Per candidate: the client's requests answered once it has consented (retransmissions share one)."""
MAX_CANDIDATES = 4
"""Per link: addresses being checked at once; a further one waits until one of them is done."""

CHECK_RTO = 0.1
"""Seconds before the first consent check to a candidate is repeated; doubling up to MAX_CHECK_RTO."""
MAX_CHECK_RTO = 1.6
CHECK_ATTEMPTS = 6
"""Checks sent to a candidate (about 4.7 s in all) before it is given up."""
CHECK_BURST = 10.0
"""Checks a link may send to addresses that have not consented, at once ..."""
CHECK_RATE = 0.5
"""... and per second after that."""
CONSENT_INTERVAL = 5.0
"""Seconds between consent checks to a latched address (each 0.8 to 1.2 times this, RFC 7675 section 5.1)."""
CONSENT_TIMEOUT = 30.0
"""Seconds without an answered check after which a latched address loses its consent (RFC 7675)."""
REMEMBERED_REFRESHES = 8

Address = tuple  # (host, port) or (host, port, flowinfo, scope_id) as the socket reports it
L = TypeVar("L")


def new_token() -> bytes:
    return secrets.token_bytes(TOKEN_BYTES)


@dataclass(frozen=True)
class Credentials:
    """What a link's token is used for on UDP: ``username`` (32 hex digits, sent in the clear) and ``key``
    (MESSAGE-INTEGRITY's HMAC key, never sent). Both are HMAC-SHA256 of the token with a fixed label that
    names the token's ``purpose``, so the username tells nothing about the key or the token, and a token
    of one purpose (``rtp``, ``call relay``) gives nothing that works for another."""

    username: str
    key: bytes

    @classmethod
    def of(cls, token: bytes, purpose: str = "rtp") -> Credentials:
        label = f"conf {purpose} stun".encode()
        username = hmac.new(token, label + b" username", hashlib.sha256).digest()[:16].hex()
        return cls(username, hmac.new(token, label + b" key", hashlib.sha256).digest())

    def request(self, transaction_id: bytes, software: str | None = None) -> bytes:
        """A client's Binding request (see :func:`request_transaction` for its transaction ID)."""
        return bytes(binding_request(transaction_id, self.username, self.key, software))

    def check(self, transaction_id: bytes) -> bytes:
        """The server's consent check."""
        return bytes(binding_request(transaction_id, self.username + CHECK_SUFFIX, self.key))


def request_transaction(sequence: int) -> bytes:
    """A client's transaction ID: the binding's number (growing with every new binding), 8 random bytes."""
    return (sequence & 0xFFFFFFFF).to_bytes(4, "big") + secrets.token_bytes(8)


def answer_check(data: bytes, credentials: Credentials, host: str, port: int) -> bytes | None:
    """The client's answer to a datagram from the server: a signed success response if it is a consent
    check signed with the link's key (``host``/``port``: where it came from), else None."""
    try:
        check = StunMessage.parse(data)
        username = check.username
    except ProtocolError:
        return None
    if check.method != BINDING or check.message_class != CLASS_REQUEST:
        return None
    if username != credentials.username + CHECK_SUFFIX or not check.check_integrity(credentials.key):
        return None
    return bytes(binding_success(check.transaction_id, host, port, credentials.key, SOFTWARE))


@dataclass
class LatchStats:
    """What the latches saw and did (all since they started); an edge may extend it with its own counts."""

    stun_in: int = 0
    bindings: int = 0  # signed, fresh Binding requests (retransmissions included)
    relatches: int = 0  # a latched link moved to another address that consented
    dropped_malformed: int = 0  # not a valid message
    stun_refused: int = 0  # a STUN message with an unknown USERNAME or transaction, or a bad signature
    stun_replayed: int = 0  # a signed request older than the newest, or seen before from another address
    consent_checks: int = 0  # consent checks sent (to candidates and to latched addresses)
    consent_failed: int = 0  # a candidate that never answered its checks
    consent_expired: int = 0  # a latched address that stopped answering: no more media to it
    checks_limited: int = 0  # a check not sent: the link's budget for unconsented addresses was spent

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class Transmit:
    """Send ``datagram`` to ``address`` through ``via`` (whatever the edge gave with the datagram that
    caused it: its socket)."""

    datagram: bytes
    address: Address
    via: Any


@dataclass(frozen=True)
class Latched(Generic[L]):
    """``link`` proved ``address`` and it consented: send its media there (``via``) and take media from it."""

    link: L
    address: Address
    via: Any
    moved_from: Address | None  # the address this link was latched to before, if any


@dataclass(frozen=True)
class Unlatched(Generic[L]):
    """``address`` stopped answering consent checks: send ``link`` no more media until it latches again."""

    link: L
    address: Address


@dataclass(frozen=True)
class Alive(Generic[L]):
    """A signed datagram of ``link`` arrived: a sign of life."""

    link: L


Action = Transmit | Latched[Any] | Unlatched[Any] | Alive[Any]


@dataclass
class _Candidate:
    """An address a link's signed request came from, being checked."""

    address: Address
    via: Any
    transaction: bytes  # the consent check's, chosen by the server (its retransmissions reuse it)
    next_send: float
    rto: float = CHECK_RTO
    attempts: int = 0
    answers: list[bytes] = field(default_factory=list)  # the client's requests to answer once it consents


@dataclass
class _Link(Generic[L]):
    link: L
    credentials: Credentials
    address: Address | None = None  # latched: consented
    via: Any = None
    consent_until: float = 0.0
    next_refresh: float = 0.0
    refreshes: list[bytes] = field(default_factory=list)  # recent consent checks to ``address``
    candidates: dict[Address, _Candidate] = field(default_factory=dict)
    newest: int = -1  # the highest request number seen
    recent: dict[bytes, Address] = field(default_factory=dict)  # recent request transactions, first source
    budget: float = CHECK_BURST
    budget_at: float | None = None


@dataclass
class Latches(Generic[L]):
    """Links, their credentials, candidates and latched addresses."""

    stats: LatchStats = field(default_factory=LatchStats)
    rng: random.Random = field(default_factory=random.Random)
    _links: dict[int, _Link[L]] = field(default_factory=dict)  # id(link) ->
    _by_username: dict[str, _Link[L]] = field(default_factory=dict)
    _by_address: dict[Address, _Link[L]] = field(default_factory=dict)
    _checks: dict[bytes, tuple[_Link[L], Address]] = field(default_factory=dict)  # check transaction ->
    new_deadline: float | None = None
    """The earliest deadline :meth:`receive` set since the last :meth:`tick` (the edge's clock may need to
    wake sooner); None if none."""

    def add(self, link: L, token: bytes, purpose: str = "rtp") -> None:
        """Latch ``link`` by the credentials of ``token`` (see :meth:`Credentials.of` for ``purpose``)."""
        state = _Link(link, Credentials.of(token, purpose))
        self._links[id(link)] = state
        self._by_username[state.credentials.username] = state

    def remove(self, link: L) -> None:
        state = self._links.pop(id(link), None)
        if state is None:
            return
        self._by_username.pop(state.credentials.username, None)
        self._unlatch(state)
        for candidate in state.candidates.values():
            self._checks.pop(candidate.transaction, None)
        state.candidates.clear()

    def lookup(self, address: Address) -> L | None:
        """The link latched to ``address`` (it consented), or None."""
        state = self._by_address.get(address)
        return None if state is None else state.link

    def address_of(self, link: L) -> Address | None:
        state = self._links.get(id(link))
        return None if state is None else state.address

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has something to do (None: nothing until a datagram comes)."""
        times = [c.next_send for s in self._links.values() for c in s.candidates.values()]
        times += [min(s.next_refresh, s.consent_until) for s in self._links.values() if s.address is not None]
        return min(times, default=None)

    # -- datagrams --------------------------------------------------------------------------------------

    def receive(self, data: bytes, source: Address, now: float, via: Any = None) -> list[Action]:
        """Handle a STUN datagram from ``source`` (arrived through ``via``); [] (and counted) if it
        proves nothing."""
        self.stats.stun_in += 1
        try:
            message = StunMessage.parse(data)
            username = message.username
        except ProtocolError:
            self.stats.dropped_malformed += 1
            return []
        if message.method == BINDING and message.message_class == CLASS_REQUEST and username is not None:
            return self._request(message, username, source, now, via)
        if message.method == BINDING and message.message_class == CLASS_SUCCESS:
            return self._response(message, source, now)
        self.stats.stun_refused += 1
        return []

    def _request(
        self, request: StunMessage, username: str, source: Address, now: float, via: Any
    ) -> list[Action]:
        state = self._by_username.get(username)
        if state is None or not request.check_integrity(state.credentials.key):
            self.stats.stun_refused += 1
            return []
        transaction = request.transaction_id
        first_from = state.recent.get(transaction)
        if first_from is None:
            number = int.from_bytes(transaction[:4], "big")
            if number <= state.newest:  # older than a binding already seen: a copy
                self.stats.stun_replayed += 1
                return []
            state.newest = number
            state.recent[transaction] = source
            if len(state.recent) > REMEMBERED_TRANSACTIONS:
                del state.recent[next(iter(state.recent))]
        elif first_from != source:  # the same transaction from another address: a copy
            self.stats.stun_replayed += 1
            return []
        self.stats.bindings += 1
        actions: list[Action] = [Alive(state.link)]
        if source == state.address:
            actions.append(Transmit(self._success(state, transaction, source), source, via))
            return actions
        candidate = state.candidates.get(source)
        if candidate is None:
            if len(state.candidates) >= MAX_CANDIDATES:
                self.stats.checks_limited += 1
                return actions
            candidate = _Candidate(source, via, secrets.token_bytes(12), now)
            state.candidates[source] = candidate
            self._checks[candidate.transaction] = (state, source)
        if transaction not in candidate.answers and len(candidate.answers) < MAX_PENDING_ANSWERS:
            candidate.answers.append(transaction)
        if now >= candidate.next_send:
            actions += self._check(state, candidate, now)
        return actions

    def _response(self, response: StunMessage, source: Address, now: float) -> list[Action]:
        entry = self._checks.get(response.transaction_id)
        if entry is None:
            self.stats.stun_refused += 1
            return []
        state, address = entry
        if source != address or not response.check_integrity(state.credentials.key):
            self.stats.stun_refused += 1
            return []
        actions: list[Action] = [Alive(state.link)]
        if address == state.address:
            state.consent_until = now + CONSENT_TIMEOUT
            return actions
        candidate = state.candidates.pop(address, None)
        if candidate is None:  # an answer to a check of an address this link has since left
            return actions
        self._checks.pop(candidate.transaction, None)
        moved_from = state.address
        if moved_from is not None:
            self.stats.relatches += 1
            self._unlatch(state)
        other = self._by_address.get(address)
        if other is not None and other is not state:  # the address consented anew for the newest prover
            self._unlatch(other)
            actions.append(Unlatched(other.link, address))
        self._by_address[address] = state
        state.address, state.via = address, candidate.via
        state.consent_until = now + CONSENT_TIMEOUT
        state.next_refresh = now + self._interval()
        self._deadline(state.next_refresh)
        actions.append(Latched(state.link, address, candidate.via, moved_from))
        for transaction in candidate.answers:
            actions.append(Transmit(self._success(state, transaction, address), address, candidate.via))
        return actions

    # -- time -------------------------------------------------------------------------------------------

    def tick(self, now: float) -> list[Action]:
        """Repeat due checks, give up silent candidates, refresh and expire consent."""
        actions: list[Action] = []
        for state in list(self._links.values()):
            for candidate in list(state.candidates.values()):
                if now >= candidate.next_send:
                    actions += self._check(state, candidate, now)
            address = state.address
            if address is None:
                continue
            if now >= state.consent_until:
                self.stats.consent_expired += 1
                self._unlatch(state)
                actions.append(Unlatched(state.link, address))
            elif now >= state.next_refresh:
                state.next_refresh = now + self._interval()
                transaction = secrets.token_bytes(12)
                self._checks[transaction] = (state, address)
                state.refreshes.append(transaction)
                if len(state.refreshes) > REMEMBERED_REFRESHES:
                    self._checks.pop(state.refreshes.pop(0), None)
                self.stats.consent_checks += 1
                actions.append(Transmit(state.credentials.check(transaction), address, state.via))
        self.new_deadline = None  # the edge reads next_deadline() after a tick
        return actions

    # -- helpers ----------------------------------------------------------------------------------------

    def _check(self, state: _Link[L], candidate: _Candidate, now: float) -> list[Action]:
        """Send the candidate its (next) consent check, or give it up."""
        if candidate.attempts >= CHECK_ATTEMPTS:
            self.stats.consent_failed += 1
            self._drop(state, candidate)
            return []
        if not self._spend(state, now):
            self.stats.checks_limited += 1
            self._drop(state, candidate)
            return []
        candidate.attempts += 1
        candidate.next_send = now + candidate.rto
        self._deadline(candidate.next_send)
        candidate.rto = min(candidate.rto * 2, MAX_CHECK_RTO)
        self.stats.consent_checks += 1
        return [Transmit(state.credentials.check(candidate.transaction), candidate.address, candidate.via)]

    def _deadline(self, when: float) -> None:
        if self.new_deadline is None or when < self.new_deadline:
            self.new_deadline = when

    def _spend(self, state: _Link[L], now: float) -> bool:
        """Take one check from the link's budget for addresses that have not consented, if there is one."""
        if state.budget_at is not None:
            state.budget = min(CHECK_BURST, state.budget + (now - state.budget_at) * CHECK_RATE)
        state.budget_at = now
        if state.budget < 1:
            return False
        state.budget -= 1
        return True

    def _drop(self, state: _Link[L], candidate: _Candidate) -> None:
        state.candidates.pop(candidate.address, None)
        self._checks.pop(candidate.transaction, None)

    def _unlatch(self, state: _Link[L]) -> None:
        if state.address is not None and self._by_address.get(state.address) is state:
            del self._by_address[state.address]
        state.address = state.via = None
        for transaction in state.refreshes:
            self._checks.pop(transaction, None)
        state.refreshes.clear()

    def _interval(self) -> float:
        return CONSENT_INTERVAL * self.rng.uniform(0.8, 1.2)

    @staticmethod
    def _success(state: _Link[L], transaction: bytes, address: Address) -> bytes:
        return bytes(binding_success(transaction, address[0], address[1], state.credentials.key, SOFTWARE))
