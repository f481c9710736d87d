"""RFC 2435: JPEG pictures from PyAV's encoder cut into RTP payloads, and pictures it cannot carry."""

from __future__ import annotations

import contextlib
import struct
from fractions import Fraction

import av
import numpy as np
import pytest
from conf_rtsp.jpeg_rtp import JpegFrame, JpegPacketizer, parse_jpeg
from hypothesis import given, settings
from hypothesis import strategies as st

from conf_cli.errors import ProtocolError


def _jpeg(width: int, height: int, pix_fmt: str = "yuvj420p", huffman: str = "default") -> bytes:
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, pix_fmt
    codec.time_base = Fraction(1, 25)
    codec.options = {"huffman": huffman}
    rng = np.random.default_rng(7)
    picture = av.VideoFrame.from_ndarray(rng.integers(0, 255, (height, width, 3), np.uint8), format="rgb24")
    return b"".join(bytes(p) for p in codec.encode(picture.reformat(format=pix_fmt)))


def _segment(data: bytes, marker: int) -> int:
    """The offset of a marker segment's length field."""
    return data.index(bytes((0xFF, marker))) + 2


@pytest.mark.parametrize("restart", [False, True])
def test_a_picture_is_cut_into_rfc2435_payloads(restart: bool) -> None:
    data = _jpeg(320, 240)
    if _segment(data, 0xDD) and not restart:  # drop FFmpeg's restart interval: a picture without one
        at = _segment(data, 0xDD) - 2
        data = data[:at] + data[at + 6 :]
    frame = parse_jpeg(data)
    assert (frame.width, frame.height, frame.standard_huffman) == (320, 240, True)
    assert frame.type == (65 if restart else 1)
    assert len(frame.tables) == 128
    payloads = JpegPacketizer(1200).packetize(frame)
    assert len(payloads) > 3 and all(len(p) <= 1200 for p in payloads)
    scan = b""
    for index, payload in enumerate(payloads):
        offset_word, kind, q, w8, h8 = struct.unpack_from("!IBBBB", payload)
        assert offset_word >> 24 == 0 and offset_word & 0xFFFFFF == len(scan)
        assert (kind, q, w8, h8) == (frame.type, 255, 40, 30)
        body = payload[8:]
        if restart:
            interval, flags = struct.unpack_from("!HH", body)
            assert interval == frame.restart_interval > 0 and flags == 0xFFFF
            body = body[4:]
        if index == 0:
            mbz, precision, length = struct.unpack_from("!BBH", body)
            assert (mbz, precision, length) == (0, 0, 128) and body[4:132] == frame.tables
            body = body[132:]
        scan += body
    assert scan == frame.scan
    assert data.endswith(b"\xff\xd9") and data.index(frame.scan) + len(frame.scan) == len(data) - 2


def test_422_is_type_0() -> None:
    data = bytearray(_jpeg(64, 48))
    sof = _segment(bytes(data), 0xC0)
    data[sof + 9] = 0x21  # luma sampled 2x1: 4:2:2
    assert parse_jpeg(bytes(data)).type in (0, 64)


def test_other_huffman_tables_are_noticed() -> None:
    data = bytearray(_jpeg(64, 48))
    dht = _segment(bytes(data), 0xC4)
    data[dht + 2 + 17] ^= 0x01  # the first symbol of the first table
    assert not parse_jpeg(bytes(data)).standard_huffman


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"not a jpeg", "no SOI"),
        (b"\xff\xd8\xff\xdb\x00\xff", "runs past"),
        (b"\xff\xd8\xff\xda\x00\x02", "frame header"),
    ],
)
def test_bad_pictures(data: bytes, text: str) -> None:
    with pytest.raises(ProtocolError, match=text):
        parse_jpeg(data)


def test_444_cannot_be_carried() -> None:
    with pytest.raises(ProtocolError, match="chroma"):
        parse_jpeg(_jpeg(64, 48, "yuvj444p"))


def test_truncated_pictures_raise_protocol_error_only() -> None:
    data = _jpeg(64, 48)
    for cut in range(0, 700, 7):
        with contextlib.suppress(ProtocolError):
            parse_jpeg(data[:cut])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=20_000), st.integers(160, 1500), st.booleans())
def test_any_scan_is_cut_and_put_back_together(scan: bytes, mtu: int, restart: bool) -> None:
    frame = JpegFrame(640, 480, 65 if restart else 1, bytes(range(128)), 4 if restart else 0, scan, True)
    payloads = JpegPacketizer(mtu).packetize(frame)
    rebuilt = b""
    for index, payload in enumerate(payloads):
        assert len(payload) <= mtu
        offset = int.from_bytes(payload[1:4], "big")
        assert offset == len(rebuilt)
        header = 8 + (4 if restart else 0) + (132 if index == 0 else 0)
        rebuilt += payload[header:]
    assert rebuilt == scan
