"""The audio level header extension (RFC 6464 in an RFC 8285 one-byte header extension)."""

from __future__ import annotations

import numpy as np
import pytest

from conf_cli.errors import ProtocolError
from conf_cli.media.audio_level import (
    AUDIO_LEVEL_ID,
    ONE_BYTE_PROFILE,
    SILENCE,
    audio_level_extension,
    level_dbov,
    parse_one_byte,
    read_audio_level,
)
from conf_cli.protocol.rtp import RtpPacket


def sine(amplitude: float) -> np.ndarray:
    t = np.arange(960)
    return (np.sin(2 * np.pi * 440 * t / 48_000) * amplitude * 32767).astype(np.int16)


def test_levels_in_dbov_as_rfc_6464_defines_them() -> None:
    assert level_dbov(sine(1.0)) == 3  # a full-scale sine's RMS is 3 dB under full scale
    assert level_dbov(sine(0.1)) == 23
    assert level_dbov(np.full(960, -32768, dtype=np.int16)) == 0  # a full-scale square wave
    assert level_dbov(np.zeros(960, dtype=np.int16)) == SILENCE
    assert level_dbov(np.array([1, -1] * 480, dtype=np.int16)) == 90  # the least step: -90.3 dBov
    assert level_dbov(np.array([], dtype=np.int16)) == SILENCE


def test_the_extension_is_one_element_padded_to_a_word() -> None:
    profile, data = audio_level_extension(23)
    assert profile == ONE_BYTE_PROFILE == 0xBEDE
    assert data == bytes([AUDIO_LEVEL_ID << 4, 0x80 | 23, 0, 0])  # L=0: one byte; V set: voice
    assert audio_level_extension(90)[1][1] == 90  # quiet: no voice bit
    with pytest.raises(ValueError):
        audio_level_extension(128)


def test_the_server_reads_the_level_from_raw_packet_bytes() -> None:
    packet = bytes(RtpPacket(111, 1, 2, 3, b"ciphertext", extension=audio_level_extension(42)))
    assert read_audio_level(packet) == (42, True)
    assert read_audio_level(bytes(RtpPacket(111, 1, 2, 3, b"no extension"))) is None
    with_csrc = RtpPacket(111, 1, 2, 3, b"x", csrc=[9, 10], extension=audio_level_extension(7))
    assert read_audio_level(bytes(with_csrc)) == (7, True)


def test_other_elements_and_padding_around_the_level_are_skipped() -> None:
    # element 3 (2 bytes), padding, element 1 (the level), then padding to the word
    data = bytes([0x31, 0xAA, 0xBB, 0x00, 0x10, 0x05, 0x00, 0x00])
    assert parse_one_byte(data) == {3: b"\xaa\xbb", 1: b"\x05"}
    assert read_audio_level(bytes(RtpPacket(111, 1, 2, 3, b"x", extension=(0xBEDE, data)))) == (5, False)


@pytest.mark.parametrize(
    "extension",
    [
        (0x1000, bytes([0x10, 0x85, 0, 0])),  # a two-byte header extension: not read
        (0xBEDE, bytes([0x13, 0x85, 0, 0])),  # the element claims 4 bytes past the end
        (0xBEDE, bytes([0x20, 0x85, 0, 0])),  # no level element
    ],
)
def test_a_level_that_is_not_there_or_malformed_reads_as_none(extension: tuple[int, bytes]) -> None:
    assert read_audio_level(bytes(RtpPacket(111, 1, 2, 3, b"x", extension=extension))) is None


def test_an_extension_length_past_the_packet_reads_as_none() -> None:
    packet = bytearray(RtpPacket(111, 1, 2, 3, b"", extension=audio_level_extension(9)).__bytes__())
    packet[15] = 200  # 200 words of extension in a 20-byte packet
    assert read_audio_level(bytes(packet)) is None
    assert read_audio_level(b"\x90\x6f") is None
    with pytest.raises(ProtocolError):
        parse_one_byte(bytes([0x12, 0x01]))
