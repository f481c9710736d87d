"""The client side of the ZeroMQ transport: a DEALER to the server's ROUTER, for control and media.

The DEALER greets first (``G``) and waits for the server's greeting; then control messages, keep-alives
and media go both ways on it. Control messages that do not fit in the DEALER's queue wait in a bounded
backlog; while they wait, media going up is dropped.

As on the server, the DEALER is a plain socket read from the event loop's reader callback, up to BATCH
messages a turn, and sends never wait: no future per message either way (a subscriber of a video meeting
takes in thousands of messages a second). After every send the reader looks again, since ZeroMQ's file
descriptor only signals changes and a send may have taken in the news of waiting input.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

import zmq
import zmq.asyncio

from conf_cli import ClientEvents, ConfError, Link, ProtocolError, Security, TransportOptions

from . import wire
from .keys import fetch_key
from .server import BATCH, configure, recv_frames, tcp_endpoint

log = logging.getLogger("conf.transport.zmq")

DEALER_HWM = 1_000
BYE_LINGER_MS = 500


def new_routing_id() -> bytes:
    """A random DEALER routing id (16 bytes; a first byte of 0 is reserved by libzmq)."""
    return bytes([1 + secrets.randbelow(255)]) + secrets.token_bytes(15)


def send_now(sock: zmq.Socket[Any], kind: bytes, payload: bytes) -> bool:
    """Queue a message of ``kind`` (:func:`wire.frames`) on a plain socket without waiting; False if the
    queue is full or the socket failed."""
    try:
        sock.send_multipart(wire.frames(kind, payload), flags=zmq.DONTWAIT)
    except zmq.Again:
        return False
    except zmq.ZMQError as exc:
        log.debug("zmq send failed: %s", exc)
        return False
    return True


class ZmqClientLink(Link):
    """The server as a client sees it."""

    media_ordered = True  # one TCP stream: what a slow client loses is dropped, not reordered

    def __init__(self, dealer: zmq.Socket[Any], events: ClientEvents, url: str) -> None:
        super().__init__(url)
        self._dealer = dealer
        self._events = events
        self._closed = False
        self._backlog = wire.ControlBacklog()
        self._flusher: asyncio.Task[None] | None = None
        self.malformed = 0
        self._loop = asyncio.get_running_loop()
        self._read_pending = False
        self._fd = int(dealer.getsockopt(zmq.FD))
        self._loop.add_reader(self._fd, self._wake)
        self._wake()

    # -- Link --------------------------------------------------------------------------------------

    def send_control(self, data: bytes) -> None:
        if self._closed:
            return
        if len(data) > wire.MAX_PAYLOAD:
            raise ProtocolError(f"control message of {len(data)} bytes exceeds {wire.MAX_PAYLOAD}")
        self.stats.control_out += 1
        self.stats.bytes_out += len(data)
        if not self._backlog and self._send_control(data):
            return
        if not self._backlog.add(data):
            self.close("server too slow to read control messages")
        elif self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())

    def send_media(self, packet: bytes) -> bool:
        if (
            self._closed
            or self._backlog
            or len(packet) > wire.MAX_PAYLOAD
            or not self._send(wire.MEDIA, packet)
        ):
            self.stats.media_dropped += 1
            return False
        self.stats.media_out += 1
        self.stats.bytes_out += len(packet)
        return True

    def close(self, reason: str = "closed") -> None:
        """Say goodbye (``B``, best effort) and close the socket."""
        if self._closed:
            return
        self._closed = True
        if self._flusher is not None:
            self._flusher.cancel()
        send_now(self._dealer, wire.BYE, wire.bye(reason))
        self._loop.remove_reader(self._fd)
        self._dealer.close(linger=BYE_LINGER_MS)
        self._loop.call_soon(self._events.closed, reason)

    @property
    def is_closing(self) -> bool:
        return self._closed

    # -- sending and reading -------------------------------------------------------------------------

    def _send(self, kind: bytes, payload: bytes) -> bool:
        sent = send_now(self._dealer, kind, payload)
        self._wake()  # the send may have taken in the news of waiting input: look again
        return sent

    async def _flush(self) -> None:
        """Send the control backlog in order as the DEALER's queue drains."""
        while not self._closed and not self._backlog.flush(self._send_control):
            await asyncio.sleep(wire.BACKLOG_POLL)

    def _send_control(self, data: bytes) -> bool:
        return self._send(wire.CONTROL, data)

    def _wake(self) -> None:
        """Read the DEALER soon (once per event-loop turn, however many times asked)."""
        if not self._read_pending and not self._closed:
            self._read_pending = True
            self._loop.call_soon(self._read)

    def _read(self) -> None:
        """Handle up to BATCH messages; ask to be called again if more may wait."""
        self._read_pending = False
        dealer, events, stats = self._dealer, self._events, self.stats
        for _ in range(BATCH):
            if self._closed:
                return
            try:
                frames = recv_frames(dealer)
            except zmq.Again:
                return
            except zmq.ZMQError as exc:
                if not self._closed:
                    self.close(f"connection failed: {exc.strerror}")
                return
            try:
                kind, payload = wire.split(frames)
            except ProtocolError:
                self.malformed += 1
                continue
            stats.bytes_in += len(payload)
            if kind == wire.MEDIA:
                stats.media_in += 1
                events.media_received(payload)
            elif kind == wire.CONTROL:
                stats.control_in += 1
                events.control_received(payload)
            elif kind == wire.BYE:
                self.close(f"closed by the server: {wire.read_bye(payload)}")
                return
        self._wake()


async def connect(host: str, port: int, events: ClientEvents, options: TransportOptions) -> ZmqClientLink:
    """Greet the server's ROUTER; ConfError if there is no answer in time."""
    url = f"zmq://[{host}]:{port}" if ":" in host else f"zmq://{host}:{port}"
    security = options.security
    server_key = await _server_key(security, host, port, url, options.connect_timeout)
    context = zmq.asyncio.Context.instance()
    dealer: zmq.Socket[Any] = zmq.Socket(context, zmq.DEALER)  # read through the loop's reader: plain
    try:
        configure(dealer, host, SNDHWM=DEALER_HWM, RCVHWM=DEALER_HWM)
        dealer.setsockopt(zmq.ROUTING_ID, new_routing_id())
        if security is not None and server_key is not None:
            security.message().secure_client([dealer], server_key)
        dealer.connect(tcp_endpoint(host, port))
        send_now(dealer, wire.GREETING, wire.client_greeting())
        await _greeting(dealer, url, options.connect_timeout)
    except zmq.ZMQError as exc:
        dealer.close(0)
        raise ConfError(f"cannot reach server {url}: {exc.strerror.lower()}") from None
    except BaseException:
        dealer.close(0)
        raise
    return ZmqClientLink(dealer, events, url)


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


async def _readable(sock: zmq.Socket[Any]) -> None:
    """Until ``sock`` has a message to read. ZeroMQ's descriptor stays readable until its news is taken
    in (by reading EVENTS), so news that comes between the check and the wait still wakes the wait."""
    loop = asyncio.get_running_loop()
    fd = int(sock.getsockopt(zmq.FD))
    while not int(sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
        ready: asyncio.Future[None] = loop.create_future()
        loop.add_reader(fd, _set_done, ready)
        try:
            await ready
        finally:
            loop.remove_reader(fd)


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _greeting(dealer: zmq.Socket[Any], url: str, timeout: float) -> None:
    """Wait for the server's greeting."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                await _readable(dealer)
                try:
                    kind, payload = wire.split(dealer.recv_multipart(zmq.DONTWAIT))
                    if kind == wire.GREETING:
                        wire.parse_server_greeting(payload)
                        return
                except zmq.Again:
                    continue
                except ProtocolError as exc:
                    raise ConfError(f"{url} does not speak the conf ZeroMQ protocol: {exc}") from None
                if kind == wire.BYE:
                    raise ConfError(f"server {url} refused the connection: {wire.read_bye(payload)}")
    except TimeoutError:
        raise ConfError(
            f"cannot reach server {url}: no answer in {timeout:g} s; "
            "is `conf server --transport zmq` running, with the same --encryption setting?"
        ) from None
