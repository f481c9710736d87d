"""WHIP ingest (RFC 9725) and WHEP egress on the web service's port (docs/web.md, "WHIP and WHEP").

- ``POST /whip/MEETING`` with an SDP offer (``application/sdp``) and ``Authorization: Bearer`` the
  meeting's passcode or an access token: the publisher joins as ``NAME (WHIP)`` (NAME from the token, else
  ``?name=``) and shares the offer's H.264 video and Opus audio. ``201 Created``, the SDP answer and a
  ``Location`` naming the session's resource, ``/whip/MEETING/ID``.
- ``POST /whep/MEETING/NAME/KIND`` (KIND audio, video or screen): a player joins as ``NAME (WHEP)`` and
  receives that participant's track. ``201`` and the resource ``/whep/MEETING/NAME/KIND/ID``.
- ``POST /whep/MEETING/speaker``: a player receives the active speaker's video (camera, else screen) in
  one stream, switched at the next keyframe when ``active_speaker`` names someone else with video
  (:class:`SpeakerFollower` decides). The resource is ``/whep/MEETING/speaker/ID``.
- ``PATCH`` on a resource with ``application/trickle-ice-sdpfrag`` adds the client's trickled ICE
  candidates (``204``); ``DELETE`` ends the session. Both need the bearer the session was made with.
- ``OPTIONS`` answers CORS preflights, and every answer carries ``Access-Control-Allow-Origin: *`` and
  exposes ``Location``: credentials go in ``Authorization``, never in cookies, so a page of any origin
  may use the endpoints and still needs the passcode or a token.

Each session is an ordinary participant on the server's in-process link, made unable to hold E2EE keys,
so the hub checks the credential exactly as in a ``join`` (and counts a wrong one in its attempt
limiter), refuses an end-to-end encrypted meeting, and forwards media by its rules. Media is forwarded
as a page's is (:mod:`conf_web.media`), never decoded.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import json
import logging
import random
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from conf_cli import ConfError, ProtocolError, RequestRefused
from conf_cli.media.h264 import opens_keyframe
from conf_cli.protocol.control import MAX_PASSCODE_CHARS, MAX_TOKEN_CHARS, check_name
from conf_cli.protocol.rtcp import Fir, Nack, Pli, parse_compound
from conf_cli.protocol.rtp import RtpPacket, is_rtcp, peek_ssrc
from conf_web.media import CODECS, Inbound, Outbound
from conf_web.rtc import Answerer
from conf_web.simulcast import SimulcastError, SimulcastLayers, SimulcastOffer, parse_offer

if TYPE_CHECKING:
    from conf_cli import Participant, ServiceContext
    from conf_web.config import WebConfig
    from conf_web.ice import IceServer

log = logging.getLogger("conf.web")

MAX_HEAD = 8 * 1024  # bytes of a request's line and headers
MAX_SDP = 64 * 1024  # bytes of an offer or a trickled fragment (a browser's offer is a few KiB)
READ_TIMEOUT = 10.0  # seconds to send the whole request
ADMIT_TIMEOUT = 15.0  # seconds a session waits in a meeting's waiting room for the host
CONNECT_TIMEOUT = 30.0  # seconds from the answer to a connected peer; else the session ends
SEND_QUEUE = 1000  # packets waiting for one WHEP player; a slow player loses media, nobody else notices
PUBLISH_TIMEOUT = 10.0  # seconds for the server to take (or refuse) a WHIP publisher's tracks
FINAL = ("left", "meeting_closed", "kicked", "disconnected")
NAME_CHARS = 48  # of the NAME in ``NAME (WHIP)``: the tag fits in a name's 64
KINDS = ("audio", "video", "screen")
SPEAKER = "speaker"  # /whep/MEETING/speaker: the active speaker's video
SPEAKER_KINDS = ("video", "screen")  # what a speaker player shows of someone, camera first
KEYFRAME_RETRY = 1.0  # seconds between two keyframe requests for a track the player switches to
STATUS = {
    "wrong_passcode": HTTPStatus.UNAUTHORIZED,
    "bad_token": HTTPStatus.UNAUTHORIZED,
    "unknown_meeting": HTTPStatus.NOT_FOUND,
    "e2ee_required": HTTPStatus.CONFLICT,
    "name_taken": HTTPStatus.CONFLICT,
    "rate_limited": HTTPStatus.TOO_MANY_REQUESTS,
    "bad_request": HTTPStatus.BAD_REQUEST,
}
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Location, ETag",
}
PREFLIGHT = {
    "Access-Control-Allow-Methods": "POST, PATCH, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
    "Access-Control-Max-Age": "600",
}


@dataclass
class Request:
    method: str
    path: list[str]
    """The path's segments after ``/whip`` or ``/whep``, unquoted: ``["whip", MEETING, ...]``."""
    query: dict[str, list[str]]
    headers: dict[str, str]
    """Lower-case names; a repeated header is refused when parsed."""
    body: bytes = b""

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    @property
    def bearer(self) -> str | None:
        scheme, _, value = self.headers.get("authorization", "").partition(" ")
        value = value.strip()
        return value if scheme.lower() == "bearer" and value else None


@dataclass
class Response:
    status: HTTPStatus
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        headers = {**CORS, **self.headers, "Content-Length": str(len(self.body)), "Connection": "close"}
        if self.body and "Content-Type" not in headers:
            headers["Content-Type"] = "text/plain; charset=utf-8"
        lines = [f"HTTP/1.1 {self.status.value} {self.status.phrase}", "Server: conf"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


def error(status: HTTPStatus, text: str, **headers: str) -> Response:
    return Response(status, (text.rstrip() + "\n").encode(), dict(headers))


def is_whip_path(path: str) -> bool:
    return path.startswith(("/whip/", "/whep/"))


def parse_head(head: bytes) -> Request:
    """A request's line and headers (ending in an empty line); ValueError if malformed."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ValueError("bad request line")
    method, target = parts[0], parts[1]
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        name = name.strip().lower()
        if not sep or not name or name != name.strip() or " " in name:
            raise ValueError("bad header line")
        if name in headers:
            raise ValueError(f"header {name} given twice")
        headers[name] = value.strip()
    split = urlsplit(target)
    path = [unquote(p) for p in split.path.split("/")[1:]]
    return Request(method, path, parse_qs(split.query, max_num_fields=10), headers)


def token_name(token: str) -> str | None:
    """The ``sub`` of a JSON Web Token, unchecked: the hub checks the signature when the session joins.
    None if ``token`` does not look like one (then it is taken for a passcode)."""
    parts = token.split(".")
    if len(parts) != 3 or not token.startswith("eyJ"):
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    sub = claims.get("sub") if isinstance(claims, dict) else None
    return sub if isinstance(sub, str) else None


class Refused(Exception):
    def __init__(self, status: HTTPStatus, text: str, **headers: str) -> None:
        super().__init__(text)
        self.response = error(status, text, **headers)


async def _join(
    context: ServiceContext, meeting: str, names: list[str], credential: str, token: bool, origin: str
) -> tuple[Participant, dict[str, Any]]:
    """Join ``meeting`` as the first of ``names`` not taken; Refused with the hub's reason as HTTP."""
    client = context.participant(origin, e2ee_capable=False)  # so the hub refuses an E2EE meeting
    try:
        await client.connect()
        for attempt, name in enumerate(names, 1):
            try:
                if token:
                    joined = await client.join(meeting, name, token=credential)
                else:
                    joined = await client.join(meeting, name, credential)
            except RequestRefused as exc:
                if exc.code == "name_taken" and attempt < len(names):
                    continue
                status = STATUS.get(exc.code, HTTPStatus.FORBIDDEN)
                extra = {"Retry-After": str(int(exc.retry_after) + 1)} if exc.retry_after else {}
                if exc.code == "e2ee_required":
                    raise Refused(
                        status,
                        f"meeting {meeting} is end-to-end encrypted: a WHIP or WHEP client cannot hold its "
                        "keys, so it cannot take part",
                    ) from None
                raise Refused(status, str(exc), **extra) from None
            if joined["type"] == "waiting":
                joined = await _admitted(client, meeting)
            return client, joined
    except ConfError as exc:
        await client.close()
        raise Refused(HTTPStatus.SERVICE_UNAVAILABLE, str(exc)) from None
    except BaseException:
        await client.close()
        raise
    raise AssertionError("unreachable")


async def _admitted(client: Participant, meeting: str) -> dict[str, Any]:
    try:
        async with asyncio.timeout(ADMIT_TIMEOUT):
            while True:
                event = await client.events.get()
                if event["type"] == "joined":
                    return event
                if event["type"] in ("denied", "meeting_closed", "disconnected"):
                    raise Refused(HTTPStatus.FORBIDDEN, f"not admitted to meeting {meeting}")
    except TimeoutError:
        raise Refused(
            HTTPStatus.FORBIDDEN, f"not admitted to meeting {meeting} within {ADMIT_TIMEOUT:g} s"
        ) from None


class Session:
    """One WHIP publisher or WHEP player: its participant and its peer connection."""

    def __init__(self, endpoints: Endpoints, client: Participant, bearer: str, address: str) -> None:
        self.endpoints = endpoints
        self.client = client
        self.bearer = bearer
        self.address = address
        self.id = secrets.token_urlsafe(18)
        self.feedback_ssrc = random.getrandbits(32)
        self.answerer = Answerer(
            endpoints.config,
            self._from_peer,
            self._feedback_from_peer,
            self._connected,
            lambda: self.end("the peer connection failed"),
            endpoints.ice_servers(),
        )
        self.connected = False
        self.ended = False
        self._tasks: list[asyncio.Task[None]] = []
        self._jobs: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue(SEND_QUEUE)
        """What goes to the peer (packets, keyframe requests, NACKs), in order; full: dropped."""
        self.dropped = 0
        client.media_handler = self._from_meeting

    def start_tasks(self) -> None:
        self._tasks = [
            asyncio.create_task(self._events()),
            asyncio.create_task(self._deadline()),
            asyncio.create_task(self._pump()),
        ]

    def queue(self, job: Callable[[], Awaitable[None]]) -> None:
        try:
            self._jobs.put_nowait(job)
        except asyncio.QueueFull:  # a slow peer loses packets; nobody else notices
            self.dropped += 1

    async def _pump(self) -> None:
        while True:
            job = await self._jobs.get()
            try:
                await job()
            except ConnectionError:  # not connected yet, or any more: lost
                self.dropped += 1

    async def _deadline(self) -> None:
        await asyncio.sleep(CONNECT_TIMEOUT)
        if not self.connected:
            self.end(f"not connected within {CONNECT_TIMEOUT:g} s")

    async def _events(self) -> None:
        while True:
            event = await self.client.events.get()
            if event["type"] in FINAL:
                self.end(f"the meeting ended for it ({event['type']})")
                return
            self.observe(event)

    def observe(self, event: dict[str, Any]) -> None:
        """A meeting event (the subclasses follow the tracks they need)."""

    def _connected(self) -> None:
        self.connected = True

    def end(self, reason: str) -> None:
        if not self.ended:
            self.ended = True
            log.info("web: %s ends: %s", self.client.name or "a WHIP/WHEP session", reason)
            self.endpoints.forget(self)
            task = asyncio.get_running_loop().create_task(self.close())
            self.endpoints.closing.add(task)
            task.add_done_callback(self.endpoints.closing.discard)

    async def close(self) -> None:
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        await self.answerer.close()
        with contextlib.suppress(ConfError):
            self.client.send({"type": "leave"})
        await self.client.close()

    def _from_peer(
        self,
        kind: str,
        ssrc: int,
        sequence: int,
        timestamp: int,
        marker: bool,
        data: bytes,
        level: int | None = None,
        rid: str | None = None,
    ) -> None:
        """An RTP packet the WHIP client sent (a WHEP player sends none), with its audio level if any."""

    def _feedback_from_peer(self, slot: Outbound, keyframe: bool, lost: list[int]) -> None:
        """A WHEP player's keyframe request or NACK."""

    def _from_meeting(self, packet: bytes) -> None:
        """A packet the server forwarded to this participant."""

    def send_media(self, packet: bytes) -> None:
        link = self.client.link
        if link is not None and not link.is_closing:
            link.send_media(packet)


class Publisher(Session):
    """A WHIP client's audio and video, shared in the meeting as H.264 and Opus."""

    def __init__(self, endpoints: Endpoints, client: Participant, bearer: str, address: str) -> None:
        self.inbound: dict[str, Inbound] = {}  # before any packet can come
        self.simulcast: SimulcastLayers | None = None
        """The video's layers, one per RID, when the offer is a simulcast."""
        super().__init__(endpoints, client, bearer, address)

    async def begin(self, offer: str, simulcast: SimulcastOffer | None = None) -> str:
        """Answer the offer (its video's ``simulcast`` too, if any) and share its tracks; Refused (403) if
        the meeting lets it share none of them (a host's forbid, or a token's ``can_publish``)."""
        try:
            answer = await self.answerer.answer(offer, None, simulcast)
        except SimulcastError as exc:
            raise Refused(HTTPStatus.BAD_REQUEST, f"cannot take this simulcast: {exc}") from None
        self.inbound = {k: Inbound(k, random.getrandbits(32)) for k in self.answerer.receivers}
        if simulcast is not None and self.answerer.streams is not None and "video" in self.inbound:
            ssrcs = [random.getrandbits(32) for _ in simulcast.rids[:-1]] + [self.inbound["video"].ssrc]
            self.simulcast = SimulcastLayers(simulcast, ssrcs)
        for kind, slot in self.inbound.items():
            message: dict[str, Any] = {
                "type": "publish", "kind": kind, "ssrc": slot.ssrc, "codec": CODECS[kind], "id": kind
            }  # fmt: skip
            if kind == "video" and self.simulcast is not None and len(self.simulcast.positions) > 1:
                message["layers"] = self.simulcast.described()
            self.client.send(message)
        pending, refusals = set(self.inbound), []
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                while pending:
                    event = await self.client.events.get()
                    self.observe(event)
                    if event["type"] == "share_started" and event.get("name") == self.client.name:
                        pending.discard(str(event.get("kind")))
                    elif event["type"] == "error" and event.get("re") == "publish":
                        pending.discard(str(event.get("id")))
                        refusals.append(str(event.get("message")))
                    elif event["type"] in FINAL:
                        raise Refused(HTTPStatus.FORBIDDEN, f"the meeting ended for it ({event['type']})")
        except TimeoutError:
            raise Refused(
                HTTPStatus.SERVICE_UNAVAILABLE,
                f"the server did not take the tracks within {PUBLISH_TIMEOUT:g} s",
            ) from None
        if refusals and not any(slot.published for slot in self.inbound.values()):
            raise Refused(HTTPStatus.FORBIDDEN, "; ".join(refusals))
        self.start_tasks()
        return answer

    def observe(self, event: dict[str, Any]) -> None:
        if event["type"] in ("share_started", "share_stopped") and event.get("name") == self.client.name:
            slot = self.inbound.get(str(event.get("kind")))
            if slot is not None and slot.ssrc == event.get("ssrc"):
                slot.published = event["type"] == "share_started"
        elif event["type"] == "error" and event.get("re") == "publish":
            log.info("web: WHIP publisher %s may not share: %s", self.client.name, event.get("message"))
        elif event["type"] == "layers_active" and self.simulcast is not None:
            active = event.get("active")
            if isinstance(active, list) and isinstance(event.get("ssrc"), int):
                for ssrc in self.simulcast.set_active(event["ssrc"], active):
                    self._keyframe("video", ssrc)  # a layer wanted again starts at a keyframe

    def stats(self) -> dict[str, object]:
        """What ``server_stats`` says of this publisher (its simulcast layers, when it sends some)."""
        out: dict[str, object] = {"name": self.client.name, "meeting": self.client.meeting}
        for kind, slot in self.inbound.items():
            out[kind] = {"ssrc": slot.ssrc, "packets": slot.packets}
        if self.simulcast is not None:
            out.update(self.simulcast.stats())
            streams = self.answerer.streams
            if streams is not None:
                out["unknown_rid"], out["unknown_ssrc"] = streams.unknown_rid, streams.unknown_ssrc
        return out

    def _from_peer(
        self,
        kind: str,
        ssrc: int,
        sequence: int,
        timestamp: int,
        marker: bool,
        data: bytes,
        level: int | None = None,
        rid: str | None = None,
    ) -> None:
        slot = self.inbound.get(kind)
        if slot is None or not slot.published:
            return
        if kind == "video" and self.simulcast is not None:
            if rid is None:
                return
            now = asyncio.get_running_loop().time()
            packets, asks = self.simulcast.packet(rid, ssrc, sequence, timestamp, marker, data, now)
            for browser_ssrc in asks:
                self._keyframe("video", browser_ssrc)
            for layer_packet in packets:
                self.send_media(layer_packet)
            return
        packet = slot.rewrite(ssrc, sequence, timestamp, marker, data, level)
        if packet is not None:
            self.send_media(packet)

    def _connected(self) -> None:
        super()._connected()
        video = self.inbound.get("video")
        if video is not None and video.browser_ssrc is not None:
            self._keyframe("video", video.browser_ssrc)

    def _keyframe(self, kind: str, browser_ssrc: int) -> None:
        self.queue(partial(self.answerer.request_keyframe, kind, browser_ssrc))

    def _from_meeting(self, packet: bytes) -> None:
        """Keyframe requests and NACKs for the publisher's tracks (or simulcast layers) go to the WHIP
        client, for the RTP stream they are about."""
        if not is_rtcp(packet):
            return
        try:
            parts = parse_compound(packet)
        except ProtocolError:
            return
        mine = {s.ssrc: s for s in self.inbound.values() if s.browser_ssrc is not None}
        layers = self.simulcast
        for part in parts:
            asked = [part.media_ssrc] if isinstance(part, Pli) else []
            if isinstance(part, Fir):
                asked = [ssrc for ssrc, _ in part.entries]
            for ssrc in asked:
                if layers is not None and layers.position(ssrc) is not None:
                    for browser_ssrc in layers.sources(ssrc):
                        self._keyframe("video", browser_ssrc)
                elif ssrc in mine:
                    slot = mine[ssrc]
                    assert slot.browser_ssrc is not None
                    self._keyframe(slot.kind, slot.browser_ssrc)
            if not isinstance(part, Nack):
                continue
            if layers is not None and layers.position(part.media_ssrc) is not None:
                asking = layers.nack(part.media_ssrc, list(part.lost))
                if asking is not None:
                    self.queue(partial(self.answerer.nack, "video", *asking))
            elif part.media_ssrc in mine:
                slot = mine[part.media_ssrc]
                assert slot.browser_ssrc is not None
                lost = [slot.browser_sequence(s) for s in part.lost]
                self.queue(partial(self.answerer.nack, slot.kind, slot.browser_ssrc, lost))


class Player(Session):
    """A WHEP player of one meeting track."""

    def __init__(self, endpoints: Endpoints, client: Participant, bearer: str, address: str) -> None:
        self.participant, self.kind = "", ""
        self.source: int | None = None  # the meeting track played, once begun
        self.slot: Outbound | None = None
        super().__init__(endpoints, client, bearer, address)

    async def begin(self, offer: str, participant: str, kind: str, joined: dict[str, Any]) -> str:
        self.participant, self.kind = participant, kind
        for track in joined.get("tracks") or ():
            if self._matches(track):
                self.source = int(track["ssrc"])
        source, self.source = self.source, None  # nothing is played before the slot is negotiated
        if source is None:
            raise Refused(HTTPStatus.NOT_FOUND, f"{participant!r} shares no {kind} in this meeting now")
        try:
            answer = await self.answerer.answer(offer, "audio" if kind == "audio" else "video")
        except ValueError as exc:
            raise Refused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, str(exc)) from None
        assert self.answerer.slot is not None
        self.slot = self.answerer.slot
        self.slot.assign(source, participant, kind)
        self.source = source
        self.start_tasks()
        return answer

    def _matches(self, event: dict[str, Any]) -> bool:
        return (
            str(event.get("name", "")).casefold() == self.participant.casefold()
            and event.get("kind") == self.kind
        )

    def observe(self, event: dict[str, Any]) -> None:
        if self.slot is None:
            return
        if event["type"] == "share_started" and self._matches(event):
            self.source = int(event["ssrc"])
            self.slot.assign(self.source, self.participant, self.kind)
            self._keyframe()
        elif event["type"] == "share_stopped" and self._matches(event):
            self.source = None
            self.slot.assign(None)

    def _connected(self) -> None:
        super()._connected()
        self._keyframe()

    def _keyframe(self) -> None:
        if self.source is not None and self.kind != "audio":
            self.send_media(bytes(Pli(self.feedback_ssrc, self.source)))

    def _from_meeting(self, packet: bytes) -> None:
        if self.source is None or self.slot is None or is_rtcp(packet):
            return
        try:
            if peek_ssrc(packet) != self.source:
                return
        except ProtocolError:
            return
        data = self.slot.rewrite(packet)
        if data is not None:
            self.queue(partial(self.answerer.send_rtp, data))

    def _feedback_from_peer(self, slot: Outbound, keyframe: bool, lost: list[int]) -> None:
        if keyframe:
            self._keyframe()
        if lost and slot.source is not None:
            self.send_media(
                bytes(Nack(self.feedback_ssrc, slot.source, [slot.source_sequence(s) for s in lost]))
            )


class SpeakerFollower:
    """Which meeting video a ``/whep/MEETING/speaker`` player shows. Sans-I/O: fed the meeting's events
    (the ``joined`` tracks, ``share_started``, ``share_stopped``, ``participant_left``,
    ``active_speaker``), it answers with the source SSRC to show from now on.

    The speaker's camera, else their screen. When the speaker shares no video, the picture stays on
    whoever it shows; when that track stops, it moves to the speaker's other video, else to the first
    video still shared (someone rather than a frozen picture), else to nothing.
    """

    def __init__(self) -> None:
        self.videos: dict[str, dict[str, tuple[str, int]]] = {}
        """Casefolded name: kind (video or screen): (name as given, SSRC); in the order they shared."""
        self.speaker: str | None = None
        """The active speaker's casefolded name, once named."""
        self.source: int | None = None
        self.owner, self.kind = "", ""

    def start(self, tracks: list[dict[str, Any]]) -> int | None:
        """The tracks of the ``joined`` answer; the source to show first (None: no video yet)."""
        for track in tracks:
            self._track(track, True)
        self._choose()
        return self.source

    def observe(self, event: dict[str, Any]) -> bool:
        """One meeting event; True if the source to show (:attr:`source`, None for nothing) changed."""
        kind = event.get("type")
        if kind in ("share_started", "share_stopped"):
            self._track(event, kind == "share_started")
        elif kind == "participant_left":
            self.videos.pop(str(event.get("name", "")).casefold(), None)
        elif kind == "active_speaker":
            self.speaker = str(event.get("name", "")).casefold()
        else:
            return False
        before = self.source
        self._choose()
        return self.source != before

    def _track(self, event: dict[str, Any], started: bool) -> None:
        kind, name, ssrc = event.get("kind"), str(event.get("name", "")), event.get("ssrc")
        if kind not in SPEAKER_KINDS or not isinstance(ssrc, int):
            return
        shared = self.videos.setdefault(name.casefold(), {})
        if started:
            shared[kind] = (name, ssrc)
        elif kind in shared and shared[kind][1] == ssrc:
            del shared[kind]
        if not shared:
            del self.videos[name.casefold()]

    def _choose(self) -> None:
        speaker = self.videos.get(self.speaker or "")
        if speaker:
            self._show(speaker)
        elif not any(self.source == ssrc for shared in self.videos.values() for _, ssrc in shared.values()):
            self._show(next(iter(self.videos.values()), {}))

    def _show(self, shared: dict[str, tuple[str, int]]) -> None:
        for kind in SPEAKER_KINDS:
            if kind in shared:
                (self.owner, self.source), self.kind = shared[kind], kind
                return
        self.source, self.owner, self.kind = None, "", ""


class SpeakerPlayer(Player):
    """A WHEP player of the active speaker's video: one outbound slot, switched between the meeting's
    video tracks as :class:`SpeakerFollower` says, at the new track's first keyframe (asked for with a
    PLI); until it comes, the old track goes on."""

    def __init__(self, endpoints: Endpoints, client: Participant, bearer: str, address: str) -> None:
        self.follower = SpeakerFollower()
        self.pending: int | None = None
        """The track switched to, whose keyframe has not come yet."""
        self._asked = 0.0  # when the pending track's keyframe was last asked for (loop time)
        self.switches = 0
        super().__init__(endpoints, client, bearer, address)

    async def begin_speaker(self, offer: str, joined: dict[str, Any]) -> str:
        self.kind = "video"
        first = self.follower.start(list(joined.get("tracks") or ()))
        try:
            answer = await self.answerer.answer(offer, "video")
        except ValueError as exc:
            raise Refused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, str(exc)) from None
        assert self.answerer.slot is not None
        self.slot = self.answerer.slot
        if first is not None:
            self.slot.assign(first, self.follower.owner, self.follower.kind)
        self.source = first
        self.start_tasks()
        return answer

    def observe(self, event: dict[str, Any]) -> None:
        if self.slot is None or not self.follower.observe(event):
            return
        wanted = self.follower.source
        if wanted is None:  # no video left in the meeting
            self.pending, self.source = None, None
            self.slot.assign(None)
        elif wanted == self.source:  # back to the track shown before the keyframe came
            self.pending = None
        else:
            self.pending = wanted
            self._ask_pending()

    def _ask_pending(self) -> None:
        if self.pending is not None:
            self._asked = asyncio.get_running_loop().time()
            self.send_media(bytes(Pli(self.feedback_ssrc, self.pending)))

    def _from_meeting(self, packet: bytes) -> None:
        if self.pending is not None and self.slot is not None and not is_rtcp(packet):
            try:
                pending = peek_ssrc(packet) == self.pending
                if pending and opens_keyframe(RtpPacket.parse(packet).payload):
                    self.slot.assign(self.pending, self.follower.owner, self.follower.kind)
                    self.source, self.pending = self.pending, None
                    self.switches += 1
                    log.info("web: %s now shows %s", self.client.name, self.follower.owner)
                elif pending and asyncio.get_running_loop().time() - self._asked >= KEYFRAME_RETRY:
                    self._ask_pending()
            except ProtocolError:
                return
        super()._from_meeting(packet)


class Endpoints:
    """The WHIP and WHEP endpoints of one web service, and their sessions."""

    def __init__(
        self,
        context: ServiceContext,
        config: WebConfig,
        ice_servers: Callable[[], list[IceServer]],
        admit: Callable[[str], str | None],
        count: Callable[[str, int], None],
    ) -> None:
        self.context = context
        self.config = config
        self.ice_servers = ice_servers
        self._admit = admit
        """Why one more session from an address is refused (the web service's limits), if it is."""
        self._count = count
        self.sessions: dict[str, Session] = {}
        self.closing: set[asyncio.Task[None]] = set()

    def publisher_stats(self) -> list[dict[str, object]]:
        return [s.stats() for s in self.sessions.values() if isinstance(s, Publisher)]

    def forget(self, session: Session) -> None:
        if self.sessions.pop(session.id, None) is not None:
            self._count(session.address, -1)

    async def close(self) -> None:
        for session in list(self.sessions.values()):
            session.ended = True
            self.forget(session)
            await session.close()

    async def respond(self, request: Request, address: str) -> Response:
        try:
            return await self._route(request, address)
        except Refused as refused:
            return refused.response

    async def _route(self, request: Request, address: str) -> Response:
        path = request.path
        whip = path[0] == "whip"
        if request.method == "OPTIONS":
            return Response(HTTPStatus.NO_CONTENT, headers=PREFLIGHT)
        speaker = not whip and len(path) >= 3 and path[2] == SPEAKER
        if speaker and len(path) == 3:  # the active speaker's endpoint
            if request.method != "POST":
                raise Refused(HTTPStatus.METHOD_NOT_ALLOWED, "POST an SDP offer here", Allow="POST, OPTIONS")
            return await self._create(request, address)
        if len(path) == (2 if whip else 4) and not (speaker and request.method != "POST"):  # the endpoint
            if request.method != "POST":
                raise Refused(HTTPStatus.METHOD_NOT_ALLOWED, "POST an SDP offer here", Allow="POST, OPTIONS")
            return await self._create(request, address)
        resource = len(path) == (3 if whip else 5) or (
            speaker and len(path) == 4 and request.method != "POST"
        )
        if resource:  # a session's resource
            session = self.sessions.get(path[-1])
            if session is None or session.client.meeting is None:
                raise Refused(HTTPStatus.NOT_FOUND, "no such session (it has ended)")
            self._check_bearer(request, session)
            if request.method == "DELETE":
                session.end("the client deleted it")
                return Response(HTTPStatus.OK)
            if request.method == "PATCH":
                return await self._trickle(request, session)
            raise Refused(
                HTTPStatus.METHOD_NOT_ALLOWED, "PATCH or DELETE a session", Allow="PATCH, DELETE, OPTIONS"
            )
        raise Refused(
            HTTPStatus.NOT_FOUND,
            "WHIP: /whip/MEETING; WHEP: /whep/MEETING/NAME/audio|video|screen or /whep/MEETING/speaker",
        )

    @staticmethod
    def _check_bearer(request: Request, session: Session) -> None:
        given = request.bearer or ""
        if not hmac.compare_digest(given.encode(), session.bearer.encode()):
            raise Refused(
                HTTPStatus.UNAUTHORIZED,
                "give the credential this session was made with",
                **{"WWW-Authenticate": "Bearer"},
            )

    async def _trickle(self, request: Request, session: Session) -> Response:
        if request.content_type != "application/trickle-ice-sdpfrag":
            raise Refused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "PATCH carries application/trickle-ice-sdpfrag")
        lines = request.body.decode("utf-8", "replace").splitlines()
        candidates = [line[2:] for line in lines if line.startswith("a=candidate:")]
        end = any(line.strip() == "a=end-of-candidates" for line in lines)
        try:
            await session.answerer.add_candidates(candidates, end)
        except (ValueError, IndexError) as exc:
            raise Refused(HTTPStatus.BAD_REQUEST, f"bad candidate: {exc}") from None
        return Response(HTTPStatus.NO_CONTENT)

    async def _create(self, request: Request, address: str) -> Response:
        whip = request.path[0] == "whip"
        meeting = request.path[1]
        if request.content_type != "application/sdp":
            raise Refused(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "POST an SDP offer (Content-Type: application/sdp)"
            )
        bearer = request.bearer
        if bearer is None or len(bearer) > MAX_TOKEN_CHARS:
            raise Refused(
                HTTPStatus.UNAUTHORIZED,
                "give the meeting's passcode or an access token: Authorization: Bearer CODE",
                **{"WWW-Authenticate": "Bearer"},
            )
        kind, participant = "", ""
        speaker = not whip and len(request.path) == 3
        if not whip and not speaker:
            participant, kind = request.path[2], request.path[3]
            if kind not in KINDS:
                raise Refused(HTTPStatus.NOT_FOUND, f"KIND is audio, video or screen, not {kind[:20]!r}")
        named = token_name(bearer)
        if named is None and len(bearer) > MAX_PASSCODE_CHARS:
            raise Refused(HTTPStatus.UNAUTHORIZED, "that is neither a passcode nor an access token")
        tag = "WHIP" if whip else "WHEP"
        name = named or (request.query.get("name") or ["publisher" if whip else "viewer"])[0]
        if len(name) > NAME_CHARS:
            raise Refused(HTTPStatus.BAD_REQUEST, f"a name has at most {NAME_CHARS} characters here")
        names = [f"{name} ({tag})"] + ([] if named else [f"{name} ({tag} {n})" for n in range(2, 10)])
        try:
            for candidate in names:
                check_name(candidate)
        except ProtocolError as exc:
            raise Refused(HTTPStatus.BAD_REQUEST, str(exc)) from None
        refused = self._admit(address)
        if refused is not None:
            raise Refused(HTTPStatus.SERVICE_UNAVAILABLE, refused)
        offer = request.body.decode("utf-8", "replace")
        simulcast = None
        if whip:
            try:
                simulcast = parse_offer(offer)
            except SimulcastError as exc:
                raise Refused(HTTPStatus.BAD_REQUEST, f"cannot take this simulcast: {exc}") from None
        self._count(address, 1)  # held while joining, so that many at once cannot pass the limit
        try:
            client, joined = await _join(
                self.context, meeting, names, bearer, named is not None, f"web {address}"
            )
        except BaseException:
            self._count(address, -1)
            raise
        session: Session
        if whip:
            session = Publisher(self, client, bearer, address)
        elif speaker:
            session = SpeakerPlayer(self, client, bearer, address)
        else:
            session = Player(self, client, bearer, address)
        self.sessions[session.id] = session
        try:
            if isinstance(session, Publisher):
                try:
                    answer = await session.begin(offer, simulcast)
                except ValueError as exc:
                    raise Refused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, str(exc)) from None
            elif isinstance(session, SpeakerPlayer):
                answer = await session.begin_speaker(offer, joined)
            else:
                assert isinstance(session, Player)
                answer = await session.begin(offer, participant, kind, joined)
        except BaseException:
            session.end("its offer was refused")
            raise
        location = "/" + "/".join(quote(p, safe="") for p in [*request.path, session.id])
        log.info("web: %s joined meeting %s (%s)", client.name, meeting, address)
        return Response(
            HTTPStatus.CREATED,
            answer.encode(),
            {"Content-Type": "application/sdp", "Location": location, "ETag": f'"{session.id}"'},
        )
