"""RTCP packets: captured and hand-built bytes, round trips, malformed input, NTP and RTT arithmetic."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conf_cli.errors import ProtocolError
from conf_cli.protocol.rtcp import (
    NTP_UNIX_OFFSET,
    Bye,
    Fir,
    Nack,
    Pli,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    Sdes,
    SdesChunk,
    SenderReport,
    UnknownRtcp,
    build_compound,
    compact_ntp,
    ntp_from_unix,
    ntp_middle,
    parse_compound,
    round_trip_time,
    unix_from_ntp,
)

# A compound packet from a packet dump, published with the pion RTCP test suite:
# RR, SDES (CNAME), BYE, PLI, and an RTPFB with FMT=5 (rapid resynchronisation request, RFC 6051).
CAPTURED_COMPOUND = (
    bytes.fromhex("81c90007 902f9e2e bc5e9a40 00000000 000046e1 00000111 09f36432 00024a79")
    + bytes.fromhex("81ca000c 902f9e2e 0126")
    + b"{9c00eb92-1afb-9d49-a47d-91f64eee69f5}"
    + bytes.fromhex("00000000")
    + bytes.fromhex("81cb0001 902f9e2e")
    + bytes.fromhex("81ce0002 902f9e2e 902f9e2e")
    + bytes.fromhex("85cd0002 902f9e2e 902f9e2e")
)
BLOCK = ReportBlock(
    ssrc=0xBC5E9A40,
    fraction_lost=0,
    packets_lost=0,
    highest_sequence=0x46E1,
    jitter=273,
    lsr=0x9F36432,
    dlsr=150137,
)
BLOCK_BYTES = bytes.fromhex("bc5e9a40 00000000 000046e1 00000111 09f36432 00024a79")

# The same suite's sender report, with its length field corrected from 7 to 12 words.
SR_BYTES = bytes.fromhex("81c8000c 902f9e2e da8bd1fc dddda05a aaf4edd5 00000001 00000002") + BLOCK_BYTES


def test_captured_compound() -> None:
    packets = parse_compound(CAPTURED_COMPOUND)
    assert packets == [
        ReceiverReport(ssrc=0x902F9E2E, reports=[BLOCK]),
        Sdes([SdesChunk(0x902F9E2E, [(1, b"{9c00eb92-1afb-9d49-a47d-91f64eee69f5}")])]),
        Bye(sources=[0x902F9E2E]),
        Pli(sender_ssrc=0x902F9E2E, media_ssrc=0x902F9E2E),
        UnknownRtcp(packet_type=205, count=5, body=bytes.fromhex("902f9e2e902f9e2e")),
    ]
    assert packets[1].chunks[0].cname == "{9c00eb92-1afb-9d49-a47d-91f64eee69f5}"  # type: ignore[union-attr]
    assert build_compound(packets) == CAPTURED_COMPOUND
    assert [bytes(p) for p in packets] == [
        CAPTURED_COMPOUND[0:32],
        CAPTURED_COMPOUND[32:84],
        CAPTURED_COMPOUND[84:92],
        CAPTURED_COMPOUND[92:104],
        CAPTURED_COMPOUND[104:116],
    ]


def test_sender_report() -> None:
    [report] = parse_compound(SR_BYTES)
    assert report == SenderReport(
        ssrc=0x902F9E2E,
        ntp_timestamp=0xDA8BD1FCDDDDA05A,
        rtp_timestamp=0xAAF4EDD5,
        packet_count=1,
        octet_count=2,
        reports=[BLOCK],
    )
    assert bytes(report) == SR_BYTES


def test_sender_report_whose_length_omits_its_report_block() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_compound(SR_BYTES[:3] + b"\x07" + SR_BYTES[4:])
    assert str(info.value) == "RTCP SR with 1 report blocks needs 52 bytes, has 32"


def test_hand_built_receiver_report_with_negative_cumulative_loss() -> None:
    block = ReportBlock(
        ssrc=7, fraction_lost=0x40, packets_lost=-2, highest_sequence=0x1_0005, jitter=9, lsr=1, dlsr=2
    )
    data = bytes.fromhex("81c90007 00000001 00000007 40fffffe 00010005 00000009 00000001 00000002")
    assert bytes(ReceiverReport(1, [block])) == data
    assert parse_compound(data) == [ReceiverReport(1, [block])]


def test_empty_receiver_report() -> None:
    assert bytes(ReceiverReport(0x01020304)) == bytes.fromhex("80c90001 01020304")
    assert parse_compound(bytes.fromhex("80c90001 01020304")) == [ReceiverReport(0x01020304)]


def test_nack_captured_pair() -> None:
    data = bytes.fromhex("81cd0003 902f9e2e 902f9e2e aaaa5555")
    [nack] = parse_compound(data)
    assert nack == Nack(0x902F9E2E, 0x902F9E2E, [0xAAAA] + [0xAAAA + n for n in range(1, 17, 2)])
    assert bytes(nack) == data


@pytest.mark.parametrize(
    ("lost", "pairs"),
    [
        ([100], [(100, 0)]),
        ([100, 101, 105, 115], [(100, 0x4011)]),
        ([100, 117, 500, 501, 502], [(100, 0), (117, 0), (500, 0x3)]),
        ([42, 42 + 16], [(42, 0x8000)]),
        ([65534, 65535, 0, 3], [(65534, 0b10011)]),
        ([7, 7, 8], [(7, 0x1)]),
    ],
)
def test_nack_pairs(lost: list[int], pairs: list[tuple[int, int]]) -> None:
    fci = b"".join(struct.pack("!HH", pid, blp) for pid, blp in pairs)
    header = struct.pack("!BBH", 0x81, 205, 2 + len(pairs))
    assert bytes(Nack(1, 2, lost)) == header + struct.pack("!II", 1, 2) + fci
    assert parse_compound(bytes(Nack(1, 2, lost)))[0] == Nack(1, 2, sorted(set(lost), key=lost.index))


def test_pli_and_fir_hand_built() -> None:
    pli = bytes.fromhex("81ce0002 00000001 00000002")
    assert bytes(Pli(1, 2)) == pli
    assert parse_compound(pli) == [Pli(1, 2)]
    fir = bytes.fromhex("84ce0004 00000001 00000000 0000000a 07000000")
    assert bytes(Fir(1, [(10, 7)])) == fir
    assert parse_compound(fir) == [Fir(1, [(10, 7)])]


def test_sdes_and_bye_hand_built() -> None:
    sdes = Sdes([SdesChunk(5, [(1, b"ab"), (6, b"conf")]), SdesChunk(6, [])])
    data = bytes.fromhex("82ca0006 00000005 01026162 0604636f 6e660000 00000006 00000000".replace(" ", ""))
    assert bytes(sdes) == data
    assert parse_compound(data) == [sdes]
    assert sdes.chunks[1].cname is None
    assert Sdes.for_cname(9, "bob@host").chunks[0].cname == "bob@host"
    bye = Bye([1, 2], "bye")
    data = bytes.fromhex("82cb0003 00000001 00000002 03627965")
    assert bytes(bye) == data
    assert parse_compound(data) == [bye]
    assert parse_compound(bytes(Bye([1], "ciao"))) == [Bye([1], "ciao")]


def test_bye_reason_of_invalid_utf8_can_be_written_back() -> None:
    """Each invalid byte reads as U+FFFD, three bytes of UTF-8: the text is cut to the 255 a reason holds."""
    body = struct.pack("!I", 1) + bytes((255,)) + b"\xff" * 255
    data = bytes((0x81, 203)) + struct.pack("!H", len(body) // 4) + body
    (bye,) = parse_compound(data)
    assert isinstance(bye, Bye)
    assert bye.reason == "\ufffd" * 85
    assert parse_compound(bytes(bye)) == [bye]


def test_padding_on_the_last_packet() -> None:
    data = bytes.fromhex("a0c90002 00000001 00000004")
    assert parse_compound(data) == [ReceiverReport(1)]
    data = bytes.fromhex("80c90001 00000001 a0cb0002 00000009 00000004")
    assert parse_compound(data) == [ReceiverReport(1), Bye([])]


def test_unknown_packets_are_kept() -> None:
    app = bytes.fromhex("81cc0003 00000001") + b"name" + b"data"
    xr = bytes.fromhex("80cf0002 00000001 00000000")
    twcc = bytes.fromhex("8fcd0003 00000001 00000002 00010002")
    remb = bytes.fromhex("8fce0004 00000001 00000000 52454d42 01000001")
    unknown_type = bytes.fromhex("80640000")
    packets = parse_compound(app + xr + twcc + remb + unknown_type + bytes(Pli(1, 2)))
    assert [type(p).__name__ for p in packets] == ["UnknownRtcp"] * 5 + ["Pli"]
    assert packets[0] == UnknownRtcp(204, 1, bytes.fromhex("00000001") + b"namedata")
    assert packets[2] == UnknownRtcp(205, 15, bytes.fromhex("00000001 00000002 00010002"))
    assert build_compound(packets) == app + xr + twcc + remb + unknown_type + bytes(Pli(1, 2))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "RTCP datagram is empty"),
        (b"\x81\xc9", "RTCP packet too short: 2 bytes, the header needs 4"),
        (bytes(ReceiverReport(1)) + b"\x80\xc9\x00", "RTCP packet too short: 3 bytes, the header needs 4"),
        (bytes.fromhex("41c90001 00000001"), "RTCP version 1 is not 2"),
        (bytes(Pli(1, 2)) + bytes.fromhex("c1c90001 00000001"), "RTCP version 3 is not 2"),
        (
            bytes.fromhex("81c90007 00000001"),
            "RTCP length field says 32 bytes but only 8 remain in the datagram",
        ),
        (
            bytes.fromhex("80c9ffff 00000001"),
            "RTCP length field says 262144 bytes but only 8 remain in the datagram",
        ),
        (bytes.fromhex("a0c90001 00000000"), "RTCP padding length is 0"),
        (
            bytes.fromhex("a0c90001 00000005"),
            "RTCP padding of 5 bytes runs past the end of the 8-byte packet",
        ),
        (bytes.fromhex("80c80000"), "RTCP SR with 0 report blocks needs 28 bytes, has 4"),
        (bytes.fromhex("81c80000"), "RTCP SR with 1 report blocks needs 52 bytes, has 4"),
        (bytes.fromhex("80c90000"), "RTCP RR with 0 report blocks needs 8 bytes, has 4"),
        (bytes.fromhex("82c90007") + bytes(28), "RTCP RR with 2 report blocks needs 56 bytes, has 32"),
        (bytes.fromhex("9fc90001 00000001"), "RTCP RR with 31 report blocks needs 752 bytes, has 8"),
        (bytes.fromhex("81ca0000"), "RTCP SDES chunk 1 of 1 runs past the end of the 4-byte packet"),
        (bytes.fromhex("81ca0001 00000001"), "RTCP SDES chunk 1 of 1 runs past the end of the 8-byte packet"),
        (
            bytes.fromhex("81ca0002 00000001 010a6162"),
            "RTCP SDES chunk 1 of 1 runs past the end of the 12-byte packet",
        ),
        (
            bytes.fromhex("81ca0002 00000001 01026162"),
            "RTCP SDES chunk 1 of 1 runs past the end of the 12-byte packet",
        ),
        (
            bytes.fromhex("82ca0002 00000001 00000000"),
            "RTCP SDES chunk 2 of 2 runs past the end of the 12-byte packet",
        ),
        (bytes.fromhex("82cb0001 00000001"), "RTCP BYE with 2 sources needs 12 bytes, has 8"),
        (
            bytes.fromhex("81cb0002 00000001 09616263"),
            "RTCP BYE reason of 9 bytes runs past the end of the 12-byte packet",
        ),
        (bytes.fromhex("81cd0001 00000001"), "RTCP feedback packet needs 12 bytes, has 8"),
        (bytes.fromhex("81ce0000"), "RTCP feedback packet needs 12 bytes, has 4"),
        (bytes.fromhex("81cd0002 00000001 00000002"), "RTCP NACK carries no lost packets"),
        (
            bytes.fromhex("a1cd0003 00000001 00000002 00010001"),
            "RTCP NACK of 3 FCI bytes is not a whole number of 4-byte entries",
        ),
        (
            bytes.fromhex("a4ce0004 00000001 00000000 0000000a 07000004"),
            "RTCP FIR of 4 FCI bytes is not a whole number of 8-byte entries",
        ),
        (
            bytes.fromhex("84ce0003 00000001 00000000 0000000a"),
            "RTCP FIR of 4 FCI bytes is not a whole number of 8-byte entries",
        ),
    ],
)
def test_malformed(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_compound(data)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("packet", "message"),
    [
        (ReportBlock(1, fraction_lost=256), "RTCP fraction lost 256 is outside 0..255"),
        (ReportBlock(1, packets_lost=0x800000), "RTCP cumulative lost 8388608 does not fit 24 signed bits"),
        (ReportBlock(1, jitter=1 << 32), "RTCP field out of range"),
        (ReceiverReport(1, [ReportBlock(1)] * 32), "RTCP count 32 is outside 0..31"),
        (SenderReport(1, 1 << 64, 0, 0, 0), "RTCP field out of range"),
        (SdesChunk(1, [(0, b"x")]), "RTCP SDES item type 0 is outside 1..255"),
        (SdesChunk(1, [(1, bytes(256))]), "RTCP SDES item of 256 bytes is longer than 255"),
        (Bye([1], "x" * 256), "RTCP BYE reason of 256 bytes is longer than 255"),
        (Nack(1, 2, []), "RTCP NACK needs at least one lost packet"),
        (UnknownRtcp(204, 0, b"abc"), "RTCP body of 3 bytes is not a whole number of words"),
        (UnknownRtcp(256, 0, b""), "RTCP packet type 256 is outside 0..255"),
    ],
)
def test_serialize_rejects_fields_out_of_range(packet: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bytes(packet)  # type: ignore[call-overload]


def test_ntp_conversions() -> None:
    assert ntp_from_unix(0) == NTP_UNIX_OFFSET << 32 == 0x83AA7E80_00000000
    assert ntp_from_unix(1.5) == (NTP_UNIX_OFFSET + 1) << 32 | 0x80000000
    assert ntp_from_unix(1_700_000_000.25) == (NTP_UNIX_OFFSET + 1_700_000_000) << 32 | 0x40000000
    assert unix_from_ntp(ntp_from_unix(1_700_000_000.125)) == 1_700_000_000.125
    assert ntp_middle(0x0123_4567_89AB_CDEF) == 0x4567_89AB
    assert compact_ntp(1.5) == ((NTP_UNIX_OFFSET + 1) & 0xFFFF) << 16 | 0x8000


def test_round_trip_time_rfc_3550_example() -> None:
    # RFC 3550 section 6.4.1, figure 2: A = 0xb710:8000, LSR = 0xb705:2000, DLSR = 0x0005:4000.
    assert round_trip_time(0xB7108000, 0xB7052000, 0x00054000) == 6.125
    assert round_trip_time(0xB7108000, 0, 0x00054000) is None  # no SR received yet
    assert round_trip_time(0xB7052000, 0xB7052000, 0x00054000) is None  # negative: bogus DLSR
    assert round_trip_time(0x00010000, 0xFFFF8000, 0x4000) == 1.25  # across the 32-bit wrap


def test_round_trip_time_through_a_report_block() -> None:
    sent = 1_700_000_000.0
    report = SenderReport(1, ntp_from_unix(sent), 0, 0, 0)
    block = ReportBlock(1, lsr=ntp_middle(report.ntp_timestamp), dlsr=int(0.5 * 65536))
    rtt = round_trip_time(compact_ntp(sent + 0.75), block.lsr, block.dlsr)
    assert rtt is not None
    assert abs(rtt - 0.25) < 1 / 65536


u32 = st.integers(0, 0xFFFFFFFF)
blocks = st.builds(
    ReportBlock,
    ssrc=u32,
    fraction_lost=st.integers(0, 255),
    packets_lost=st.integers(-0x800000, 0x7FFFFF),
    highest_sequence=u32,
    jitter=u32,
    lsr=u32,
    dlsr=u32,
)
sdes_items = st.lists(st.tuples(st.integers(1, 255), st.binary(max_size=40)), max_size=4)


@st.composite
def nack_lists(draw: st.DrawFn) -> list[int]:
    start = draw(st.integers(0, 0xFFFF))
    offsets = sorted(draw(st.sets(st.integers(0, 200), min_size=1, max_size=40)))
    return [(start + offset) & 0xFFFF for offset in offsets]


rtcp_packets: st.SearchStrategy[RtcpPacket] = st.one_of(
    st.builds(SenderReport, u32, st.integers(0, (1 << 64) - 1), u32, u32, u32, st.lists(blocks, max_size=3)),
    st.builds(ReceiverReport, u32, st.lists(blocks, max_size=3)),
    st.builds(Sdes, st.lists(st.builds(SdesChunk, u32, sdes_items), max_size=3)),
    st.builds(Bye, st.lists(u32, max_size=4), st.text(max_size=30).filter(lambda t: len(t.encode()) <= 255)),
    st.builds(Nack, u32, u32, nack_lists()),
    st.builds(Pli, u32, u32),
    st.builds(Fir, u32, st.lists(st.tuples(u32, st.integers(0, 255)), max_size=3)),
    st.builds(
        UnknownRtcp,
        st.sampled_from([204, 207, 210, 64]),
        st.integers(0, 31),
        st.binary(max_size=24).map(lambda b: b + bytes(-len(b) % 4)),
    ),
)


@given(st.lists(rtcp_packets, min_size=1, max_size=5))
def test_compound_round_trip(packets: list[RtcpPacket]) -> None:
    data = build_compound(packets)
    assert parse_compound(data) == packets
    assert build_compound(parse_compound(data)) == data


@given(st.binary(max_size=160))
def test_random_bytes_raise_only_protocol_error(data: bytes) -> None:
    try:
        packets = parse_compound(data)
    except ProtocolError:
        return
    assert parse_compound(build_compound(packets)) == packets


@given(st.binary(max_size=120))
def test_random_bodies_behind_valid_headers(body: bytes) -> None:
    body += bytes(-len(body) % 4)
    for first in (0x80, 0x81, 0x83, 0x9F, 0xA1):
        for packet_type in (200, 201, 202, 203, 205, 206):
            data = struct.pack("!BBH", first, packet_type, len(body) // 4) + body
            with contextlib.suppress(ProtocolError):
                parse_compound(data)


@given(st.lists(rtcp_packets, min_size=1, max_size=3), st.data())
def test_mutated_compounds_raise_only_protocol_error(packets: list[RtcpPacket], data: st.DataObject) -> None:
    raw = bytearray(build_compound(packets))
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    for candidate in (bytes(raw), bytes(raw[:cut])):
        with contextlib.suppress(ProtocolError):
            parse_compound(candidate)
