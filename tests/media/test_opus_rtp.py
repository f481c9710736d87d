"""Opus over RTP: packet durations from the TOC byte, checked on hand-built and real libopus packets."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conf_cli.errors import ProtocolError
from conf_cli.media.opus_rtp import OPUS_CLOCK_RATE, opus_frame_samples, opus_packet_samples
from conf_cli.media.rtp_stream import RtpSender
from conf_cli.protocol.rtp import RtpPacket


@pytest.mark.parametrize(
    ("payload", "samples"),
    [
        (b"\x00", 480),  # config 0: SILK NB 10 ms, one frame
        (b"\x08", 960),  # config 1: SILK NB 20 ms
        (b"\x10", 1920),  # config 2: SILK NB 40 ms
        (b"\x18", 2880),  # config 3: SILK NB 60 ms
        (b"\x19", 5760),  # code 1: two equal frames
        (b"\x1a\x01", 5760),  # code 2: two frames of different sizes
        (b"\x60", 480),  # config 12: hybrid SWB 10 ms
        (b"\x68", 960),  # config 13: hybrid SWB 20 ms
        (b"\x80", 120),  # config 16: CELT NB 2.5 ms
        (b"\xe8", 240),  # config 29: CELT FB 5 ms
        (b"\xf0", 480),  # config 30: CELT FB 10 ms
        (b"\xf8", 960),  # config 31: CELT FB 20 ms
        (b"\xfb\x03", 2880),  # code 3: three 20 ms frames
        (b"\xfb\x86", 5760),  # code 3: six frames, VBR and padding flags set
        (b"\x83\x30", 5760),  # code 3: 48 frames of 2.5 ms
    ],
)
def test_packet_durations(payload: bytes, samples: int) -> None:
    assert opus_packet_samples(payload) == samples


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "Opus packet is empty"),
        (b"\xfb", "Opus code 3 packet has no frame count byte"),
        (b"\xfb\x00", "Opus code 3 packet has a frame count of 0"),
        (b"\xfb\x07", "Opus packet lasts 6720 samples, more than the 5760 (120 ms) allowed"),
        (b"\x1b\x03", "Opus packet lasts 8640 samples, more than the 5760 (120 ms) allowed"),
    ],
)
def test_malformed_packets(payload: bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as info:
        opus_packet_samples(payload)
    assert str(info.value) == message


def test_frame_sizes_cover_every_config() -> None:
    assert {opus_frame_samples(config << 3) for config in range(32)} == {120, 240, 480, 960, 1920, 2880}


@given(st.binary(max_size=4))
def test_random_payloads_raise_only_protocol_error(payload: bytes) -> None:
    try:
        samples = opus_packet_samples(payload)
    except ProtocolError:
        return
    assert 120 <= samples <= 5760


@pytest.mark.parametrize(
    ("frame_duration", "samples"), [("2.5", 120), ("10", 480), ("20", 960), ("60", 2880)]
)
def test_real_libopus_packets(frame_duration: str, samples: int) -> None:
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = OPUS_CLOCK_RATE
    codec.layout = "mono"
    codec.format = "s16"
    codec.time_base = Fraction(1, OPUS_CLOCK_RATE)
    codec.options = {"frame_duration": frame_duration}
    codec.open()
    assert codec.frame_size == samples
    tone = (np.sin(np.arange(samples * 4) * 2 * np.pi * 440 / OPUS_CLOCK_RATE) * 8000).astype(np.int16)
    payloads: list[bytes] = []
    for index in range(4):
        frame = av.AudioFrame.from_ndarray(
            tone[None, index * samples : (index + 1) * samples], format="s16", layout="mono"
        )
        frame.sample_rate = OPUS_CLOCK_RATE
        frame.pts = index * samples
        payloads.extend(bytes(p) for p in codec.encode(frame))
    assert payloads
    # One Opus packet per RTP payload; the timestamp advances by each packet's duration (RFC 7587 4.1, 4.2).
    sender = RtpSender(ssrc=9, payload_type=111, clock_rate=OPUS_CLOCK_RATE)
    ticks = 0
    timestamps = []
    for payload in payloads:
        [data] = sender.packetize([payload], ticks, marker=ticks == 0)
        timestamps.append(RtpPacket.parse(data).timestamp)
        ticks += opus_packet_samples(payload)
    assert [(t - timestamps[0]) & 0xFFFFFFFF for t in timestamps] == [
        i * samples for i in range(len(payloads))
    ]
