"""A publisher's answer to NACKs: each kept packet once per NACK, at most once per 50 ms, within a byte
budget per track, and byte for byte as first sent (end-to-end encrypted ones too)."""

from __future__ import annotations

import asyncio
import itertools
import random

from conf_cli.client.media.publisher import (
    RESEND_INTERVAL,
    RESEND_RATE,
    OutgoingTrack,
    Publisher,
    find_source_factory,
)
from conf_cli.plugin.registry import create_registry
from conf_cli.protocol.rtcp import Nack
from conf_cli.protocol.rtp import is_rtcp


def video_track(packets: int = 512) -> tuple[OutgoingTrack, list[bytes]]:
    track = OutgoingTrack("video", False, 30.0, 1_000_000, random.Random(1))
    sent = [
        track.sender.packetize([bytes([n % 256]) * 1200], n * 3000, marker=True)[0] for n in range(packets)
    ]
    return track, sent


def seq_of(packet: bytes) -> int:
    return packet[2] << 8 | packet[3]


def test_a_nack_naming_a_packet_many_times_resends_it_once() -> None:
    track, sent = video_track()
    target = seq_of(sent[100])
    assert track.resends(Nack(7, track.ssrc, [target] * 300), 1.0) == [sent[100]]
    assert track.resent == 1


def test_a_packet_is_resent_at_most_once_per_interval() -> None:
    track, sent = video_track()
    target = seq_of(sent[200])
    assert track.resends(Nack(7, track.ssrc, [target]), 1.0) == [sent[200]]
    assert track.resends(Nack(7, track.ssrc, [target]), 1.0 + RESEND_INTERVAL / 2) == []
    assert track.resends(Nack(7, track.ssrc, [target]), 1.0 + RESEND_INTERVAL) == [sent[200]]


def test_resends_stay_within_the_tracks_byte_budget() -> None:
    track, sent = video_track()
    every = [seq_of(p) for p in sent]
    total = 0
    for step in range(20):  # 20 NACKs for every kept packet, a resend interval apart
        total += sum(map(len, track.resends(Nack(7, track.ssrc, every), 1.0 + step * RESEND_INTERVAL)))
    assert total <= RESEND_RATE * (1 + 20 * RESEND_INTERVAL)
    assert total >= RESEND_RATE  # and the budget is there to be used


async def test_an_end_to_end_encrypted_resend_is_the_packet_first_sent() -> None:
    """An SFrame is made afresh each time it is asked for: a resend must not be a new one, or SRTP would
    carry other bytes under the same index."""
    counter = itertools.count()

    def seal(packet: bytes) -> bytes:  # a new "SFrame" (another counter) at each call, as E2EE does
        return packet + next(counter).to_bytes(4, "big")

    sent: list[bytes] = []
    source = find_source_factory(create_registry().sources, "pattern").open(
        {"width": 320, "height": 240, "fps": 30}
    )
    publisher = Publisher(
        "pattern",
        source,
        send_control=lambda m: None,
        send_media=sent.append,
        notify=lambda m: None,
        protect=seal,
    )
    publisher.start()
    try:
        async with asyncio.timeout(10):
            while len([p for p in sent if not is_rtcp(p)]) < 20:
                await asyncio.sleep(0.02)
        track = publisher.tracks[False]
        first = [p for p in sent if not is_rtcp(p)][5]
        before = len(sent)
        publisher.feedback(Nack(7, track.ssrc, [seq_of(first)] * 10))
        resent = [p for p in sent[before:] if seq_of(p) == seq_of(first) and not is_rtcp(p)]
        assert resent == [first]
    finally:
        await publisher.stop()
