"""The jitter buffer: release timing, reordering, loss reports, NACK lists, wrap-around and bounds."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conf_cli.media.jitter import Gap, JitterBuffer
from conf_cli.protocol.rtp import RtpPacket

SEQ0 = 1000
TS0 = 5000
STEP = 960  # 20 ms of Opus on the 48 kHz clock
PERIOD = 0.02


def audio(i: int, seq0: int = SEQ0, ts0: int = TS0) -> RtpPacket:
    return RtpPacket(111, (seq0 + i) & 0xFFFF, (ts0 + STEP * i) & 0xFFFFFFFF, 1, bytes([i & 0xFF]))


def seqs(items: list[RtpPacket | Gap]) -> list[int | tuple[int, int]]:
    return [item.sequence_number if isinstance(item, RtpPacket) else (item.seq, item.count) for item in items]


def test_in_order_packets_leave_target_delay_after_arrival() -> None:
    buffer = JitterBuffer(48_000, target_delay=0.05)
    assert buffer.deadline() is None
    for i in range(5):
        arrival = i * PERIOD + 0.01
        assert buffer.push(audio(i), arrival)
        assert buffer.deadline() == pytest.approx(arrival + 0.05 if i == 0 else 0.06)
    released = []
    for i in range(5):
        due = i * PERIOD + 0.06
        assert buffer.pop(due - 0.001) == []
        released += buffer.pop(due + 0.001)
        assert seqs(released) == [SEQ0 + n for n in range(i + 1)]
    assert len(buffer) == 0
    assert buffer.deadline() is None


def test_slow_packets_wait_less_and_late_ones_not_at_all() -> None:
    buffer = JitterBuffer(48_000, target_delay=0.05)
    buffer.push(audio(0), 0.01)  # transit 10 ms: the reference
    buffer.push(audio(1), 0.06)  # transit 40 ms: plays at 0.02 + 0.01 + 0.05 = 0.08
    assert seqs(buffer.pop(0.0601)) == [SEQ0]
    assert buffer.pop(0.0799) == []
    assert seqs(buffer.pop(0.0801)) == [SEQ0 + 1]
    buffer.push(audio(2), 0.12)  # transit 80 ms: its playout time (0.10) has passed
    assert seqs(buffer.pop(0.12)) == [SEQ0 + 2]


def test_reordered_packets_come_out_in_order() -> None:
    buffer = JitterBuffer(48_000, target_delay=0.05)
    for i, arrival in [(0, 0.01), (2, 0.05), (1, 0.055), (4, 0.09), (3, 0.1)]:
        buffer.push(audio(i), arrival)
    assert buffer.missing(0.2) == []
    assert seqs(buffer.pop(1.0)) == [SEQ0 + i for i in range(5)]
    assert (buffer.lost, buffer.late, buffer.duplicates, buffer.received) == (0, 0, 0, 5)


def test_loss_is_reported_once_overdue_and_nacked_meanwhile() -> None:
    buffer = JitterBuffer(48_000, target_delay=0.05)
    buffer.push(audio(0), 0.01)
    buffer.push(audio(2), 0.05)  # packet 1 noticed missing at 0.05
    assert buffer.missing(0.05) == [SEQ0 + 1]
    assert buffer.missing(0.06, min_age=0.02) == []
    assert buffer.missing(0.07, min_age=0.02) == [SEQ0 + 1]
    assert seqs(buffer.pop(0.0601)) == [SEQ0]
    assert buffer.deadline() == pytest.approx(0.10)
    assert buffer.pop(0.0999) == []
    assert seqs(buffer.pop(0.1001)) == [(SEQ0 + 1, 1), SEQ0 + 2]
    assert buffer.lost == 1
    assert buffer.missing(0.2) == []
    assert not buffer.push(audio(1), 0.11)  # too late: its place was given up
    assert buffer.late == 1


def test_retransmission_in_time_fills_the_hole() -> None:
    buffer = JitterBuffer(48_000, target_delay=0.05)
    buffer.push(audio(0), 0.01)
    buffer.push(audio(3), 0.07)
    assert buffer.missing(0.07) == [SEQ0 + 1, SEQ0 + 2]
    assert buffer.push(audio(2), 0.09)
    assert buffer.missing(0.09) == [SEQ0 + 1]
    assert buffer.push(audio(1), 0.1)
    assert buffer.missing(0.1) == []
    assert seqs(buffer.pop(1.0)) == [SEQ0 + i for i in range(4)]
    assert buffer.lost == 0


def test_duplicates_are_dropped() -> None:
    buffer = JitterBuffer(48_000)
    assert buffer.push(audio(0), 0.0)
    assert not buffer.push(audio(0), 0.001)
    buffer.pop(1.0)
    assert not buffer.push(audio(0), 1.0)  # already handed out: counted as late
    assert (buffer.duplicates, buffer.late) == (1, 1)


def test_sequence_and_timestamp_wrap_around() -> None:
    buffer = JitterBuffer(48_000, target_delay=0.05)
    seq0, ts0 = 65533, (1 << 32) - 2 * STEP
    for i in (0, 1, 3, 2, 4, 6, 5, 7):
        buffer.push(audio(i, seq0, ts0), i * PERIOD + 0.01)
    out = buffer.pop(0.2)
    assert seqs(out) == [65533, 65534, 65535, 0, 1, 2, 3, 4]
    assert [p.timestamp for p in out if isinstance(p, RtpPacket)][2:4] == [0, STEP]
    # Every packet keeps its spacing across the timestamp wrap: the last one is due at 7 * 20 + 60 ms.
    buffer.push(audio(8, seq0, ts0), 8 * PERIOD + 0.01)
    assert buffer.deadline() == pytest.approx(8 * PERIOD + 0.06)


def test_first_packet_overtaken_by_the_second() -> None:
    buffer = JitterBuffer(48_000, target_delay=0.05)
    buffer.push(audio(2), 0.05)
    buffer.push(audio(0), 0.051)
    assert buffer.missing(0.051) == [SEQ0 + 1]
    buffer.push(audio(1), 0.052)
    assert seqs(buffer.pop(1.0)) == [SEQ0, SEQ0 + 1, SEQ0 + 2]
    assert buffer.late == 0


def test_span_is_bounded_oldest_dropped_and_reported() -> None:
    buffer = JitterBuffer(48_000, max_packets=8)
    for i in range(11):
        if i != 1:
            buffer.push(audio(i), i * PERIOD)  # never popped: a consumer that stalls
    assert len(buffer) == 8
    assert (buffer.dropped, buffer.lost) == (2, 3)
    assert seqs(buffer.pop(10.0)) == [(SEQ0, 3)] + [SEQ0 + i for i in range(3, 11)]


def test_big_forward_jump_is_a_discontinuity_not_a_nack_storm() -> None:
    buffer = JitterBuffer(48_000, max_packets=100)
    buffer.push(audio(0), 0.0)
    buffer.pop(1.0)
    buffer.push(audio(5000), 5000 * PERIOD)
    assert buffer.missing(5000 * PERIOD) == []
    out = buffer.pop(5000 * PERIOD + 1)
    assert isinstance(out[-1], RtpPacket) and out[-1].sequence_number == (SEQ0 + 5000) & 0xFFFF
    assert sum(g.count for g in out if isinstance(g, Gap)) == 4999
    assert [s for g in out if isinstance(g, Gap) for s in g.seqs] == [
        (SEQ0 + i) & 0xFFFF for i in range(1, 5000)
    ]


RESTART = (SEQ0 - 30_000) & 0xFFFF  # a sequence number 30000 behind SEQ0


def test_restarted_sender_far_behind() -> None:
    buffer = JitterBuffer(48_000, max_packets=100)
    for i in range(3):
        buffer.push(audio(i), i * PERIOD)
    buffer.pop(1.0)
    assert not buffer.push(audio(0, seq0=RESTART), 1.0)  # far behind: maybe a stray packet
    assert buffer.push(audio(1, seq0=RESTART), 1.02)  # the next one too: the sender restarted
    assert buffer.push(audio(2, seq0=RESTART), 1.04)
    assert seqs(buffer.pop(2.0)) == [RESTART + 1, RESTART + 2]
    assert buffer.late == 1


def test_restart_reports_what_was_still_buffered() -> None:
    buffer = JitterBuffer(48_000, max_packets=100)
    buffer.push(audio(0), 0.0)
    buffer.push(audio(1), 0.02)
    buffer.push(audio(0, seq0=RESTART), 0.03)
    buffer.push(audio(1, seq0=RESTART), 0.04)
    assert seqs(buffer.pop(2.0)) == [(SEQ0, 2), RESTART + 1]
    assert buffer.dropped == 2


def test_gap_seqs_wrap() -> None:
    assert Gap(65535, 3).seqs == [65535, 0, 1]


def test_delay_follows_a_lasting_change_of_transit_time() -> None:
    buffer = JitterBuffer(48_000, target_delay=0.05, window=1.0)
    waits = []
    for i in range(60):  # a packet every 100 ms; after 2 s every one takes 200 ms longer to arrive
        arrival = i * 0.1 + (0.01 if i < 20 else 0.21)
        buffer.pop(arrival)
        buffer.push(RtpPacket(111, i, i * 4800, 1, b"x"), arrival)
        deadline = buffer.deadline()
        assert deadline is not None
        waits.append(max(0.0, deadline - arrival))
    assert waits[10] == pytest.approx(0.05)
    assert waits[21] == 0.0  # by the old reference these are late: they leave at once
    assert waits[59] == pytest.approx(0.05)  # two windows later the reference has moved


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="clock rate 0 must be positive"):
        JitterBuffer(0)
    with pytest.raises(ValueError, match="max_packets 0 must be positive"):
        JitterBuffer(90_000, max_packets=0)


@settings(max_examples=150, deadline=None)
@given(
    count=st.integers(1, 80),
    seq0=st.integers(0, 0xFFFF),
    data=st.data(),
)
def test_every_sequence_number_comes_out_once_in_order(count: int, seq0: int, data: st.DataObject) -> None:
    lost = data.draw(st.sets(st.integers(0, count - 1), max_size=count // 3))
    jitter = data.draw(st.lists(st.floats(0, 0.15), min_size=count, max_size=count))
    dup = data.draw(st.sets(st.integers(0, count - 1), max_size=5))
    arrivals = sorted(
        [(i * PERIOD + jitter[i], i) for i in range(count) if i not in lost]
        + [(i * PERIOD + jitter[i] + 0.001, i) for i in dup if i not in lost]
    )
    buffer = JitterBuffer(48_000, target_delay=0.06, max_packets=4096)
    out: list[RtpPacket | Gap] = []
    accepted = set()
    for now, i in arrivals:
        if buffer.push(audio(i, seq0), now):
            accepted.add(i)
        out += buffer.pop(now)
    out += buffer.pop(math.inf)
    assert len(buffer) == 0
    expanded: list[int] = []
    for item in out:
        expanded += item.seqs if isinstance(item, Gap) else [item.sequence_number]
    assert expanded == [(expanded[0] + n) & 0xFFFF for n in range(len(expanded))]
    released = {(p.sequence_number - seq0) & 0xFFFF for p in out if isinstance(p, RtpPacket)}
    assert released == accepted
    assert buffer.received == len(accepted)
    assert buffer.lost == sum(g.count for g in out if isinstance(g, Gap))
    # Nothing that arrived goes missing silently, except what was older than the first packet handed out.
    first = (expanded[0] - seq0) & 0xFFFF
    offsets = {(s - seq0) & 0xFFFF for s in expanded}
    assert {i for _, i in arrivals if i >= first} <= offsets


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF), st.floats(0, 0.5)),
        max_size=60,
    )
)
def test_arbitrary_arrivals_stay_bounded(arrivals: list[tuple[int, int, float]]) -> None:
    buffer = JitterBuffer(90_000, target_delay=0.05, max_packets=16)
    now = 0.0
    for seq, timestamp, wait in arrivals:
        now += wait
        buffer.push(RtpPacket(96, seq, timestamp, 1, b""), now)
        assert len(buffer) <= 16
        assert len(buffer.missing(now)) <= 16
        buffer.deadline()
        buffer.pop(now)
    buffer.pop(math.inf)
    assert len(buffer) == 0


def test_hold_zero_releases_packets_in_order_at_once_and_only_a_hole_waits() -> None:
    buffer = JitterBuffer(48_000, target_delay=0.05, hold=0.0)
    assert buffer.push(audio(0), 0.01)
    assert seqs(buffer.pop(0.01)) == [SEQ0]
    assert buffer.push(audio(2), 0.05)  # 1 is missing: 2 waits for it, at most target_delay
    assert buffer.pop(0.05) == []
    assert buffer.deadline() == pytest.approx(0.10)
    assert buffer.push(audio(1), 0.06)  # a resend fills the hole: both leave at once
    assert seqs(buffer.pop(0.06)) == [SEQ0 + 1, SEQ0 + 2]
    assert buffer.push(audio(4), 0.09)
    assert buffer.pop(0.139) == []
    assert seqs(buffer.pop(0.141)) == [(SEQ0 + 3, 1), SEQ0 + 4]


def test_target_zero_gives_a_hole_up_at_once() -> None:
    """On an ordered transport a hole is a packet dropped upstream: nothing to wait for."""
    buffer = JitterBuffer(48_000, target_delay=0.0, hold=0.0)
    buffer.push(audio(0), 0.0)
    buffer.pop(0.0)
    buffer.push(audio(3), 0.06)
    assert seqs(buffer.pop(0.06)) == [(SEQ0 + 1, 2), SEQ0 + 3]
