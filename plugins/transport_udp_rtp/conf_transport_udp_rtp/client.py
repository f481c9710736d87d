"""The client side of the RTP transport: a TCP control link, a UDP media socket, and the STUN binder.

The first control frame carries the link's token, from which come the STUN USERNAME and key (see
:class:`~.latch.Credentials`); the binder then sends signed STUN Binding requests from the media socket
until the server answers (retransmitting as RFC 5389 section 7.2.1 does, within the connect timeout), and
repeats one every :data:`KEEPALIVE_INTERVAL` seconds so that a NAT keeps its mapping. The server answers a
request from a new address only after that address has answered its consent check, which this client
does for every check signed with the link's key, for as long as the link lives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

from conf_cli import (
    ClientEvents,
    ConfError,
    Link,
    MediaSession,
    MediaUnreachable,
    ProtocolError,
    Security,
    StreamLink,
    TransportOptions,
    __version__,
    open_stream,
)
from conf_cli.protocol.stun import CLASS_REQUEST, StunMessage, is_stun
from conf_cli.stun_transactions import StunTransactions

from .arrival import arrival, start_stamping
from .latch import Credentials, answer_check, read_token_frame, request_transaction
from .server import MAX_DATAGRAM, tune

log = logging.getLogger("conf.transport.rtp")

KEEPALIVE_INTERVAL = 12.0
KEEPALIVE_RETRIES = 3


class RtpClientLink(Link):
    """The server as a client sees it over the RTP transport."""

    def __init__(self, events: ClientEvents, url: str, security: Security | None = None) -> None:
        super().__init__(peer=url)
        self._security = security
        self.srtp: MediaSession | None = None
        self.media_rejected = 0
        """Media that failed SRTP authentication or was a replay."""
        self._events = events
        self._url = url
        self.token: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._bindings = 0  # numbers this link's Binding requests (see latch.request_transaction)
        self.checks_answered = 0
        self.control = StreamLink(self._control, events.media_received, lambda: None, self._closed)
        self.sock: socket.socket | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._transactions = StunTransactions()
        self._binder: asyncio.Task[None] | None = None
        self.media_malformed = 0

    # -- control ----------------------------------------------------------------------------------------

    def _control(self, data: bytes) -> None:
        if not self.token.done():
            try:
                token, keys = read_token_frame(data)
                self.srtp = self._media_session(keys)
                self.media_credentials = Credentials.of(token)
                self.token.set_result(token)
            except ProtocolError as exc:
                self.token.set_exception(ConfError(f"{self._url} does not speak the RTP transport: {exc}"))
                self.control.close("no token frame")
            except ConfError as exc:
                self.token.set_exception(exc)
                self.control.close("no usable SRTP keys")
            return
        self._events.control_received(data)

    def _media_session(self, keys: dict[str, str] | None) -> MediaSession | None:
        if self._security is None:
            if keys is not None:
                raise ConfError(f"{self._url} encrypts media and this client runs with --encryption none")
            return None
        if keys is None:
            raise ConfError(
                f"{self._url} sends media in plaintext; refusing (it runs with --encryption none)"
            )
        return self._security.media().session(keys, server_side=False)

    def _closed(self, reason: str) -> None:
        if not self.token.done():
            self.token.set_exception(ConfError(f"the server at {self._url} closed the connection: {reason}"))
            self.token.exception()  # retrieved: nobody waits for it when the connection was refused
        self._stop_media()
        self._events.closed(reason)

    def send_control(self, data: bytes) -> None:
        self.control.send_control(data)

    # -- media ------------------------------------------------------------------------------------------

    def send_media(self, packet: bytes) -> bool:
        sock = self.sock
        if sock is None or len(packet) > MAX_DATAGRAM:
            self.stats.media_dropped += 1
            return False
        if self.srtp is not None:
            protected = self.srtp.protect(packet)
            if protected is None:  # an index already sent with other bytes, or too old: never sent
                self.stats.media_dropped += 1
                return False
            packet = protected
        try:
            sock.send(packet)
        except OSError:  # a full socket buffer (EAGAIN) or an ICMP error: drop, never wait
            self.stats.media_dropped += 1
            return False
        self.stats.media_out += 1
        self.stats.bytes_out += len(packet)
        return True

    def datagram_received(self, data: bytes) -> None:
        if len(data) > MAX_DATAGRAM:
            self.media_malformed += 1
        elif len(data) >= 8 and data[0] >> 6 == 2:
            if self.srtp is not None:
                clear = self.srtp.unprotect(data)
                if clear is None:
                    self.media_rejected += 1
                    return
                data = clear
            self.stats.media_in += 1
            self.stats.bytes_in += len(data)
            sock = self.sock
            self._events.media_received(data, None if sock is None else arrival(sock))
        elif is_stun(data):
            self._stun_response(data)
        else:
            self.media_malformed += 1

    def _stun_response(self, data: bytes) -> None:
        credentials = self.media_credentials
        if credentials is None:
            return
        try:
            response = StunMessage.parse(data)
        except ProtocolError:
            self.media_malformed += 1
            return
        if response.message_class == CLASS_REQUEST:
            self._answer_check(data, credentials)
        else:
            self._transactions.answer(response)

    def _answer_check(self, data: bytes, credentials: Credentials) -> None:
        """Answer the server's consent check: media may keep coming to this socket."""
        sock = self.sock
        if sock is None:
            return
        with contextlib.suppress(OSError):
            host, port = sock.getpeername()[:2]
            answer = answer_check(data, credentials, host, port)
            if answer is not None:
                sock.send(answer)
                self.checks_answered += 1

    async def open_media(self, host: str, port: int, timeout: float) -> None:
        """Open the UDP socket towards ``host:port`` and prove it within ``timeout``; ConfError if not."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        family, _, _, _, address = infos[0]
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            tune(sock)
            start_stamping(sock)  # each datagram's arrival, as the kernel saw it (arrival.py)
            sock.connect(address)  # only the server's address can send us media
        except OSError as exc:
            sock.close()
            raise ConfError(
                f"cannot open a UDP socket to {self._url}: {os.strerror(exc.errno or 0)}"
            ) from None
        self.sock = sock
        link = self

        class _Protocol(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: object) -> None:
                link.datagram_received(data)

            def error_received(self, exc: Exception) -> None:
                log.debug("UDP error: %s", exc)

        transport, _ = await loop.create_datagram_endpoint(_Protocol, sock=sock)
        self._udp = transport
        if await self.bind(timeout) is None:
            raise MediaUnreachable(
                f"no answer over UDP from {self._url} in {timeout:g} s: media needs UDP to that port "
                "(is a firewall in the way?)"
            )
        self._binder = asyncio.create_task(self._keep_alive(), name="rtp-keepalive")

    async def bind(self, timeout: float) -> tuple[str, int] | None:
        """One STUN transaction, retransmitted with a doubling timeout; our mapped address, or None."""
        await asyncio.wait_for(asyncio.shield(self.token), timeout)
        credentials = self.media_credentials
        if credentials is None:
            return None
        self._bindings += 1
        transaction = request_transaction(self._bindings)
        request = credentials.request(transaction, f"conf/{__version__}")
        mapped = await self._transactions.run(self._send, transaction, request, credentials.key, timeout)
        if mapped is not None:
            self.media_address = mapped
        return mapped

    def _send(self, data: bytes) -> bool:
        if self.sock is None:
            return False
        self.sock.send(data)
        return True

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_INTERVAL)
            for _ in range(KEEPALIVE_RETRIES):
                if await self.bind(2.0) is not None:
                    break

    def detach_media(self) -> socket.socket | None:
        """Hand the media socket to a caller that reads it itself (``conf bench --generator compiled``).

        The event loop stops reading it and the NAT keep-alive stops (loopback needs none); the socket
        stays open and latched, :meth:`send_media` still works, and the caller passes every datagram it
        reads that is not RTP (the server's consent checks) to :meth:`datagram_received`, which answers
        them. The link closes the socket when it closes. None if there is no media socket."""
        sock = self.sock
        if sock is None or self._udp is None:
            return None
        kept = socket.socket(fileno=os.dup(sock.fileno()))
        self._stop_media()  # closes the event loop's copy
        self.sock = kept
        return kept

    def _stop_media(self) -> None:
        if self._binder is not None:
            self._binder.cancel()
            self._binder = None
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        elif self.sock is not None:  # detached: ours to close
            self.sock.close()
        self.sock = None

    def close(self) -> None:
        self.control.close()
        self._stop_media()

    @property
    def is_closing(self) -> bool:
        return self.control.is_closing


async def connect(host: str, port: int, events: ClientEvents, options: TransportOptions) -> Link:
    loop = asyncio.get_running_loop()
    shown = f"[{host}]" if ":" in host else host
    url = f"rtp://{shown}:{port}"
    link = RtpClientLink(events, url, options.security)
    deadline = loop.time() + options.connect_timeout
    await open_stream(link.control, host, port, options, "rtp")
    try:
        try:
            await asyncio.wait_for(asyncio.shield(link.token), max(0.01, deadline - loop.time()))
        except TimeoutError:
            if options.security is None:  # a TLS server waits for our handshake; we wait for its token
                raise ConfError(
                    f"{url} accepted the connection but sent nothing in {options.connect_timeout:g} s: it "
                    "probably requires encryption (drop --encryption none)"
                ) from None
            raise
        await link.open_media(host, port, max(0.5, deadline - loop.time()))
    except TimeoutError:
        link.close()
        raise ConfError(f"cannot reach server {url}: no answer in {options.connect_timeout:g} s") from None
    except OSError as exc:
        link.close()
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ConfError(f"cannot reach server {url}: {why.lower()}; is `conf server` running?") from None
    except BaseException:
        link.close()
        raise
    return link
