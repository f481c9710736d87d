"""Opus over RTP (RFC 7587), sans-I/O.

An RTP payload is exactly one Opus packet (RFC 7587 section 4.2) and the RTP clock always runs at 48 kHz
whatever the audio sampling rate (section 4.1), so packetizing is
:class:`~conf_cli.media.rtp_stream.RtpSender` with ``clock_rate=OPUS_CLOCK_RATE``. What this module adds
is the duration of a packet, read from its TOC byte (RFC 6716 section 3.1) and frame count (3.2): the
timestamp step to the next packet on the sending side, and how much to conceal for a lost packet on the
receiving side.
"""

from __future__ import annotations

from conf_cli.errors import ProtocolError

__all__ = ["OPUS_CLOCK_RATE", "OPUS_MAX_PACKET_SAMPLES", "opus_frame_samples", "opus_packet_samples"]

OPUS_CLOCK_RATE = 48_000
OPUS_MAX_PACKET_SAMPLES = 5760
"""120 ms at 48 kHz: the longest an Opus packet may last (RFC 6716 section 3.2.5)."""

_SILK = (480, 960, 1920, 2880)
_HYBRID = (480, 960)
_CELT = (120, 240, 480, 960)


def opus_frame_samples(toc: int) -> int:
    """The duration of each frame of a packet with this TOC byte, in 48 kHz samples."""
    config = toc >> 3
    if config < 12:
        return _SILK[config & 3]
    if config < 16:
        return _HYBRID[config & 1]
    return _CELT[config & 3]


def opus_packet_samples(payload: bytes) -> int:
    """The duration of an Opus packet (one RTP payload) in 48 kHz samples, i.e. RTP timestamp units."""
    if not payload:
        raise ProtocolError("Opus packet is empty")
    toc = payload[0]
    code = toc & 3
    if code == 0:
        frames = 1
    elif code in (1, 2):
        frames = 2
    else:
        if len(payload) < 2:
            raise ProtocolError("Opus code 3 packet has no frame count byte")
        frames = payload[1] & 0x3F
        if frames == 0:
            raise ProtocolError("Opus code 3 packet has a frame count of 0")
    samples = frames * opus_frame_samples(toc)
    if samples > OPUS_MAX_PACKET_SAMPLES:
        raise ProtocolError(f"Opus packet lasts {samples} samples, more than the 5760 (120 ms) allowed")
    return samples
