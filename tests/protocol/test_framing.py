"""RFC 4571 framing: a 16-bit length before every frame, reassembled from any chunks."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conf_cli.errors import ProtocolError
from conf_cli.protocol.framing import MAX_FRAME_BYTES, FrameDecoder, frame, is_control, is_media

RTP = bytes.fromhex("80 60 00 01 00 00 00 64 12 34 56 78") + b"payload"
RTCP_RR = bytes.fromhex("81 c9 00 01 12 34 56 78")
CONTROL = b'{"type":"ping"}'


# -- frame --------------------------------------------------------------------------------------------


def test_frame_prefixes_the_big_endian_length():
    assert frame(b"") == b"\x00\x00"
    assert frame(b"abc") == b"\x00\x03abc"
    assert frame(b"x" * 258) == b"\x01\x02" + b"x" * 258


def test_frame_takes_up_to_65535_bytes():
    assert frame(b"x" * MAX_FRAME_BYTES)[:2] == b"\xff\xff"
    assert len(frame(b"x" * MAX_FRAME_BYTES)) == MAX_FRAME_BYTES + 2


def test_frame_refuses_anything_longer():
    with pytest.raises(ProtocolError) as info:
        frame(b"x" * (MAX_FRAME_BYTES + 1))
    assert str(info.value) == "frame of 65536 bytes exceeds 65535"


# -- kinds of payload ---------------------------------------------------------------------------------


def test_control_and_media_are_told_apart_by_the_first_byte():
    assert is_control(CONTROL) and not is_media(CONTROL)
    assert is_media(RTP) and not is_control(RTP)
    assert is_media(RTCP_RR) and not is_control(RTCP_RR)


@pytest.mark.parametrize("payload", [b"", b"\x00", b"\x40\x00", b"\xc0", b"[1]", b" {"])
def test_other_payloads_are_neither(payload):
    assert not is_control(payload)
    assert not is_media(payload)


@pytest.mark.parametrize("first", range(0x80, 0xC0))
def test_every_version_2_first_byte_is_media(first):
    assert is_media(bytes([first]))


# -- FrameDecoder -------------------------------------------------------------------------------------


def test_one_whole_frame():
    decoder = FrameDecoder()
    assert decoder.feed(frame(CONTROL)) == [CONTROL]
    assert decoder.pending == 0


def test_nothing_in_nothing_out():
    decoder = FrameDecoder()
    assert decoder.feed(b"") == []
    assert decoder.pending == 0


def test_byte_at_a_time():
    decoder = FrameDecoder()
    data = frame(RTP)
    for index, byte in enumerate(data[:-1]):
        assert decoder.feed(bytes([byte])) == []
        assert decoder.pending == index + 1
    assert decoder.feed(data[-1:]) == [RTP]
    assert decoder.pending == 0


def test_many_frames_in_one_chunk_keep_their_order():
    decoder = FrameDecoder()
    payloads = [CONTROL, RTP, b"", RTCP_RR, b"x" * 1000, b""]
    assert decoder.feed(b"".join(frame(p) for p in payloads)) == payloads


def test_empty_keep_alive_frames_are_returned():
    decoder = FrameDecoder()
    assert decoder.feed(b"\x00\x00\x00\x00\x00") == [b"", b""]
    assert decoder.pending == 1
    assert decoder.feed(b"\x00") == [b""]
    assert decoder.pending == 0


def test_a_partial_frame_waits_for_the_rest():
    decoder = FrameDecoder()
    data = frame(CONTROL) + frame(RTP)
    cut = len(frame(CONTROL)) + 5
    assert decoder.feed(data[:cut]) == [CONTROL]
    assert decoder.pending == 5
    assert decoder.feed(data[cut:]) == [RTP]
    assert decoder.pending == 0


def test_split_inside_the_length_prefix():
    decoder = FrameDecoder()
    data = frame(b"y" * 300)
    assert decoder.feed(data[:1]) == []
    assert decoder.feed(data[1:2]) == []
    assert decoder.pending == 2
    assert decoder.feed(data[2:]) == [b"y" * 300]


def test_largest_frame_in_pieces():
    decoder = FrameDecoder()
    payload = bytes(range(256)) * 255 + bytes(range(255))
    assert len(payload) == MAX_FRAME_BYTES
    data = frame(payload)
    out: list[bytes] = []
    for start in range(0, len(data), 4096):
        out += decoder.feed(data[start : start + 4096])
    assert out == [payload]
    assert decoder.pending == 0


def test_frames_returned_are_independent_of_the_buffer():
    decoder = FrameDecoder()
    (first,) = decoder.feed(frame(b"abc") + b"\x00")
    decoder.feed(b"\x03xyz")
    assert first == b"abc"
    assert isinstance(first, bytes)


# -- properties ---------------------------------------------------------------------------------------

payloads = st.lists(st.binary(max_size=600), max_size=12)


@given(payloads, st.lists(st.integers(min_value=0), max_size=20))
def test_any_split_of_a_stream_gives_back_the_frames(frames, cuts):
    stream = b"".join(frame(p) for p in frames)
    points = sorted({cut % (len(stream) + 1) for cut in cuts} | {0, len(stream)})
    decoder = FrameDecoder()
    out: list[bytes] = []
    for start, end in pairwise(points):
        out += decoder.feed(stream[start:end])
    assert out == frames
    assert decoder.pending == 0


@given(payloads, st.binary(min_size=1, max_size=600), st.data())
def test_an_unfinished_frame_stays_pending(frames, last, data):
    complete = b"".join(frame(p) for p in frames)
    tail = frame(last)[: data.draw(st.integers(min_value=1, max_value=len(last) + 1))]
    decoder = FrameDecoder()
    assert decoder.feed(complete + tail) == frames
    assert decoder.pending == len(tail)


# -- one frame at a time (the worker front) -------------------------------------------------------------


@given(
    payloads=st.lists(st.binary(max_size=300), max_size=8),
    tail=st.binary(max_size=5),
    cut=st.integers(min_value=1, max_value=50),
)
def test_peek_and_skip_give_the_frames_feed_gives_and_held_keeps_the_rest(
    payloads: list[bytes], tail: bytes, cut: int
) -> None:
    stream = b"".join(frame(p) for p in payloads) + frame(b"x" * 400)[: min(len(tail), 3)]
    decoder = FrameDecoder()
    taken: list[bytes] = []
    for start in range(0, len(stream), cut):
        decoder.push(stream[start : start + cut])
        while (payload := decoder.peek()) is not None:
            assert decoder.peek() == payload  # peeking takes nothing
            taken.append(payload)
            decoder.skip()
    assert taken == payloads
    assert decoder.held() == stream[len(b"".join(frame(p) for p in payloads)) :]
    assert decoder.pending == len(decoder.held())


def test_held_starts_with_the_frame_peeked() -> None:
    decoder = FrameDecoder()
    decoder.push(frame(b"first") + frame(CONTROL) + b"\x00")
    assert decoder.peek() == b"first"
    decoder.skip()
    assert decoder.peek() == CONTROL
    assert decoder.held() == frame(CONTROL) + b"\x00"  # what a hand-off carries on
    decoder.skip()
    decoder.skip()  # nothing whole left: nothing dropped
    assert decoder.peek() is None and decoder.held() == b"\x00"
