"""RTP stream state: the sender, RFC 3550 appendix A reception statistics, and rate meters."""

from __future__ import annotations

import random

import pytest

from conf_cli.media.rtp_stream import RateMeter, ReceiverStats, RtpSender, TrackStats, track_stats
from conf_cli.protocol.rtcp import (
    Nack,
    ReceiverReport,
    ReportBlock,
    SenderReport,
    ntp_from_unix,
    parse_compound,
)
from conf_cli.protocol.rtp import RtpPacket

# --- RtpSender ---------------------------------------------------------------------------------------------


def sender(seed: int = 1, **kwargs: int) -> RtpSender:
    return RtpSender(ssrc=0xABCDEF01, payload_type=96, clock_rate=90_000, rng=random.Random(seed), **kwargs)


def test_sender_start_is_random_but_reproducible() -> None:
    a, b, c = sender(1), sender(1), sender(2)
    assert (a.sequence_number, a.timestamp_offset) == (b.sequence_number, b.timestamp_offset)
    assert (a.sequence_number, a.timestamp_offset) != (c.sequence_number, c.timestamp_offset)
    unseeded = RtpSender(1, 96, 90_000)
    assert 0 <= unseeded.sequence_number <= 0xFFFF
    assert 0 <= unseeded.timestamp_offset <= 0xFFFFFFFF


def test_packetize_byte_exact() -> None:
    s = sender()
    s.sequence_number, s.timestamp_offset = 0x1234, 0x10
    first, second = s.packetize([b"ab", b"cd"], ticks=0x20, marker=True)
    assert first == bytes.fromhex("80601234 00000030 abcdef01") + b"ab"
    assert second == bytes.fromhex("80e01235 00000030 abcdef01") + b"cd"
    assert s.sequence_number == 0x1236
    assert (s.packet_count, s.octet_count) == (2, 4)


def test_marker_and_timestamps() -> None:
    s = sender()
    packets = [RtpPacket.parse(p) for p in s.packetize([b"1", b"2", b"3"], ticks=3000, marker=True)]
    assert [p.marker for p in packets] == [False, False, True]
    assert {p.timestamp for p in packets} == {(s.timestamp_offset + 3000) & 0xFFFFFFFF}
    audio = [RtpPacket.parse(p) for p in s.packetize([b"4"], ticks=3000, marker=False)]
    assert not audio[0].marker
    assert s.packetize([], ticks=0, marker=True) == []
    assert s.ticks(1.5) == 135_000
    assert s.ticks(1 / 30) == 3000


def test_sequence_number_and_timestamp_wrap() -> None:
    s = sender()
    s.sequence_number, s.timestamp_offset = 0xFFFE, 0xFFFFFF00
    packets = [RtpPacket.parse(p) for p in s.packetize([b"a", b"b", b"c"], ticks=0x100, marker=True)]
    assert [p.sequence_number for p in packets] == [0xFFFE, 0xFFFF, 0]
    assert packets[0].timestamp == 0
    assert s.rtp_timestamp(0x0FF) == 0xFFFFFFFF


def test_history_answers_nacks() -> None:
    s = sender(history=512)
    s.sequence_number = 65000
    sent = [p for i in range(600) for p in s.packetize([bytes([i % 256]) * 10], ticks=i * 3000, marker=True)]
    seqs = [RtpPacket.parse(p).sequence_number for p in sent]
    assert s.retransmit([seqs[-1], seqs[100], seqs[88], seqs[87]]) == [sent[-1], sent[100], sent[88]]
    assert s.retransmit([seqs[0]]) == []  # older than the last 512
    nack = parse_compound(bytes(Nack(1, s.ssrc, [seqs[530], seqs[531], seqs[540]])))[0]
    assert isinstance(nack, Nack)
    assert s.handle_nack(nack) == [sent[530], sent[531], sent[540]]
    assert s.handle_nack(Nack(1, 0x999, [seqs[530]])) == []


def test_sender_report() -> None:
    s = sender()
    s.timestamp_offset = 1000
    s.packetize([b"12345"], ticks=0, marker=True)
    report = s.sender_report(now=1_700_000_000.5, ticks=90_000, reports=[ReportBlock(7)])
    assert report == SenderReport(
        ssrc=0xABCDEF01,
        ntp_timestamp=ntp_from_unix(1_700_000_000.5),
        rtp_timestamp=91_000,
        packet_count=1,
        octet_count=5,
        reports=[ReportBlock(7)],
    )
    assert parse_compound(bytes(report)) == [report]


# --- ReceiverStats (RFC 3550 A.1, A.3, A.8) -----------------------------------------------------------------

CLOCK = 8000
TS0 = (1 << 32) - 480  # the RTP timestamp wraps after the third packet
# (sequence number, media index, arrival in seconds): 20 ms packets from 65530 across the wrap to 5.
# 65534 is overtaken by 65535, 1 and 4 are lost, 3 arrives twice; some packets arrive 10 or 1 ms late.
ARRIVALS = [
    (65530, 0, 0.000),
    (65531, 1, 0.020),
    (65532, 2, 0.050),
    (65533, 3, 0.060),
    (65535, 5, 0.100),
    (65534, 4, 0.101),
    (0, 6, 0.120),
    (2, 8, 0.160),
    (3, 9, 0.180),
    (3, 9, 0.181),
    (5, 11, 0.220),
]
# |D(i-1, i)| of RFC 3550 A.8 in timestamp units, worked out by hand from the table above.
DIFFERENCES = [0, 80, 80, 0, 168, 168, 0, 0, 8, 8]


def packet(seq: int, index: int, size: int = 100) -> RtpPacket:
    return RtpPacket(0, seq, (TS0 + 160 * index) & 0xFFFFFFFF, 0x55, bytes(size))


def test_sequence_loss_and_jitter_across_the_wrap() -> None:
    stats = ReceiverStats(ssrc=0x55, clock_rate=CLOCK)
    counted = [stats.update(packet(seq, index), now) for seq, index, now in ARRIVALS[:6]]
    assert counted == [False, True, True, True, True, True]  # the first packet is on probation (A.1)
    assert stats.valid
    block = stats.report_block(now=1.0)
    assert (stats.packets_received, stats.expected, stats.packets_lost) == (6, 6, 0)
    assert (block.fraction_lost, block.packets_lost, block.highest_sequence) == (0, 0, 65535)

    for seq, index, now in ARRIVALS[6:]:
        assert stats.update(packet(seq, index), now)
    # Extended highest 65536 + 5; 12 expected from 65530; 11 received, the duplicate included (A.3).
    assert stats.extended_highest == 0x1_0005
    assert (stats.packets_received, stats.expected, stats.packets_lost) == (11, 12, 1)
    assert stats.bytes_received == 1100
    assert stats.loss_rate == pytest.approx(1 / 12)

    jitter = 0.0
    for d in DIFFERENCES:
        jitter += (d - jitter) / 16
    assert jitter == pytest.approx(22.85, abs=0.01)
    assert stats.jitter == pytest.approx(jitter)
    assert stats.jitter_ms == pytest.approx(jitter / 8)

    block = stats.report_block(now=2.0)
    # Second interval: 6 expected, 5 received -> 1 lost -> 256 / 6.
    assert block == ReportBlock(0x55, fraction_lost=42, packets_lost=1, highest_sequence=0x1_0005, jitter=22)
    data = bytes(ReceiverReport(0x77, [block]))
    assert data == bytes.fromhex("81c90007 00000077 00000055 2a000001 00010005 00000016 00000000 00000000")
    block = stats.report_block(now=3.0)
    assert block.fraction_lost == 0  # nothing new: an empty interval


def test_duplicates_make_the_interval_loss_negative_and_fraction_zero() -> None:
    stats = ReceiverStats(ssrc=1, clock_rate=CLOCK)
    for seq in (10, 11, 12, 12, 12):
        stats.update(packet(seq, seq), 0.0)
    block = stats.report_block(0.0)
    assert block.packets_lost == -2
    assert block.fraction_lost == 0
    assert stats.loss_rate == 0.0


def test_probation_restarts_on_a_non_sequential_packet() -> None:
    stats = ReceiverStats(ssrc=1, clock_rate=CLOCK, min_sequential=3)
    assert not stats.update(packet(100, 0), 0.0)
    assert not stats.update(packet(200, 1), 0.0)  # not in sequence: the run starts again here
    assert not stats.update(packet(201, 2), 0.0)
    assert stats.update(packet(202, 3), 0.0)
    assert (stats.packets_received, stats.expected) == (3, 3)
    trusted = ReceiverStats(ssrc=1, clock_rate=CLOCK, min_sequential=0)
    assert trusted.update(packet(0, 0, size=7), 0.0)
    assert (trusted.packets_received, trusted.expected, trusted.bytes_received) == (1, 1, 7)


def test_big_jump_needs_two_packets_to_restart() -> None:
    stats = ReceiverStats(ssrc=1, clock_rate=CLOCK, min_sequential=1)
    for seq in range(10):
        stats.update(packet(seq, seq), seq * 0.02)
    assert not stats.update(packet(20_000, 10), 0.2)  # a stray packet: ignored
    assert stats.update(packet(11, 11), 0.22)
    assert (stats.packets_received, stats.expected) == (11, 12)
    assert not stats.update(packet(40_000, 12), 0.24)
    assert stats.update(packet(40_001, 13), 0.26)  # sequential after the jump: the sender restarted
    assert (stats.packets_received, stats.expected, stats.extended_highest) == (1, 1, 40_001)


def test_small_reorder_does_not_count_a_cycle() -> None:
    stats = ReceiverStats(ssrc=1, clock_rate=CLOCK, min_sequential=1)
    for seq in (65534, 65535, 0, 65533 + 0, 1):
        stats.update(packet(seq, 0), 0.0)
    assert stats.extended_highest == 65536 + 1


def test_lsr_and_dlsr() -> None:
    stats = ReceiverStats(ssrc=1, clock_rate=CLOCK)
    assert stats.report_block(5.0).lsr == 0
    report = SenderReport(
        1, ntp_timestamp=0xB705_2000_1234_5678, rtp_timestamp=0, packet_count=0, octet_count=0
    )
    stats.on_sender_report(report, now=100.0)
    block = stats.report_block(now=101.5)
    assert (block.lsr, block.dlsr) == (0x2000_1234, 98_304)  # 1.5 s in 1/65536 s


def test_jitter_stays_zero_for_perfect_pacing() -> None:
    stats = ReceiverStats(ssrc=1, clock_rate=48_000)
    for i in range(50):
        stats.update(RtpPacket(111, i, 960 * i, 1, b"x"), 10 + i * 0.02)
    assert stats.jitter == pytest.approx(0.0, abs=1e-6)


# --- RateMeter and track_stats ------------------------------------------------------------------------------


def test_rate_meter_window() -> None:
    meter = RateMeter(window=1.0)
    meter.record(0.0, 1000)
    meter.record(0.5, 1000)
    meter.record(0.9, 2000)
    assert meter.fps(0.9) == 3
    assert meter.bitrate(0.9) == 32_000
    assert meter.fps(1.0) == 2  # the event at 0.0 left the window
    assert meter.bitrate(1.0) == 24_000
    assert meter.fps(2.0) == 0
    assert (meter.frames, meter.bytes) == (3, 4000)


def test_rate_meter_is_bounded_and_counts_frames() -> None:
    meter = RateMeter(window=2.0, max_events=2)
    for _ in range(3):
        meter.record(0.0, 100, frames=2)
    assert meter.fps(0.0) == 2  # 4 frames in the two events kept, over 2 s
    assert meter.frames == 6
    with pytest.raises(ValueError, match="rate window 0 must be positive"):
        RateMeter(window=0)


def test_track_stats() -> None:
    meter = RateMeter()
    stats = ReceiverStats(ssrc=1, clock_rate=CLOCK)
    for seq, index, now in ARRIVALS:
        stats.update(packet(seq, index), now)
        meter.record(now, 100)
    snapshot = track_stats(0.5, meter, stats)
    assert snapshot == TrackStats(
        frames=11,
        fps=11.0,
        bytes=1100,
        bitrate=8800.0,
        packets_lost=1,
        loss_rate=pytest.approx(1 / 12),  # type: ignore[arg-type]
        jitter_ms=pytest.approx(stats.jitter / 8),  # type: ignore[arg-type]
    )
    assert set(snapshot.as_dict()) == {
        "frames",
        "fps",
        "bytes",
        "bitrate",
        "packets_lost",
        "loss_rate",
        "jitter_ms",
    }
    sending = track_stats(0.5, meter)
    assert (sending.packets_lost, sending.loss_rate, sending.jitter_ms) == (0, 0.0, 0.0)


def test_the_freeze_meter_gives_the_longest_wait_between_pictures_including_one_going_on() -> None:
    from conf_cli.media.rtp_stream import FreezeMeter

    meter = FreezeMeter()
    assert meter.take(1.0) is None  # no picture yet
    for when in (1.0, 1.033, 1.066, 1.4, 1.433):  # a 334 ms freeze among 33 ms steps
        meter.picture(when)
    assert round(meter.take(1.45), 3) == 0.334
    assert round(meter.take(1.5), 3) == 0.067  # from the last picture, still waiting
    meter.picture(2.5)  # the wait that went on past the last take counts in full
    assert round(meter.take(2.6), 3) == 1.067


def test_the_freeze_meter_gives_apart_the_wait_that_ended_at_a_picture_of_a_new_size() -> None:
    from conf_cli.media.rtp_stream import FreezeMeter

    meter = FreezeMeter()
    for step in range(5):  # 360p at 15 fps, one picture 0.4 s late among them: no switch
        meter.picture(step / 15 + (0.4 if step == 4 else 0.0), (640, 360))
    assert meter.take_switch() is None
    meter.picture(0.8, (320, 180))  # the first picture of the lower layer, 0.13 s after the last 360p one
    meter.picture(0.93, (320, 180))
    assert meter.take(1.0) == pytest.approx(1 / 15 + 0.4)  # the longest wait of all ...
    switched = meter.take_switch()  # ... and the one across the switch, apart
    assert switched is not None and switched == pytest.approx(0.8 - (4 / 15 + 0.4))
    assert meter.take_switch() is None  # told once
    meter.picture(1.5, (640, 360))  # back up, after a 0.57 s wait
    assert meter.take_switch() == pytest.approx(0.57)
