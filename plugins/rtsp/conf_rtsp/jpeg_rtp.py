"""JPEG over RTP (RFC 2435, static payload type 26), sans-I/O: how MJPEG files are served over RTSP.

:func:`parse_jpeg` reads a baseline JFIF/JPEG picture into what RFC 2435 carries: the picture type
(0 for 4:2:2, 1 for 4:2:0, plus 64 with restart markers), the size in 8-pixel blocks, the quantization
tables (sent in band, Q = 255) and the entropy-coded scan. :class:`JpegPacketizer` cuts it into RTP
payloads with the RFC 2435 main header (3.1), the restart marker header (3.1.7) and, in the first
packet, the quantization table header (3.1.8); the last packet of a picture gets the marker bit.

RFC 2435 has no room for Huffman tables: a receiver rebuilds the standard ones (ITU-T T.81 K.3). A
picture coded with other tables (FFmpeg's ``-huffman optimal``, its default) parses with
``standard_huffman`` false and must be coded again before it is sent.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction
from functools import cache

from conf_cli import ProtocolError

__all__ = ["JPEG_CLOCK_RATE", "PT_JPEG", "JpegFrame", "JpegPacketizer", "parse_jpeg", "standard_huffman"]

PT_JPEG = 26
JPEG_CLOCK_RATE = 90_000
MAX_DIMENSION = 2040  # 255 blocks of 8 pixels

_SOI, _EOI, _SOS, _DQT, _DHT, _DRI = 0xD8, 0xD9, 0xDA, 0xDB, 0xC4, 0xDD
_SOF0, _SOF1 = 0xC0, 0xC1


@dataclass
class JpegFrame:
    """The parts of one JPEG picture that RFC 2435 carries."""

    width: int
    height: int
    type: int
    """0: 4:2:2 (Y 2x1), 1: 4:2:0 (Y 2x2); 64 is added when restart markers are used."""
    tables: bytes
    """The two quantization tables, 64 bytes each, in zig-zag order: luma, then chroma."""
    restart_interval: int
    scan: bytes
    standard_huffman: bool


def _segments(data: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """The marker segments before the scan, and the offset at which the scan's data starts."""
    if data[:2] != b"\xff\xd8":
        raise ProtocolError("not a JPEG picture: no SOI marker")
    offset = 2
    segments: list[tuple[int, bytes]] = []
    size = len(data)
    while True:
        while offset < size and data[offset] == 0xFF and offset + 1 < size and data[offset + 1] == 0xFF:
            offset += 1  # fill bytes
        if offset + 4 > size or data[offset] != 0xFF:
            raise ProtocolError(f"JPEG marker expected at byte {offset}")
        marker = data[offset + 1]
        length = int.from_bytes(data[offset + 2 : offset + 4], "big")
        if length < 2 or offset + 2 + length > size:
            raise ProtocolError(f"JPEG segment {marker:#04x} runs past the end of the picture")
        body = data[offset + 4 : offset + 2 + length]
        segments.append((marker, body))
        offset += 2 + length
        if marker == _SOS:
            return segments, offset
        if len(segments) > 64:
            raise ProtocolError("JPEG picture has more than 64 segments before its scan")


def _huffman_tables(segments: list[tuple[int, bytes]]) -> dict[tuple[int, int], bytes]:
    tables: dict[tuple[int, int], bytes] = {}
    for marker, body in segments:
        if marker != _DHT:
            continue
        pos = 0
        while pos < len(body):
            if pos + 17 > len(body):
                raise ProtocolError("JPEG Huffman table runs past its segment")
            count = sum(body[pos + 1 : pos + 17])
            end = pos + 17 + count
            if end > len(body):
                raise ProtocolError("JPEG Huffman table runs past its segment")
            tables[(body[pos] >> 4, body[pos] & 0x0F)] = bytes(body[pos + 1 : end])
            pos = end
    return tables


@cache
def standard_huffman() -> dict[tuple[int, int], bytes]:
    """The T.81 K.3 tables, as FFmpeg's encoder writes them with ``huffman=default``."""
    import av
    import numpy as np

    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = 16, 16, "yuvj420p"
    codec.time_base = Fraction(1, 25)
    codec.options = {"huffman": "default"}
    frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24").reformat(
        format="yuvj420p"
    )
    data = b"".join(bytes(p) for p in codec.encode(frame))
    return _huffman_tables(_segments(data)[0])


def parse_jpeg(data: bytes, *, check_huffman: bool = True) -> JpegFrame:
    """Read a baseline JPEG picture; raise ProtocolError if RFC 2435 cannot carry it as it is."""
    segments, scan_start = _segments(data)
    quant: dict[int, bytes] = {}
    frame_header: bytes | None = None
    restart = 0
    for marker, body in segments:
        if marker == _DQT:
            pos = 0
            while pos < len(body):
                precision, table = body[pos] >> 4, body[pos] & 0x0F
                if precision != 0:
                    raise ProtocolError("JPEG 16-bit quantization tables are not supported")
                if pos + 65 > len(body):
                    raise ProtocolError("JPEG quantization table runs past its segment")
                quant[table] = bytes(body[pos + 1 : pos + 65])
                pos += 65
        elif marker in (_SOF0, _SOF1):
            frame_header = body
        elif 0xC2 <= marker <= 0xCF and marker not in (_DHT, 0xC8, 0xCC):
            raise ProtocolError(f"JPEG process {marker:#04x} is not baseline")
        elif marker == _DRI:
            if len(body) != 2:
                raise ProtocolError("JPEG restart interval segment is not 2 bytes")
            restart = int.from_bytes(body, "big")
    if frame_header is None or len(frame_header) < 6:
        raise ProtocolError("JPEG picture has no baseline frame header")
    precision, height, width, count = struct.unpack_from("!BHHB", frame_header)
    if precision != 8 or count != 3 or len(frame_header) < 6 + 3 * count:
        raise ProtocolError("RFC 2435 carries 8-bit YCbCr pictures only")
    if not (0 < width <= MAX_DIMENSION and 0 < height <= MAX_DIMENSION):
        raise ProtocolError(f"JPEG picture {width}x{height} is larger than RFC 2435's 2040x2040")
    comps = [frame_header[6 + 3 * i : 9 + 3 * i] for i in range(3)]
    luma, cb, cr = comps
    if cb[1] != 0x11 or cr[1] != 0x11 or luma[2] != 0 or cb[2] != cr[2] or cb[2] not in (0, 1):
        raise ProtocolError("RFC 2435 needs 1x1 chroma and quantization table 0 for luma, 0 or 1 for chroma")
    if luma[1] == 0x21:
        kind = 0
    elif luma[1] == 0x22:
        kind = 1
    else:
        raise ProtocolError(f"RFC 2435 carries 4:2:2 or 4:2:0 pictures, not sampling {luma[1]:#04x}")
    used = sorted({0, cb[2]})
    if any(table not in quant for table in used):
        raise ProtocolError("JPEG picture lacks its quantization tables")
    end = len(data)
    if data[-2:] == b"\xff\xd9":
        end -= 2
    standard = True
    if check_huffman:
        tables = _huffman_tables(segments)
        reference = standard_huffman()
        standard = all(reference.get(key) == table for key, table in tables.items())
    return JpegFrame(
        width=width,
        height=height,
        type=kind + (64 if restart else 0),
        tables=quant[0] + quant[cb[2]],  # chroma's table, even when it is luma's: receivers expect two
        restart_interval=restart,
        scan=bytes(data[scan_start:end]),
        standard_huffman=standard,
    )


class JpegPacketizer:
    """RFC 2435 payloads for pictures; ``mtu`` is the largest payload, RTP header not included."""

    def __init__(self, mtu: int = 1200) -> None:
        if mtu < 160:
            raise ValueError(f"JPEG payload size {mtu} is too small, it must be at least 160")
        self.mtu = mtu

    def packetize(self, frame: JpegFrame) -> list[bytes]:
        """The payloads of one picture, in order; the last one gets the marker bit."""
        if frame.width > MAX_DIMENSION or frame.height > MAX_DIMENSION:
            raise ValueError(f"picture {frame.width}x{frame.height} is larger than 2040x2040")
        restart = b""
        if frame.type >= 64:
            restart = struct.pack("!HH", frame.restart_interval, 0xFFFF)  # F=1, L=1, count 0x3FFF
        payloads: list[bytes] = []
        offset = 0
        scan = frame.scan
        while offset < len(scan) or not payloads:
            main = struct.pack(
                "!IBBBB",
                offset & 0xFFFFFF,  # type-specific 0, then the 24-bit fragment offset
                frame.type,
                255,
                (frame.width + 7) // 8,
                (frame.height + 7) // 8,
            )
            header = main + restart
            if offset == 0:
                header += struct.pack("!BBH", 0, 0, len(frame.tables)) + frame.tables
            room = self.mtu - len(header)
            payloads.append(header + scan[offset : offset + room])
            offset += room
            if offset >= 1 << 24:
                raise ValueError("JPEG scan longer than RFC 2435's 16 MB fragment offset")
        return payloads
