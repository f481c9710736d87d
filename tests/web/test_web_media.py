"""Rewriting RTP between a browser and a meeting: SSRCs, payload types, sequence numbers, timestamps."""

from __future__ import annotations

from conf_web.media import Inbound, Outbound

from conf_cli.protocol.rtp import RtpPacket


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
