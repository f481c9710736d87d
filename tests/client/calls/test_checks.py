"""Connectivity checks without a network: two ends behind address-translating 'NATs' find each other."""

from __future__ import annotations

from conf_cli.client.calls.checks import Checks

KEY = b"k" * 20


def test_two_ends_reach_each_other_through_a_translated_address() -> None:
    caller, callee = Checks("c1", KEY), Checks("c1", KEY)
    caller.add_target(("198.51.100.2", 6000))  # the callee's public address as the STUN server saw it
    callee.add_target(("203.0.113.1", 5000))
    # The callee's NAT maps its socket to 198.51.100.2:6000 towards the caller; the caller's to
    # 203.0.113.1:5001 towards the callee (a NAT that maps each destination apart).
    to_callee = caller.poll(0.0)
    assert [where for _, where in to_callee] == [("198.51.100.2", 6000)]
    answers = [a for data, _ in to_callee for a in callee.received(data, ("203.0.113.1", 5001))]
    assert callee.targets == [("203.0.113.1", 5000), ("203.0.113.1", 5001)]  # a triggered check
    for data, where in answers:
        assert where == ("203.0.113.1", 5001)
        assert caller.received(data, ("198.51.100.2", 6000)) == []
    assert caller.reached == ("198.51.100.2", 6000)
    assert caller.poll(1.0) == []  # done
    for data, where in callee.poll(0.0):
        for answer, _ in caller.received(data, ("198.51.100.2", 6000)):
            if where == ("203.0.113.1", 5001):
                callee.received(answer, where)
    assert callee.reached == ("203.0.113.1", 5001)


def test_requests_are_repeated_and_strangers_refused() -> None:
    checks = Checks("c1", KEY)
    checks.add_target(("192.0.2.1", 1))
    assert len(checks.poll(0.0)) == 1 and checks.poll(0.05) == [] and len(checks.poll(0.11)) == 1
    stranger = Checks("c1", b"x" * 20)
    stranger.add_target(("192.0.2.9", 9))
    ((request, _),) = stranger.poll(0.0)
    assert checks.received(request, ("192.0.2.9", 9)) == [] and checks.refused == 1
    other_call = Checks("c2", KEY)
    other_call.add_target(("192.0.2.9", 9))
    ((request, _),) = other_call.poll(0.0)
    assert checks.received(request, ("192.0.2.9", 9)) == [] and checks.refused == 2
    assert checks.received(b"\x00\x01\x00\x00junk", ("192.0.2.9", 9)) == [] and checks.refused == 3
    assert checks.reached is None


def test_the_first_second_of_requests_only_opens_our_own_nat() -> None:
    checks = Checks("c1", KEY)
    checks.add_target(("192.0.2.1", 1))
    assert checks.opening(0.0)
    checks.poll(10.0)
    assert checks.opening(10.4) and not checks.opening(10.5)
    early = Checks("c1", KEY)
    early.poll(0.0)
    peer = Checks("c1", KEY)
    peer.add_target(("192.0.2.1", 1))
    ((request, _),) = peer.poll(0.0)
    assert early.received(request, ("192.0.2.1", 1)) and not early.opening(0.1)  # the peer's NAT is open
