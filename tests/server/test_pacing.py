"""The pacer of a subscriber that moves down for want of downlink: packets out at its rate, in order."""

from __future__ import annotations

import itertools

import pytest

from conf_cli.server.pacing import PACE_BURST, PACE_QUEUE_LIMIT, Pacer


def let_out(pacer: Pacer, start: float) -> list[tuple[float, bytes]]:
    """Run ``pacer`` from ``start`` as its timer would: each packet with the time it left."""
    now, sent = start, []
    while True:
        sent += [(now, packet) for packet in pacer.due(now)]
        wait = pacer.wait()
        if wait is None:
            return sent
        now += wait


def test_a_keyframe_leaves_at_the_pacers_rate_in_order() -> None:
    pacer = Pacer(96_000, now=1.0)  # 12,000 bytes a second
    packets = [bytes([i]) * 1200 for i in range(10)]  # a 12 kB keyframe
    for packet in packets:
        assert pacer.push(packet)
    sent = let_out(pacer, 1.0)
    assert [packet for _, packet in sent] == packets
    times = [when for when, _ in sent]
    assert times[0] == 1.0  # the first at once (the bucket holds a packet) ...
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(gap == pytest.approx(0.1) for gap in gaps[1:])  # ... then one each 1200 / 12,000 s
    assert times[-1] - times[0] == pytest.approx((10 * 1200 - PACE_BURST) / 12_000, abs=0.03)
    assert pacer.queued == 0 and pacer.wait() is None


def test_a_packet_larger_than_the_burst_still_leaves_and_the_next_waits_longer() -> None:
    pacer = Pacer(80_000, now=0.0)  # 10,000 bytes a second
    pacer.push(b"a" * 3000)
    pacer.push(b"b" * 100)
    sent = let_out(pacer, 0.0)
    assert [len(p) for _, p in sent] == [3000, 100]
    assert sent[1][0] == pytest.approx((3000 - PACE_BURST + 100) / 10_000)


def test_a_full_pacer_drops_what_comes_and_keeps_what_it_holds() -> None:
    pacer = Pacer(8_000, now=0.0)
    count = PACE_QUEUE_LIMIT // 1000
    assert all(pacer.push(b"x" * 1000) for _ in range(count))
    assert not pacer.push(b"y" * 1000)
    assert pacer.dropped == 1 and pacer.queued == count * 1000
