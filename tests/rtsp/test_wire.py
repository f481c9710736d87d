"""RTSP messages: real requests from FFmpeg, responses, interleaved frames, limits and fuzzing."""

from __future__ import annotations

import base64
import contextlib

import pytest
from conf_rtsp.wire import (
    MAX_BODY,
    MAX_HEAD_BYTES,
    Headers,
    Interleaved,
    RtspParseError,
    RtspReader,
    RtspRequest,
    RtspResponse,
    TransportSpec,
    basic_credentials,
    parse_npt_range,
    parse_transport,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from conf_cli.errors import ProtocolError

# What ffmpeg 5.1 sends to publish a clip (captured on loopback).
FFMPEG_PUBLISH = (
    b"OPTIONS rtsp://127.0.0.1:36543/abc/cam RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: Lavf59.27.100\r\n\r\n"
    b"ANNOUNCE rtsp://127.0.0.1:36543/abc/cam RTSP/1.0\r\nContent-Type: application/sdp\r\nCSeq: 2\r\n"
    b"User-Agent: Lavf59.27.100\r\nContent-Length: 386\r\n\r\n"
    b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"a=tool:libavformat LIBAVFORMAT_VERSION\r\nm=video 0 RTP/AVP 96\r\nb=AS:73\r\n"
    b"a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1; "
    b"sprop-parameter-sets=Z2QADayyAoP2AiAAAAMAIAAABkHihUk=,aOvDyyLA; profile-level-id=64000D\r\n"
    b"a=control:streamid=0\r\nm=audio 0 RTP/AVP 97\r\nb=AS:81\r\na=rtpmap:97 opus/48000/2\r\n"
    b"a=control:streamid=1\r\n"
)


def test_ffmpeg_publish_requests_parse_in_any_split() -> None:
    for cut in range(1, len(FFMPEG_PUBLISH)):
        reader = RtspReader()
        messages = reader.feed(FFMPEG_PUBLISH[:cut]) + reader.feed(FFMPEG_PUBLISH[cut:])
        assert [m.method for m in messages if isinstance(m, RtspRequest)] == ["OPTIONS", "ANNOUNCE"]
        assert reader.pending == 0
    options, announce = RtspReader().feed(FFMPEG_PUBLISH)
    assert isinstance(announce, RtspRequest) and isinstance(options, RtspRequest)
    assert options.url == "rtsp://127.0.0.1:36543/abc/cam"
    assert announce.cseq == "2"
    assert announce.headers.get("content-type") == "application/sdp"
    assert len(announce.body) == 386 and announce.body.endswith(b"a=control:streamid=1\r\n")


def test_request_and_response_round_trip() -> None:
    request = RtspRequest(
        "SETUP", "rtsp://h/m/p/video/trackID=0", Headers([("CSeq", "3"), ("Transport", "x")])
    )
    (parsed,) = RtspReader().feed(bytes(request))
    assert parsed == request
    response = RtspResponse(200, "", Headers([("CSeq", "3")]), b"v=0\r\n")
    data = bytes(response)
    assert data.startswith(b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nContent-Length: 5\r\n\r\n")
    (back,) = RtspReader().feed(data)
    assert isinstance(back, RtspResponse) and back.status == 200 and back.body == b"v=0\r\n"


def test_interleaved_frames_between_messages() -> None:
    frame = bytes(Interleaved(1, b"\x80" * 30))
    reader = RtspReader()
    messages = reader.feed(frame + b"GET_PARAMETER rtsp://h/x RTSP/1.0\r\nCSeq: 9\r\n\r\n" + frame[:5])
    assert messages[0] == Interleaved(1, b"\x80" * 30)
    assert isinstance(messages[1], RtspRequest)
    assert reader.pending == 5
    assert reader.feed(frame[5:]) == [Interleaved(1, b"\x80" * 30)]
    with pytest.raises(ValueError):
        bytes(Interleaved(1, bytes(70_000)))


@pytest.mark.parametrize(
    ("data", "status", "text"),
    [
        (b"DESCRIBE rtsp://h/x RTSP/1.0\r\nContent-Length: 99999999999\r\n\r\n", 413, "more than"),
        (
            b"DESCRIBE rtsp://h/x RTSP/1.0\r\nContent-Length: 9999999999999999\r\n\r\n",
            400,
            "bad Content-Length",
        ),
        (b"DESCRIBE rtsp://h/x RTSP/1.0\r\nContent-Length: -5\r\n\r\n", 400, "bad Content-Length"),
        (b"ANNOUNCE rtsp://h/x RTSP/1.0\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1), 413, "more than"),
        (b"DESCRIBE rtsp://h/x HTTP/1.1\r\nCSeq: 1\r\n\r\n", 505, "version"),
        (b"DESCRIBE\r\n\r\n", 400, "start line"),
        (b"DESCRIBE rtsp://h/x RTSP/1.0\r\nno colon here\r\n\r\n", 400, "header line"),
        (b"DESCRIBE rtsp://h/x RTSP/1.0\r\n" + b"X: y\r\n" * 65 + b"\r\n", 400, "more than 64"),
        (b"DESCRIBE rtsp://h/x RTSP/1.0\r\n" + b"X: y\r\n" * 5000, 400, "header block longer"),
        (b"DESCRIBE " + b"a" * 5000, 414, "line longer"),
        (b"DESCRIBE rtsp://h/x RTSP/1.0\r\nCSeq: \xff\r\n\r\n", 400, "UTF-8"),
    ],
)
def test_bad_requests_raise_with_a_status(data: bytes, status: int, text: str) -> None:
    with pytest.raises(RtspParseError, match=text) as caught:
        RtspReader().feed(data)
    assert caught.value.status == status


def test_header_flood_is_refused_before_the_buffer_grows() -> None:
    reader = RtspReader()
    reader.feed(b"OPTIONS rtsp://h/ RTSP/1.0\r\n")
    with pytest.raises(RtspParseError):
        for _ in range(10_000):
            reader.feed(b"X-Flood: 1\r\n")
    assert reader.pending <= MAX_HEAD_BYTES + 64


def test_transport_header() -> None:
    udp, tcp = parse_transport(
        "RTP/AVP/UDP;unicast;client_port=5000-5001;mode=record, RTP/AVP/TCP;interleaved=0-1"
    )
    assert udp == TransportSpec("RTP/AVP", True, (5000, 5001), None, None, "RECORD")
    assert not udp.tcp and tcp.tcp and tcp.interleaved == (0, 1)
    assert (
        str(parse_transport("RTP/AVP;unicast;client_port=7000")[0]) == "RTP/AVP;unicast;client_port=7000-7001"
    )
    for bad in (
        "client_port=0-1",
        "client_port=70000-70001",
        "client_port=-5",
        "client_port=a-b",
        "client_port=9999999999",
        "interleaved=0-300",
    ):
        with pytest.raises(RtspParseError) as caught:
            parse_transport(f"RTP/AVP;unicast;{bad}")
        assert caught.value.status == 461
    with pytest.raises(RtspParseError):
        parse_transport(" , ")


def test_basic_credentials_and_range() -> None:
    token = base64.b64encode(b"ada:pass:word").decode()
    assert basic_credentials(f"Basic {token}") == ("ada", "pass:word")
    assert basic_credentials("Digest username=x") is None
    assert basic_credentials("Basic !!!") is None
    assert basic_credentials(None) is None
    assert parse_npt_range("npt=12.5-") == 12.5
    assert parse_npt_range("npt=now-") is None
    with pytest.raises(ProtocolError):
        parse_npt_range("smpte=0:00:00-")
    with pytest.raises(ProtocolError):
        parse_npt_range("npt=abc-")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.integers(1, 50))
def test_random_bytes_parse_or_raise_protocol_error(data: bytes, chunk: int) -> None:
    reader = RtspReader()
    try:
        for start in range(0, len(data), chunk):
            reader.feed(data[start : start + chunk])
    except ProtocolError:
        return
    assert reader.pending <= MAX_HEAD_BYTES + MAX_BODY + 4


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_ffmpeg_requests_never_crash(data: st.DataObject) -> None:
    blob = bytearray(FFMPEG_PUBLISH)
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(blob) - 1))
        blob[position] = data.draw(st.integers(0, 255))
    try:
        messages = RtspReader().feed(bytes(blob))
    except ProtocolError:
        return
    for message in messages:
        if isinstance(message, RtspRequest):
            message.headers.get("CSeq")
            with contextlib.suppress(ProtocolError):
                parse_transport(message.headers.get("Transport") or "RTP/AVP")


_token = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ_", min_size=1, max_size=12)
_value = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(str.strip)


@settings(max_examples=200, deadline=None)
@given(_token, st.lists(st.tuples(_token, _value), max_size=10), st.binary(max_size=300))
def test_written_requests_read_back(method: str, headers: list[tuple[str, str]], body: bytes) -> None:
    request = RtspRequest(method, "rtsp://h/x", Headers(headers), body)
    (parsed,) = RtspReader().feed(bytes(request))
    assert isinstance(parsed, RtspRequest)
    assert parsed.method == method and parsed.body == body
    assert [h for h in parsed.headers if h[0] != "Content-Length"] == [
        h for h in headers if h[0].lower() != "content-length"
    ]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_transport_header_parses_or_raises_protocol_error(value: str) -> None:
    try:
        for spec in parse_transport(value):
            for pair in (spec.client_port, spec.server_port):
                assert pair is None or all(1 <= port <= 65535 for port in pair)
            assert spec.interleaved is None or all(0 <= c <= 255 for c in spec.interleaved)
    except ProtocolError:
        pass
