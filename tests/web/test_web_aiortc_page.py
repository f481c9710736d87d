"""Browser media without a browser: aiortc plays the page against a real ``conf server --web-port``.

The page's side of the protocol (plugins/web/conf_web/static/app.js) is done here in Python: the same
WebSocket messages (``join``, ``web_answer``, ``publish``), a WebRTC peer connection (aiortc, which is
not the server's own code path through ``conf_web.rtc``) that answers the server's offers with its own
three send slots. So the web service's forwarding is covered both ways on every run, Chromium or not:

- the page decodes the pattern a terminal participant (``conf share pattern``) shares;
- the terminal participant decodes the page's camera (frames aiortc encodes in H.264).
"""

from __future__ import annotations

import asyncio
import fractions
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import websockets

from conf_cli.testing.processes import ClientPool, ConfProcess, start_server

aiortc = pytest.importorskip("aiortc")
av = pytest.importorskip("av")

FRAMES_WANTED = 10  # decoded pictures each way
TIMEOUT = 40.0


class MovingPicture(aiortc.VideoStreamTrack):  # type: ignore[misc]
    """A camera for the page: a bright bar that moves, 320x240 at 15 frames/s."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    async def recv(self) -> Any:
        await asyncio.sleep(1 / 15)
        image = np.zeros((240, 320, 3), dtype=np.uint8)
        column = (self.count * 8) % 320
        image[:, column : column + 16] = 255
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = self.count * 6000
        frame.time_base = fractions.Fraction(1, 90_000)
        self.count += 1
        return frame


class Page:
    """What app.js does, in aiortc: join, answer every offer, send its camera on the video slot."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.pc: Any = None
        self.camera = MovingPicture()
        self.decoded = 0
        self.answered = False
        self.events: list[dict[str, Any]] = []
        self.decoders: list[asyncio.Task[None]] = []

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def next(self, kind: str) -> dict[str, Any]:
        while True:
            message = json.loads(await self.ws.recv())
            self.events.append(message)
            if message["type"] == "web_offer":
                await self.answer(message)
            if message["type"] == kind:
                return message

    async def answer(self, offer: dict[str, Any]) -> None:
        if self.pc is None:  # one transport for every slot, as the server's offer bundles them all
            self.pc = aiortc.RTCPeerConnection(
                aiortc.RTCConfiguration(iceServers=[], bundlePolicy=aiortc.RTCBundlePolicy.MAX_BUNDLE)
            )
            self.pc.on("track", self.watch)
        await self.pc.setRemoteDescription(aiortc.RTCSessionDescription(offer["sdp"], "offer"))
        first = not self.answered
        if first:
            own = self.pc.getTransceivers()[:3]  # the page's audio, camera and screen slots, in that order
            for transceiver in own:
                transceiver.direction = "sendonly"
                self.loopback_only(transceiver)
            own[1].sender.replaceTrack(self.camera)
        await self.pc.setLocalDescription(await self.pc.createAnswer())  # aiortc gathers before answering
        await self.send({"type": "web_answer", "sdp": self.pc.localDescription.sdp})
        self.answered = True
        if first:
            await self.send({"type": "publish", "kind": "video", "id": "publish-video"})

    @staticmethod
    def loopback_only(transceiver: Any) -> None:
        """Gather host candidates on 127.0.0.1 alone, so that no packet goes to another address."""
        from conf_web.rtc import _gather_on

        _gather_on(transceiver.sender.transport.transport.iceGatherer._connection, ["127.0.0.1"])

    def watch(self, track: Any) -> None:
        if track.kind != "video":
            return

        async def decode() -> None:
            while True:
                try:
                    frame = await track.recv()
                except aiortc.mediastreams.MediaStreamError:
                    return
                if frame.width > 0 and frame.height > 0:
                    self.decoded += 1

        self.decoders.append(asyncio.ensure_future(decode()))


@pytest.fixture
def web_server() -> Iterator[tuple[ConfProcess, str, str]]:
    server, url = start_server("--web-port", "0")
    try:
        yield server, url, _web_url(server)
    finally:
        server.stop()


def _web_url(server: ConfProcess) -> str:
    event = server.latest("server_started")
    (web,) = [u for u in event["urls"] if u.startswith("http://")]
    return web.replace("http://", "ws://") + "ws"


async def _page_session(ws_url: str, meeting: str, passcode: str, sharer: ConfProcess) -> Page:
    async with websockets.connect(ws_url, proxy=None, open_timeout=10) as ws:
        page = Page(ws)
        await page.next("web_ready")
        await page.send({"type": "join", "meeting": meeting, "name": "page", "passcode": passcode})
        joined = await page.next("joined")
        assert joined["name"] == "page"

        async def until_decoded() -> None:
            while page.decoded < FRAMES_WANTED:
                await page.next("__never__")  # keeps answering offers while frames arrive

        reader = asyncio.ensure_future(until_decoded())
        try:
            async with asyncio.timeout(TIMEOUT):
                while page.decoded < FRAMES_WANTED:
                    await asyncio.sleep(0.1)
                # The terminal participant decodes the page's camera.
                got = await asyncio.to_thread(
                    sharer.expect,
                    "track_stats",
                    lambda e: e["name"] == "page" and e["kind"] == "video" and e["frames"] >= FRAMES_WANTED,
                    TIMEOUT,
                )
                assert got["malformed"] == 0
        finally:
            reader.cancel()
            for task in page.decoders:
                task.cancel()
            if page.pc is not None:
                await page.pc.close()
        return page


def test_a_page_made_of_aiortc_and_a_terminal_see_each_other(
    web_server: tuple[ConfProcess, str, str],
) -> None:
    _, url, ws_url = web_server
    pool = ClientPool(url)
    try:
        _, meeting = pool.create("host")
        sharer = pool.share(
            meeting, "terminal", "pattern", "--width", "320", "--height", "240", "--fps", "15"
        )
        sharer.expect("joined")
        page = asyncio.run(_page_session(ws_url, meeting, pool.passcode, sharer))
        assert page.decoded >= FRAMES_WANTED  # the page decoded the terminal's pattern
        assert page.camera.count >= FRAMES_WANTED  # and its camera ran
    finally:
        pool.stop_all()
