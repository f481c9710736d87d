"""One browser page in a meeting: its WebSocket, its conf client, and its WebRTC peer connection.

The page speaks the conf protocol (docs/protocol.md) over the WebSocket; the session relays it both
ways through an ordinary :class:`~conf_cli.client.link.Client` on the in-process link, so every rule of the
server applies to the browser as to any participant. Besides, the session says:

- ``{"type": "web_ready", "ice_servers": [...], "requests": [...]}`` once connected to the server (STUN
  servers only; ``requests``: the message types the server takes, whose controls the page shows);
- ``{"type": "web_ice", "ice_servers": [...]}`` just before ``joined``: every STUN and TURN server, TURN
  credentials included (made for this page when they come from ``--turn-secret``), so a page gets them
  only once it is admitted to a meeting;
- ``{"type": "web_offer", "sdp": ..., "tracks": {mid: {name, kind, ssrc}}}`` whenever the peer
  connection needs (re)negotiating, which the page answers with ``{"type": "web_answer", "sdp": ...}``;
- ``{"type": "web_tracks", "tracks": {...}}`` when a send slot passes to another meeting track.

The page's ``publish`` needs only ``kind``: the session picks the SSRC and codec. The server is always
the offerer, and aiortc does not trickle: offers and answers carry every ICE candidate.

What goes to the page waits in a bounded outbox, written by a task of its own, so a page that stops
reading never holds up the session, nor makes the server keep more than ``OUTBOX_BYTES`` for it: when the
outbox is full, or one message takes longer than ``SEND_TIMEOUT`` to go out, the page is disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from conf_cli import ConfError, ProtocolError
from conf_cli.protocol.control import client_message_types
from conf_cli.protocol.rtcp import Fir, Nack, Pli, parse_compound
from conf_cli.protocol.rtp import is_rtcp
from conf_web.ice import IceServer
from conf_web.media import CODECS, Inbound, Outbound
from conf_web.rtc import PeerConnection

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection

    from conf_cli import Participant, ServiceContext
    from conf_web.config import WebConfig

log = logging.getLogger("conf.web")

SEND_QUEUE = 1000  # packets waiting for one browser; a slow browser loses media, nobody else notices
FINAL = ("left", "meeting_closed", "kicked", "disconnected")
JOIN_TIMEOUT = 300.0  # seconds a page may stay connected without being in a meeting
OUTBOX_MESSAGES = 512  # messages waiting to go to one page
OUTBOX_BYTES = 1 << 20  # and their size: past either, the page does not read and is disconnected
SEND_TIMEOUT = 30.0  # seconds one message may take to go out to the page


class BrowserSession:
    def __init__(self, websocket: ServerConnection, context: ServiceContext, config: WebConfig) -> None:
        self.ws = websocket
        self.context = context
        self.config = config
        self.client: Participant | None = None
        self.rtc: PeerConnection | None = None
        self.me: str | None = None
        self.inbound: dict[str, Inbound] = {}
        self.tracks: dict[int, dict[str, Any]] = {}  # meeting tracks of others, by SSRC
        self.e2ee = False
        """The meeting is end-to-end encrypted: the page encrypts what it sends and decrypts what it
        receives (SFrame), and the session carries each SFrame with its RTP metadata (conf_web.media)."""
        self.feedback_ssrc = random.getrandbits(32)
        self._jobs: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue(SEND_QUEUE)
        self._negotiating = False
        self._again = False
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self.dropped = 0
        self._outbox: asyncio.Queue[str | None] = asyncio.Queue()
        self.outbox_bytes = 0
        """Bytes of the messages waiting in the outbox."""
        self._cut_off = False
        self.turn_user = f"web-{secrets.token_hex(4)}"
        """This page's name towards TURN servers (credentials from ``--turn-secret``)."""

    # -- life -----------------------------------------------------------------------------------------

    async def run(self) -> None:
        self._tasks = [asyncio.create_task(self._write())]
        peer = self.ws.remote_address
        where = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "browser"
        self.client = self.context.participant(f"web {where}")
        try:
            await self.client.connect()
        except ConfError as exc:
            self._send({"type": "error", "code": "unavailable", "message": str(exc)})
            self._finish()
            await self.client.close()
            await self._tasks[0]
            return
        self.client.media_handler = self._from_meeting
        stun = [s.for_page() for s in self.config.ice_servers if not s.turn]
        # The page shows the controls of the requests this server takes (hands, polls ...), no others.
        self._send({"type": "web_ready", "ice_servers": stun, "requests": list(client_message_types())})
        self._tasks += [
            asyncio.create_task(self._events()),
            asyncio.create_task(self._pump()),
            asyncio.create_task(self._join_deadline()),
        ]
        from websockets.exceptions import ConnectionClosed

        try:
            async for raw in self.ws:
                await self._from_page(raw)
        except ConnectionClosed:
            pass
        finally:
            await self.close()

    async def _join_deadline(self) -> None:
        """A page that has not joined a meeting within JOIN_TIMEOUT is disconnected."""
        await asyncio.sleep(JOIN_TIMEOUT)
        if self.me is None:
            self._send({"type": "disconnected", "reason": "no meeting joined in time"})
            self._finish()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._stop_media()
        if self.client is not None:
            with contextlib.suppress(ConfError):
                self.client.send({"type": "leave"})
            await self.client.close()
        await self.ws.close()

    async def _stop_media(self) -> None:
        if self.rtc is not None:
            rtc, self.rtc = self.rtc, None
            await rtc.close()

    def _send(self, message: dict[str, Any]) -> None:
        """Queue ``message`` for the page; a page that lets too much wait is cut off."""
        if self._cut_off:
            return
        text = json.dumps(message)
        if self._outbox.qsize() >= OUTBOX_MESSAGES or self.outbox_bytes + len(text) > OUTBOX_BYTES:
            self._cut("it does not read what the server sends")
            return
        self.outbox_bytes += len(text)
        self._outbox.put_nowait(text)

    def _finish(self) -> None:
        """Close the WebSocket once what is queued before has gone out."""
        self._outbox.put_nowait(None)

    def _cut(self, reason: str) -> None:
        """Drop the page's connection at once, unsent messages and all."""
        if self._cut_off:
            return
        self._cut_off = True
        log.info("web: disconnecting the page %s (%s): %s", self.me or "", self.turn_user, reason)
        while not self._outbox.empty():
            self._outbox.get_nowait()
        self.outbox_bytes = 0
        transport = getattr(self.ws, "transport", None)
        if transport is not None:
            transport.abort()

    async def _write(self) -> None:
        """Send the outbox to the page, in order."""
        from websockets.exceptions import ConnectionClosed

        while (text := await self._outbox.get()) is not None:
            self.outbox_bytes -= len(text)
            try:
                async with asyncio.timeout(SEND_TIMEOUT):
                    await self.ws.send(text)
            except TimeoutError:
                self._cut(f"a message took longer than {SEND_TIMEOUT:g} s to go out")
                return
            except ConnectionClosed:
                return
        with contextlib.suppress(ConnectionClosed):
            await self.ws.close()

    # -- from the page --------------------------------------------------------------------------------

    async def _from_page(self, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            message = None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            self._send({"type": "error", "code": "bad_request", "message": "expected a JSON object"})
            return
        kind = message["type"]
        assert self.client is not None
        if kind == "web_answer":
            await self._answer(message.get("sdp"))
            return
        if kind in ("hello", "ping", "pong"):
            return  # the session's own client does the handshake and heartbeats
        if kind in ("publish", "unpublish"):
            slot = self.inbound.get(str(message.get("kind")))
            if slot is None:
                self._refuse(message, "join first, and share audio, video or screen")
                return
            if kind == "publish":
                message = {**message, "ssrc": slot.ssrc, "codec": CODECS[slot.kind]}
            else:
                slot.published = False
        try:
            self.client.send(message)
        except ProtocolError as exc:
            self._refuse(message, str(exc))
        except ConfError as exc:
            self._send({"type": "disconnected", "reason": str(exc)})

    def _refuse(self, message: dict[str, Any], text: str) -> None:
        self._send({"type": "error", "code": "bad_request", "message": text, "re": message["type"]})

    # -- from the server ------------------------------------------------------------------------------

    async def _events(self) -> None:
        assert self.client is not None
        while True:
            event = await self.client.events.get()
            kind = event["type"]
            if kind == "joined":  # admitted: now the page may have the TURN servers' credentials
                self._send({"type": "web_ice", "ice_servers": [s.for_page() for s in self._ice_servers()]})
            self._send(event)
            await self._observe(event)
            if kind in FINAL:
                await self._stop_media()
                if kind == "disconnected":
                    self._finish()
                    return

    def _ice_servers(self, user: str | None = None) -> list[IceServer]:
        """The STUN and TURN servers, with credentials for ``user`` (this page's) where they are made."""
        config = self.config
        now = time.time()
        return [
            s.for_user(config.turn_secret, user or self.turn_user, now, config.turn_ttl)
            for s in config.ice_servers
        ]

    async def _observe(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "joined":
            self.me = event["name"]
            self.e2ee = event.get("e2ee") is True
            for track in event.get("tracks") or ():
                self._track_started(track)
            await self._negotiate()
        elif kind == "share_started":
            if event["name"] == self.me:
                slot = self.inbound.get(event["kind"])
                if slot is not None and slot.ssrc == event["ssrc"]:
                    slot.published = True
            else:
                self._track_started(event)
                await self._negotiate()
        elif kind == "share_stopped":
            if event["name"] == self.me:
                slot = self.inbound.get(event["kind"])
                if slot is not None and slot.ssrc == event["ssrc"]:
                    slot.published = False
            else:
                await self._track_stopped(event["ssrc"])
        elif kind == "participant_left":
            for ssrc, track in list(self.tracks.items()):
                if track["name"] == event["name"]:
                    await self._track_stopped(ssrc)
        elif kind == "participant_renamed":  # the host renamed someone, perhaps this page
            if event["name"] == self.me:
                self.me = event["new_name"]
            for track in self.tracks.values():
                if track["name"] == event["name"]:
                    track["name"] = event["new_name"]

    def _track_started(self, track: dict[str, Any]) -> None:
        if track["name"] != self.me and track.get("codec") in ("H264", "opus"):
            self.tracks[track["ssrc"]] = {k: track[k] for k in ("name", "kind", "ssrc", "codec")}

    async def _track_stopped(self, ssrc: int) -> None:
        self.tracks.pop(ssrc, None)
        if self.rtc is not None:
            slot = self.rtc.by_source.pop(ssrc, None)
            if slot is not None:
                slot.assign(None)
                self._send({"type": "web_tracks", "tracks": self.rtc.describe()})

    # -- negotiation ----------------------------------------------------------------------------------

    async def _negotiate(self) -> None:
        """Give every meeting track a send slot; offer again if that needs new slots."""
        if self._negotiating:
            self._again = True
            return
        if self.rtc is None:
            self.rtc = PeerConnection(
                self.config,
                self._from_browser,
                self._feedback_from_browser,
                self._connected,
                self._ice_servers(f"{self.turn_user}-server"),
            )
            self.inbound = {k: Inbound(k, random.getrandbits(32)) for k in ("audio", "video", "screen")}
        reused = self.rtc.assign(self.tracks)
        for slot in reused:
            self._ask_keyframe(slot)
        if reused:
            self._send({"type": "web_tracks", "tracks": self.rtc.describe()})
        if not self.rtc.needs_offer():
            return
        self._negotiating = True
        try:
            sdp = await self.rtc.offer()
        except Exception as exc:
            self._negotiating = False
            log.warning("cannot make a WebRTC offer: %s", exc)
            self._send({"type": "error", "code": "media", "message": f"WebRTC failed: {exc}"})
            return
        self._send({"type": "web_offer", "sdp": sdp, "tracks": self.rtc.describe()})

    async def _answer(self, sdp: object) -> None:
        if self.rtc is None or not self._negotiating or not isinstance(sdp, str):
            self._send({"type": "error", "code": "bad_request", "message": "no offer to answer"})
            return
        try:
            started = await self.rtc.answer(sdp)
        except Exception as exc:
            self._send({"type": "error", "code": "media", "message": f"WebRTC failed: {exc}"})
            return
        finally:
            self._negotiating = False
        for slot in started:
            self._ask_keyframe(slot)
        if self._again:
            self._again = False
            await self._negotiate()

    def _connected(self) -> None:
        """Media can flow now: keyframes asked for before (and lost to the handshake) are asked again."""
        if self.rtc is not None:
            for slot in self.rtc.by_source.values():
                if slot.ssrc:
                    self._ask_keyframe(slot)

    def _ask_keyframe(self, slot: Outbound) -> None:
        if slot.source is not None and self.client is not None and self.client.link is not None:
            self.client.link.send_media(bytes(Pli(self.feedback_ssrc, slot.source)))

    # -- media ----------------------------------------------------------------------------------------

    def _queue(self, job: Callable[[], Awaitable[None]]) -> None:
        try:
            self._jobs.put_nowait(job)
        except asyncio.QueueFull:
            self.dropped += 1

    async def _pump(self) -> None:
        """Send what is queued for the browser, in order, one packet at a time."""
        while True:
            job = await self._jobs.get()
            try:
                await job()
            except ConnectionError as exc:  # not connected yet, or any more: the packet is lost
                self.dropped += 1
                log.debug("dropped a packet for the browser: %s", exc)

    def _from_meeting(self, packet: bytes) -> None:
        """A packet the server forwarded to this participant."""
        rtc = self.rtc
        if rtc is None:
            return
        if is_rtcp(packet):
            self._feedback_from_meeting(packet)
            return
        if len(packet) < 12:
            return
        slot = rtc.by_source.get(int.from_bytes(packet[8:12], "big"))
        if slot is None or not slot.ssrc:
            return
        data = slot.rewrite(packet, sealed=self.e2ee)
        if data is not None:
            self._queue(lambda: rtc.send_rtp(slot, data))

    def _feedback_from_meeting(self, packet: bytes) -> None:
        """Keyframe requests and NACKs for the browser's tracks go to the browser."""
        rtc = self.rtc
        try:
            parts = parse_compound(packet)
        except ProtocolError:
            return
        if rtc is None:
            return
        mine = {s.ssrc: (s, s.browser_ssrc) for s in self.inbound.values() if s.browser_ssrc is not None}
        for part in parts:
            asked: list[int] = []
            if isinstance(part, Pli):
                asked = [part.media_ssrc]
            elif isinstance(part, Fir):
                asked = [ssrc for ssrc, _ in part.entries]
            for ssrc in asked:
                if ssrc in mine:
                    slot, browser_ssrc = mine[ssrc]
                    self._queue(partial(rtc.request_keyframe, slot.kind, browser_ssrc))
            # In an E2EE meeting the page numbers its sealed packets itself, which the browser's own
            # numbers do not map to: a loss there is not resent (keyframe requests still go through).
            if isinstance(part, Nack) and part.media_ssrc in mine and not self.e2ee:
                slot, browser_ssrc = mine[part.media_ssrc]
                lost = [slot.browser_sequence(s) for s in part.lost]
                self._queue(partial(rtc.nack, slot.kind, browser_ssrc, lost))

    def _from_browser(
        self,
        kind: str,
        ssrc: int,
        sequence: int,
        timestamp: int,
        marker: bool,
        payload: bytes,
        level: int | None = None,
        rid: str | None = None,
    ) -> None:
        """An RTP packet of the browser's ``kind`` track: into the meeting once published."""
        slot = self.inbound.get(kind)
        if slot is None or not slot.published or self.client is None or self.client.link is None:
            return
        if self.e2ee:
            for sealed in slot.rewrite_sealed_packet(ssrc, sequence, payload):
                self.client.link.send_media(sealed)
            return
        data = slot.rewrite(ssrc, sequence, timestamp, marker, payload, level)
        if data is not None:
            self.client.link.send_media(data)

    def _feedback_from_browser(self, slot: Outbound, keyframe: bool, lost: list[int]) -> None:
        """The browser asks a meeting track it receives for a keyframe or for lost packets."""
        if slot.source is None or self.client is None or self.client.link is None:
            return
        if keyframe:
            self._ask_keyframe(slot)
        if lost:
            nack = Nack(self.feedback_ssrc, slot.source, [slot.source_sequence(s) for s in lost])
            self.client.link.send_media(bytes(nack))
