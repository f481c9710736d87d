"""When a remote track hands packets on: at once for video in order, after a wait only for a hole."""

from __future__ import annotations

from conf_cli.client.media.receiver import ORDERED_AUDIO_DELAY, TARGET_DELAY, RemoteTrack
from conf_cli.media.h264 import AccessUnit
from conf_cli.media.jitter import AUDIO_DELAY_MIN, Gap
from conf_cli.protocol.rtp import RtpPacket

SSRC = 0x1234
SPS = bytes([0x67, 0x42, 0xC0, 0x1E])
PPS = bytes([0x68, 0xCE, 0x3C, 0x80])
IDR = bytes([0x65, 0x88, 0x84, 0x00])


def track(kind: str, ordered: bool) -> RemoteTrack:
    codec = "opus" if kind == "audio" else "H264"
    return RemoteTrack(
        {"name": "bob", "kind": kind, "ssrc": SSRC, "codec": codec},
        local_ssrc=7,
        send_media=lambda packet: None,
        notify=lambda event: None,
        ordered=ordered,
    )


def packet(seq: int, timestamp: int, payload: bytes = IDR, marker: bool = True) -> RtpPacket:
    return RtpPacket(96, seq, timestamp, SSRC, payload, marker=marker)


def released(receiver: RemoteTrack) -> list[RtpPacket | Gap]:
    """Record what the jitter buffer hands on, without the timer task running."""
    out: list[RtpPacket | Gap] = []
    receiver._play = out.append  # type: ignore[method-assign,assignment]
    return out


def test_a_picture_is_queued_for_decoding_as_its_marker_packet_arrives() -> None:
    for ordered in (True, False):
        receiver = track("video", ordered)
        receiver.receive(packet(100, 9000, SPS, marker=False))
        receiver.receive(packet(101, 9000, PPS, marker=False))
        assert receiver._queue.empty()
        receiver.receive(packet(102, 9000))
        unit = receiver._queue.get_nowait()
        assert isinstance(unit, AccessUnit) and unit.keyframe


def test_on_rtp_a_hole_waits_for_a_resend_and_on_ordered_transports_it_does_not() -> None:
    waiting = track("video", ordered=False)
    assert waiting.jitter.target_delay == TARGET_DELAY
    out = released(waiting)
    waiting.receive(packet(100, 9000))
    waiting.receive(packet(102, 15000))  # 101 missing: 102 waits for it
    assert [p.sequence_number for p in out if isinstance(p, RtpPacket)] == [100]
    waiting.receive(packet(101, 12000))  # the resend arrives: both go at once
    assert [p.sequence_number for p in out if isinstance(p, RtpPacket)] == [100, 101, 102]

    at_once = track("video", ordered=True)
    assert at_once.jitter.target_delay == 0
    out = released(at_once)
    at_once.receive(packet(100, 9000))
    at_once.receive(packet(102, 15000))  # a hole on an ordered transport was dropped upstream
    assert [(p.seq, p.count) if isinstance(p, Gap) else p.sequence_number for p in out] == [
        100,
        (101, 1),
        102,
    ]


def test_audio_keeps_a_short_smoothing_delay() -> None:
    """Ordered transports smooth a little; on rtp:// audio starts at the adaptive target's floor (a clean
    path) and grows only with measured jitter (tests/client/media/test_audio_resilience.py)."""
    assert track("audio", ordered=True).jitter.target_delay == ORDERED_AUDIO_DELAY
    assert track("audio", ordered=False).jitter.target_delay == AUDIO_DELAY_MIN


def test_a_nacked_packet_back_sooner_than_a_round_trip_is_not_taken_for_the_resend() -> None:
    """A late original says nothing of resend time; under SRTP the resend after it never arrives."""
    import time

    receiver = track("video", ordered=False)
    released(receiver)
    receiver.rtt = 0.1
    now = time.monotonic()
    receiver._nacked[5] = now - 0.02  # asked 20 ms ago: what arrives now is the reordered original
    receiver.receive(packet(5, 3000))
    assert receiver.resend_delay is None
    receiver._nacked[9] = now - 0.15  # asked 150 ms ago, more than a round trip: a resend
    receiver.receive(packet(9, 6000))
    assert receiver.resend_delay is not None and receiver.resend_delay >= 0.15
