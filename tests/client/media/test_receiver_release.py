"""When a remote track hands packets on: at once for video in order, after a wait only for a hole."""

from __future__ import annotations

import time

from conf_cli.client.media.receiver import (
    FIRST_RESEND_DELAY,
    MAX_VIDEO_DELAY,
    NACK_RETRIES,
    ORDERED_AUDIO_DELAY,
    TARGET_DELAY,
    RemoteTrack,
)
from conf_cli.media.h264 import AccessUnit
from conf_cli.media.jitter import AUDIO_DELAY_MIN, Gap
from conf_cli.protocol.rtcp import Nack, parse_compound
from conf_cli.protocol.rtp import RtpPacket

SSRC = 0x1234
SPS = bytes([0x67, 0x42, 0xC0, 0x1E])
PPS = bytes([0x68, 0xCE, 0x3C, 0x80])
IDR = bytes([0x65, 0x88, 0x84, 0x00])


def track(kind: str, ordered: bool, sent: list[bytes] | None = None) -> RemoteTrack:
    codec = "opus" if kind == "audio" else "H264"
    return RemoteTrack(
        {"name": "bob", "kind": kind, "ssrc": SSRC, "codec": codec},
        local_ssrc=7,
        send_media=lambda packet: None if sent is None else sent.append(packet),
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
    receiver = track("video", ordered=False)
    released(receiver)
    receiver.rtt = 0.1
    now = time.monotonic()
    receiver._nacked[5] = (now - 0.02, 1)  # asked 20 ms ago: what arrives now is the reordered original
    receiver.receive(packet(5, 3000))
    assert receiver.resend_delay is None
    receiver._nacked[9] = (now - 0.15, 1)  # asked 150 ms ago, more than a round trip: a resend
    receiver.receive(packet(9, 6000))
    assert receiver.resend_delay is not None and receiver.resend_delay >= 0.15


def test_a_resend_answering_one_of_several_asks_is_not_timed() -> None:
    """Which ask a resend answers is unknown once a packet was asked for twice (as Karn's rule for TCP)."""
    receiver = track("video", ordered=False)
    released(receiver)
    receiver._nacked[9] = (time.monotonic() - 0.3, 2)
    receiver.receive(packet(9, 6000))
    assert receiver.resend_delay is None


def asked(sent: list[bytes]) -> list[list[int]]:
    """The sequence numbers of each NACK in what the receiver sent."""
    return [[*part.lost] for data in sent for part in parse_compound(data) if isinstance(part, Nack)]


def test_a_missing_packet_is_asked_for_again_when_its_resend_is_overdue_a_bounded_number_of_times() -> None:
    """A lost NACK or a lost resend need not cost a keyframe: the hole is asked for again, every 1.5
    resend delays, at most NACK_RETRIES times; the jitter buffer waits long enough for the last answer."""
    sent: list[bytes] = []
    receiver = track("video", ordered=False, sent=sent)
    released(receiver)
    receiver.rtt = 0.04
    receiver._resent(0.05)  # resends take 50 ms on this path
    assert receiver.jitter.target_delay >= 0.05 * (1 + 1.5 * NACK_RETRIES)
    assert receiver.jitter.target_delay <= MAX_VIDEO_DELAY
    receiver.receive(packet(100, 9000))
    receiver.receive(packet(102, 15000))  # 101 is missing
    time_now = time.monotonic()
    receiver._send_nacks(time_now + 0.02)
    assert asked(sent) == [[101]]
    receiver._send_nacks(time_now + 0.05)  # 30 ms later: its resend may still come
    assert asked(sent) == [[101]]
    receiver._send_nacks(time_now + 0.10)  # 80 ms after the ask (over 1.5 x 50 ms): asked again
    assert asked(sent) == [[101], [101]]
    receiver._send_nacks(time_now + 0.18)
    assert asked(sent) == [[101], [101], [101]]
    receiver._send_nacks(time_now + 0.26)  # asked NACK_RETRIES times again already: no more
    receiver._send_nacks(time_now + 0.40)
    assert len(asked(sent)) == 1 + NACK_RETRIES


def test_until_the_round_trip_is_known_a_quick_arrival_does_not_make_the_retries_quick() -> None:
    """A packet back 10 ms after its NACK, before any round trip was measured, may be a reordered
    original: retries and the hole's wait keep to the assumed first resend delay meanwhile."""
    receiver = track("video", ordered=False)
    released(receiver)
    receiver._resent(0.01)
    assert receiver.resend_wait() == FIRST_RESEND_DELAY
    assert receiver.jitter.target_delay >= FIRST_RESEND_DELAY
    receiver.rtt = 0.03  # the round trip measured: what it says is the floor from then on
    receiver._resent(0.01)
    assert receiver.resend_wait() == 0.03


def test_a_process_falling_behind_is_timed_by_arrival_and_asks_for_no_lower_layer() -> None:
    """A receiver whose process gets too little of a core falls behind what its socket holds: each
    picture is read later than the one before. Timed by its reads, that looks like a queue building on
    the downlink (a ``downlink`` request for a lower layer); timed by the kernel's arrival stamps
    (rtp://), it is what it was: pictures 1/15 s apart on a clear path."""

    def run(stamped: bool) -> list[int]:
        told: list[int] = []
        receiver = RemoteTrack(
            {"name": "bob", "kind": "video", "ssrc": SSRC, "codec": "H264"},
            local_ssrc=7,
            send_media=lambda packet: None,
            notify=lambda event: None,
            ordered=False,
            on_downlink=lambda bitrate, queued: told.append(bitrate),
        )
        released(receiver)
        receiver.told_layer = 1  # the server said it sends a simulcast layer
        start = time.monotonic()
        seq = 0
        for picture in range(45):  # 3 s at 15 pictures a second, 4 packets of 1,000 bytes each
            sent = start + picture / 15
            behind = min(0.4, max(0.0, sent - start - 1.0) * 0.4)  # from 1 s on, 0.4 s more each second
            while time.monotonic() < sent + behind:
                time.sleep(0.002)
            for part in range(4):
                rtp = RtpPacket(96, seq, picture * 6000, SSRC, bytes(1000), marker=part == 3)
                receiver.receive(rtp, sent + 0.001 * part if stamped else None)
                seq += 1
        return told

    assert run(stamped=True) == []
    assert run(stamped=False) != []  # the same reads, timed as they are made, ask for less
