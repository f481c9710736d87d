"""The sans-I/O parts of WHIP and WHEP: reading a request's head, telling a token from a passcode, and
writing a response with its CORS headers."""

from __future__ import annotations

import asyncio
import base64
import json
from http import HTTPStatus
from types import SimpleNamespace

import pytest
from conf_web.config import WebConfig
from conf_web.media import Outbound
from conf_web.whip import Response, SpeakerFollower, SpeakerPlayer, is_whip_path, parse_head, token_name

from conf_cli.protocol.rtcp import Pli, parse_compound
from conf_cli.protocol.rtp import RtpPacket


def test_a_request_head_is_read_into_method_path_query_and_headers() -> None:
    request = parse_head(
        b"POST /whip/k7m-q2xw-9fd?name=Ada%20L HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/sdp; charset=utf-8\r\nAuthorization: Bearer  4hx9qe \r\n\r\n"
    )
    assert request.method == "POST"
    assert request.path == ["whip", "k7m-q2xw-9fd"]
    assert request.query == {"name": ["Ada L"]}
    assert request.content_type == "application/sdp"
    assert request.bearer == "4hx9qe"
    assert parse_head(b"DELETE /whep/m/ada%2Fx/video/ID HTTP/1.1\r\n\r\n").path == [
        "whep", "m", "ada/x", "video", "ID",
    ]  # fmt: skip
    assert parse_head(b"POST /whip/m HTTP/1.1\r\nAuthorization: Basic eDp5\r\n\r\n").bearer is None


@pytest.mark.parametrize(
    "head",
    [
        b"POST /whip/m\r\n\r\n",  # no version
        b"POST /whip/m FTP/1.0\r\n\r\n",
        b"POST /whip/m HTTP/1.1\r\nNo colon here\r\n\r\n",
        b"POST /whip/m HTTP/1.1\r\nA: 1\r\na: 2\r\n\r\n",  # the same header twice
        b"POST /whip/m HTTP/1.1\r\nBad Name: 1\r\n\r\n",
    ],
)
def test_a_malformed_head_is_refused(head: bytes) -> None:
    with pytest.raises(ValueError):
        parse_head(head)


def test_a_bearer_that_looks_like_a_jwt_names_its_holder_anything_else_is_a_passcode() -> None:
    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    token = f"{part({'alg': 'HS256'})}.{part({'sub': 'grace', 'meeting': 'm'})}.c2ln"
    assert token_name(token) == "grace"
    assert token_name("4hx9qe") is None
    assert token_name("a.b.c") is None
    assert token_name(f"{part({'alg': 'HS256'})}.!!!.c2ln") is None
    assert token_name(f"{part({'alg': 'HS256'})}.{part(['sub'])}.c2ln") is None
    assert token_name(f"{part({'alg': 'HS256'})}.{part({'sub': 7})}.c2ln") is None


def test_a_response_carries_cors_its_length_and_closes() -> None:
    wire = Response(HTTPStatus.CREATED, b"v=0\r\n", {"Location": "/whip/m/ID"}).encode()
    head, body = wire.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 201 Created"
    assert {
        "Access-Control-Allow-Origin: *",
        "Location: /whip/m/ID",
        "Content-Length: 5",
        "Connection: close",
    } <= set(lines)
    assert "Access-Control-Expose-Headers: Location, ETag" in lines
    assert body == b"v=0\r\n"
    assert is_whip_path("/whip/m") and is_whip_path("/whep/m/a/video") and not is_whip_path("/ws")


def test_a_retransmission_is_forwarded_as_the_packet_it_repeats_and_rtx_padding_not_at_all() -> None:
    """Chromium answers NACKs and probes bandwidth with RTX (RFC 4588): forwarded as such, a meeting
    would get the original sequence number glued to the payload, under another SSRC."""
    import asyncio
    from types import SimpleNamespace

    from conf_web.rtc import _forward_received

    class RTCRtpReceiver:  # the two members of aiortc's receiver the forwarding replaces and stops
        def __init__(self) -> None:
            self.handled = 0
            self.stopped = False

        async def _handle_rtp_packet(self, packet: object, arrival_time_ms: int) -> None:
            self.handled += 1

        def __stop_decoder(self) -> None:
            self.stopped = True

    receiver = RTCRtpReceiver()
    codecs = [
        SimpleNamespace(mimeType="video/H264", payloadType=102),
        SimpleNamespace(mimeType="video/rtx", payloadType=103),
    ]
    got: list[tuple[object, ...]] = []
    _forward_received(
        "video", SimpleNamespace(receiver=receiver, _codecs=codecs), lambda *a: got.append(a[:6])
    )  # without the audio level
    assert receiver.stopped

    def packet(pt: int, ssrc: int, seq: int, payload: bytes) -> object:
        return SimpleNamespace(
            payload_type=pt, ssrc=ssrc, sequence_number=seq, timestamp=9000, marker=1, payload=payload
        )

    async def run() -> None:
        await receiver._handle_rtp_packet(packet(103, 77, 5, b"\x00\x07NAL"), 0)  # RTX before any media
        await receiver._handle_rtp_packet(packet(102, 11, 8, b"\x65NAL"), 0)
        await receiver._handle_rtp_packet(packet(103, 77, 6, b"\x00\x07\x65NAL"), 0)  # repeats number 7
        await receiver._handle_rtp_packet(packet(103, 77, 7, b""), 0)  # padding

    asyncio.run(run())
    assert got == [("video", 11, 8, 9000, True, b"\x65NAL"), ("video", 11, 7, 9000, True, b"\x65NAL")]
    assert receiver.handled == 4  # aiortc still sees every packet (its statistics, NACKs, RTX unwrapping)


def _share(name: str, kind: str, ssrc: int, started: bool = True) -> dict[str, object]:
    return {"type": "share_started" if started else "share_stopped", "name": name, "kind": kind, "ssrc": ssrc}


def _speaks(name: str, ssrc: int = 99) -> dict[str, object]:
    return {"type": "active_speaker", "name": name, "ssrc": ssrc}


def test_the_speaker_follower_shows_the_speakers_camera_else_their_screen() -> None:
    follower = SpeakerFollower()
    # Before anyone is named the speaker: the first video shared (ada's camera), not audio.
    first = follower.start(
        [{"name": "ada", "kind": "audio", "ssrc": 1}, {"name": "ada", "kind": "video", "ssrc": 2}]
    )
    assert first == 2 and follower.owner == "ada"
    follower.observe(_share("bob", "screen", 4))
    assert follower.source == 2
    # Bob speaks: his screen, the only video he shares; then his camera, preferred to the screen.
    assert follower.observe(_speaks("Bob")) and (follower.source, follower.kind) == (4, "screen")
    assert follower.observe(_share("bob", "video", 3)) and (follower.source, follower.kind) == (3, "video")
    assert not follower.observe(_share("carol", "video", 5))  # someone else's camera: no switch
    # Back to ada; named again while she speaks: no switch.
    assert follower.observe(_speaks("ada")) and follower.source == 2
    assert not follower.observe(_speaks("ada"))
    # Bob's camera stops while ada speaks: nothing changes; ada's camera stops: her picture is gone, so
    # the first video still shared (bob's screen) rather than a frozen picture.
    assert not follower.observe(_share("bob", "video", 3, started=False))
    assert follower.observe(_share("ada", "video", 2, started=False)) and follower.source == 4


def test_the_speaker_follower_keeps_the_picture_when_the_speaker_has_no_video() -> None:
    follower = SpeakerFollower()
    assert follower.start([]) is None
    assert not follower.observe(_speaks("dan"))  # nobody shares video: nothing to show yet
    assert follower.observe(_share("ada", "video", 2)) and follower.source == 2
    assert not follower.observe(_speaks("dan"))  # dan has no video: ada's picture stays
    assert follower.observe(_share("dan", "screen", 7)) and follower.source == 7  # dan still speaks
    # A stale share_stopped (another SSRC) changes nothing; dan leaving moves the picture back to ada.
    assert not follower.observe(_share("dan", "screen", 8, started=False))
    assert follower.observe({"type": "participant_left", "name": "dan", "reason": "left"})
    assert follower.source == 2
    assert follower.observe(_share("ada", "video", 2, started=False)) and follower.source is None
    assert not follower.observe({"type": "chat", "name": "ada", "text": "hi"})


class _Link:
    is_closing = False

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send_media(self, packet: bytes) -> None:
        self.sent.append(packet)


class _Client:
    name = "wall (WHEP)"
    media_handler: object = None

    def __init__(self) -> None:
        self.link = _Link()


def _video(ssrc: int, sequence: int, payload: bytes) -> bytes:
    return bytes(RtpPacket(96, sequence, sequence * 3000, ssrc, payload))


def test_the_speaker_player_switches_its_slot_at_the_new_tracks_keyframe() -> None:
    """No network: the player's session fed meeting events and packets as the server would."""

    async def run() -> None:
        endpoints = SimpleNamespace(config=WebConfig("127.0.0.1", 0), ice_servers=list)
        client = _Client()
        player = SpeakerPlayer(endpoints, client, "pass", "127.0.0.1")  # type: ignore[arg-type]
        try:
            player.slot = Outbound("0", "video", ssrc=1234, payload_type=96)
            player.source = player.follower.start([{"name": "ada", "kind": "video", "ssrc": 2}])
            player.slot.assign(2, "ada", "video")
            delta, idr = b"\x41\x9a", b"\x65\x88"  # a P slice, an IDR slice (NAL types 1 and 5)
            player._from_meeting(_video(2, 1, delta))
            assert player._jobs.qsize() == 1
            # Bob, with a camera, takes the floor: a PLI for his track, ada's picture goes on meanwhile.
            player.observe({"type": "share_started", "name": "bob", "kind": "video", "ssrc": 3})
            player.observe({"type": "active_speaker", "name": "bob", "ssrc": 9})
            plis = [parse_compound(p)[0] for p in client.link.sent]
            assert [(type(p), p.media_ssrc) for p in plis] == [(Pli, 3)]  # type: ignore[attr-defined]
            player._from_meeting(_video(3, 50, delta))  # bob's delta frame: not yet
            player._from_meeting(_video(2, 2, delta))  # ada's: still shown
            assert (player.slot.source, player._jobs.qsize()) == (2, 2)
            player._from_meeting(_video(3, 51, idr))  # bob's keyframe: the slot switches here
            player._from_meeting(_video(2, 3, delta))  # ada's packets are no longer sent
            assert (player.slot.source, player.slot.owner, player._jobs.qsize()) == (3, "bob", 3)
            # Dan speaks without video: bob's picture stays.
            player.observe({"type": "active_speaker", "name": "dan", "ssrc": 8})
            player._from_meeting(_video(3, 52, delta))
            assert (player.slot.source, player.pending, player._jobs.qsize()) == (3, None, 4)
            assert player.switches == 1
        finally:
            player.ended = True  # closed here, not through the endpoints
            await player.answerer.close()

    asyncio.run(run())
