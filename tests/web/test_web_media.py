"""Rewriting RTP between a browser and a meeting: SSRCs, payload types, sequence numbers, timestamps."""

from __future__ import annotations

from conf_web.media import FRAME_PPS, FRAME_SPS, SEALED_IDR, Inbound, Outbound, SealedVideo, escape

from conf_cli.protocol.rtp import RtpPacket
from conf_cli.protocol.sframe import rtp_metadata


def _rtp(seq: int, ts: int, ssrc: int = 0x1111, payload: bytes = b"abc", pt: int = 102) -> bytes:
    return bytes(RtpPacket(pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc, payload, marker=True))


def test_the_browsers_packets_take_the_tracks_ssrc_and_payload_type() -> None:
    video = Inbound("video", ssrc=0xABCDEF01)
    out = RtpPacket.parse(video.rewrite(0x5555, 100, 9000, True, b"\x65data") or b"")
    assert (out.payload_type, out.ssrc, out.sequence_number, out.timestamp) == (96, 0xABCDEF01, 100, 9000)
    assert out.marker and out.payload == b"\x65data" and out.extension is None
    audio = Inbound("audio", ssrc=7)
    assert RtpPacket.parse(audio.rewrite(1, 2, 3, False, b"x") or b"").payload_type == 111


def test_probes_without_payload_are_dropped_and_numbers_close_up() -> None:
    video = Inbound("video", ssrc=1)
    assert video.rewrite(9, 10, 0, False, b"a") is not None
    assert video.rewrite(9, 11, 0, False, b"") is None  # a padding-only probe
    assert video.rewrite(9, 12, 0, False, b"") is None
    out = RtpPacket.parse(video.rewrite(9, 13, 0, False, b"b") or b"")
    assert out.sequence_number == 11  # no hole for receivers
    assert video.browser_sequence(11) == 13  # a NACK for 11 asks the browser for 13
    # Across the 16-bit wrap too.
    wrap = Inbound("video", ssrc=1)
    wrap.rewrite(9, 0xFFFF, 0, False, b"")
    assert RtpPacket.parse(wrap.rewrite(9, 0, 0, False, b"x") or b"").sequence_number == 0xFFFF
    assert wrap.browser_sequence(0xFFFF) == 0


def test_a_send_slot_carries_a_track_under_its_own_ssrc() -> None:
    slot = Outbound(mid="3", kind="video", ssrc=0x2222, payload_type=99)
    slot.assign(0x1111, "ada", "video")
    out = RtpPacket.parse(slot.rewrite(_rtp(500, 90_000)) or b"")
    assert (out.ssrc, out.payload_type, out.sequence_number, out.timestamp) == (0x2222, 99, 500, 90_000)
    assert slot.source_sequence(500) == 500
    assert slot.rewrite(b"\x80\x60") is None  # malformed: dropped


def test_a_slot_passing_to_another_track_continues_its_numbers() -> None:
    slot = Outbound(mid="3", kind="video", ssrc=0x2222, payload_type=96)
    slot.assign(0x1111, "ada", "video")
    for seq in range(10, 20):
        slot.rewrite(_rtp(seq, seq * 3000))
    slot.assign(0x3333, "bo", "screen")
    out = RtpPacket.parse(slot.rewrite(_rtp(40_000, 123, ssrc=0x3333)) or b"")
    assert out.sequence_number == 20
    assert out.timestamp == 19 * 3000 + 3000
    assert slot.source_sequence(20) == 40_000
    later = RtpPacket.parse(slot.rewrite(_rtp(40_001, 3123, ssrc=0x3333)) or b"")
    assert (later.sequence_number, later.timestamp) == (21, 19 * 3000 + 6000)
    assert slot.describe() == {"name": "bo", "kind": "screen", "ssrc": 0x3333}


def test_in_an_e2ee_meeting_a_payload_travels_behind_the_header_it_is_bound_to() -> None:
    # Towards the page: the meeting packet's own metadata, then its payload (an SFrame), whatever
    # header the slot gives the packet.
    slot = Outbound(mid="3", kind="audio", ssrc=0x2222, payload_type=109)
    slot.assign(0x1111, "ada", "audio")
    slot.rewrite(_rtp(500, 96000, payload=b"first"))
    slot.assign(0x3333, "bob", "audio")  # another track: numbers continue, the metadata does not
    original = _rtp(7, 1234, ssrc=0x3333, payload=b"sframe", pt=111)
    out = RtpPacket.parse(slot.rewrite(original, sealed=True) or b"")
    assert (out.ssrc, out.sequence_number) == (0x2222, 501)
    assert out.payload == rtp_metadata(RtpPacket.parse(original)) + b"sframe"

    # From the page: the meeting packet's header is the metadata the page bound its SFrame to.
    mic = Inbound("audio", ssrc=0xABCD)
    bound = RtpPacket(111, 40_000, 77_777, 0xABCD, b"", marker=True)
    made = RtpPacket.parse(mic.rewrite_sealed(rtp_metadata(bound) + b"sealed") or b"")
    assert (made.payload_type, made.sequence_number, made.timestamp, made.ssrc, made.marker) == (
        111, 40_000, 77_777, 0xABCD, True
    )  # fmt: skip
    assert made.payload == b"sealed"
    # Another SSRC or payload type than the track's, or no SFrame at all, goes nowhere.
    for wrong in (RtpPacket(111, 1, 2, 0x9999, b""), RtpPacket(96, 1, 2, 0xABCD, b"")):
        assert mic.rewrite_sealed(rtp_metadata(wrong) + b"sealed") is None
    assert mic.rewrite_sealed(rtp_metadata(bound)) is None
    assert mic.rewrite_sealed(b"short") is None


def _wrapped(sealed: bytes) -> bytes:
    """What the page's h264.js makes of one sealed payload (tested against it in test_web_e2ee_crypto)."""
    out, zeros = bytearray([0x61]), 0
    for byte in sealed:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out + b"\x80")


def test_sealed_video_comes_out_of_single_units_stap_a_and_fu_a() -> None:
    video = SealedVideo()
    tricky = b"\x00\x00\x00\x01\x00\x00\x03\x00\x00"  # start codes and escapes inside
    assert video.payloads(1, _wrapped(tricky)) == [tricky]
    one, two = _wrapped(b"one\x00\x00\x01"), _wrapped(b"two")
    stap = b"\x78" + len(one).to_bytes(2, "big") + one + len(two).to_bytes(2, "big") + two
    assert video.payloads(2, stap) == [b"one\x00\x00\x01", b"two"]
    big = bytes(range(256)) * 8
    unit = _wrapped(big)
    flags = [0x80, 0, 0, 0, 0x40]  # start, ..., end
    fu = [b"\x7c" + bytes([flags[i] | 1]) + unit[1:][i * 500 : (i + 1) * 500] for i in range(5)]
    assert [video.payloads(10 + i, part) for i, part in enumerate(fu)] == [[], [], [], [], [big]]
    # A fragment missing: that unit is lost, the next one comes out whole.
    assert [video.payloads(20 + i, part) for i, part in enumerate(fu) if i != 2] == [[], [], [], []]
    assert video.payloads(30, fu[0]) == [] and video.payloads(31, fu[1]) == []
    # Anything but a wrapped payload goes nowhere: plain H.264 (an IDR slice), or a unit without its end.
    assert video.payloads(40, b"\x65" + b"\x88" * 20) == []
    assert video.payloads(41, _wrapped(b"x")[:-1]) == []
    assert video.payloads(42, b"") == []


def test_sealed_video_towards_the_page_is_one_idr_unit_per_payload_and_parameter_sets_per_frame() -> None:
    slot = Outbound(mid="4", kind="video", ssrc=0x2222, payload_type=102)
    slot.assign(0x1111, "ada", "video")
    first = RtpPacket.parse(_rtp(10, 3000, payload=b"\x00\x00\x01sealed", pt=96))
    second = RtpPacket.parse(_rtp(11, 3000, payload=b"more", pt=96))
    next_frame = RtpPacket.parse(_rtp(12, 6000, payload=b"next", pt=96))
    unit = SEALED_IDR + escape(rtp_metadata(first) + first.payload) + b"\x80"
    assert b"\x00\x00\x01" not in unit
    out = RtpPacket.parse(slot.rewrite(bytes(first), sealed=True) or b"").payload
    sizes = [
        len(FRAME_SPS).to_bytes(2, "big"),
        len(FRAME_PPS).to_bytes(2, "big"),
        len(unit).to_bytes(2, "big"),
    ]
    assert out == b"\x78" + sizes[0] + FRAME_SPS + sizes[1] + FRAME_PPS + sizes[2] + unit  # a STAP-A
    out = RtpPacket.parse(slot.rewrite(bytes(second), sealed=True) or b"").payload
    assert out == SEALED_IDR + rtp_metadata(second) + b"more\x80"  # the same frame: the unit alone
    out = RtpPacket.parse(slot.rewrite(bytes(next_frame), sealed=True) or b"").payload
    assert out.startswith(b"\x78")  # a new frame: parameter sets again
    assert escape(b"\x00\x00\x00\x00\x03") == b"\x00\x00\x03\x00\x00\x03\x03"


def test_a_red_packet_reaches_the_browser_as_its_primary_opus() -> None:
    from conf_cli.media.red import PT_RED, RedBlock, pack_red

    slot = Outbound(mid="0", kind="audio", ssrc=0x3333, payload_type=109)
    slot.assign(0x1111, "ada", "audio")
    red = pack_red(111, b"\xf8primary", [RedBlock(111, 960, b"\xf8older")])
    level = (0xBEDE, b"\x10\x85\x00\x00")
    data = bytes(RtpPacket(PT_RED, 5, 1920, 0x1111, red, marker=True, extension=level))
    out = RtpPacket.parse(slot.rewrite(data) or b"")
    assert (out.payload_type, out.ssrc, out.payload, out.extension) == (109, 0x3333, b"\xf8primary", None)
    assert slot.rewrite(bytes(RtpPacket(PT_RED, 6, 2880, 0x1111, b"\xef\x0f"))) is None  # malformed RED


def test_the_browsers_audio_level_goes_on_in_confs_extension() -> None:
    from conf_cli.media.audio_level import read_audio_level

    audio = Inbound("audio", ssrc=7)
    assert read_audio_level(audio.rewrite(1, 2, 3, False, b"x", 33) or b"") == (33, True)
    assert read_audio_level(audio.rewrite(1, 3, 963, False, b"x") or b"") is None  # the browser sent none
    video = Inbound("video", ssrc=8)
    assert RtpPacket.parse(video.rewrite(1, 2, 3, False, b"x", 33) or b"").extension is None
