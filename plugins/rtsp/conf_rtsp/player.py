"""``conf play``'s RTSP client: DESCRIBE, SETUP, PLAY, PAUSE and TEARDOWN, and reception statistics.

:class:`RtspClient` speaks RTSP on one asyncio stream (answering a 401 once with Basic credentials from
the URL) and hands interleaved packets on. :class:`Player` sets up every stream of a presentation, over
TCP (interleaved, the default) or UDP, keeps the session alive with GET_PARAMETER, and counts what
arrives per stream: frames (video pictures end at the RTP marker bit; each audio packet is a frame),
frame rate, bytes and bit rate, RTP packets lost and the loss rate (RFC 3550 A.3).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from conf_cli import ConfError, ProtocolError
from conf_cli.media.rtp_stream import RateMeter, ReceiverStats
from conf_cli.protocol.rtcp import Bye, parse_compound
from conf_cli.protocol.rtp import RtpPacket, is_rtcp
from conf_cli.protocol.sdp import MediaDescription, SessionDescription
from conf_cli.urls import redact_url

from .wire import (
    Headers,
    Interleaved,
    RtspReader,
    RtspRequest,
    RtspResponse,
    parse_transport,
)

REQUEST_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0
DEFAULT_PORT = 554


class RtspClient:
    """One RTSP connection to a server."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme.lower() != "rtsp" or not parts.hostname:
            raise ConfError(f"not an rtsp:// URL: {redact_url(url)}")
        self.host = parts.hostname
        self.port = parts.port or DEFAULT_PORT
        self.user = unquote(parts.username or "")
        self.password = unquote(parts.password) if parts.password is not None else None
        netloc = f"[{self.host}]" if ":" in self.host else self.host
        self.url = urlunsplit(("rtsp", f"{netloc}:{self.port}", parts.path, parts.query, ""))
        self.cseq = 0
        self.authorization: str | None = None
        self.on_packet: Callable[[int, bytes], None] = lambda channel, data: None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._responses: asyncio.Queue[RtspResponse | None] = asyncio.Queue()
        self._pump: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.session: str | None = None
        self.closed_reason: str | None = None

    async def connect(self) -> None:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        except (OSError, TimeoutError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
            raise ConfError(f"cannot reach {self.host}:{self.port}: {reason}") from None
        self._pump = asyncio.create_task(self._read())

    @property
    def local_address(self) -> str:
        assert self._writer is not None
        return str(self._writer.get_extra_info("sockname")[0])

    async def _read(self) -> None:
        assert self._reader is not None
        parser = RtspReader()
        try:
            while data := await self._reader.read(65536):
                for message in parser.feed(data):
                    if isinstance(message, Interleaved):
                        self.on_packet(message.channel, message.data)
                    elif isinstance(message, RtspResponse):
                        self._responses.put_nowait(message)
            self.closed_reason = "the server closed the connection"
        except (OSError, ProtocolError) as exc:
            self.closed_reason = f"connection lost: {exc}"
        finally:
            self._responses.put_nowait(None)

    async def request(
        self, method: str, url: str | None = None, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> RtspResponse:
        """Send a request and wait for its answer; answer a 401 once with the URL's credentials."""
        async with self._lock:
            for attempt in range(2):
                response = await self._exchange(method, url or self.url, headers or {}, body)
                if response.status == 401 and attempt == 0 and self.password is not None:
                    challenge = (response.headers.get("WWW-Authenticate") or "").lower()
                    if challenge.startswith("basic"):
                        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
                        self.authorization = f"Basic {token}"
                        continue
                return response
        raise AssertionError("unreachable")

    async def _exchange(self, method: str, url: str, extra: dict[str, str], body: bytes) -> RtspResponse:
        if self._writer is None or self.closed_reason is not None:
            raise ConfError(self.closed_reason or "not connected")
        self.cseq += 1
        headers = Headers([("CSeq", str(self.cseq)), ("User-Agent", "conf play")])
        if self.authorization:
            headers.set("Authorization", self.authorization)
        if self.session:
            headers.set("Session", self.session)
        for name, value in extra.items():
            headers.set(name, value)
        self._writer.write(bytes(RtspRequest(method, url, headers, body)))
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                while True:
                    response = await self._responses.get()
                    if response is None:
                        raise ConfError(f"{method} failed: {self.closed_reason or 'connection closed'}")
                    if response.headers.get("CSeq") == str(self.cseq):
                        return response
        except TimeoutError:
            raise ConfError(f"the server did not answer {method} within {REQUEST_TIMEOUT:g} s") from None

    def send_interleaved(self, channel: int, data: bytes) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(bytes(Interleaved(channel, data)))

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump


def _check(response: RtspResponse, method: str) -> RtspResponse:
    if response.status != 200:
        reason = response.reason or "refused"
        raise ConfError(f"{method} refused: {response.status} {reason}")
    return response


@dataclass
class StreamStats:
    """What arrived on one stream."""

    control: str
    media: str
    codec: str
    clock_rate: int
    meter: RateMeter = field(default_factory=RateMeter)
    receiver: ReceiverStats | None = None
    packets: int = 0
    malformed: int = 0
    ended: bool = False
    """The sender said BYE (RTCP): a file played to its end."""

    def receive(self, data: bytes, now: float) -> None:
        if is_rtcp(data):
            with contextlib.suppress(ProtocolError):
                self.ended |= any(isinstance(part, Bye) for part in parse_compound(data))
            return
        try:
            packet = RtpPacket.parse(data)
        except ProtocolError:
            self.malformed += 1
            return
        if self.receiver is None or self.receiver.ssrc != packet.ssrc:
            self.receiver = ReceiverStats(packet.ssrc, self.clock_rate)
        self.receiver.update(packet, now)
        self.packets += 1
        frames = 1 if self.media == "audio" or packet.marker else 0
        self.meter.record(now, len(packet.payload), frames)

    def as_dict(self, now: float) -> dict[str, Any]:
        receiver = self.receiver
        return {
            "control": self.control,
            "media": self.media,
            "codec": self.codec,
            "frame": self.meter.frames,
            "fps": round(self.meter.fps(now), 2),
            "bytes": self.meter.bytes,
            "bitrate": round(self.meter.bitrate(now)),
            "packets": self.packets,
            "packets_lost": max(0, receiver.packets_lost) if receiver else 0,
            "loss_rate": round(receiver.loss_rate, 4) if receiver else 0.0,
            "malformed": self.malformed,
        }


class _UdpReceiver(asyncio.DatagramProtocol):
    def __init__(self, handle: Callable[[bytes], None]) -> None:
        self.handle = handle

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.handle(data)


class Player:
    """Plays every stream of an RTSP presentation and counts what arrives."""

    def __init__(self, url: str, udp: bool = False) -> None:
        self.client = RtspClient(url)
        self.udp = udp
        self.streams: list[StreamStats] = []
        self.state = "init"
        self.timeout = 60.0
        self.started = time.monotonic()
        self._channels: dict[int, StreamStats] = {}
        self._sockets: list[asyncio.DatagramTransport] = []
        self._keepalive: asyncio.Task[None] | None = None
        self.client.on_packet = self._interleaved

    def _interleaved(self, channel: int, data: bytes) -> None:
        stream = self._channels.get(channel) or self._channels.get(channel - 1)  # RTP, or its RTCP
        if stream is not None:
            stream.receive(data, time.monotonic())

    @property
    def ended(self) -> bool:
        """Every stream has ended (RTCP BYE from the server)."""
        return bool(self.streams) and all(s.ended for s in self.streams)

    async def open(self) -> None:
        """Connect, DESCRIBE and SETUP every stream."""
        await self.client.connect()
        response = _check(
            await self.client.request("DESCRIBE", headers={"Accept": "application/sdp"}), "DESCRIBE"
        )
        try:
            sdp = SessionDescription.parse(response.body)
        except ProtocolError as exc:
            raise ConfError(f"the server's SDP does not parse: {exc}") from None
        base = response.headers.get("Content-Base") or self.client.url + "/"
        if not base.endswith("/"):
            base += "/"
        for index, media in enumerate(sdp.media):
            await self._setup(index, media, base)
        if not self.streams:
            raise ConfError("the presentation has no stream to play")
        self.state = "ready"
        self._keepalive = asyncio.create_task(self._keep_alive())

    async def _setup(self, index: int, media: MediaDescription, base: str) -> None:
        rtpmap = media.rtpmap()
        stream = StreamStats(
            media.control or f"trackID={index}",
            media.media,
            rtpmap.encoding if rtpmap else "?",
            rtpmap.clock_rate if rtpmap else 90_000,
        )
        control = stream.control
        url = control if control.startswith("rtsp://") else base + control
        if self.udp:
            rtp_port = await self._open_udp_pair(stream)
            transport = f"RTP/AVP;unicast;client_port={rtp_port}-{rtp_port + 1}"
        else:
            channel = 2 * len(self.streams)
            transport = f"RTP/AVP/TCP;unicast;interleaved={channel}-{channel + 1}"
        response = _check(await self.client.request("SETUP", url, {"Transport": transport}), "SETUP")
        session = response.headers.get("Session")
        if session:
            sid, _, rest = session.partition(";")
            self.client.session = sid.strip()
            if "timeout=" in rest:
                with contextlib.suppress(ValueError):
                    self.timeout = max(2.0, float(rest.split("timeout=")[1].split(";")[0]))
        if not self.udp:
            chosen = parse_transport(response.headers.get("Transport") or transport)[0]
            channels = chosen.interleaved or (2 * len(self.streams), 2 * len(self.streams) + 1)
            self._channels[channels[0]] = stream
        self.streams.append(stream)

    async def _open_udp_pair(self, stream: StreamStats) -> int:
        loop = asyncio.get_running_loop()
        host = self.client.local_address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for _ in range(32):
            probe = socket.socket(family, socket.SOCK_DGRAM)
            probe.bind((host, 0))
            port = probe.getsockname()[1]
            probe.close()
            if port % 2 or port >= 65535:
                continue
            try:
                rtp, _ = await loop.create_datagram_endpoint(
                    lambda: _UdpReceiver(lambda data: stream.receive(data, time.monotonic())),
                    local_addr=(host, port),
                )
            except OSError:
                continue
            try:
                rtcp, _ = await loop.create_datagram_endpoint(
                    lambda: _UdpReceiver(lambda data: stream.receive(data, time.monotonic())),
                    local_addr=(host, port + 1),
                )
            except OSError:
                rtp.close()
                continue
            self._sockets += [rtp, rtcp]
            return port
        raise ConfError("cannot find two free UDP ports to receive on")

    async def play(self) -> None:
        """PLAY: from the start the first time, then from where PAUSE stopped."""
        headers = {"Range": "npt=0.000-"} if self.state == "ready" else {}
        _check(await self.client.request("PLAY", self.client.url, headers), "PLAY")
        self.state = "playing"

    async def pause(self) -> None:
        _check(await self.client.request("PAUSE", self.client.url), "PAUSE")
        self.state = "paused"

    async def toggle(self) -> None:
        await (self.pause() if self.state == "playing" else self.play())

    async def teardown(self) -> None:
        if self.state != "closed" and self.client.session:
            with contextlib.suppress(ConfError):
                await self.client.request("TEARDOWN", self.client.url)
        self.state = "closed"

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(self.timeout / 2)
            with contextlib.suppress(ConfError):
                await self.client.request("GET_PARAMETER", self.client.url)

    async def close(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
        await self.teardown()
        await self.client.close()
        for transport in self._sockets:
            transport.close()

    def stats(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "type": "rtsp_stats",
            "state": "ended" if self.ended and self.state == "playing" else self.state,
            "time": round(now - self.started, 3),
            "streams": [s.as_dict(now) for s in self.streams],
        }
