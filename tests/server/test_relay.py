"""The server's STUN answerer and relay, without a network: plain STUN answers, and each end of a call
latched by the consent mechanism rtp:// uses (conf_cli.latch), so that a copied or forged binding moves no
media."""

from __future__ import annotations

from conf_cli.latch import CHECK_ATTEMPTS, CHECK_SUFFIX, CONSENT_TIMEOUT, Credentials, answer_check
from conf_cli.latch import request_transaction as numbered
from conf_cli.protocol.rtp import RtpPacket
from conf_cli.protocol.stun import BINDING, CLASS_REQUEST, CLASS_SUCCESS, StunMessage, binding_request, pad_to
from conf_cli.server.call_relay import ANSWER_WINDOW, ANSWERS_PER_SOURCE, PURPOSE, CallRelay
from conf_cli.stun_transactions import REQUEST_SIZE

A = ("10.0.0.1", 4000)
B = ("10.0.1.1", 5000)
EVIL = ("10.6.6.6", 6666)
SERVER = ("192.0.2.1", 3478)
MEDIA = bytes(RtpPacket(96, 1, 0, 1234, b"x" * 50))


class End:
    """One end of a call as a real client binds: numbered, signed requests; consent checks answered."""

    def __init__(self, relay: CallRelay, token: bytes, address: tuple[str, int]) -> None:
        self.relay, self.address = relay, address
        self.credentials = Credentials.of(token, PURPOSE)
        self.number = 0

    def request(self) -> bytes:
        self.number += 1
        transaction = numbered(self.number)
        message = binding_request(transaction, self.credentials.username, self.credentials.key)
        return bytes(pad_to(message, REQUEST_SIZE))

    def bind(self, now: float = 0.0) -> list[tuple[bytes, tuple]]:
        """Send a request, answer the relay's check; what the relay sent us in the end."""
        out = self.relay.datagram(self.request(), self.address, now)
        checks = [d for d, to in out if to == self.address and is_request(d)]
        assert len(checks) == 1, "a consent check before any answer"
        answer = answer_check(checks[0], self.credentials, *SERVER)
        assert answer is not None
        return self.relay.datagram(answer, self.address, now + 0.01)


def is_request(datagram: bytes) -> bool:
    return StunMessage.parse(datagram).message_class == CLASS_REQUEST


def bare(tid: bytes = b"t" * 12) -> bytes:
    return bytes(pad_to(StunMessage(BINDING, CLASS_REQUEST, tid, fingerprint=True), REQUEST_SIZE))


def test_a_plain_binding_request_learns_its_public_address() -> None:
    relay = CallRelay()
    ((answer, where),) = relay.datagram(bare(), A, 0.0)
    assert where == A
    response = StunMessage.parse(answer)
    assert response.xor_mapped_address == A and response.integrity is None
    assert relay.stats.stun_answered == 1


def test_the_token_never_travels_and_the_old_binding_is_refused() -> None:
    """The relay token travels only in the control connection: the USERNAME and key are derived from it
    (for the relay's purpose, so an rtp:// derivation of the same bytes is no good), and a request in
    the old form (the token in hex as USERNAME, the token as key) is refused."""
    relay = CallRelay()
    token, _ = relay.allocate("c1")
    end = End(relay, token, A)
    request = end.request()
    assert token not in request and token.hex().encode() not in request
    assert end.credentials.key not in request
    old = bytes(pad_to(binding_request(numbered(5), token.hex(), token), REQUEST_SIZE))
    rtp = Credentials.of(token)  # the rtp:// purpose
    other = bytes(pad_to(binding_request(numbered(6), rtp.username, rtp.key), REQUEST_SIZE))
    assert relay.datagram(old, A, 0.0) == [] and relay.datagram(other, A, 0.0) == []
    assert relay.stats.stun_refused == 2 and relay.stats.bindings == 0


def test_media_is_relayed_only_between_the_two_consented_ends_of_a_call() -> None:
    relay = CallRelay()
    first, second = relay.allocate("c1")
    ada, bob = End(relay, first, A), End(relay, second, B)
    assert relay.datagram(MEDIA, A, 0.0) == []  # nobody latched yet
    out = relay.datagram(ada.request(), A, 0.0)
    assert len(out) == 1 and is_request(out[0][0]), "a consent check, and no answer yet"
    assert relay.datagram(MEDIA, A, 0.0) == []
    consent = answer_check(out[0][0], ada.credentials, *SERVER)
    assert consent is not None
    ((answer, to),) = relay.datagram(consent, A, 0.1)  # consented: the request is answered now
    response = StunMessage.parse(answer)
    assert to == A and response.message_class == CLASS_SUCCESS
    assert response.check_integrity(ada.credentials.key)
    assert relay.datagram(MEDIA, A, 0.2) == []  # the other end has not latched
    assert bob.bind(0.3)
    assert relay.datagram(MEDIA, A, 0.4) == [(MEDIA, B)]
    assert relay.datagram(MEDIA, B, 0.4) == [(MEDIA, A)]
    assert relay.datagram(MEDIA, EVIL, 0.4) == []
    forged = binding_request(numbered(9), ada.credentials.username, b"wrong key" * 2)
    assert relay.datagram(bytes(forged), EVIL, 0.5) == []
    assert relay.stats.relayed_packets == 2 and relay.stats.dropped_unknown == 4
    relay.release("c1")
    assert relay.datagram(MEDIA, A, 1.0) == [] and relay.stats.allocations == 0
    assert relay.datagram(b"junk", A, 1.0) == [] and relay.stats.dropped_malformed == 1


def test_a_copied_binding_from_another_address_moves_no_media() -> None:
    """The finding: one binding read off the wire, sent again from the attacker's address, re-latched
    that end there. Now the copy is refused (its number is not newer, or it is the same transaction
    from another address), and a fresh request the attacker got first (it held back the original) only
    earns the attacker consent checks it cannot answer; the media stays with the real end."""
    relay = CallRelay()
    first, second = relay.allocate("c1")
    ada, bob = End(relay, first, A), End(relay, second, B)
    ada.bind(0.0)
    bob.bind(0.0)
    seen = ada.request()  # a keepalive, read off the wire
    relay.datagram(seen, A, 1.0)
    assert relay.datagram(seen, EVIL, 1.1) == []
    assert relay.stats.stun_replayed == 1
    held = ada.request()  # the attacker holds this one back and sends it first, from its address
    out = relay.datagram(held, EVIL, 2.0)
    assert [StunMessage.parse(d).username for d, _ in out] == [ada.credentials.username + CHECK_SUFFIX]
    now, to_evil = 2.0, len(out)
    ends = {A: ada, B: bob}
    for _ in range(20):  # the attacker's checks are repeated, never answered, and given up
        now += 0.5
        for datagram, to in relay.tick(now):
            assert is_request(datagram)
            if to == EVIL:
                to_evil += 1
            else:  # the real ends keep answering their refreshes
                answer = answer_check(datagram, ends[to].credentials, *SERVER)
                assert answer is not None and relay.datagram(answer, to, now) == []
        assert relay.datagram(MEDIA, B, now) == [(MEDIA, A)], "bob's media still goes to ada"
    assert to_evil == CHECK_ATTEMPTS and relay.stats.consent_failed == 1


def test_an_end_that_stops_answering_loses_its_media_and_a_nat_rebinding_gets_it_back() -> None:
    relay = CallRelay()
    first, second = relay.allocate("c1")
    ada, bob = End(relay, first, A), End(relay, second, B)
    ada.bind(0.0)
    bob.bind(0.0)
    now = 0.0
    while now < CONSENT_TIMEOUT + 10:  # bob answers the refreshes; ada does not
        now += 0.5
        for datagram, to in relay.tick(now):
            if to == B:
                answer = answer_check(datagram, bob.credentials, *SERVER)
                assert answer is not None
                relay.datagram(answer, B, now)
    assert relay.stats.consent_expired == 1
    assert relay.datagram(MEDIA, B, now) == [], "no media to an address that stopped consenting"
    moved = End(relay, first, ("10.0.0.1", 4001))
    moved.number = ada.number
    moved.bind(now)
    assert relay.datagram(MEDIA, B, now + 0.1) == [(MEDIA, ("10.0.0.1", 4001))]


def test_no_stun_answer_is_larger_than_its_request() -> None:
    """Amplification: a bare 20-byte Binding request (what a reflection attack sends, with the victim's
    address as source) gets no answer, since the answer (40 bytes) would be twice its size; a padded one,
    as conf's clients send, gets an answer no larger than itself, for IPv4 and IPv6 sources alike."""
    relay = CallRelay()
    tiny = bytes(StunMessage(BINDING, CLASS_REQUEST, b"b" * 12))
    assert len(tiny) == 20 and relay.datagram(tiny, A, 0.0) == []
    assert relay.stats.stun_unanswered == 1 and relay.stats.stun_answered == 0
    for source in (A, ("2001:db8::1", 4000)):
        padded = bare(b"p" * 12)
        ((answer, _),) = relay.datagram(padded, source, 0.0)
        assert len(answer) <= len(padded) == REQUEST_SIZE


def test_a_flood_from_one_source_gets_a_few_answers_per_window() -> None:
    relay = CallRelay()
    answered = sum(len(relay.datagram(bare(bytes([n % 256]) * 12), A, 0.0)) for n in range(1000))
    assert answered == ANSWERS_PER_SOURCE
    assert relay.datagram(bare(), B, 0.0)  # another source is not held back
    assert relay.datagram(bare(b"l" * 12), A, ANSWER_WINDOW) != []  # the next window
