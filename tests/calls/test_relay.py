"""The server's STUN answerer and relay, without a network."""

from __future__ import annotations

from conf_cli.calls.relay import CallRelay
from conf_cli.protocol.rtp import RtpPacket
from conf_cli.protocol.stun import StunMessage, binding_request

A = ("10.0.0.1", 4000)
B = ("10.0.1.1", 5000)


def bind(relay: CallRelay, token: bytes | None, source: tuple[str, int], tid: bytes = b"t" * 12) -> list:
    username = token.hex() if token is not None else ""
    request = binding_request(tid, username, token) if token is not None else None
    if request is None:
        from conf_cli.protocol.stun import BINDING, CLASS_REQUEST

        request = StunMessage(BINDING, CLASS_REQUEST, tid, fingerprint=True)
    return relay.datagram(bytes(request), source)


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
    assert relay.datagram(media, A) == []  # nobody latched yet
    ((answer, _),) = bind(relay, first, A)
    assert StunMessage.parse(answer).check_integrity(first)
    assert relay.datagram(media, A) == []  # the other end has not latched
    assert bind(relay, second, B, b"u" * 12)
    assert relay.datagram(media, A) == [(media, B)]
    assert relay.datagram(media, B) == [(media, A)]
    assert relay.datagram(media, ("10.9.9.9", 1)) == []
    assert bind(relay, b"f" * 16, ("10.9.9.9", 1)) == []  # an unknown token
    forged = binding_request(b"v" * 12, first.hex(), b"wrong key" * 2)
    assert relay.datagram(bytes(forged), ("10.9.9.9", 1)) == []
    assert (
        relay.stats.relayed_packets == 2
        and relay.stats.stun_refused == 2
        and relay.stats.dropped_unknown == 3
    )
    relay.release("c1")
    assert relay.datagram(media, A) == [] and relay.stats.allocations == 0
    assert relay.datagram(b"junk", A) == [] and relay.stats.dropped_malformed == 1
