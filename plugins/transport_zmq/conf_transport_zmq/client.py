"""The client side of the ZeroMQ transport: a DEALER, spoken on the event loop, to the server's ROUTER.

Like the server, the client speaks ZMTP 3.1 and CURVE itself (:mod:`.zmtp`, :mod:`.curvezmq`) over one
asyncio TCP connection, as a libzmq DEALER would (tested against a libzmq ROUTER): a packet sent or
received crosses no thread. After the ZMTP handshake the DEALER greets (``G``) and waits for the
server's greeting; then control messages, keep-alives and media go both ways. It sends a ZMTP PING every
ZMTP_HEARTBEAT_MS and ends the link when the server has sent nothing for three times that.

Unlike libzmq's DEALER it does not reconnect by itself: a lost connection ends the link, as on tcp://,
and conf's client resumes its seat over a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
from typing import cast

from conf_cli import ClientEvents, ConfError, Link, ProtocolError, Security, TransportOptions
from conf_cli.identity import curve_public_from_ed25519

from . import wire, zmtp
from .curvezmq import OVERHEAD as CURVE_OVERHEAD
from .curvezmq import CurveClient
from .keys import fetch_key
from .limits import (
    CONTROL_BUFFER_LIMIT,
    MAX_MESSAGE_PARTS,
    MEDIA_BUFFER_LIMIT,
    SILENT_LIMIT,
    ZMTP_HEARTBEAT_MS,
)

log = logging.getLogger("conf.transport.zmq")

CONNECT_RETRY = 0.1
"""Seconds between tries while the server's port refuses connections (it may be starting)."""


def new_routing_id() -> bytes:
    """A random DEALER routing id (16 bytes; a first byte of 0 is reserved by libzmq)."""
    return bytes([1 + secrets.randbelow(255)]) + secrets.token_bytes(15)


class ZmqClientLink(Link, zmtp.ZmtpPeer, asyncio.Protocol):
    """The server as a client sees it: one TCP connection, ZMTP on it."""

    media_ordered = True  # one TCP stream: what a slow client loses is dropped, not reordered

    def __init__(self, events: ClientEvents, url: str, curve: CurveClient | None, routing_id: bytes) -> None:
        Link.__init__(self, url)
        zmtp.ZmtpPeer.__init__(self, zmtp.CURVE if curve is not None else zmtp.NULL)
        self._events = events
        self._curve = curve
        self._routing_id = routing_id
        self._transport: asyncio.Transport | None = None
        self._parts: list[bytes] = []
        self._dropped_parts = 0
        self._closed = False
        self._beat: asyncio.TimerHandle | None = None
        self.malformed = 0
        self._open = False
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Done once the server has answered the greeting; its exception says why it did not."""

    # -- asyncio.Protocol ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        greeting = zmtp.greeting(self.mechanism, as_server=False)
        if self._curve is not None:
            self._transport.write(greeting + zmtp.frame(self._curve.hello(), zmtp.COMMAND))
        else:
            self._transport.write(
                greeting + zmtp.frame(zmtp.command(b"READY", self._metadata()), zmtp.COMMAND)
            )

    def data_received(self, data: bytes) -> None:
        self.feed(data)

    def stopped(self) -> bool:
        return self._closed

    def broken(self, why: str) -> None:
        if not self.handshaken and "mechanism" in why:
            why = f"{why}: both ends must agree on --encryption"
        self._fail(why)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._beat is not None:
            self._beat.cancel()
        if not self.opened.done():
            self.opened.set_exception(
                ConfError(
                    f"the server at {self.peer} closed the connection during the handshake: "
                    "it may run with another --encryption setting (both ends must agree)"
                )
            )
        if not self._closed:
            self._closed = True
            if self._open:
                self._events.closed(f"connection lost: {exc}" if exc else "connection closed by the server")

    # -- the handshake --------------------------------------------------------------------------------

    def _metadata(self) -> bytes:
        return zmtp.properties({zmtp.SOCKET_TYPE: b"DEALER", zmtp.IDENTITY: self._routing_id})

    def handshake_frame(self, flags: int, body: bytes) -> None:
        if not flags & zmtp.COMMAND:
            raise ProtocolError("a message before the handshake ended")
        curve = self._curve
        if curve is not None and body[:8] == b"\x07WELCOME":
            self._write(zmtp.frame(curve.welcome(body, self._metadata()), zmtp.COMMAND))
            return
        if curve is not None:
            metadata = curve.ready(body)
        else:
            name, data = zmtp.read_command(body)
            if name != b"READY":
                raise ProtocolError(f"command {name[:20]!r} where READY was due")
            metadata = zmtp.read_properties(data)
        if metadata.get(zmtp.SOCKET_TYPE.lower()) != b"ROUTER":
            raise ProtocolError("the server's socket is not a ROUTER")
        self.handshaken = True
        self.reader.limit = wire.SOCKET_MAX_FRAME + (CURVE_OVERHEAD if curve is not None else 0)
        self._send_message(wire.GREETING, wire.client_greeting())
        self._beat = asyncio.get_running_loop().call_later(ZMTP_HEARTBEAT_MS / 1000, self._heartbeat)

    def _heartbeat(self) -> None:
        """PING the server; end the link if it has sent nothing for SILENT_LIMIT."""
        if self._closed:
            return
        if time.monotonic() - self.heard > SILENT_LIMIT:
            self.close(f"the server sent nothing for {SILENT_LIMIT:g} s")
            return
        self._send_frame(zmtp.COMMAND, zmtp.command(b"PING", b"\x00\x00"))
        self._beat = asyncio.get_running_loop().call_later(ZMTP_HEARTBEAT_MS / 1000, self._heartbeat)

    def _fail(self, why: str) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConfError(f"the ZeroMQ handshake with {self.peer} failed: {why}"))
        self.close(why)

    # -- messages -------------------------------------------------------------------------------------

    def message_frame(self, flags: int, body: bytes) -> None:
        if self._curve is not None:
            flags, body = self._curve.open(body)
        if not flags and not self._parts and body and body[0] >> 6 == 2 and self._open:
            if len(body) > wire.MAX_PAYLOAD:  # a media packet alone in its message: the common case
                self.malformed += 1
                return
            stats = self.stats
            stats.bytes_in += len(body)
            stats.media_in += 1
            self._events.media_received(body)
            return
        if flags & zmtp.COMMAND:
            answer = zmtp.answer_command(body)
            if answer is not None:
                self._send_frame(zmtp.COMMAND, answer)
            return
        if len(self._parts) < MAX_MESSAGE_PARTS:
            self._parts.append(body)
        else:
            self._dropped_parts += 1
        if flags & zmtp.MORE:
            return
        parts, self._parts = self._parts, []
        dropped, self._dropped_parts = self._dropped_parts, 0
        try:
            if dropped:
                raise ProtocolError("a message of more than two frames")
            kind, payload = wire.split(parts)
        except ProtocolError:
            self.malformed += 1
            return
        if not self.opened.done():
            if kind == wire.GREETING:
                try:
                    wire.parse_server_greeting(payload)
                except ProtocolError as exc:
                    self._fail(f"{self.peer} does not speak the conf ZeroMQ protocol: {exc}")
                    return
                self._open = True
                self.opened.set_result(None)
            elif kind == wire.BYE:
                self.opened.set_exception(
                    ConfError(f"server {self.peer} refused the connection: {wire.read_bye(payload)}")
                )
                self.close("refused")
            return
        stats = self.stats
        stats.bytes_in += len(payload)
        if kind == wire.MEDIA:
            stats.media_in += 1
            self._events.media_received(payload)
        elif kind == wire.CONTROL:
            stats.control_in += 1
            self._events.control_received(payload)
        elif kind == wire.BYE:
            self.close(f"closed by the server: {wire.read_bye(payload)}")

    # -- sending --------------------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self._transport is not None:
            self._transport.write(data)

    def _send_frame(self, flags: int, body: bytes) -> None:
        curve = self._curve
        self._write(curve.seal(flags, body) if curve is not None else zmtp.frame(body, flags))

    def _send_message(self, kind: bytes, payload: bytes) -> None:
        frames = wire.frames(kind, payload)
        for frame in frames[:-1]:
            self._send_frame(zmtp.MORE, frame)
        self._send_frame(0, frames[-1])

    def _backlog(self) -> int:
        return self._transport.get_write_buffer_size() if self._transport is not None else 0

    def send_control(self, data: bytes) -> None:
        if self._closed or self._transport is None:
            return
        if len(data) > wire.MAX_PAYLOAD:
            raise ProtocolError(f"control message of {len(data)} bytes exceeds {wire.MAX_PAYLOAD}")
        if self._backlog() > CONTROL_BUFFER_LIMIT:
            self.close("server too slow to read control messages")
            return
        self.stats.control_out += 1
        self.stats.bytes_out += len(data)
        self._send_frame(0, wire.CONTROL + data)

    def send_media(self, packet: bytes) -> bool:
        if (
            self._closed
            or self._transport is None
            or len(packet) > wire.MAX_PAYLOAD
            or self._backlog() > MEDIA_BUFFER_LIMIT
        ):
            self.stats.media_dropped += 1
            return False
        self._send_frame(0, packet)
        self.stats.media_out += 1
        self.stats.bytes_out += len(packet)
        return True

    def close(self, reason: str = "closed") -> None:
        """Say goodbye (``B``, best effort) and close the connection once what is queued is written."""
        if self._closed:
            return
        self._closed = True
        if self._beat is not None:
            self._beat.cancel()
        if self.handshaken:
            with contextlib.suppress(Exception):
                self._send_message(wire.BYE, wire.bye(reason))
        if self._transport is not None:
            self._transport.close()
        if self._open:  # a link that never opened is reported by connect()
            asyncio.get_running_loop().call_soon(self._events.closed, reason)

    @property
    def is_closing(self) -> bool:
        return self._closed


async def connect(host: str, port: int, events: ClientEvents, options: TransportOptions) -> ZmqClientLink:
    """Connect, pass the ZMTP handshake (CURVE unless encryption is off) and greet the server's ROUTER;
    ConfError (one line) if that does not happen within the connect timeout."""
    url = f"zmq://[{host}]:{port}" if ":" in host else f"zmq://{host}:{port}"
    security = options.security
    timeout = options.connect_timeout
    server_key = await _server_key(security, host, port, url, timeout)
    curve = CurveClient(_curve_key(security, server_key)) if server_key is not None else None
    link = ZmqClientLink(events, url, curve, new_routing_id())
    loop = asyncio.get_running_loop()
    no_answer = ConfError(
        f"cannot reach server {url}: no answer in {timeout:g} s; "
        "is `conf server --transport zmq` running, with the same --encryption setting?"
    )
    try:
        async with asyncio.timeout(timeout):
            while True:  # as libzmq does, try again while the port refuses: the server may be starting
                try:
                    await loop.create_connection(lambda: link, host, port)
                    break
                except ConnectionRefusedError:
                    await asyncio.sleep(CONNECT_RETRY)
            await link.opened
    except TimeoutError:
        link.close("no answer")
        raise no_answer from None
    except OSError as exc:
        raise ConfError(f"cannot reach server {url}: {(exc.strerror or str(exc)).lower()}") from None
    except BaseException:
        link.close("connect failed")
        raise
    return link


def _curve_key(security: Security | None, server_key: bytes) -> bytes:
    """The server's CURVE public key: the X25519 form of its Ed25519 identity key."""
    assert security is not None
    security.message()  # the CURVE cipher plugin is loaded
    return curve_public_from_ed25519(server_key)


async def _server_key(
    security: Security | None, host: str, port: int, url: str, timeout: float
) -> bytes | None:
    """The server's identity key, checked against the pin (or --fingerprint); None without encryption.

    The key service is always asked, so that a changed key is reported as such; a pinned key is used
    if it does not answer (the CURVE handshake then proves the server holds it)."""
    if security is None:
        return None
    if security.trust is None:
        raise ConfError("no trust settings on a client link")
    pinned = security.trust.pinned()
    key = await fetch_key(host, port, min(timeout, 1.0) if pinned is not None else timeout)
    if key is None:
        if pinned is None:
            raise ConfError(
                f"the server at {url} did not present its key (no answer from its key service, UDP port "
                f"{port}, in {timeout:g} s): is it running, with encryption on? (both ends must agree on "
                "--encryption)"
            )
        return pinned
    security.check_server(key)
    return key
