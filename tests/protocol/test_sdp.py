"""SDP: FFmpeg's ANNOUNCE, what the gateway writes, and fuzzing."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conf_cli.errors import ProtocolError
from conf_cli.protocol.sdp import MAX_MEDIA, MediaDescription, RtpMap, SessionDescription

FFMPEG_ANNOUNCE = (
    "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "a=tool:libavformat LIBAVFORMAT_VERSION\r\nm=video 0 RTP/AVP 96\r\nb=AS:73\r\n"
    "a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1; "
    "sprop-parameter-sets=Z2QADayyAoP2AiAAAAMAIAAABkHihUk=,aOvDyyLA; profile-level-id=64000D\r\n"
    "a=control:streamid=0\r\nm=audio 0 RTP/AVP 97\r\nb=AS:81\r\na=rtpmap:97 opus/48000/2\r\n"
    "a=control:streamid=1\r\n"
)


def test_ffmpeg_announce() -> None:
    sdp = SessionDescription.parse(FFMPEG_ANNOUNCE.encode())
    assert sdp.name == "No Name" and sdp.connection == "IN IP4 127.0.0.1"
    assert sdp.attribute("tool") == "libavformat LIBAVFORMAT_VERSION"
    video, audio = sdp.media
    assert (video.media, video.port, video.proto, video.formats) == ("video", 0, "RTP/AVP", ["96"])
    assert video.rtpmap() == RtpMap(96, "H264", 90_000)
    assert video.fmtp()["sprop-parameter-sets"] == "Z2QADayyAoP2AiAAAAMAIAAABkHihUk=,aOvDyyLA"
    assert video.fmtp()["profile-level-id"] == "64000D"
    assert video.control == "streamid=0"
    assert audio.rtpmap() == RtpMap(97, "opus", 48_000, 2)
    assert audio.control == "streamid=1"


def test_written_sdp_reads_back() -> None:
    sdp = SessionDescription(
        origin="- 1 1 IN IP4 127.0.0.1",
        name="clip.avi",
        connection="IN IP4 0.0.0.0",
        attributes=[("control", "*"), ("range", "npt=0-10.000")],
        media=[
            MediaDescription("video", 0, "RTP/AVP", ["26"], [("control", "trackID=0")]),
            MediaDescription(
                "audio", 0, "RTP/AVP", ["111"], [("rtpmap", "111 opus/48000/2"), ("recvonly", None)]
            ),
        ],
    )
    text = str(sdp)
    assert text.startswith("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=clip.avi\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n")
    assert "a=recvonly\r\n" in text and text.endswith("\r\n")
    back = SessionDescription.parse(text)
    assert back == sdp
    assert back.media[0].rtpmap() == RtpMap(26, "JPEG", 90_000)  # a static payload type needs no rtpmap


@pytest.mark.parametrize(
    "text",
    [
        "",
        "v=1\r\n",
        "v=0\r\nthis is not sdp\r\n",
        "v=0\r\nm=video\r\n",
        "v=0\r\nm=video 99999 RTP/AVP 96\r\n",
        "v=0\r\nm=video x RTP/AVP 96\r\n",
        "v=0\r\n" + "m=audio 0 RTP/AVP 0\r\n" * (MAX_MEDIA + 1),
        "v=0\r\n" + "a=x\r\n" * 70_000,
    ],
)
def test_bad_sdp(text: str) -> None:
    with pytest.raises(ProtocolError):
        SessionDescription.parse(text)


def test_bad_rtpmap_is_a_protocol_error() -> None:
    sdp = SessionDescription.parse("v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/ninety\r\n")
    with pytest.raises(ProtocolError):
        sdp.media[0].rtpmap()


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_sdp_parses_or_raises_protocol_error(data: st.DataObject) -> None:
    blob = bytearray(FFMPEG_ANNOUNCE.encode())
    for _ in range(data.draw(st.integers(1, 10))):
        position = data.draw(st.integers(0, len(blob) - 1))
        blob[position] = data.draw(st.integers(0, 255))
    try:
        sdp = SessionDescription.parse(bytes(blob))
        for media in sdp.media:
            media.rtpmap()
            media.fmtp()
    except ProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=1000))
def test_random_bytes(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        SessionDescription.parse(data)
