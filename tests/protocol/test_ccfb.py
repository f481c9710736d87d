"""RFC 8888 congestion control feedback: the section 3.1 layout byte by byte, round trips, bad input."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conf_cli.errors import ProtocolError
from conf_cli.protocol.rtcp import (
    MAX_CCFB_REPORTS,
    CcfbBlock,
    CongestionFeedback,
    Nack,
    build_compound,
    parse_compound,
)

# RFC 8888 section 3.1, written out by hand: sender 0x11223344; stream 0xAABBCCDD from sequence 65534,
# three packets: received 1/1024 s before the report (ECN ECT(0) = 0b10), lost, received at 0x1FFF (too
# long ago to say), padded to a word; stream 0x01020304 from sequence 7, two packets: received at offset 0,
# received at 0x0400 (1 s); then the report timestamp 0xDEADBEEF.
VECTOR = bytes.fromhex(
    "8bcd0009"  # V=2, P=0, FMT=11, PT=205 (RTPFB), length 9 words (40 bytes)
    "11223344"  # SSRC of the packet sender
    "aabbccdd"
    "fffe"
    "0003"  # SSRC, begin_seq, num_reports
    "c001"
    "0000"
    "9fff"
    "0000"  # R=1 ECN=10 ATO=1 | lost | R=1 ATO=0x1FFF | padding
    "01020304"
    "0007"
    "0002"
    "8000"
    "8400"
    "deadbeef"  # report timestamp
)


def test_the_section_3_1_layout_parses_field_by_field() -> None:
    (feedback,) = parse_compound(VECTOR)
    assert isinstance(feedback, CongestionFeedback)
    assert feedback.sender_ssrc == 0x11223344
    assert feedback.report_timestamp == 0xDEADBEEF
    first, second = feedback.blocks
    assert (first.ssrc, first.begin_seq, first.metrics) == (0xAABBCCDD, 65534, [0xC001, 0, 0x9FFF])
    assert first.arrivals() == [(65534, 1), (65535, None), (0, 0x1FFF)]  # the sequence number wraps
    assert second.arrivals() == [(7, 0), (8, 1024)]
    assert bytes(feedback) == VECTOR


def test_a_report_with_no_blocks_is_the_sender_and_the_timestamp() -> None:
    empty = CongestionFeedback(5, [], 9)
    assert bytes(empty) == bytes.fromhex("8bcd0002 00000005 00000009")
    assert parse_compound(bytes(empty)) == [empty]


def test_built_from_offsets_caps_them_and_marks_losses() -> None:
    block = CcfbBlock.received(1, 70_000, [0, None, 50_000, -3])
    assert block.begin_seq == 70_000 & 0xFFFF
    assert block.metrics == [0x8000, 0, 0x9FFF, 0x8000]


def test_it_travels_in_a_compound_with_other_feedback() -> None:
    feedback = CongestionFeedback(1, [CcfbBlock.received(2, 10, [3, None, 4])], 77)
    nack = Nack(1, 2, [11])
    assert parse_compound(build_compound([feedback, nack])) == [feedback, nack]


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (bytes.fromhex("8bcd0001 00000005"), "needs 12 bytes"),
        (bytes.fromhex("8bcd0003 00000005 aabbccdd 00000009"), "needs 8 bytes"),
        (bytes.fromhex("8bcd0004 00000005 aabbccdd 00010005 00000009"), "needs 12 bytes, has 0"),
        (bytes.fromhex("8bcd0004 00000005 aabbccdd 0001ffff 00000009"), "at most 16384"),
    ],
)
def test_malformed_reports_raise_with_the_reason(data: bytes, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        parse_compound(data)


def test_a_block_over_the_limit_is_refused_when_built() -> None:
    with pytest.raises(ValueError, match="at most"):
        bytes(CongestionFeedback(1, [CcfbBlock(2, 0, [0x8000] * (MAX_CCFB_REPORTS + 1))], 0))


blocks = st.builds(
    CcfbBlock,
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 0xFFFF),
    st.lists(st.integers(0, 0xFFFF), max_size=40),
)


@given(st.integers(0, 0xFFFFFFFF), st.lists(blocks, max_size=5), st.integers(0, 0xFFFFFFFF))
def test_any_report_round_trips(sender: int, report_blocks: list[CcfbBlock], timestamp: int) -> None:
    feedback = CongestionFeedback(sender, report_blocks, timestamp)
    data = bytes(feedback)
    assert len(data) % 4 == 0
    assert parse_compound(data) == [feedback]


@given(st.binary(max_size=200))
def test_arbitrary_bodies_parse_or_raise_protocol_error(body: bytes) -> None:
    body += bytes(-len(body) % 4)
    data = bytes([0x8B, 205]) + (len(body) // 4).to_bytes(2, "big") + body
    with contextlib.suppress(ProtocolError):
        parse_compound(data)
