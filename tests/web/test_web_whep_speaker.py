"""WHEP's ``/whep/MEETING/speaker`` end to end: a real ``conf server --web-port`` over rtp:// (SRTP), two
real ``conf share`` participants, each with a test pattern of its own size and a tone, the tones taking
turns every 2 s on the wall clock, and a WHEP player (aiortc) on the speaker route. The player's one
video stream follows the speaker: the decoded frames' size says whose pattern it is.
"""

from __future__ import annotations

import asyncio
import http.client
import itertools
import math
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from conf_cli.testing.processes import ClientPool, ConfProcess, start_server

aiortc = pytest.importorskip("aiortc")

PASSCODE = "pass-123"
SIZES = {"ada": (320, 240), "bob": (480, 360)}  # whose picture a decoded frame is, by its size
TURNS = ("--source-option", "on=2", "--source-option", "off=2", "--source-option", "sync=1")
WATCH = 12.5  # seconds of play: six turns


def turn_of(at: float) -> str:
    """Who speaks at Unix time ``at``: ``ada`` in [0, 2) of each 4 s cycle, ``bob`` in [2, 4)."""
    return "ada" if at % 4.0 < 2.0 else "bob"


@pytest.fixture
def lab() -> Iterator[tuple[ClientPool, str]]:
    server, url = start_server("--web-port", "0", transport="rtp")
    pool = ClientPool(url, PASSCODE)
    (web,) = [u for u in server.latest("server_started")["urls"] if u.startswith("http://")]
    try:
        yield pool, web
    finally:
        pool.stop_all()
        server.stop()


def speaker(pool: ClientPool, meeting: str, name: str, *extra: str) -> ConfProcess:
    """``name`` shares a tone taking turns, then its pattern (``/share pattern`` in the same process)."""
    process = pool.share(meeting, name, "tone", *TURNS, *extra)
    process.expect("joined")
    width, height = SIZES[name]
    process.send(f"/share pattern width={width} height={height} fps=15")
    process.expect("publish_started", lambda e: e.get("kind") == "video", timeout=60)
    return process


async def play(web: str, meeting: str, seconds: float) -> tuple[list[tuple[float, int, int]], int]:
    """Play /whep/MEETING/speaker for ``seconds``: each decoded frame's arrival time and size, and the
    DELETE's status."""
    from conf_web.rtc import _gather_on

    parts = urlsplit(web)
    pc = aiortc.RTCPeerConnection(aiortc.RTCConfiguration(iceServers=[]))
    transceiver = pc.addTransceiver("video", direction="recvonly")
    _gather_on(transceiver.receiver.transport.transport.iceGatherer._connection, ["127.0.0.1"])
    frames: list[tuple[float, int, int]] = []
    tracks: asyncio.Queue[object] = asyncio.Queue()
    pc.on("track", tracks.put_nowait)
    await pc.setLocalDescription(await pc.createOffer())

    def request(method: str, path: str, body: str = "") -> tuple[int, str, bytes]:
        connection = http.client.HTTPConnection(str(parts.hostname), parts.port or 80, timeout=30)
        try:
            headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {PASSCODE}"}
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheader("Location") or "", response.read()
        finally:
            connection.close()

    path = f"/whep/{meeting}/speaker?name=wall"
    status, location, answer = await asyncio.to_thread(request, "POST", path, pc.localDescription.sdp)
    assert status == 201, answer
    await pc.setRemoteDescription(aiortc.RTCSessionDescription(answer.decode(), "answer"))
    track = await asyncio.wait_for(tracks.get(), 30)
    end = time.time() + seconds
    try:
        while time.time() < end:
            try:
                frame = await asyncio.wait_for(track.recv(), 10)  # type: ignore[attr-defined]
            except aiortc.mediastreams.MediaStreamError:
                break
            frames.append((time.time(), frame.width, frame.height))
    finally:
        deleted, _, _ = await asyncio.to_thread(request, "DELETE", location)
        await pc.close()
    return frames, deleted


def test_the_speaker_player_shows_whoever_speaks(lab: tuple[ClientPool, str]) -> None:
    pool, web = lab
    host, meeting = pool.create("host")
    speaker(pool, meeting, "ada", "--frequency", "440")
    speaker(pool, meeting, "bob", "--frequency", "660", "--source-option", "offset=2")
    start = time.time()
    frames, deleted = asyncio.run(play(web, meeting, WATCH))
    end = time.time()
    assert deleted == 200
    host.expect("participant_left", lambda e: e["name"] == "wall (WHEP)")

    owners = {size: name for name, size in SIZES.items()}
    seen = [(at, owners.get((w, h), f"{w}x{h}")) for at, w, h in frames]
    assert {name for _, name in seen} <= set(SIZES), "a frame of neither pattern's size"
    # Each whole turn after the first second: in its second half (the switch has had 1 s: the
    # active_speaker decision, the keyframe, the decoder), the frames are the speaker's picture.
    turns = [2.0 * k for k in range(math.ceil((start + 1.0) / 2.0), math.floor((end - 2.0) / 2.0) + 1)]
    assert len(turns) >= 3, (start, end)
    for turn in turns:
        late = [name for at, name in seen if turn + 1.0 <= at < turn + 2.0]
        assert late, f"no frame in the second half of the turn at {turn - start:.1f} s"
        wanted = turn_of(turn + 0.5)
        share = late.count(wanted) / len(late)
        assert share >= 0.8, (turn - start, wanted, late)
    switches = sum(1 for (_, a), (_, b) in itertools.pairwise(seen) if a != b)
    print(
        f"\nspeaker player (rtp://, SRTP): {len(frames)} frames in {end - start:.1f} s, {switches} switches"
    )
    assert switches >= len(turns) - 1
