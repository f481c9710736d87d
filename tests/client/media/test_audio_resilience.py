"""An audio track's receiver: RED and FEC before concealment, the adaptive jitter target, the volume."""

from __future__ import annotations

import numpy as np
import pytest
from conf_capture.tone import ToneSource

from conf_cli.client.media.receiver import LostAudio, RemoteTrack, scale_volume
from conf_cli.media import libopus
from conf_cli.media.codecs import OpusEncoder
from conf_cli.media.jitter import AUDIO_DELAY_MAX, AUDIO_DELAY_MIN, Gap, adaptive_delay
from conf_cli.media.red import PT_RED, RedEncoder
from conf_cli.protocol.rtp import RtpPacket

SSRC = 0x5151


def track(ordered: bool = False) -> RemoteTrack:
    return RemoteTrack(
        {"name": "bob", "kind": "audio", "ssrc": SSRC, "codec": "opus"},
        local_ssrc=7,
        send_media=lambda packet: None,
        notify=lambda event: None,
        ordered=ordered,
    )


def released(receiver: RemoteTrack) -> list[RtpPacket | Gap]:
    out: list[RtpPacket | Gap] = []
    receiver._play = out.append  # type: ignore[method-assign,assignment]
    return out


def speech_like_packets(count: int) -> list[bytes]:
    """Opus packets of a tone with a syllable-like tremolo: what Opus codes in-band FEC for."""
    source = ToneSource(300.0, 0.5, tremolo=4.0)
    source._pacer.interval = 0
    encoder = OpusEncoder()
    units = []
    while len(units) < count:
        frame = source.read()
        assert frame is not None
        units += encoder.encode(frame)
    return [unit.data for unit in units[:count]]


def red_stream(payloads: list[bytes], fec: list[bool]) -> list[RtpPacket]:
    red = RedEncoder(111)
    return [
        RtpPacket(PT_RED, 100 + i, 960 * i, SSRC, red.wrap(data, 960 * i, 960, has_fec))
        for i, (data, has_fec) in enumerate(zip(payloads, fec, strict=True))
    ]


def arrive(receiver: RemoteTrack, packet: RtpPacket, now: float) -> None:
    """What ``receive`` does with a packet arriving at ``now`` (its clock is the real one)."""
    receiver.stats.update(packet, now)
    receiver._audio_arrived(packet, now)


def test_the_target_is_a_multiple_of_the_jitter_within_bounds() -> None:
    assert adaptive_delay(0.0) == AUDIO_DELAY_MIN
    assert adaptive_delay(0.001) == AUDIO_DELAY_MIN  # a clean path stays at the floor
    assert adaptive_delay(0.02) == pytest.approx(0.04)
    assert adaptive_delay(5.0) == AUDIO_DELAY_MAX


def test_the_receivers_target_grows_with_measured_jitter_and_falls_back_when_it_ends() -> None:
    receiver = track()
    released(receiver)
    now = 0.0
    for i in range(50):  # a clean path: 20 ms apart as sent
        arrive(receiver, RtpPacket(111, i, 960 * i, SSRC, b"\xf8\xff\xfe"), now + 0.02 * i)
    assert receiver.jitter.target_delay == AUDIO_DELAY_MIN
    rng = np.random.default_rng(3)
    for i in range(50, 150):  # arrivals spread by up to 40 ms
        arrival = 0.02 * i + float(rng.uniform(0, 0.04))
        arrive(receiver, RtpPacket(111, i, 960 * i, SSRC, b"\xf8\xff\xfe"), arrival)
    grown = receiver.jitter.target_delay
    assert 0.02 < grown < AUDIO_DELAY_MAX
    for i in range(150, 400):  # clean again
        arrive(receiver, RtpPacket(111, i, 960 * i, SSRC, b"\xf8\xff\xfe"), 0.02 * i + 0.05)
    assert receiver.jitter.target_delay == AUDIO_DELAY_MIN


def test_a_lost_packet_is_rebuilt_from_the_next_packets_red_block() -> None:
    receiver = track()
    out = released(receiver)
    packets = red_stream([bytes([0xF8, i]) for i in range(6)], [False] * 6)
    for i, packet in enumerate(packets):
        if i != 2:
            receiver._audio_arrived(packet, 0.02 * i)
    receiver._audio_arrived(RtpPacket(111, 110, 960 * 10, SSRC, b"\xf8\x0a"), 1.0)  # flush
    assert receiver.red_recovered == 1
    assert not any(isinstance(item, Gap) for item in out)
    plain = [item for item in out if isinstance(item, RtpPacket)]
    assert [p.sequence_number for p in plain][:6] == [100, 101, 102, 103, 104, 105]
    assert plain[2].payload == bytes([0xF8, 2]) and plain[2].timestamp == 1920
    assert all(p.payload_type == 111 for p in plain)


def test_two_lost_in_a_row_red_rebuilds_the_first_and_fec_is_left_the_second() -> None:
    """With FEC in every packet RED repeats only the packet two back: 104 brings 102; 103 stays a gap
    that the decoder fills from 104's FEC."""
    receiver = track()
    out = released(receiver)
    packets = red_stream([bytes([0xF8, i]) for i in range(6)], [True] * 6)
    for i, packet in enumerate(packets):
        if i not in (2, 3):
            receiver._audio_arrived(packet, 0.02 * i)
        if i == 4:  # the playout timer runs before 105 comes: 103 is given up (105's copy is too late)
            for item in receiver.jitter.pop(0.08 + AUDIO_DELAY_MIN + 0.001):
                receiver._play(item)
    receiver._audio_arrived(RtpPacket(111, 110, 960 * 10, SSRC, b"\xf8\x0a"), 1.0)
    assert receiver.red_recovered == 1
    assert Gap(103, 1) in out
    assert 102 in [item.sequence_number for item in out if isinstance(item, RtpPacket)]


def test_without_fec_two_lost_in_a_row_both_come_back_from_red() -> None:
    receiver = track()
    out = released(receiver)
    packets = red_stream([bytes([0xF8, i]) for i in range(6)], [False] * 6)
    for i, packet in enumerate(packets):
        if i not in (2, 3):
            receiver._audio_arrived(packet, 0.02 * i)
    receiver._audio_arrived(RtpPacket(111, 110, 960 * 10, SSRC, b"\xf8\x0a"), 1.0)
    assert receiver.red_recovered == 2
    assert not any(isinstance(item, Gap) for item in out)


def test_a_malformed_red_payload_is_counted_and_dropped() -> None:
    receiver = track()
    out = released(receiver)
    receiver._audio_arrived(RtpPacket(PT_RED, 1, 960, SSRC, b"\xef\x0f"), 0.0)
    assert receiver.malformed == 1 and out == []


def test_fec_rebuilds_the_frame_before_a_packet_and_concealment_covers_the_rest() -> None:
    packets = speech_like_packets(40)
    with_fec = [i for i in range(20, 40) if libopus.has_fec(packets[i])]
    assert with_fec, "Opus codes in-band FEC for a speech-like signal"
    index = with_fec[0]
    receiver = track()
    for i in range(index - 3):
        receiver._process(RtpPacket(111, i, 960 * i, SSRC, packets[i]))
    receiver._lost_frames = LostAudio(3).count  # as the decode task notes a LostAudio
    frames = receiver._process(RtpPacket(111, index, 960 * index, SSRC, packets[index]))
    assert frames == 4  # two concealed, one rebuilt from FEC, the packet itself
    assert (receiver.fec_recovered, receiver.concealed) == (1, 2)


def test_a_loss_before_a_packet_without_fec_is_concealed() -> None:
    receiver = track()
    steady = bytes([0xF8, 0xFF, 0xFE])  # a CELT packet: no LBRR in it
    receiver._process(RtpPacket(111, 0, 0, SSRC, steady))
    receiver._lost_frames = 1
    assert receiver._process(RtpPacket(111, 2, 1920, SSRC, steady)) == 2
    assert (receiver.fec_recovered, receiver.concealed) == (0, 1)


def test_stats_report_recovery_the_target_and_the_level() -> None:
    receiver = track()
    receiver.red_recovered, receiver.fec_recovered, receiver.concealed = 3, 2, 1
    receiver.level = 20
    stats = receiver.stats_event()
    assert (stats["recovered"], stats["red_recovered"], stats["fec_recovered"], stats["concealed"]) == (
        5,
        3,
        2,
        1,
    )
    assert stats["level"] == 20 and stats["target_delay_ms"] == AUDIO_DELAY_MIN * 1000


def test_volume_scales_and_clips() -> None:
    import av

    samples = np.array([[1000, -1000, 30000, -30000]], dtype=np.int16)
    frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
    frame.sample_rate = 48_000
    louder = scale_volume(frame, 2.0).to_ndarray()
    assert louder.tolist() == [[2000, -2000, 32767, -32768]]
    assert scale_volume(frame, 0.0).to_ndarray().tolist() == [[0, 0, 0, 0]]
