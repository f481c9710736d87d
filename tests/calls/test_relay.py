"""The server's STUN answerer and relay, without a network."""

from __future__ import annotations

from conf_cli.calls.peer import REQUEST_SIZE
from conf_cli.calls.relay import ANSWER_WINDOW, ANSWERS_PER_SOURCE, CallRelay
from conf_cli.protocol.rtp import RtpPacket
from conf_cli.protocol.stun import BINDING, CLASS_REQUEST, StunMessage, binding_request, pad_to

A = ("10.0.0.1", 4000)
B = ("10.0.1.1", 5000)


def bind(relay: CallRelay, token: bytes | None, source: tuple[str, int], tid: bytes = b"t" * 12) -> list:
    username = token.hex() if token is not None else ""
    request = binding_request(tid, username, token) if token is not None else None
    if request is None:
        request = pad_to(StunMessage(BINDING, CLASS_REQUEST, tid, fingerprint=True), REQUEST_SIZE)
    return relay.datagram(bytes(request), source, 0.0)


def test_a_plain_binding_request_learns_its_public_address() -> None:
    relay = CallRelay()
    ((answer, where),) = bind(relay, None, A)
    assert where == A
    response = StunMessage.parse(answer)
    assert response.xor_mapped_address == A and response.integrity is None
    assert relay.stats.stun_answered == 1


def test_media_is_relayed_only_between_the_two_latched_ends_of_a_call() -> None:
    relay = CallRelay()
    first, second = relay.allocate("c1")
    media = bytes(RtpPacket(96, 1, 0, 1234, b"x" * 50))
    assert relay.datagram(media, A, 0.0) == []  # nobody latched yet
    ((answer, _),) = bind(relay, first, A)
    assert StunMessage.parse(answer).check_integrity(first)
    assert relay.datagram(media, A, 0.0) == []  # the other end has not latched
    assert bind(relay, second, B, b"u" * 12)
    assert relay.datagram(media, A, 0.0) == [(media, B)]
    assert relay.datagram(media, B, 0.0) == [(media, A)]
    assert relay.datagram(media, ("10.9.9.9", 1), 0.0) == []
    assert bind(relay, b"f" * 16, ("10.9.9.9", 1)) == []  # an unknown token
    forged = binding_request(b"v" * 12, first.hex(), b"wrong key" * 2)
    assert relay.datagram(bytes(forged), ("10.9.9.9", 1), 0.0) == []
    assert (
        relay.stats.relayed_packets == 2
        and relay.stats.stun_refused == 2
        and relay.stats.dropped_unknown == 3
    )
    relay.release("c1")
    assert relay.datagram(media, A, 0.0) == [] and relay.stats.allocations == 0
    assert relay.datagram(b"junk", A, 0.0) == [] and relay.stats.dropped_malformed == 1


def test_no_stun_answer_is_larger_than_its_request() -> None:
    """Amplification: a bare 20-byte Binding request (what a reflection attack sends, with the victim's
    address as source) gets no answer, since the answer (40 bytes) would be twice its size; a padded one,
    as conf's clients send, gets an answer no larger than itself, for IPv4 and IPv6 sources alike."""
    relay = CallRelay()
    bare = bytes(StunMessage(BINDING, CLASS_REQUEST, b"b" * 12))
    assert len(bare) == 20 and relay.datagram(bare, A, 0.0) == []
    assert relay.stats.stun_unanswered == 1 and relay.stats.stun_answered == 0
    for source in (A, ("2001:db8::1", 4000)):
        padded = bytes(pad_to(StunMessage(BINDING, CLASS_REQUEST, b"p" * 12, fingerprint=True), REQUEST_SIZE))
        ((answer, _),) = relay.datagram(padded, source, 0.0)
        assert len(answer) <= len(padded) == REQUEST_SIZE
    first, _ = relay.allocate("c1")  # a signed binding's answer carries MESSAGE-INTEGRITY too
    signed = bytes(pad_to(binding_request(b"s" * 12, first.hex(), first), REQUEST_SIZE))
    ((answer, _),) = relay.datagram(signed, ("2001:db8::2", 1), 0.0)
    assert len(answer) <= len(signed)


def test_a_flood_from_one_source_gets_a_few_answers_per_window() -> None:
    relay = CallRelay()
    answered = sum(len(bind(relay, None, A, bytes([n % 256]) * 12)) for n in range(1000))
    assert answered == ANSWERS_PER_SOURCE
    assert bind(relay, None, B)  # another source is not held back
    later = pad_to(StunMessage(BINDING, CLASS_REQUEST, b"l" * 12, fingerprint=True), REQUEST_SIZE)
    assert relay.datagram(bytes(later), A, ANSWER_WINDOW) != []  # the next window
