"""The conf server: the asyncio edge around the sans-I/O :class:`~conf_cli.server.hub.Hub`.

It listens on one or more transports, feeds the hub what arrives, and carries out the hub's actions.
Blocking work the hub asks for (passcode hashing) runs in a thread so no participant's media stalls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from conf_cli.errors import ConfError, ProtocolError
from conf_cli.plugin.registry import Registry
from conf_cli.plugin.services import RunningService
from conf_cli.plugin.transport import Link, Listener, TransportOptions, next_link_id
from conf_cli.protocol.control import encode
from conf_cli.server.forwarding import Forwarder
from conf_cli.server.hub import Action, Ask, Cascade, Close, Deferred, Forward, Hub, Rebind
from conf_cli.server.local_link import LocalServiceContext
from conf_cli.server.meeting import Send
from conf_cli.server.meeting_log import MeetingLog
from conf_cli.server.memory import return_large_blocks
from conf_cli.server.simulcast import queued_share
from conf_cli.server.traffic import TrafficTotals, transport_of

if TYPE_CHECKING:
    from conf_cli.server.cluster_node import ClusterNode
    from conf_cli.server.node_links import NodeLinks
    from conf_cli.server.record import MeetingStore
    from conf_cli.server.webhooks import Webhooks

log = logging.getLogger("conf.server")

TICK_SECONDS = 0.5
RETRY_POLL = 0.05
"""Seconds between two looks, between ticks, for a keyframe a subscriber's layer switch waits for that is
overdue (:meth:`Hub.retry_keyframes`): it is asked for again within this of its due time."""
MIN_STREAM_REPORT = 20
"""Packets a stream link must have been given since the last tick for its drops to count as a report."""
CALL_CLOCK_MIN = 0.01
CALL_CLOCK_MAX = 1.0
"""Bounds, in seconds, of the call relay's clock between two ticks (its next deadline in between)."""
HASHING_THREADS = 2
"""Threads that run the hub's blocking work (passcode and password hashing): each scrypt check holds
16 MiB while it runs, and on two cores more threads would only wait for each other while holding more."""


@dataclass(frozen=True)
class Endpoint:
    """Where to listen: a transport name, a host and a port (0 picks a free one)."""

    transport: str
    host: str
    port: int


class Server:
    """One conf server process: many meetings, many transports."""

    def __init__(self, registry: Registry, hub: Hub | None = None, *, call_port: int | None = 0) -> None:
        self.registry = registry
        self.hub = hub or Hub()
        if self.hub.wall_clock is None:  # the hub tells the time in welcome, and tokens expire by it
            self.hub.wall_clock = time.time
        self.call_port = call_port
        """UDP port for STUN and call relaying (0: a free one, None: none); after start, the bound one."""
        self._call_udp: asyncio.DatagramTransport | None = None
        self.listeners: list[Listener] = []
        self.services: list[RunningService] = []
        self.service_names: dict[int, str] = {}  # id(running service): its name
        self.links: dict[int, Link] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._call_clock: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._warned: set[int] = set()
        self._hashing = ThreadPoolExecutor(HASHING_THREADS, thread_name_prefix="conf-hash")
        self._records = ThreadPoolExecutor(1, thread_name_prefix="conf-records")
        """Writes meeting records, one at a time and in order (a save, then the delete of a meeting that
        ended, never the other way round)."""
        return_large_blocks()  # large blocks (TLS buffers, scrypt) go back when freed (.memory)
        self._media_counts: dict[int, tuple[int, int, int, int]] = {}
        """Per stream link: its media dropped and sent at the last tick (:meth:`_stream_reports`)."""
        self.forwarder = Forwarder(self.hub, self.links, self._malformed, self._apply)
        self.traffic = TrafficTotals()
        """Traffic counts of the links that closed, per transport (the open ones count their own)."""
        self.meeting_log = MeetingLog(self.hub.meetings, self._peer_of)
        self.webhooks: Webhooks | None = None
        """Where what happens in meetings goes (``--webhook``); see :meth:`use_webhooks`."""
        self.cluster: ClusterNode | None = None
        """This server's duties as a node of a cluster (``--cluster``); see :meth:`join_cluster`."""
        self.node_links: NodeLinks | None = None
        """A cluster's node's links to the others, for cascaded meetings (conf_cli.server.node_links)."""

    def use_webhooks(self, webhooks: Webhooks) -> None:
        """Hand what meetings note from now on to ``webhooks``, which deliver it beside the server."""
        self.webhooks = webhooks
        self.hub.journal.enabled = True

    async def start(self, endpoints: list[Endpoint], options: TransportOptions | None = None) -> list[str]:
        """Listen on every endpoint; return the URLs clients use."""
        options = options or TransportOptions()
        for endpoint in endpoints:
            transport = self.registry.transport_for(endpoint.transport)
            if options.security is not None and not transport.secure:
                raise ConfError(
                    f"the {transport.name} transport cannot encrypt its links; run it with --encryption none"
                )
            listener = await transport.listen(endpoint.host, endpoint.port, self, options)
            self.listeners.append(listener)
            log.info("listening on %s", listener.url)
        if self.call_port is not None and endpoints:
            await self._open_call_port(endpoints[0].host, self.call_port)
        self._ticker = asyncio.create_task(self._tick_forever())
        urls = [listener.url for listener in self.listeners]
        self.hub.urls = [url for url in urls if url not in self.hub.urls] + self.hub.urls
        return urls

    async def join_cluster(self, node: ClusterNode) -> None:
        """Be ``node`` of its cluster from now on (its directory's questions answered, its record kept)."""
        self.cluster = node
        await node.start()

    def media_packets_in(self) -> int:
        """Media packets received so far, over every link (closed ones included)."""
        return sum(stats.media_in for stats, _ in self.traffic.by_transport(self.links.values()).values())

    async def start_services(self, settings: Mapping[str, Any]) -> list[str]:
        """Start every registered service that ``settings`` ask for; return the URLs they serve."""
        urls: list[str] = []
        for service in self.registry.services.values():
            if service.wanted(settings):
                running = await service.start(LocalServiceContext(self), settings)
                self.services.append(running)
                self.service_names[id(running)] = service.name
                self.hub.services[service.name] = list(running.urls)
                urls += running.urls
                log.info("%s serving on %s", service.name, ", ".join(running.urls))
        return urls

    def stats(self) -> dict[str, object]:
        """A ``server_stats`` event: the hub's counters and each listener's transport counters."""
        services = {self.service_names.get(id(s), "?"): s.service_stats() for s in self.services}
        return {
            "type": "server_stats",
            **({"node": self.cluster.name, "cluster": self.cluster.stats()} if self.cluster else {}),
            **({"cascade": self.node_links.stats()} if self.node_links is not None else {}),
            "hub": asdict(self.hub.stats),
            "listeners": {listener.url: listener.stats() for listener in self.listeners},
            "calls": {**asdict(self.hub.calls.stats), **self.hub.calls.relay.stats.as_dict()},
            **({"webhooks": self.webhooks.stats_dict()} if self.webhooks is not None else {}),
            **({"services": {k: v for k, v in services.items() if v}} if any(services.values()) else {}),
            "tables": self.tables(),
        }

    def tables(self) -> dict[str, int]:
        """How many entries the server's tables hold: the hub's, and the edge's own per link."""
        return {
            **self.hub.table_sizes(),
            "links": len(self.links),
            "logged_peers": len(self._warned),
            "deferred": len(self._pending),
        }

    async def _open_call_port(self, host: str, port: int) -> None:
        """Bind the UDP socket that answers STUN and relays calls (conf_cli.server.call_relay)."""
        from conf_cli.errors import ConfError

        loop = asyncio.get_running_loop()
        relay = self.hub.calls.relay
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE)
            family, _, _, _, address = infos[0]
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.bind(address)
        except OSError as exc:
            raise ConfError(f"cannot open the call port {host}:{port} (UDP): {exc.strerror or exc}") from None

        wake = asyncio.Event()

        def send(datagrams: list[tuple[bytes, tuple]]) -> None:
            for out, where in datagrams:
                with contextlib.suppress(OSError):
                    sock.sendto(out, where)

        class _CallPort(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple) -> None:
                send(relay.datagram(data, addr, loop.time()))
                if relay.latches.new_deadline is not None:
                    wake.set()  # a consent check is to be repeated: the clock may have to run sooner

        async def clock() -> None:
            """Run the relay's latch clock: consent check retransmissions, refreshes and expiries."""
            while True:
                deadline = relay.next_deadline()
                wait = CALL_CLOCK_MAX if deadline is None else deadline - loop.time()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(CALL_CLOCK_MAX, max(CALL_CLOCK_MIN, wait))):
                        await wake.wait()
                wake.clear()
                send(relay.tick(loop.time()))

        transport, _ = await loop.create_datagram_endpoint(_CallPort, sock=sock)
        self._call_udp = transport
        self._call_clock = asyncio.create_task(clock(), name="call-relay-clock")
        self.call_port = sock.getsockname()[1]
        self.hub.calls.stun_port = self.call_port

    async def close(self) -> None:
        if self.node_links is not None:
            await self.node_links.close()
        if self.cluster is not None:
            await self.cluster.close()
            self.cluster = None
        if self._ticker is not None:
            self._ticker.cancel()
        if self.webhooks is not None:
            await self.webhooks.close()
            self.webhooks = None
        for task in list(self._pending):
            task.cancel()
        for service in self.services:
            await service.close()
        self.services.clear()
        self.service_names.clear()
        for listener in self.listeners:
            await listener.close()
        self.listeners.clear()
        if self._call_clock is not None:
            self._call_clock.cancel()
            self._call_clock = None
        if self._call_udp is not None:
            self._call_udp.close()
            self._call_udp = None
        self._hashing.shutdown(wait=False, cancel_futures=True)
        await asyncio.get_running_loop().run_in_executor(None, self._records.shutdown)  # what is queued lands

    # -- ServerEvents -------------------------------------------------------------------------------

    def link_opened(self, link: Link) -> None:
        self.links[link.id] = link
        self._apply(self.hub.connected(link.id, time.monotonic(), link.peer, transport_of(link)))

    def control_received(self, link: Link, data: bytes) -> None:
        nodes = self.node_links
        if nodes is not None and (nodes.control_in(link, data) or nodes.up_control(link, data)):
            return
        self._apply(self.hub.received(link.id, data, time.monotonic()))

    def media_received(self, link: Link, packet: bytes) -> None:
        nodes = self.node_links
        if nodes is not None and (nodes.media_in(link, packet) or nodes.up_media(link, packet)):
            return
        if not self.forwarder.media(link, packet, time.monotonic()):
            self._apply([Close(link.id, "media before hello")])

    def _malformed(self, link: Link, what: str) -> None:
        peer = link.peer or str(link.id)
        self._log_once(link.id, f"dropping {what} from %s (logged once per peer)", peer, extra={"peer": peer})

    def _log_once(
        self, cid: int, message: str, *args: object, extra: Mapping[str, object] | None = None
    ) -> None:
        """Log the first thing a peer did wrong, once: a hostile peer cannot flood the log."""
        if cid not in self._warned:
            self._warned.add(cid)
            log.info(message, *args, extra=extra)

    def keepalive_received(self, link: Link) -> None:
        self.hub.seen(link.id, time.monotonic())

    def link_closed(self, link: Link, reason: str) -> None:
        if self.links.pop(link.id, None) is not None:
            self.traffic.retire(link)
        self.forwarder.forget(link)
        self._warned.discard(link.id)
        if self.node_links is not None:
            self.node_links.link_closed(link)
            self.node_links.local_closed(link)
        log.debug("link %s (%s) closed: %s", link.id, link.peer, reason, extra={"peer": link.peer})
        self._apply(self.hub.disconnected(link.id, "disconnected", time.monotonic()))
        self.meeting_log.gone(link.id, "disconnected")

    def _peer_of(self, cid: int) -> str:
        link = self.links.get(cid)
        return link.peer if link is not None else ""

    # -- actions ------------------------------------------------------------------------------------

    def apply(self, actions: list[Action]) -> None:
        """Carry out actions of the hub's (the admin API's among them), as for a participant's message."""
        self._apply(actions)

    def _apply(self, actions: list[Action]) -> None:
        self._carry_out(actions)
        store = self.hub.records
        if store is not None:
            for meeting, data in self.hub.take_records():
                with contextlib.suppress(RuntimeError):  # the server is closing: the record stays as it was
                    self._records.submit(_keep_record, store, meeting, data)
        if self.webhooks is not None:
            happened = self.hub.journal.take()
            if happened:
                self.webhooks.post(happened)  # only queues: deliveries run beside the server

    def _carry_out(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                try:
                    data = encode(action.message)
                except ProtocolError as exc:  # the meeting's bounds keep every message in a frame: a bug
                    log.error("not sending a %s message: %s", action.message.get("type"), exc)
                    continue
                for cid in action.to:
                    link = self.links.get(cid)
                    if link is not None:
                        link.send_control(data)
                self.meeting_log.sent(action.message, action.to)
            elif isinstance(action, Close):
                link = self.links.get(action.conn)
                if link is not None:
                    peer = link.peer or str(link.id)
                    extra = {"peer": peer, "reason": action.reason}
                    self._log_once(action.conn, "closing %s: %s", peer, action.reason, extra=extra)
                    link.close()
            elif isinstance(action, Forward):
                self.forwarder.send(action.packet, action.to)
            elif isinstance(action, Cascade):
                if self.node_links is not None:
                    self.node_links.relay(action.conn, action.node, action.request)
                else:  # the hub cascades only in a cluster: a bug
                    log.error("a join to carry to another node, but this server has no node links")
            elif isinstance(action, Deferred | Ask):
                task = asyncio.create_task(self._run_deferred(action))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
            elif isinstance(action, Rebind):
                self._rebind(action)

    def _rebind(self, action: Rebind) -> None:
        """A link took a seat back (a resume): it is known as the seat's connection from now on, and a
        link still known so (its owner was still connected) is told so, given an unused id and closed."""
        displaced = self.links.pop(action.to, None)
        if displaced is not None:
            self.forwarder.forget(displaced)
            self._warned.discard(displaced.id)
            displaced.id = next_link_id()  # its close is no longer the seat's
            self.links[displaced.id] = displaced
            if action.notice is not None:
                with contextlib.suppress(ProtocolError):
                    displaced.send_control(encode(action.notice))
            displaced.close()
        link = self.links.pop(action.conn, None)
        if link is None:  # gone meanwhile: the seat's connection vanished again
            self._apply(self.hub.disconnected(action.to, "disconnected", time.monotonic()))
            return
        self.forwarder.forget(link)
        self._warned.discard(link.id)
        self._media_counts.pop(link.id, None)
        link.id = action.to
        self.links[action.to] = link
        log.debug("link of %s resumed seat %s", link.peer, action.to, extra={"peer": link.peer})

    async def _run_deferred(self, action: Deferred | Ask) -> None:
        result: object
        if isinstance(action, Ask):
            if self.cluster is None:  # the hub asks only when it has a cluster view: a bug
                log.error("a question for the cluster's directory, but this server is in no cluster")
                return
            result = await self.cluster.answer(action.question)
        else:
            result = await asyncio.get_running_loop().run_in_executor(self._hashing, action.work)
        self._apply(action.resume(result, time.monotonic()))

    def _stream_reports(self, now: float) -> None:
        """Tell the hub how much media each stream link (tcp://, zmq://) dropped since the last tick
        because its send queue was full, or left waiting in a queue that grows (tcp://: the link tells its
        queue's length): the downlink signal for its simulcast layers (docs/media.md)."""
        seen = self._media_counts
        for cid, link in self.links.items():
            if not link.media_ordered:
                continue
            stats = link.stats
            dropped, sent, written = stats.media_dropped, stats.media_out, stats.bytes_out
            backlog = link.media_backlog() or 0
            before = seen.get(cid, (dropped, sent, written, backlog))
            seen[cid] = (dropped, sent, written, backlog)
            lost, total = dropped - before[0], dropped - before[0] + sent - before[1]
            if total >= MIN_STREAM_REPORT:
                left = queued_share(before[3], backlog, written - before[2])
                self.hub.layers.stream_report(cid, max(lost / total, left), now)
        for cid in [cid for cid in seen if cid not in self.links]:
            del seen[cid]

    async def _tick_forever(self) -> None:
        tick_at = time.monotonic() + TICK_SECONDS
        while True:
            await asyncio.sleep(RETRY_POLL)
            now = time.monotonic()
            if now < tick_at:
                self._apply(self.hub.retry_keyframes(now))
                continue
            tick_at = now + TICK_SECONDS
            for cid in self.forwarder.take_active():  # media whose route was cached proves life too
                self.hub.seen(cid, now)
            self._stream_reports(now)
            self.forwarder.end_pacing(now)
            self._apply(self.hub.tick(now))


def _keep_record(store: MeetingStore, meeting: str, data: bytes | None) -> None:
    """Write (or, for a meeting that ended, remove) a meeting's record; a failure is logged, never raised:
    the meeting goes on, it just could not be recreated elsewhere."""
    try:
        if data is None:
            store.delete(meeting)
        else:
            store.save(meeting, data)
    except (ConfError, OSError) as exc:
        log.warning("cannot keep the record of meeting %s: %s", meeting, exc)


async def serve(
    registry: Registry, endpoints: list[Endpoint], ready: asyncio.Future[list[str]] | None = None
) -> None:
    """Run a server until cancelled."""
    server = Server(registry)
    try:
        urls = await server.start(endpoints)
        if ready is not None and not ready.done():
            ready.set_result(urls)
        await asyncio.Event().wait()
    finally:
        await server.close()
