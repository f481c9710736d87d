"""A publisher's audio packets: the level on every one, RED while receivers report loss, DTX's marker."""

from __future__ import annotations

import random
import time

from conf_cli.client.media.publisher import PT_OPUS, OutgoingTrack, Publisher
from conf_cli.media.audio_level import read_audio_level
from conf_cli.media.red import PT_RED, unpack_red
from conf_cli.media.source import EncodedUnit
from conf_cli.protocol.rtcp import ReceiverReport, ReportBlock
from conf_cli.protocol.rtp import RtpPacket


def unit(index: int, level: int = 20, data: bytes = b"\xf8\x01\x02") -> EncodedUnit:
    return EncodedUnit("opus", data, 960 * index, 48_000, True, 0.0, 960, level)


def report(ssrc: int, fraction_lost: int) -> ReceiverReport:
    return ReceiverReport(99, [ReportBlock(ssrc, fraction_lost, 0, 0, 0, 0, 0)])


def test_every_audio_packet_carries_its_level() -> None:
    track = OutgoingTrack("audio", True, 30.0, 0, random.Random(1))
    levels = [
        read_audio_level(track.packets(unit(i, level), now=0.0)[0]) for i, level in enumerate((3, 60, 127))
    ]
    assert levels == [(3, True), (60, False), (127, False)]


def test_red_goes_on_with_a_lossy_report_and_off_after_the_hold() -> None:
    track = OutgoingTrack("audio", True, 30.0, 0, random.Random(1))
    plain = RtpPacket.parse(track.packets(unit(0), now=0.0)[0])
    assert plain.payload_type == PT_OPUS
    track.loss_reported(report(track.ssrc + 1, 200), 1.0)  # about another track: nothing
    assert RtpPacket.parse(track.packets(unit(1), now=1.0)[0]).payload_type == PT_OPUS
    track.loss_reported(report(track.ssrc, 26), 1.0)  # 10 % of ours
    first = RtpPacket.parse(track.packets(unit(2), now=1.0)[0])
    second = RtpPacket.parse(track.packets(unit(3), now=1.02)[0])
    assert first.payload_type == second.payload_type == PT_RED
    assert read_audio_level(bytes(second)) == (20, True)
    blocks = unpack_red(second.payload)
    assert [b.offset for b in blocks] == [960, 0] and blocks[-1].data == b"\xf8\x01\x02"
    assert track.red_packets == 2
    later = RtpPacket.parse(track.packets(unit(4), now=11.5)[0])
    assert later.payload_type == PT_OPUS


def test_the_first_packet_after_dtx_silence_has_the_marker() -> None:
    track = OutgoingTrack("audio", True, 30.0, 0, random.Random(1))
    markers = [RtpPacket.parse(track.packets(unit(i), now=0.0)[0]).marker for i in (0, 1, 2, 30, 31)]
    assert markers == [True, False, False, True, False]


def test_the_publisher_hands_receiver_reports_to_its_audio_tracks() -> None:
    publisher = Publisher.__new__(Publisher)
    publisher.red = True
    track = OutgoingTrack("audio", True, 30.0, 0, random.Random(1))
    publisher.tracks = {True: track}
    publisher.feedback(report(track.ssrc, 30))
    assert track.red_switch.active(time.monotonic())


def test_red_is_never_turned_on_where_media_is_delivered_in_order() -> None:
    publisher = Publisher.__new__(Publisher)
    publisher.red = False
    track = OutgoingTrack("audio", True, 30.0, 0, random.Random(1))
    publisher.tracks = {True: track}
    publisher.feedback(report(track.ssrc, 30))
    assert not track.red_switch.active(time.monotonic())
