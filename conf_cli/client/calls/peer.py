"""A call's UDP socket on the client: STUN towards the server, connectivity checks, SRTP media.

One socket does everything, so that the public address the server's STUN answerer reports is the one
the peer's checks and media reach. Datagrams are told apart as RFC 7983 says: STUN (first byte 0..3)
answers our own requests to the server, is the relay's consent check (answered when it is signed with
the relay key, :mod:`conf_cli.latch`) or goes to :class:`~conf_cli.client.calls.checks.Checks`; SRTP/SRTCP
(first two bits ``10``) is authenticated and decrypted, then handed to :attr:`CallSocket.on_media`.
Media that does not authenticate is dropped and counted, whoever sent it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass

from conf_cli.client.calls.checks import OPENING_TTL, Checks
from conf_cli.client.calls.crypto import SrtpPair
from conf_cli.errors import ConfError, ProtocolError
from conf_cli.latch import Credentials, answer_check, request_transaction
from conf_cli.protocol.stun import StunMessage, binding_request, is_stun, pad_to
from conf_cli.stun_transactions import REQUEST_SIZE, StunTransactions, unsigned_binding
from conf_cli.version import __version__

log = logging.getLogger("conf.calls")

MAX_DATAGRAM = 1500
SOCKET_BUFFER = 2 * 1024 * 1024
KEEPALIVE_INTERVAL = 10.0

Address = tuple  # (host, port)


@dataclass
class PeerStats:
    media_in: int = 0
    media_out: int = 0
    media_refused: int = 0  # did not authenticate (a stranger, a replay, tampering)
    send_failed: int = 0
    malformed: int = 0
    consent_answered: int = 0  # the relay's consent checks answered

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class CallSocket(asyncio.DatagramProtocol):
    """The client's UDP socket for one call (and for learning its public address before one)."""

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self.checks: Checks | None = None
        self.srtp: SrtpPair | None = None
        self.media_to: Address | None = None
        self.on_media: Callable[[bytes], None] | None = None
        self.stats = PeerStats()
        self.relay: Credentials | None = None
        """The relay end's credentials while the call goes through the server (its checks are answered)."""
        self._relay_bindings = 0  # numbers this call's relay Binding requests (latch.request_transaction)
        self._transactions = StunTransactions()
        self._tasks: list[asyncio.Task[None]] = []

    # -- life cycle -------------------------------------------------------------------------------------

    async def open(self, family: int = socket.AF_INET) -> int:
        """Bind to a free port on every address; return the port."""
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
            sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
        except OSError as exc:
            sock.close()
            raise ConfError(f"cannot open a UDP socket for the call: {exc.strerror or exc}") from None
        self.sock = sock
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, sock=sock)
        return int(sock.getsockname()[1])

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def reset(self) -> None:
        """Forget the call: stop checks, keep-alives and media (the socket stays open for the next one)."""
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        self.checks = None
        self.srtp = None
        self.media_to = None
        self.on_media = None
        self.relay = None
        self._relay_bindings = 0

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        self.sock = None

    @property
    def is_closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def sendto(self, data: bytes, address: Address) -> bool:
        if self.transport is None:
            return False
        try:
            self.transport.sendto(data, address)
        except OSError:
            return False
        return True

    # -- STUN towards the server --------------------------------------------------------------------------

    async def binding(
        self, server: Address, timeout: float, username: str | None = None, key: bytes | None = None
    ) -> Address | None:
        """One Binding transaction with ``server`` (retransmitted, RFC 5389 7.2.1): our mapped address.

        With ``username`` and ``key`` the request is signed (a check to the peer), and so must be the
        answer. None if nothing answered within ``timeout``.
        """
        transaction = secrets.token_bytes(12)
        if username is None:
            return await self._transact(server, transaction, unsigned_binding(transaction), None, timeout)
        request = binding_request(transaction, username, key, f"conf/{__version__}")
        return await self._transact(server, transaction, bytes(pad_to(request, REQUEST_SIZE)), key, timeout)

    async def relay_binding(self, server: Address, relay: Credentials, timeout: float) -> Address | None:
        """Latch our end of a relayed call to this socket: a Binding request signed with the relay key and
        numbered above every earlier one (a copy of it is refused). The relay answers once this socket
        has answered its consent check (:meth:`_stun`), so an answer means media will come here."""
        self.relay = relay
        self._relay_bindings += 1
        transaction = request_transaction(self._relay_bindings)
        request = binding_request(transaction, relay.username, relay.key, f"conf/{__version__}")
        data = bytes(pad_to(request, REQUEST_SIZE))
        return await self._transact(server, transaction, data, relay.key, timeout)

    async def _transact(
        self, server: Address, transaction: bytes, data: bytes, key: bytes | None, timeout: float
    ) -> Address | None:
        return await self._transactions.run(lambda d: self.sendto(d, server), transaction, data, key, timeout)

    # -- checks and media ---------------------------------------------------------------------------------

    def start_checks(self, checks: Checks) -> None:
        """Run ``checks`` (answering the peer, probing its candidates) until one of ours is answered."""
        self.checks = checks
        self._tasks.append(asyncio.create_task(self._probe(checks), name="call-checks"))

    async def _probe(self, checks: Checks) -> None:
        loop = asyncio.get_running_loop()
        while checks.reached is None:
            now = loop.time()
            requests = checks.poll(now)
            if requests and checks.opening(now) and self.sock is not None:
                self._send_with_ttl(requests, OPENING_TTL)
            else:
                for data, where in requests:
                    self.sendto(data, where)
            await asyncio.sleep(0.02)

    def _send_with_ttl(self, datagrams: list[tuple[bytes, Address]], ttl: int) -> None:
        """Send straight from the socket with a hop limit, then restore the system's."""
        sock = self.sock
        assert sock is not None
        default = sock.getsockopt(socket.IPPROTO_IP, socket.IP_TTL)
        try:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
            for data, where in datagrams:
                with contextlib.suppress(OSError):
                    sock.sendto(data, where)
        finally:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, default)

    def start_media(self, srtp: SrtpPair, to: Address, keepalive: Callable[[], object] | None = None) -> None:
        """Send media to ``to`` from now on; ``keepalive`` (if any) runs every few seconds."""
        self.srtp = srtp
        self.media_to = to
        if keepalive is not None:
            self._tasks.append(asyncio.create_task(self._keep_alive(keepalive), name="call-keepalive"))

    async def _keep_alive(self, keepalive: Callable[[], object]) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_INTERVAL)
            result = keepalive()
            if asyncio.iscoroutine(result):
                await result

    def send_media(self, packet: bytes) -> bool:
        """Protect and send one RTP/RTCP packet to the chosen path; False if it was dropped."""
        if self.srtp is None or self.media_to is None:
            self.stats.send_failed += 1
            return False
        try:
            sealed = self.srtp.protect(packet)
        except ProtocolError:
            self.stats.send_failed += 1
            return False
        if not self.sendto(sealed, self.media_to):
            self.stats.send_failed += 1
            return False
        self.stats.media_out += 1
        return True

    def datagram_received(self, data: bytes, addr: Address) -> None:
        if len(data) > MAX_DATAGRAM:
            self.stats.malformed += 1
        elif len(data) >= 12 and data[0] >> 6 == 2:
            self._media(data)
        elif is_stun(data):
            self._stun(data, addr)
        else:
            self.stats.malformed += 1

    def _media(self, data: bytes) -> None:
        if self.srtp is None:
            self.stats.media_refused += 1
            return
        try:
            packet = self.srtp.unprotect(data)
        except ProtocolError:
            self.stats.media_refused += 1
            return
        self.stats.media_in += 1
        if self.on_media is not None:
            self.on_media(packet)

    def _stun(self, data: bytes, addr: Address) -> None:
        try:
            message = StunMessage.parse(data)
        except ProtocolError:
            self.stats.malformed += 1
            return
        if self._transactions.answer(message):
            return
        if self.relay is not None:
            answer = answer_check(data, self.relay, str(addr[0]), int(addr[1]))
            if answer is not None:  # the relay's consent check: media may keep coming here
                self.stats.consent_answered += 1
                self.sendto(answer, addr)
                return
        if self.checks is not None:
            for out, where in self.checks.received(data, addr):
                self.sendto(out, where)

    def error_received(self, exc: Exception) -> None:
        log.debug("call socket: %s", exc)
