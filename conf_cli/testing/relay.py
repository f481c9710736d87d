"""An impairment relay for tests: a UDP proxy that drops, delays and reorders datagrams on a seeded schedule.

Kernels without netem (containers, CI) cannot impair traffic, so tests put this relay on the media path.
It listens on one port for both TCP and UDP: TCP connections are piped to the target untouched (the
reliable control channel), UDP datagrams are impaired both ways. Each client address gets its own upstream
UDP socket, so the target sees one source address per client, as behind a NAT. Every decision comes from
one ``random.Random(seed)``, so a schedule repeats run to run (timing aside)::

    with start_relay("127.0.0.1", server_port, loss=0.05, delay=0.05, jitter=0.01, reorder=0.02) as relay:
        ...  # clients use rtp://127.0.0.1:{relay.port}
        print(relay.stats())

It is also a bottleneck: ``rate_up`` / ``rate_down`` (bit/s, each client alone, :meth:`RelayHandle.set_rate`
changes them while it runs) make each client's datagrams wait their turn on a link of that rate, with a
drop-tail queue of ``queue`` bytes (a datagram that does not fit is dropped: ``queue_dropped``), as a slow
access link does; the TCP connections are paced at the same rates, with small socket buffers so that a
sender's own queue, not the relay's, holds what the link cannot carry yet.

It is also a tap and a NAT: with ``capture=True`` it keeps a copy of the first datagrams clients send
(:meth:`RelayHandle.captured`, what an eavesdropper on the path reads), and :meth:`RelayHandle.rebind`
gives every client a new upstream socket, so the target sees each client move to a new port (a NAT
rebinding).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import socket
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from conf_cli.testing.processes import ThreadLoop, start_thread_loop

MAX_DATAGRAM = 65_535
MAX_PENDING = 10_000
MAX_CLIENTS = 256
MAX_CAPTURED = 1000
TCP_BUFFER = 8192
"""Socket buffer sizes of the relay's TCP connections (the kernel doubles them): what waits for a paced
link waits at the sender. With :data:`TCP_READ_LIMIT`, a paced stream holds about 32 kB in the relay, what
its datagram queue holds in the scenarios (``queue``): a sender keeping 16 kB unsent, as conf's tcp://
server does, has its oldest byte 0.94 s old at 400 kbit/s (2.8 s with 32 kB buffers and 16 kB read ahead:
the relay then held four times its datagram queue, and a stream transport seemed slower to adapt than a
datagram one on the same link)."""
TCP_READ_LIMIT = 8192
"""What the relay reads ahead of a paced TCP stream (asyncio pauses reading at twice this): the
bottleneck's queue is the relay's, not megabytes of buffers behind it."""
TCP_CHUNK = 4096
TCP_SEGMENT = 1448
"""The largest TCP segment the relay's connections carry, an Ethernet path's, not loopback's 64 kB: a window
of a few kB must hold several segments, or the sender waits for it to open whole (with 64 kB segments and
these buffers, a zmq:// publisher's estimate fell to its floor through an unlimited relay in 2 of 3 runs of
test_congestion_live.py, its packets held back in bursts)."""


@dataclass(frozen=True)
class Impairment:
    """What happens to each datagram: lost with probability ``loss``; otherwise delayed by ``delay`` ±
    ``jitter`` seconds (uniform), and with probability ``reorder`` held ``reorder_delay`` longer still."""

    loss: float = 0.0
    delay: float = 0.0
    jitter: float = 0.0
    reorder: float = 0.0
    reorder_delay: float = 0.03
    rate_up: float | None = None
    """Bits a second each client may send through (None: no limit)."""
    rate_down: float | None = None
    """Bits a second each client may receive through (None: no limit)."""
    queue: int = 64_000
    """Bytes that may wait for the rate-limited link, per client and direction."""


@dataclass
class DirectionStats:
    received: int = 0
    forwarded: int = 0
    dropped: int = 0
    reordered: int = 0
    overflow: int = 0
    queue_dropped: int = 0
    """Datagrams dropped because the rate-limited link's queue was full."""


@dataclass
class RelayStats:
    upstream: DirectionStats = field(default_factory=DirectionStats)  # client -> target
    downstream: DirectionStats = field(default_factory=DirectionStats)  # target -> client
    tcp_connections: int = 0
    clients: int = 0


class _Upstream(asyncio.DatagramProtocol):
    def __init__(self, relay: Relay, client: tuple[Any, ...]) -> None:
        self.relay = relay
        self.client = client
        self.transport: asyncio.DatagramTransport | None = None
        self.sock: socket.socket | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        relay = self.relay
        relay.schedule(data, relay.stats.downstream, relay.reply, self.client, relay.impairment.rate_down, 1)


class _Front(asyncio.DatagramProtocol):
    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.relay.from_client(data, addr)


class Relay:
    """The relay itself, on the running event loop (see :func:`start_relay` for a thread of its own)."""

    def __init__(
        self, target: tuple[str, int], impairment: Impairment, seed: int = 1, capture: bool = False
    ) -> None:
        self.target = target
        self.capture = capture
        self.captured: list[bytes] = []
        """With ``capture``: the first MAX_CAPTURED datagrams from clients, as they arrived."""
        self.impairment = impairment
        self.rng = random.Random(seed)
        self.stats = RelayStats()
        self.port = 0
        self._front: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._upstreams: dict[tuple[Any, ...], _Upstream] = {}
        self._pending = 0
        self._busy_until: dict[tuple[int, Any], float] = {}  # (direction, client) -> when its link is free
        self._tasks: set[asyncio.Task[None]] = set()
        self.cut = False
        """While True every datagram is dropped both ways (a network cut)."""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listening = socket.create_server((host, port), family=family)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, TCP_BUFFER)  # accepted sockets inherit it
        listening.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, TCP_SEGMENT)
        self._tcp = await asyncio.start_server(self._pipe, sock=listening, limit=TCP_READ_LIMIT)
        self.port = self._tcp.sockets[0].getsockname()[1]
        self._front, _ = await loop.create_datagram_endpoint(
            lambda: _Front(self), local_addr=(host, self.port)
        )

    async def close(self) -> None:
        if self._tcp is not None:
            self._tcp.close()
        pending = list(self._tasks)
        for task in pending:
            task.cancel()
        if pending:  # let the connections end before the loop stops, so none is left pending
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await asyncio.gather(*pending, return_exceptions=True)
        if self._front is not None:
            self._front.close()
        for upstream in self._upstreams.values():
            if upstream.transport is not None:
                upstream.transport.close()

    # -- UDP --------------------------------------------------------------------------------------------

    def rebind(self) -> None:
        """Forget every client's upstream socket: each next datagram leaves from a new port."""
        for upstream in self._upstreams.values():
            if upstream.transport is not None:
                upstream.transport.close()
            upstream.sock = None
        self._upstreams.clear()

    def from_client(self, data: bytes, client: tuple[Any, ...]) -> None:
        if self.capture and len(self.captured) < MAX_CAPTURED:
            self.captured.append(data)
        upstream = self._upstreams.get(client)
        if upstream is None:
            if len(self._upstreams) >= MAX_CLIENTS:
                self.stats.upstream.overflow += 1
                return
            upstream = _Upstream(self, client)
            self._upstreams[client] = upstream
            self.stats.clients = len(self._upstreams)
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.connect(self.target)
            upstream.sock = sock
            task = asyncio.ensure_future(
                asyncio.get_running_loop().create_datagram_endpoint(lambda: upstream, sock=sock)
            )
            task.add_done_callback(lambda _: None)
        self.schedule(data, self.stats.upstream, self._send_up, upstream, self.impairment.rate_up, 0)

    def _send_up(self, data: bytes, upstream: _Upstream) -> None:
        if upstream.sock is not None:
            upstream.sock.send(data)

    def reply(self, data: bytes, client: tuple[Any, ...]) -> None:
        if self._front is not None:
            self._front.sendto(data, client)

    def schedule(
        self,
        data: bytes,
        stats: DirectionStats,
        send: Any,
        where: Any,
        rate: float | None = None,
        direction: int = 0,
    ) -> None:
        """Drop, or send after the impairment's delay (and its turn on a link of ``rate`` bit/s)."""
        stats.received += 1
        rule = self.impairment
        rng = self.rng
        if self.cut or rng.random() < rule.loss:
            stats.dropped += 1
            return
        if self._pending >= MAX_PENDING:
            stats.overflow += 1
            return
        delay = rule.delay + (rng.uniform(-rule.jitter, rule.jitter) if rule.jitter else 0.0)
        if rate:
            now = asyncio.get_running_loop().time()
            key = (direction, where)
            start = max(now, self._busy_until.get(key, now))
            if (start - now) * rate / 8 + len(data) > rule.queue:
                stats.queue_dropped += 1
                return
            self._busy_until[key] = start + len(data) * 8 / rate
            delay += self._busy_until[key] - now
        if rule.reorder and rng.random() < rule.reorder:
            delay += rule.reorder_delay
            stats.reordered += 1
        self._pending += 1

        def deliver() -> None:
            self._pending -= 1
            stats.forwarded += 1
            with contextlib.suppress(OSError):
                send(data, where)

        asyncio.get_running_loop().call_later(max(0.0, delay), deliver)

    # -- TCP --------------------------------------------------------------------------------------------

    def drop_connections(self) -> None:
        """End every TCP connection piped now (see :meth:`RelayHandle.drop_connections`)."""
        for task in list(self._tasks):
            task.cancel()

    async def _connect_up(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to the target with small buffers set before it connects (a window negotiated
        with the defaults would hide seconds of media in the kernel, not at the bottleneck)."""
        host, port = self.target[0], self.target[1]
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, TCP_BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, TCP_BUFFER)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, TCP_SEGMENT)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
        except BaseException:
            sock.close()
            raise
        return await asyncio.open_connection(sock=sock, limit=TCP_READ_LIMIT)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.tcp_connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.wait_for(self._connect_up(), 5.0)
        except (OSError, TimeoutError):
            writer.close()
            self._tasks.discard(task)
            return

        for stream in (writer, up_writer):
            sock = stream.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, TCP_BUFFER)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, TCP_BUFFER)

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter, up: bool) -> None:
            loop = asyncio.get_running_loop()
            free_at = loop.time()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(TCP_CHUNK):
                    rate = self.impairment.rate_up if up else self.impairment.rate_down
                    if rate:  # pace: this chunk leaves when the link has carried the ones before it
                        free_at = max(free_at, loop.time()) + len(data) * 8 / rate
                        await asyncio.sleep(max(0.0, free_at - loop.time()))
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(OSError):
                dst.close()

        try:
            await asyncio.gather(copy(reader, up_writer, True), copy(up_reader, writer, False))
        except asyncio.CancelledError:
            pass  # the relay is closing: end quietly, as a finished connection
        finally:
            self._tasks.discard(task)
            for stream in (writer, up_writer):
                with contextlib.suppress(OSError, RuntimeError):
                    stream.close()


@dataclass
class RelayHandle:
    """A relay running on its own event loop in a daemon thread."""

    relay: Relay
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread

    @property
    def port(self) -> int:
        return self.relay.port

    def stats(self) -> dict[str, Any]:
        return asdict(self.relay.stats)

    def set_cut(self, cut: bool) -> None:
        self.loop.call_soon_threadsafe(setattr, self.relay, "cut", cut)

    def set_rate(self, up: float | None, down: float | None = None) -> None:
        """Limit each client's sending (``up``) and receiving (``down``) to so many bit/s; None lifts it."""
        impairment = dataclasses.replace(self.relay.impairment, rate_up=up, rate_down=down)
        self.loop.call_soon_threadsafe(setattr, self.relay, "impairment", impairment)

    def captured(self) -> list[bytes]:
        """The datagrams clients sent so far (with ``capture=True``)."""
        return asyncio.run_coroutine_threadsafe(self._copy(), self.loop).result(5.0)

    async def _copy(self) -> list[bytes]:
        return list(self.relay.captured)

    def rebind(self) -> None:
        """A NAT rebinding: every client's datagrams leave from a new port from now on."""
        self.loop.call_soon_threadsafe(self.relay.rebind)

    def drop_connections(self) -> None:
        """Cut every TCP connection through the relay now (both ends see it close), as a network blip
        does; new connections go through as before."""
        self.loop.call_soon_threadsafe(self.relay.drop_connections)

    def close(self) -> None:
        ThreadLoop(self.loop, self.thread).stop(self.relay.close())


@contextlib.contextmanager
def start_relay(
    target_host: str,
    target_port: int,
    *,
    loss: float = 0.0,
    delay: float = 0.0,
    jitter: float = 0.0,
    reorder: float = 0.0,
    seed: int = 1,
    host: str = "127.0.0.1",
    capture: bool = False,
    rate_up: float | None = None,
    rate_down: float | None = None,
    queue: int = 64_000,
) -> Iterator[RelayHandle]:
    """Run a relay to ``target_host:target_port`` in a thread; yield its handle; stop it on exit."""
    impairment = Impairment(loss, delay, jitter, reorder, rate_up=rate_up, rate_down=rate_down, queue=queue)
    relay = Relay((target_host, target_port), impairment, seed, capture)
    running = start_thread_loop(relay.start(host), "impairment relay")
    handle = RelayHandle(relay, running.loop, running.thread)
    try:
        yield handle
    finally:
        handle.close()
