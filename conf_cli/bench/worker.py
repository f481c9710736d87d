"""A load-generator process: runs some of a benchmark's clients and reports what they sent and received.

Started as ``python -m conf_cli.bench.worker FD`` where FD is one end of a socket pair carrying
:mod:`multiprocessing.connection` messages. To the parent: ``("ready", clients)``, then every interval
``("tick", Tick)``, then ``("done", Totals)``, or ``("error", text)``. From the parent: ``("start",
t0_ns)`` (a ``time.monotonic_ns()`` reading: intervals count from it) and ``("stop",)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from conf_cli.bench.compiled import CompiledMedia
from conf_cli.bench.generator import run_generator
from conf_cli.bench.links import client_options
from conf_cli.bench.messages import Tick, Totals
from conf_cli.bench.packets import PacketMaker
from conf_cli.bench.plan import ClientSpec, WorkerPlan
from conf_cli.bench.proc import ThreadMeter
from conf_cli.bench.recorder import Receiver, Recorder
from conf_cli.client.link import Client
from conf_cli.errors import ConfError
from conf_cli.plugin.registry import registry
from conf_cli.urls import parse_server_url

JOIN_CONCURRENCY = 8
START_TIMEOUT = 180.0
DRAIN_SECONDS = 0.5
PACE_SECONDS = 0.001


class _Publisher:
    def __init__(self, client: Client, spec: ClientSpec, payload: int, audience: int) -> None:
        assert spec.ssrc is not None and client.link is not None
        self.link = client.link
        self.maker = PacketMaker(spec.ssrc, payload)
        self.audience = audience
        self.sent = 0
        self.failed = 0


async def _next_event(client: Client, wanted: str, match: dict[str, Any], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while True:
            event = await client.events.get()
            if event["type"] == "error":
                raise ConfError(f"server refused: {event.get('message')}")
            if event["type"] == "disconnected":
                raise ConfError(f"lost the server: {event.get('reason')}")
            if event["type"] == wanted and all(event.get(k) == v for k, v in match.items()):
                return


class Worker:
    def __init__(self, conn: Connection, plan: WorkerPlan) -> None:
        self.conn = conn
        self.plan = plan
        self.recorder = Recorder()
        self.clients: list[Client] = []
        self.receivers: list[Receiver] = []
        self.publishers: list[_Publisher] = []
        self.joined: list[tuple[Client, ClientSpec]] = []
        self.compiled: CompiledMedia | None = None
        self.inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()

    async def _join(self, spec: ClientSpec, gate: asyncio.Semaphore) -> None:
        plan = self.plan
        async with gate:
            options = client_options(plan.url, plan.encryption, plan.fingerprint, connect_timeout=15.0)
            client = Client(registry(), parse_server_url(plan.url), options)
            self.clients.append(client)
            await client.connect()
            receiver = Receiver(self.recorder)
            client.media_handler = receiver
            self.receivers.append(receiver)
            await client.join(plan.meetings[spec.meeting], spec.name, plan.passcode)
            self.joined.append((client, spec))
            if spec.ssrc is not None:
                client.send({"type": "publish", "kind": "video", "ssrc": spec.ssrc, "codec": "H264"})
                await _next_event(client, "share_started", {"ssrc": spec.ssrc, "name": spec.name}, 15.0)
                self.publishers.append(
                    _Publisher(client, spec, plan.payload, plan.audience.get(spec.meeting, 0))
                )

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        # A thread reads the pipe: an event loop's reader would make the socket non-blocking (uvloop
        # does), and a large report written to it could then be cut short.
        threading.Thread(target=self._read_pipe, args=(loop,), daemon=True).start()
        gate = asyncio.Semaphore(JOIN_CONCURRENCY)
        await asyncio.gather(*(self._join(spec, gate) for spec in self.plan.clients))
        if self.plan.generator == "compiled":
            self.compiled = CompiledMedia(self.joined, self.plan.payload, self.plan.audience)
        self.conn.send(("ready", len(self.clients)))
        message = await asyncio.wait_for(self.inbox.get(), START_TIMEOUT)
        if message[0] != "start":
            return
        t0 = int(message[1])
        ticker = asyncio.create_task(self._report(t0))
        meter = ThreadMeter()  # this thread runs the Python clients' media
        try:
            if self.compiled is not None:
                await self._send_compiled(t0, self.compiled)
            else:
                await self._send(t0)
                await asyncio.sleep(DRAIN_SECONDS)
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        load = meter.stop()
        self._tick(int((time.monotonic_ns() - t0) / (self.plan.interval * 1e9)))
        if self.compiled is not None:
            totals = self.compiled.totals()
            totals.media_thread_cpu_pct, totals.media_thread_wait_pct = self.compiled.thread_load
        else:
            totals = Totals(
                sent=sum(p.sent for p in self.publishers),
                send_failed=sum(p.failed for p in self.publishers),
                expected=sum(p.sent * p.audience for p in self.publishers),
                gaps=sum(r.gaps() for r in self.receivers),
                media_thread_cpu_pct=load[0],
                media_thread_wait_pct=load[1],
            )
        self.conn.send(("done", totals))

    def _read_pipe(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                message = ("stop",)
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(self.inbox.put_nowait, message)
            if message[0] == "stop":
                return

    async def _send(self, t0: int) -> None:
        """Send every publisher's packets at the planned rate until the run's end (or a stop)."""
        plan = self.plan
        end = t0 + int(plan.duration * 1e9)
        per_ns = plan.rate / 1e9
        publishers = self.publishers
        clock = time.monotonic_ns
        self._sent_bytes = 0
        while self.inbox.empty():
            now = clock()
            if now >= end:
                break
            due = int((now - t0) * per_ns) + 1
            for pub in publishers:
                maker, send = pub.maker, pub.link.send_media
                while maker.sent < due:
                    packet = maker.make(clock())
                    if send(packet):
                        pub.sent += 1
                        self._sent_bytes += len(packet)
                    else:
                        pub.failed += 1
            await asyncio.sleep(PACE_SECONDS)

    async def _send_compiled(self, t0: int, compiled: CompiledMedia) -> None:
        """The compiled loop sends and receives in a thread; a stop from the parent ends it early."""
        end = t0 + int(self.plan.duration * 1e9)
        running = asyncio.ensure_future(
            asyncio.to_thread(compiled.run, t0, end, self.plan.rate, int(DRAIN_SECONDS * 1e9))
        )
        stop = asyncio.ensure_future(self.inbox.get())
        await asyncio.wait({running, stop}, return_when=asyncio.FIRST_COMPLETED)
        if not running.done():
            compiled.stop()
        stop.cancel()
        await running

    async def _report(self, t0: int) -> None:
        interval_ns = int(self.plan.interval * 1e9)
        index = 0
        while True:
            index += 1
            await asyncio.sleep(max(0.0, (t0 + index * interval_ns - time.monotonic_ns()) / 1e9))
            self._tick(index - 1)

    _last_sent = 0
    _last_sent_bytes = 0
    _last_failed = 0
    _sent_bytes = 0

    def _tick(self, index: int) -> None:
        if self.compiled is not None:
            self.conn.send(("tick", self.compiled.tick(index)))
            return
        sent = sum(p.sent for p in self.publishers)
        failed = sum(p.failed for p in self.publishers)
        received, received_bytes, _, latencies = self.recorder.take()
        tick = Tick(
            index,
            sent - self._last_sent,
            self._sent_bytes - self._last_sent_bytes,
            failed - self._last_failed,
            received,
            received_bytes,
            latencies.tobytes(),
        )
        self._last_sent, self._last_sent_bytes, self._last_failed = sent, self._sent_bytes, failed
        self.conn.send(("tick", tick))

    async def close(self) -> None:
        for client in self.clients:
            with contextlib.suppress(Exception):
                await client.close()
        await asyncio.sleep(0.05)


async def _main(conn: Connection) -> None:
    plan: WorkerPlan = conn.recv()
    worker = Worker(conn, plan)
    try:
        await worker.run()
    finally:
        await worker.close()


if __name__ == "__main__":
    sys.exit(run_generator(sys.argv, _main))
