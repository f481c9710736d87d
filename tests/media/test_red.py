"""RED (RFC 2198): packing and unpacking against hand-made vectors, the encoder's choice of block, the
switch that follows receiver reports, and what the gateways hand on."""

from __future__ import annotations

import pytest

from conf_cli.errors import ProtocolError
from conf_cli.media.red import (
    PT_RED,
    RedBlock,
    RedEncoder,
    RedSwitch,
    pack_red,
    primary_only,
    unpack_red,
)
from conf_cli.protocol.rtp import RtpPacket

# RFC 2198 section 3: F=1|block PT (7) | timestamp offset (14) | block length (10), then F=0|primary PT.
# One redundant Opus block (PT 111) 960 ticks old and 3 bytes long, then the primary (PT 111):
#   0xEF = 1|1101111, then 960 << 10 | 3 = 0x0F0003; 0x6F = 0|1101111.
VECTOR = bytes.fromhex("ef0f00036f") + b"old" + b"primary"


def test_packing_matches_the_rfc_2198_layout() -> None:
    assert pack_red(111, b"primary", [RedBlock(111, 960, b"old")]) == VECTOR


def test_unpacking_the_vector_gives_the_blocks_oldest_first_primary_last() -> None:
    assert unpack_red(VECTOR) == [RedBlock(111, 960, b"old"), RedBlock(111, 0, b"primary")]


def test_a_payload_of_the_primary_alone_has_the_one_byte_header() -> None:
    assert pack_red(0, b"\x01\x02", []) == b"\x00\x01\x02"
    assert unpack_red(b"\x00\x01\x02") == [RedBlock(0, 0, b"\x01\x02")]


def test_two_redundant_blocks_round_trip_with_different_payload_types() -> None:
    blocks = [RedBlock(5, 320, b"a" * 20), RedBlock(0, 160, b"b" * 1023)]
    payload = pack_red(0, b"c" * 7, blocks)
    assert payload[:4] == bytes([0x85, 320 >> 6, (320 & 0x3F) << 2, 20])
    assert unpack_red(payload) == [*blocks, RedBlock(0, 0, b"c" * 7)]


@pytest.mark.parametrize(
    "payload",
    [
        b"",  # no header at all
        b"\xef\x0f\x00",  # a redundant header cut short
        b"\xef\x0f\x00\x03",  # no primary header after it
        bytes.fromhex("ef0f00106f") + b"short",  # the block claims 16 bytes, 5 are there
        b"\x80" * 40,  # headers only, never a primary
    ],
)
def test_malformed_payloads_are_refused(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        unpack_red(payload)


def test_fields_that_do_not_fit_are_refused_when_packing() -> None:
    with pytest.raises(ValueError):
        pack_red(111, b"x", [RedBlock(111, 1 << 14, b"old")])
    with pytest.raises(ValueError):
        pack_red(111, b"x", [RedBlock(111, 960, b"o" * 1024)])
    with pytest.raises(ValueError):
        pack_red(128, b"x", [])


def test_the_encoder_repeats_two_packets_back_and_the_previous_one_unless_fec_covers_it() -> None:
    red = RedEncoder(111)
    assert unpack_red(red.wrap(b"p0", 1000, 960, fec=False)) == [RedBlock(111, 0, b"p0")]
    assert red.distances == ()
    assert unpack_red(red.wrap(b"p1", 1960, 960, fec=False))[:-1] == [RedBlock(111, 960, b"p0")]
    assert red.distances == (1,)
    assert unpack_red(red.wrap(b"p2", 2920, 960, fec=False))[:-1] == [
        RedBlock(111, 1920, b"p0"),
        RedBlock(111, 960, b"p1"),
    ]
    assert red.distances == (2, 1)
    # p3 carries FEC for p2: one block, p1, is enough.
    assert unpack_red(red.wrap(b"p3", 3880, 960, fec=True)) == [
        RedBlock(111, 1920, b"p1"),
        RedBlock(111, 0, b"p3"),
    ]
    assert red.distances == (2,)


def test_the_encoder_never_repeats_across_a_gap_in_time() -> None:
    red = RedEncoder(111)
    red.wrap(b"p0", 1000, 960, fec=False)
    red.wrap(b"p1", 1960, 960, fec=False)
    after_dtx = unpack_red(red.wrap(b"p2", 50_000, 960, fec=True))  # silence was not sent
    assert after_dtx == [RedBlock(111, 0, b"p2")]
    assert unpack_red(red.wrap(b"p3", 50_960, 960, fec=False))[0] == RedBlock(111, 960, b"p2")


def test_the_timestamp_offset_wraps_with_the_rtp_timestamp() -> None:
    red = RedEncoder(111)
    red.wrap(b"p0", 0xFFFFFF00, 960, fec=False)
    assert unpack_red(red.wrap(b"p1", (0xFFFFFF00 + 960) & 0xFFFFFFFF, 960, fec=False))[0].offset == 960


def test_red_is_on_while_reports_show_loss_and_off_after_the_hold() -> None:
    switch = RedSwitch(hold=10.0)
    assert not switch.active(0.0)
    switch.report(0, 1.0)  # no loss: stays off
    assert not switch.active(1.0)
    switch.report(26, 2.0)  # about 10 %
    assert switch.active(2.0) and switch.active(11.9)
    switch.report(0, 5.0)  # a clean report does not cut the hold short
    assert switch.active(11.9)
    assert not switch.active(12.0)


def test_gateways_get_the_primary_block_under_its_payload_type() -> None:
    red = RtpPacket(PT_RED, 7, 1960, 42, VECTOR, marker=True, extension=(0xBEDE, b"\x10\x85\x00\x00"))
    plain = primary_only(red)
    assert (plain.payload_type, plain.payload, plain.sequence_number, plain.marker) == (
        111,
        b"primary",
        7,
        True,
    )
    opus = RtpPacket(111, 8, 2920, 42, b"opus")
    assert primary_only(opus) is opus
