"""The subscriber's downlink monitor (conf_cli/media/congestion.py, DownlinkMonitor), with synthetic
arrivals: a publisher's 720p15 pictures at 1.2 Mbit/s in 1200-byte packets, through a drop-tail bottleneck
(32 kB queue) that starts limiting at LIMIT_AT, or through a host whose event loop jitters or stalls."""

from __future__ import annotations

import itertools
import random

from conf_cli.media.congestion import DOWNLINK_REPORT_INTERVAL, DownlinkMonitor

LIMIT_AT = 5.0
PACKET = 1200


def arrivals(
    *,
    rate: float | None = 400_000,
    queue: int = 32_000,
    end: float = 8.0,
    jitter: float = 0.0,
    stall: tuple[float, float] | None = None,
    seed: int = 1,
    keyframe_at_limit: bool = False,
    record: int | None = None,
) -> list[tuple[float, int, int]]:
    """(arrival, RTP timestamp, size) of each packet that arrived, in arrival order. With ``record``, the
    path is a TLS stream: the sender writes each picture in records of at most that many bytes, and a
    record's packets arrive together when its last byte has crossed (no packet is dropped)."""
    rng = random.Random(seed)
    out: list[tuple[float, int, int]] = []
    busy_until = 0.0
    frame = 0
    while frame / 15 < end:
        sent_at = frame / 15
        size = 10_000 * (3 if frame % 30 == 0 else 1)
        if keyframe_at_limit and frame == round(LIMIT_AT * 15):
            size = 65_000
        ts = (1_000_000 + int(sent_at * 90_000)) & 0xFFFFFFFF
        for index in range((size + PACKET - 1) // PACKET):
            send = sent_at + index * 0.0005
            if rate is None or send < LIMIT_AT:
                arrival = send + 0.01
            else:
                start = max(send, busy_until)
                if (start - send) * rate / 8 > queue:
                    continue  # the queue is full: dropped
                busy_until = start + PACKET * 8 / rate
                arrival = busy_until + 0.01
            arrival += rng.random() * jitter
            if stall is not None and stall[0] <= arrival < stall[1]:
                arrival = stall[1] + rng.random() * 0.002  # held by the host, then delivered in a burst
            out.append((arrival, ts, PACKET))
        if record is not None:  # each record's packets arrive with its last one
            first = len(out) - (size + PACKET - 1) // PACKET
            per_record = max(1, record // PACKET)
            for start in range(first, len(out), per_record):
                group = out[start : start + per_record]
                out[start : start + per_record] = [(group[-1][0], ts, size) for _, ts, size in group]
        frame += 1
    out.sort()
    return out


def reports(packets: list[tuple[float, int, int]]) -> list[tuple[float, int]]:
    monitor = DownlinkMonitor()
    told = []
    for arrival, ts, size in packets:
        bitrate = monitor.arrived(ts, size, arrival)
        if bitrate is not None:
            told.append((arrival, bitrate))
    return told


def test_a_bottleneck_queue_is_told_within_a_few_hundred_ms_with_a_rate_it_carries() -> None:
    told = reports(arrivals())
    assert told, "the queue building at the bottleneck was never told"
    first_at, bitrate = told[0]
    # long before the 32 kB queue fills (at about 0.33 s of sending, 0.97 s of arrival): no loss yet
    assert LIMIT_AT < first_at < LIMIT_AT + 0.5
    # what it tells is what the bottleneck delivers, less a margin: under 400 kbit/s, so the 400 kbit/s
    # middle layer is not chosen, and not far under it
    assert 250_000 < bitrate < 400_000
    # rate-limited however long the queue lasts
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(told)]
    assert all(gap >= DOWNLINK_REPORT_INTERVAL for gap in gaps)


def test_a_stream_delivering_whole_records_is_told_the_rate_it_carries_not_its_bursts() -> None:
    # a TLS stream (tcp://) through the same 400 kbit/s bottleneck: its packets arrive in records of up
    # to 16 kB, each record's at once a third of a second apart; counting a burst's bytes at its own instant
    # made a 400 kbit/s link look like 0.5-1.4 Mbit/s and a subscriber stay on a layer it could not carry
    for record in (16_384, 8_192, 4_096):
        told = reports(arrivals(queue=10_000_000, record=record))
        assert told, f"the queue was never told with {record}-byte records"
        first_at, bitrate = told[0]
        assert LIMIT_AT < first_at < LIMIT_AT + 0.8, (record, told[:3])
        assert 250_000 < bitrate < 400_000, (record, told[:3])


def test_a_path_without_a_bottleneck_is_never_told_however_its_host_jitters_or_stalls() -> None:
    for seed in range(3):
        assert reports(arrivals(rate=None, end=40, jitter=0.05, seed=seed)) == []
        assert reports(arrivals(rate=None, end=40, jitter=0.2, seed=seed)) == []
    # the event loop held everything for 0.4 s, then delivered it at once
    assert reports(arrivals(rate=None, end=20, stall=(10.0, 10.4))) == []
    assert reports(arrivals(rate=None, end=20, jitter=0.02, stall=(10.0, 10.8))) == []


def test_timestamps_that_wrap_are_followed() -> None:
    monitor = DownlinkMonitor()
    ts = 0xFFFFFFFF - 3000
    for frame in range(60):  # clean: nothing told across the wrap
        assert monitor.arrived((ts + frame * 6000) & 0xFFFFFFFF, PACKET, frame / 15) is None
    assert monitor.queued < 0.01


def test_a_large_picture_filling_the_queue_is_told_though_its_packets_share_a_timestamp() -> None:
    # the limit starts just as a 65 kB keyframe goes out: its packets share one timestamp, so the trendline
    # gets no new point while it crosses the bottleneck, yet the queue grows with each of its packets
    packets = arrivals(keyframe_at_limit=True)
    told = reports(packets)
    assert told and LIMIT_AT < told[0][0] < LIMIT_AT + 0.4
    first = next(arrival for arrival, ts, _ in packets if arrival >= LIMIT_AT)
    keyframe_ts = next(ts for arrival, ts, _ in packets if arrival >= LIMIT_AT)
    last_of_it = max(arrival for arrival, ts, _ in packets if ts == keyframe_ts)
    assert first < told[0][0] < last_of_it  # while it still crosses
