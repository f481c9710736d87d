"""RTP packets: known bytes, round trips, every malformed case, and fuzzing."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conf_cli.errors import ProtocolError
from conf_cli.protocol.rtp import RtpPacket, header_fits, is_rtcp, peek_ssrc

# RFC 3550 section 5.1, field by field: V=2 P=0 X=0 CC=0 | M=1 PT=96 | seq 0x1234 | timestamp | SSRC.
HAND_BUILT = bytes.fromhex("80e01234deadbeef12345678") + b"hello"

# A captured H.264 packet with a one-word header extension (profile 0x0001), published with the pion RTP
# test suite: V=2 X=1 M=1 PT=96 seq=27023 ts=3653407706 ssrc=476325762.
CAPTURED = bytes.fromhex("90e0698f d9c293da 1c642782 00010001 ffffffff 9836be88 9e")


def test_parse_hand_built_header() -> None:
    packet = RtpPacket.parse(HAND_BUILT)
    assert packet == RtpPacket(
        payload_type=96,
        sequence_number=0x1234,
        timestamp=0xDEADBEEF,
        ssrc=0x12345678,
        payload=b"hello",
        marker=True,
    )
    assert packet.version == 2
    assert bytes(packet) == HAND_BUILT


def test_parse_captured_packet_with_extension() -> None:
    packet = RtpPacket.parse(CAPTURED)
    assert packet == RtpPacket(
        payload_type=96,
        sequence_number=27023,
        timestamp=3653407706,
        ssrc=476325762,
        payload=bytes([0x98, 0x36, 0xBE, 0x88, 0x9E]),
        marker=True,
        extension=(1, b"\xff\xff\xff\xff"),
    )
    assert bytes(packet) == CAPTURED


def test_csrc_extension_and_padding_byte_exact() -> None:
    data = (
        bytes([0xB2, 0x08])  # V=2 P=1 X=1 CC=2, M=0 PT=8
        + struct.pack("!HII", 65535, 160, 0xCAFEBABE)
        + struct.pack("!II", 1, 2)  # CSRC list
        + struct.pack("!HH", 0xBEDE, 1)  # RFC 8285 one-byte header profile, one word
        + bytes([0x10, 0xAA, 0x00, 0x00])
        + b"\x01\x02\x03"  # payload
        + b"\x00\x00\x03"  # 3 bytes of padding, the last one is the count
    )
    packet = RtpPacket.parse(data)
    assert packet == RtpPacket(
        payload_type=8,
        sequence_number=65535,
        timestamp=160,
        ssrc=0xCAFEBABE,
        payload=b"\x01\x02\x03",
        csrc=[1, 2],
        extension=(0xBEDE, bytes([0x10, 0xAA, 0x00, 0x00])),
        padding=3,
    )
    assert bytes(packet) == data


def test_padding_only_packet() -> None:
    data = bytes.fromhex("a0600001000000000000000a") + bytes(3) + b"\x04"
    packet = RtpPacket.parse(data)
    assert packet.payload == b""
    assert packet.padding == 4
    assert bytes(packet) == data


def test_empty_extension() -> None:
    data = bytes.fromhex("9000000100000002000000031000 0000".replace(" ", ""))
    packet = RtpPacket.parse(data)
    assert packet.extension == (0x1000, b"")
    assert bytes(packet) == data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "RTP packet too short: 0 bytes, the fixed header needs 12"),
        (HAND_BUILT[:11], "RTP packet too short: 11 bytes, the fixed header needs 12"),
        (b"\x40" + HAND_BUILT[1:], "RTP version 1 is not 2"),
        (b"\x00" + HAND_BUILT[1:], "RTP version 0 is not 2"),
        (b"\xc0" + HAND_BUILT[1:], "RTP version 3 is not 2"),
        (
            b"\x82" + HAND_BUILT[1:12] + b"\x00\x00\x00\x01",
            "RTP CSRC count 2 runs past the end of the 16-byte packet",
        ),
        (b"\x8f" + HAND_BUILT[1:], "RTP CSRC count 15 runs past the end of the 17-byte packet"),
        (
            b"\x90" + HAND_BUILT[1:12] + b"\xbe\xde",
            "RTP header extension runs past the end of the 14-byte packet",
        ),
        (
            b"\x90" + HAND_BUILT[1:12] + b"\xbe\xde\x00\x02\x00\x00\x00\x00",
            "RTP header extension runs past the end of the 20-byte packet",
        ),
        (
            b"\x90" + HAND_BUILT[1:12] + b"\x99\x99\x99\x99",
            "RTP header extension runs past the end of the 16-byte packet",
        ),
        (b"\xa0" + HAND_BUILT[1:12] + b"abc\x00", "RTP padding length is 0"),
        (
            b"\xa0" + HAND_BUILT[1:12] + b"abc\x05",
            "RTP padding of 5 bytes runs past the end of the 16-byte packet",
        ),
        (b"\xa0" + HAND_BUILT[1:12], "RTP padding of 120 bytes runs past the end of the 12-byte packet"),
    ],
)
def test_malformed_packets(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as info:
        RtpPacket.parse(data)
    assert str(info.value) == message


def test_parse_accepts_memoryview_and_bytearray() -> None:
    assert RtpPacket.parse(memoryview(CAPTURED)) == RtpPacket.parse(CAPTURED)
    assert RtpPacket.parse(bytearray(HAND_BUILT)) == RtpPacket.parse(HAND_BUILT)


@pytest.mark.parametrize(
    ("packet", "message"),
    [
        (RtpPacket(128, 0, 0, 0), "RTP payload type 128 is outside 0..127"),
        (RtpPacket(96, 65536, 0, 0), "RTP header field out of range"),
        (RtpPacket(96, 0, 1 << 32, 0), "RTP header field out of range"),
        (RtpPacket(96, 0, 0, -1), "RTP header field out of range"),
        (RtpPacket(96, 0, 0, 0, csrc=list(range(16))), "RTP carries at most 15 CSRCs, got 16"),
        (RtpPacket(96, 0, 0, 0, csrc=[1 << 32]), "RTP header field out of range"),
        (RtpPacket(96, 0, 0, 0, padding=256), "RTP padding 256 is outside 0..255"),
        (
            RtpPacket(96, 0, 0, 0, extension=(1, b"abc")),
            "RTP header extension of 3 bytes is not a whole number",
        ),
        (RtpPacket(96, 0, 0, 0, extension=(1 << 16, b"")), "RTP header extension profile 65536 is outside"),
    ],
)
def test_serialize_rejects_fields_out_of_range(packet: RtpPacket, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bytes(packet)


def test_is_rtcp_demultiplexes_per_rfc_5761() -> None:
    for packet_type in range(192, 224):
        assert is_rtcp(bytes([0x80, packet_type]) + bytes(6))
    for payload_type in (0, 8, 63, 96, 111, 127):
        assert not is_rtcp(bytes([0x80, payload_type]) + bytes(10))
        assert not is_rtcp(bytes([0x80, 0x80 | payload_type]) + bytes(10))
    assert is_rtcp(bytes.fromhex("81c90007"))  # RR
    assert is_rtcp(bytes.fromhex("81cd0003"))  # RTPFB
    assert not is_rtcp(HAND_BUILT)
    assert not is_rtcp(b"")
    assert not is_rtcp(b"\x80")


def test_header_fits() -> None:
    assert header_fits(bytes.fromhex("80600001 00000002 00000003"))
    assert not header_fits(bytes.fromhex("40600001 00000002 00000003"))  # version 1
    assert not header_fits(bytes.fromhex("8f600001 00000002 00000003"))  # 15 CSRCs in a bare header
    assert header_fits(bytes.fromhex("81600001 00000002 00000003 00000004"))
    assert not header_fits(bytes.fromhex("90600001 00000002 00000003 bede"))  # extension header cut
    assert not header_fits(bytes.fromhex("90600001 00000002 00000003 bedeffff 00000000"))
    assert header_fits(bytes.fromhex("90600001 00000002 00000003 bede0001 00000000"))
    assert header_fits(bytes.fromhex("a0600001 00000002 00000003 ff"))  # padding is not looked at (SRTP)


@given(st.binary(max_size=80))
def test_header_fits_agrees_with_parse_but_for_padding(data: bytes) -> None:
    try:
        RtpPacket.parse(data)
        fits = True
    except ProtocolError as exc:
        fits = "padding" in str(exc)
    assert header_fits(data) == fits


def test_peek_ssrc() -> None:
    assert peek_ssrc(HAND_BUILT) == 0x12345678
    assert peek_ssrc(CAPTURED) == 476325762
    assert peek_ssrc(bytes.fromhex("81c90007902f9e2e")) == 0x902F9E2E
    with pytest.raises(ProtocolError, match="RTP packet too short: 5 bytes"):
        peek_ssrc(HAND_BUILT[:5])
    with pytest.raises(ProtocolError, match="RTCP packet too short: 4 bytes, the sender SSRC needs 8"):
        peek_ssrc(bytes.fromhex("81c90007"))
    with pytest.raises(ProtocolError, match="RTP version 1 is not 2"):
        peek_ssrc(b"\x40" + HAND_BUILT[1:])


packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence_number=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=64),
    marker=st.booleans(),
    csrc=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15),
    extension=st.none()
    | st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=32).map(lambda b: b + bytes(-len(b) % 4))),
    padding=st.integers(0, 255),
)


@given(packets)
def test_round_trip(packet: RtpPacket) -> None:
    data = bytes(packet)
    assert RtpPacket.parse(data) == packet
    assert peek_ssrc(data) == packet.ssrc or is_rtcp(data)


@given(st.binary(max_size=128))
def test_random_bytes_raise_only_protocol_error(data: bytes) -> None:
    try:
        packet = RtpPacket.parse(data)
    except ProtocolError:
        return
    assert RtpPacket.parse(bytes(packet)) == packet


@given(packets, st.data())
def test_mutated_packets_raise_only_protocol_error(packet: RtpPacket, data: st.DataObject) -> None:
    raw = bytearray(bytes(packet))
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    for candidate in (bytes(raw), bytes(raw[:cut])):
        with contextlib.suppress(ProtocolError):
            RtpPacket.parse(candidate)
