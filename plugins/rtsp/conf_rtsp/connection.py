"""One RTSP connection: reading requests, answering each method, and interleaved packets.

Requests are answered one at a time in the order they came. A request that does not parse is answered
with its status (400, 413, 414, 505) and the connection is closed; so is a client that takes longer than
the request timeout to finish a request, or that queues too many.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import unquote, urlsplit

from conf_cli import ConfError, ProtocolError, __version__
from conf_cli.protocol.sdp import SessionDescription
from conf_cli.urls import redact_url

from .delivery import Delivery, InterleavedDelivery, UdpDelivery
from .files import MediaFile
from .meeting import Publisher, Refused, Viewer, announced_streams, join_meeting
from .presentations import FilePresentation, PublisherPresentation, ViewerPresentation
from .session import Session, SessionTrack, StateError
from .targets import FileTarget, PublishTarget, Resolved, TrackTarget, parse_target
from .wire import (
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

if TYPE_CHECKING:
    from conf_cli import ServiceContext

    from .delivery import UdpPorts
    from .files import MediaProbes

log = logging.getLogger("conf.rtsp")

METHODS = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, ANNOUNCE, RECORD"
MAX_QUEUED = 16
REQUEST_TIMEOUT = 5.0
"""Seconds a client may take to finish a request it has started sending."""
IDLE_TIMEOUT = 120.0
"""Seconds a connection without sessions may stay silent."""
MAX_SESSIONS = 512


class Gateway(Protocol):
    """What a connection uses of the gateway that accepted it (:class:`~conf_rtsp.gateway.RtspGateway`)."""

    context: ServiceContext
    host: str
    media_dir: Path | None
    sessions: dict[str, Session]
    stats: dict[str, int]
    udp: UdpPorts
    probes: MediaProbes

    def admit(self, connection: Connection) -> str | None: ...

    def forget(self, connection: Connection) -> None: ...

    def new_session(self, owner: Connection, resource: Any) -> Session: ...

    def route_udp(self, session: Session, track: SessionTrack, host: str, ports: tuple[int, int]) -> None: ...

    async def end_session(self, session: Session, reason: str) -> None: ...

    def end_session_soon(self, session: Session, reason: str) -> None: ...


@dataclass
class _Reply(Exception):
    status: int
    message: str = ""
    headers: tuple[tuple[str, str], ...] = ()


class Connection(asyncio.Protocol):
    """One client's RTSP connection."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.reader = RtspReader()
        self.transport: asyncio.Transport | None = None
        self.peer = ("?", 0)
        self.local_host = gateway.host
        self.queue: asyncio.Queue[RtspRequest | None] = asyncio.Queue()
        self.worker: asyncio.Task[None] | None = None
        self.pending_since: float | None = None
        self.last_active = time.monotonic()
        self.viewers: dict[str, Viewer] = {}
        """Meeting tracks joined by DESCRIBE, waiting for their SETUP, by presentation URL."""
        self.publishers: dict[str, PublisherPresentation] = {}
        """ANNOUNCEd presentations waiting for their SETUP, by presentation URL."""
        self.channels: dict[int, tuple[Session, SessionTrack]] = {}
        self.closed = False

    # -- asyncio.Protocol -----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.peer = (str(peer[0]), int(peer[1]))
        local = transport.get_extra_info("sockname")
        if local:
            self.local_host = str(local[0])
        refused = self.gateway.admit(self)
        if refused is not None:
            log.info("RTSP %s:%s refused: %s", *self.peer, refused)
            self.closed = True
            self.transport.write(bytes(self._response(503, None, refused)))
            self.transport.close()
            return
        self.worker = asyncio.get_running_loop().create_task(self._work())

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.last_active = time.monotonic()
        try:
            messages = self.reader.feed(data)
        except RtspParseError as exc:
            self.gateway.stats["bad_requests"] += 1
            self._fail(exc.status, str(exc))
            return
        self.pending_since = (self.pending_since or time.monotonic()) if self.reader.pending else None
        for message in messages:
            if isinstance(message, Interleaved):
                self._interleaved(message)
            elif isinstance(message, RtspRequest):
                if self.queue.qsize() >= MAX_QUEUED:
                    self._fail(503, "too many requests waiting for an answer")
                    return
                self.queue.put_nowait(message)
            # responses from a client (to requests the server never sends) are ignored

    def connection_lost(self, exc: Exception | None) -> None:
        self.abort("connection closed")
        task = asyncio.get_running_loop().create_task(self.release())
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    # -- life -----------------------------------------------------------------------------------------

    def _fail(self, status: int, message: str) -> None:
        log.info("RTSP %s:%s: %s", *self.peer, redact_url(message))
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(bytes(self._response(status, None, message)))
        self.abort(message)

    def abort(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.queue.put_nowait(None)
        if self.transport is not None:
            self.transport.close()

    async def release(self) -> None:
        """Free what this connection holds: its waiting participants and its interleaved sessions."""
        self.gateway.forget(self)
        if self.worker is not None and self.worker is not asyncio.current_task():
            self.worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.worker
        viewers, self.viewers = list(self.viewers.values()), {}
        publishers, self.publishers = list(self.publishers.values()), {}
        for viewer in viewers:
            await viewer.close()
        for presentation in publishers:
            await presentation.close()
        for session in list(self.gateway.sessions.values()):
            if session.owner is self and (
                not session.tracks
                or any(isinstance(t.delivery, InterleavedDelivery) for t in session.tracks.values())
            ):
                await self.gateway.end_session(session, "its connection closed")

    def check_timeouts(self, now: float) -> None:
        if self.closed:
            return
        if self.pending_since is not None and now - self.pending_since > REQUEST_TIMEOUT:
            self._fail(408, f"the request was not finished within {REQUEST_TIMEOUT:g} s")
        elif now - self.last_active > IDLE_TIMEOUT and not any(
            s.owner is self for s in self.gateway.sessions.values()
        ):
            self.abort("idle")

    async def _work(self) -> None:
        while (request := await self.queue.get()) is not None:
            self.gateway.stats["requests"] += 1
            try:
                response = await self._handle(request)
            except _Reply as reply:
                response = self._response(reply.status, request, reply.message)
                for name, value in reply.headers:
                    response.headers.set(name, value)
            except Refused as exc:
                response = self._response(exc.status, request, str(exc))
                if exc.status == 401:
                    response.headers.set("WWW-Authenticate", 'Basic realm="conf meeting"')
            except StateError as exc:
                response = self._response(455, request, str(exc))
            except (ProtocolError, ConfError) as exc:
                status = exc.status if isinstance(exc, RtspParseError) else 400
                response = self._response(status, request, str(exc))
            except Exception as exc:  # a fault of the gateway's own: this request fails, nothing else
                url = redact_url(request.url)[:200]  # never a passcode in the log
                log.warning("RTSP %s %s failed: %s", request.method[:32], url, redact_url(repr(exc)))
                response = self._response(500, request, "the server could not handle this request")
            if self.transport is None or self.transport.is_closing():
                return
            self.transport.write(bytes(response))

    def _response(self, status: int, request: RtspRequest | None, message: str = "") -> RtspResponse:
        headers = Headers()
        cseq = request.cseq if request is not None else None
        if cseq is not None and cseq.isascii() and cseq.isdigit() and len(cseq) <= 10:
            headers.set("CSeq", cseq)
        headers.set("Server", f"conf/{__version__}")
        reason = ""
        if message and status >= 400:
            reason = message.replace("\r", " ").replace("\n", " ")[:200]
        return RtspResponse(status, reason, headers)

    # -- requests -------------------------------------------------------------------------------------

    async def _handle(self, request: RtspRequest) -> RtspResponse:
        method = request.method.upper()
        if request.cseq is None:
            raise _Reply(400, "the request has no CSeq")
        session = self._session(request)
        if session is not None:
            session.touch(time.monotonic())
        if method == "OPTIONS":
            response = self._response(200, request)
            response.headers.set("Public", METHODS)
            return response
        if method == "GET_PARAMETER":
            return self._with_session(self._response(200, request), session)
        handler = {
            "DESCRIBE": self._describe,
            "ANNOUNCE": self._announce,
            "SETUP": self._setup,
            "PLAY": self._play,
            "PAUSE": self._pause,
            "RECORD": self._record,
            "TEARDOWN": self._teardown,
        }.get(method)
        if handler is None:
            raise _Reply(501, f"{method[:32]} is not implemented", (("Public", METHODS),))
        return await handler(request, session)

    def _session(self, request: RtspRequest) -> Session | None:
        value = request.headers.get("Session")
        if value is None:
            return None
        session = self.gateway.sessions.get(value.split(";")[0].strip())
        if session is None:
            raise _Reply(454, "no such session")
        return session

    def _with_session(self, response: RtspResponse, session: Session | None) -> RtspResponse:
        if session is not None:
            response.headers.set("Session", session.header)
        return response

    def _resolve(self, request: RtspRequest) -> Resolved:
        try:
            return parse_target(request.url)
        except ProtocolError as exc:
            raise _Reply(404, str(exc)) from None

    def _credentials(self, request: RtspRequest) -> tuple[str, str] | None:
        found = basic_credentials(request.headers.get("Authorization"))
        if found is None:
            try:
                parts = urlsplit(request.url)
            except ValueError:
                return None
            if parts.password is not None:
                found = (unquote(parts.username or ""), unquote(parts.password))
        return found

    def _origin(self) -> str:
        return f"rtsp {self.peer[0]}:{self.peer[1]}"

    async def _media_file(self, target: FileTarget) -> MediaFile:
        folder = self.gateway.media_dir
        if folder is None:
            raise _Reply(404, "this server serves no files (conf server --media-dir DIR)")
        path = folder / target.name
        if Path(target.name).name != target.name or not path.is_file():
            raise _Reply(404, f"no file {target.name!r}")
        try:
            return await self.gateway.probes.get(path)
        except ConfError as exc:
            raise _Reply(415, str(exc)) from None

    async def _describe(self, request: RtspRequest, session: Session | None) -> RtspResponse:
        resolved = self._resolve(request)
        target = resolved.target
        if isinstance(target, FileTarget):
            sdp = (await self._media_file(target)).describe(resolved.base, self.local_host)
        elif isinstance(target, TrackTarget):
            viewer = await self._join_viewer(request, target)
            old = self.viewers.pop(resolved.base, None)
            self.viewers[resolved.base] = viewer  # held before any await: the connection frees it
            if old is not None:
                await old.close()
            sdp = viewer.describe(resolved.base, self.local_host)
        else:
            raise _Reply(
                405,
                "publish here with ANNOUNCE and RECORD",
                (("Allow", "OPTIONS, ANNOUNCE, SETUP, RECORD, TEARDOWN"),),
            )
        response = self._response(200, request)
        response.headers.set("Content-Type", "application/sdp")
        response.headers.set("Content-Base", resolved.base + "/")
        response.body = str(sdp).encode()
        return response

    async def _join_viewer(self, request: RtspRequest, target: TrackTarget) -> Viewer:
        credentials = self._credentials(request)
        given = "".join(c for c in credentials[0] if c.isprintable()) if credentials else ""
        user = given.lstrip("/ ").strip() or self.peer[0]  # a meeting name is printable, never a /command
        names = [f"{user[:40]} (RTSP viewer)", f"{user[:40]} (RTSP viewer {self.peer[1]})"]
        client, joined = await join_meeting(
            self.gateway.context,
            target.meeting,
            names,
            credentials[1] if credentials else None,
            self._origin(),
        )
        try:
            return Viewer(
                client,
                joined,
                target.participant,
                target.kind,
                lambda reason: self._viewer_ended(client, reason),
            )
        except BaseException:
            await client.close()
            raise

    def _viewer_ended(self, client: Any, reason: str) -> None:
        for session in list(self.gateway.sessions.values()):
            resource = session.resource
            if isinstance(resource, ViewerPresentation) and resource.viewer.client is client:
                self.gateway.end_session_soon(session, f"the meeting ended for it ({reason})")

    async def _announce(self, request: RtspRequest, session: Session | None) -> RtspResponse:
        resolved = self._resolve(request)
        target = resolved.target
        if not isinstance(target, PublishTarget):
            raise _Reply(405, "ANNOUNCE to rtsp://HOST:PORT/MEETING/NAME")
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/sdp":
            raise _Reply(415, "ANNOUNCE carries an application/sdp body")
        try:
            streams = announced_streams(SessionDescription.parse(request.body))
        except ProtocolError as exc:
            raise _Reply(400, f"bad SDP: {exc}") from None
        credentials = self._credentials(request)
        client, _ = await join_meeting(
            self.gateway.context,
            target.meeting,
            [f"{target.name[:48]} (RTSP)", f"{target.name[:40]} (RTSP {self.peer[1]})"],
            credentials[1] if credentials else None,
            self._origin(),
        )
        publisher = Publisher(client, streams, lambda reason: self._publisher_ended(client, reason))
        old = self.publishers.pop(resolved.base, None)
        self.publishers[resolved.base] = PublisherPresentation(publisher, resolved.base)
        if old is not None:
            await old.close()
        return self._response(200, request)

    def _publisher_ended(self, client: Any, reason: str) -> None:
        for session in list(self.gateway.sessions.values()):
            resource = session.resource
            if isinstance(resource, PublisherPresentation) and resource.publisher.client is client:
                self.gateway.end_session_soon(session, f"the meeting ended for it ({reason})")

    # -- SETUP ----------------------------------------------------------------------------------------

    async def _setup(self, request: RtspRequest, session: Session | None) -> RtspResponse:
        resolved = self._resolve(request)
        control = resolved.control or "trackID=0"
        value = request.headers.get("Transport")
        if not value:
            raise _Reply(461, "SETUP needs a Transport header")
        spec = self._choose_transport(parse_transport(value))
        if session is None:
            if len(self.gateway.sessions) >= MAX_SESSIONS:
                raise _Reply(453, "too many RTSP sessions on this server")
            resource = await self._resource_for(request, resolved)
            session = self.gateway.new_session(self, resource)
            fresh = True
        else:
            fresh = False
            if session.state != "ready" and session.state != "init":
                raise _Reply(455, "SETUP is valid only before PLAY or RECORD")
        try:
            track = self._track(session, resolved, control)
            delivery = self._delivery(spec, session, track)
            track.delivery = delivery
            self._attach(session, track, delivery)
            session.tracks[control] = track
            session.apply("SETUP")
        except BaseException:
            if fresh:
                await self.gateway.end_session(session, "its SETUP failed")
            raise
        response = self._response(200, request)
        response.headers.set("Transport", delivery.describe())
        return self._with_session(response, session)

    def _choose_transport(self, specs: list[TransportSpec]) -> TransportSpec:
        for spec in specs:
            if spec.protocol not in ("RTP/AVP", "RTP/AVP/TCP") or not spec.unicast:
                continue
            if spec.tcp or spec.client_port is not None:
                return spec
        raise _Reply(
            461, "unsupported transport: use RTP/AVP;unicast;client_port=N-M or RTP/AVP/TCP;interleaved=N-M"
        )

    async def _resource_for(self, request: RtspRequest, resolved: Resolved) -> Any:
        target = resolved.target
        if isinstance(target, FileTarget):
            return FilePresentation(await self._media_file(target), resolved.base)
        if isinstance(target, TrackTarget):
            viewer = self.viewers.pop(resolved.base, None)
            if viewer is not None and viewer.ended:  # the meeting ended for it since DESCRIBE
                await viewer.close()
                viewer = None
            if viewer is None:
                viewer = await self._join_viewer(request, target)
            return ViewerPresentation(viewer)
        presentation = self.publishers.pop(resolved.base, None)
        if presentation is None:
            raise _Reply(455, "ANNOUNCE this stream before its SETUP")
        return presentation

    def _track(self, session: Session, resolved: Resolved, control: str) -> SessionTrack:
        resource = session.resource
        if getattr(resource, "base", resolved.base) != resolved.base and not isinstance(
            resource, ViewerPresentation
        ):
            raise _Reply(459, "this session belongs to another presentation")
        if isinstance(resource, FilePresentation):
            for track in resource.media.tracks:
                if track.control == control:
                    return SessionTrack(control, track.index, None)
        elif isinstance(resource, ViewerPresentation):
            if control == "trackID=0":
                return SessionTrack(control, 0, None)
        elif isinstance(resource, PublisherPresentation):
            for index, stream in enumerate(resource.publisher.streams):
                if stream.control == control:
                    return SessionTrack(control, index, None)
        raise _Reply(404, f"no stream {control!r} in this presentation")

    def _delivery(self, spec: TransportSpec, session: Session, track: SessionTrack) -> Delivery:
        assert self.transport is not None
        if spec.tcp:
            channels = spec.interleaved
            if channels is None:
                used = set(self.channels)
                first = next(c for c in range(0, 254, 2) if c not in used and c + 1 not in used)
                channels = (first, first + 1)
            if channels[0] == channels[1]:
                raise _Reply(461, "interleaved needs two channels, for RTP and RTCP")
            if channels[0] in self.channels or channels[1] in self.channels:
                raise _Reply(461, f"interleaved channels {channels[0]}-{channels[1]} are in use")
            return InterleavedDelivery(self.transport, channels, None)
        assert spec.client_port is not None
        if spec.client_port[0] == spec.client_port[1]:
            raise _Reply(461, "client_port needs two ports, for RTP and RTCP")
        if set(spec.client_port) & set(self.gateway.udp.ports) and self.peer[0] == self.local_host:
            raise _Reply(461, "client_port names the server's own RTP ports")
        return UdpDelivery(self.gateway.udp, self.peer[0], spec.client_port, None)

    def _attach(self, session: Session, track: SessionTrack, delivery: Delivery) -> None:
        resource = session.resource
        if isinstance(delivery, InterleavedDelivery):
            for channel in delivery.channels:
                self.channels[channel] = (session, track)
        else:
            assert isinstance(delivery, UdpDelivery)
            self.gateway.route_udp(session, track, delivery.host, delivery.client_port)
        if isinstance(resource, FilePresentation):
            resource.deliveries[track.index] = delivery
        elif isinstance(resource, ViewerPresentation):
            resource.delivery = delivery

    # -- PLAY, PAUSE, RECORD, TEARDOWN --------------------------------------------------------------------

    def _require(self, session: Session | None) -> Session:
        if session is None:
            raise _Reply(454, "this request needs the Session header from SETUP")
        return session

    async def _play(self, request: RtspRequest, session: Session | None) -> RtspResponse:
        session = self._require(session)
        resource = session.resource
        if isinstance(resource, PublisherPresentation):
            raise _Reply(455, "PLAY is not valid on a published stream; use RECORD")
        start = parse_npt_range(request.headers.get("Range"))
        if isinstance(resource, FilePresentation) and start is not None:
            duration = resource.media.duration
            if duration is not None and start >= duration:
                raise _Reply(457, f"the file lasts {duration:.3f} s")
        session.apply("PLAY")
        response = self._response(200, request)
        if isinstance(resource, FilePresentation):
            stream = resource.prepare()
            if start is not None:
                stream.seek(start)
            end = f"{resource.media.duration:.3f}" if resource.media.duration else ""
            response.headers.set("Range", f"npt={stream.position:.3f}-{end}")
            response.headers.set("RTP-Info", stream.rtp_info(resource.base))
        else:
            response.headers.set("Range", "npt=now-")
        resource.play()
        return self._with_session(response, session)

    async def _pause(self, request: RtspRequest, session: Session | None) -> RtspResponse:
        session = self._require(session)
        session.apply("PAUSE")
        session.resource.pause()
        return self._with_session(self._response(200, request), session)

    async def _record(self, request: RtspRequest, session: Session | None) -> RtspResponse:
        session = self._require(session)
        resource = session.resource
        if not isinstance(resource, PublisherPresentation):
            raise _Reply(455, "RECORD is valid only on an ANNOUNCEd stream")
        session.apply("RECORD")
        resource.publisher.start()
        return self._with_session(self._response(200, request), session)

    async def _teardown(self, request: RtspRequest, session: Session | None) -> RtspResponse:
        session = self._require(session)
        for channel, (owner, _) in list(self.channels.items()):
            if owner is session:
                del self.channels[channel]
        await self.gateway.end_session(session, "TEARDOWN")
        return self._response(200, request)

    # -- interleaved packets from the client ----------------------------------------------------------

    def _interleaved(self, frame: Interleaved) -> None:
        route = self.channels.get(frame.channel)
        if route is None:
            return
        session, track = route
        session.touch(time.monotonic())
        delivery = track.delivery
        if (
            isinstance(delivery, InterleavedDelivery)
            and frame.channel == delivery.channels[0]
            and session.state == "recording"
            and isinstance(session.resource, PublisherPresentation)
        ):
            session.resource.receive(track, frame.data)
