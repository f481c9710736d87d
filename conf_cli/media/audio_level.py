"""The client-to-mixer audio level header extension (RFC 6464) in a one-byte header extension (RFC 8285).

Every audio packet a conf publisher sends carries, under the extension ID :data:`AUDIO_LEVEL_ID`
(``a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level``), one byte: the voice activity bit and the
level of the packet's audio in -dBov, 0 (loudest) to 127 (silence), computed from the PCM before
encoding. The server reads it without touching the payload to find who is speaking; in an end-to-end
encrypted meeting it stays readable, as SFrame encrypts payloads only (docs/security.md says so).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from conf_cli.errors import ProtocolError

__all__ = [
    "AUDIO_LEVEL_ID",
    "AUDIO_LEVEL_URI",
    "ONE_BYTE_PROFILE",
    "SILENCE",
    "audio_level_extension",
    "level_dbov",
    "parse_one_byte",
    "read_audio_level",
]

AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
AUDIO_LEVEL_ID = 1
ONE_BYTE_PROFILE = 0xBEDE
SILENCE = 127
VOICE_THRESHOLD = 50
"""A level louder than -50 dBov sets the voice activity bit."""


def level_dbov(pcm: npt.NDArray[np.int16]) -> int:
    """The RMS level of 16-bit samples in -dBov, 0 (full scale) to 127 (silence), as RFC 6464 section 3."""
    if pcm.size == 0:
        return SILENCE
    samples = pcm.astype(np.float64) / 32768.0
    rms = math.sqrt(float(np.mean(samples * samples)))
    if rms <= 0:
        return SILENCE
    return max(0, min(SILENCE, round(-20 * math.log10(rms))))


def audio_level_extension(level: int, voice: bool | None = None) -> tuple[int, bytes]:
    """The RTP header extension ``(profile, data)`` carrying ``level`` (one element, padded to a word)."""
    if not 0 <= level <= SILENCE:
        raise ValueError(f"audio level {level} is outside 0..127")
    if voice is None:
        voice = level < VOICE_THRESHOLD
    element = bytes(((AUDIO_LEVEL_ID << 4) | 0, (0x80 if voice else 0) | level))
    return ONE_BYTE_PROFILE, element + b"\x00\x00"


def parse_one_byte(data: bytes) -> dict[int, bytes]:
    """The elements of a one-byte header extension (RFC 8285 section 4.2) by ID; ProtocolError if one
    runs past the end. Padding (ID 0) is skipped, and ID 15 ends the parsing, as the RFC says."""
    elements: dict[int, bytes] = {}
    offset, size = 0, len(data)
    while offset < size:
        byte = data[offset]
        if byte == 0:
            offset += 1
            continue
        ident, length = byte >> 4, (byte & 0x0F) + 1
        if ident == 15:
            break
        if offset + 1 + length > size:
            raise ProtocolError(f"header extension element {ident} runs past the end of the extension")
        elements[ident] = bytes(data[offset + 1 : offset + 1 + length])
        offset += 1 + length
    return elements


def read_audio_level(packet: bytes | bytearray | memoryview) -> tuple[int, bool] | None:
    """``(level, voice)`` from a raw RTP packet's audio level extension, or None if it has none (or the
    header is malformed). Reads the header only, so it works on SRTP or SFrame packets too."""
    if len(packet) < 12 or not packet[0] & 0x10:
        return None
    offset = 12 + 4 * (packet[0] & 0x0F)
    if offset + 4 > len(packet):
        return None
    profile = packet[offset] << 8 | packet[offset + 1]
    end = offset + 4 + 4 * (packet[offset + 2] << 8 | packet[offset + 3])
    if profile != ONE_BYTE_PROFILE or end > len(packet):
        return None
    try:
        value = parse_one_byte(bytes(packet[offset + 4 : end])).get(AUDIO_LEVEL_ID)
    except ProtocolError:
        return None
    if not value:
        return None
    return value[0] & 0x7F, bool(value[0] & 0x80)
