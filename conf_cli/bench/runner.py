"""Runs a benchmark: a server (started here, or given), worker processes with the clients, the clock."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from typing import Any

from conf_cli.bench.generator import GeneratorProcess
from conf_cli.bench.links import client_options
from conf_cli.bench.messages import Tick, Totals
from conf_cli.bench.plan import PASSCODE, BenchConfig, WorkerPlan, assign, audience
from conf_cli.bench.proc import CpuMeter, rss_bytes
from conf_cli.bench.result import BenchResult, Interval
from conf_cli.client.link import Client
from conf_cli.errors import ConfError
from conf_cli.plugin.registry import registry
from conf_cli.testing.processes import ConfProcess, start_server
from conf_cli.urls import parse_server_url

READY_TIMEOUT = 120.0
START_DELAY = 0.3

Progress = Callable[[BenchResult], None]


BENCH_ATTEMPTS = 100_000
"""Attempts and creates the server the bench starts allows one address per window."""


class _WorkerProcess(GeneratorProcess):
    """One ``conf bench`` load-generator process."""

    def __init__(self, plan: WorkerPlan, nice: int = 0) -> None:
        super().__init__("conf_cli.bench.worker", plan, nice)
        self.totals: Totals | None = None


class Bench:
    def __init__(self, config: BenchConfig, progress: Progress | None = None) -> None:
        self.config = config
        self.progress = progress
        self.server: ConfProcess | None = None
        self.fingerprint: str | None = None
        self.workers: list[_WorkerProcess] = []
        self.server_meter: CpuMeter | None = None
        self.intervals: dict[int, Interval] = {}
        self.messages: asyncio.Queue[tuple[_WorkerProcess, tuple[Any, ...]]] = asyncio.Queue()

    async def run(self) -> BenchResult:
        try:
            return await self._run()
        finally:
            await asyncio.to_thread(self._stop_all)

    def _stop_all(self) -> None:
        for worker in self.workers:
            worker.stop()
        if self.server is not None:
            self.server.stop()

    async def _run(self) -> BenchResult:
        config = self.config
        url, pid = config.server_url, config.server_pid
        if url is None:
            server, url = await asyncio.to_thread(
                start_server,
                "--encryption",
                config.encryption,
                # Every bench client joins from this one address, many at once: the per-address limits
                # on attempts and creates, which count checks in flight, are for people, not for this.
                *("--max-failures", str(BENCH_ATTEMPTS), "--max-creates", str(BENCH_ATTEMPTS)),
                *config.server_args,
                transport=config.transport,
            )
            self.server, pid = server, server.pid
            started = next(e for e in server.seen if e.get("type") == "server_started")
            self.fingerprint = started.get("fingerprint")
        address = parse_server_url(str(url), transport=config.transport if config.server_url else None)
        url = f"{address.scheme}://{address.host}:{address.port}"
        options = client_options(url, config.encryption, self.fingerprint)
        hosts = [Client(registry(), address, options) for _ in range(config.meetings)]
        try:
            meetings = []
            for index, host in enumerate(hosts):
                await host.connect()
                created, _ = await host.create(f"bench-host-{index}", PASSCODE)
                meetings.append(str(created["meeting"]))
            self._spawn(url, meetings)
            await self._wait_ready()
        finally:
            for host in hosts:  # the hosts leave before media starts: they would receive it too
                with contextlib.suppress(ConfError):
                    host.send({"type": "leave"})
                await host.close()
        return await self._measure(url, pid)

    def _spawn(self, url: str, meetings: list[str]) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        for share in assign(config):
            plan = WorkerPlan(
                url,
                meetings,
                PASSCODE,
                share,
                config.rate,
                config.payload,
                config.duration,
                config.interval,
                audience(config),
                config.encryption,
                self.fingerprint,
                config.generator,
            )
            worker = _WorkerProcess(plan, self.config.generator_nice)
            self.workers.append(worker)
            loop.add_reader(worker.conn.fileno(), self._readable, worker)

    def _readable(self, worker: _WorkerProcess) -> None:
        # uvloop makes a watched descriptor non-blocking; a message that has only begun to arrive would
        # then fail half read. Its sender writes it whole, so waiting for the rest is short.
        os.set_blocking(worker.conn.fileno(), True)
        try:
            message = worker.conn.recv()
        except Exception as exc:  # EOF, a broken pipe, a message that does not unpickle
            asyncio.get_running_loop().remove_reader(worker.conn.fileno())
            why = worker.error_text() if isinstance(exc, EOFError | OSError) else repr(exc)
            message = ("error", f"lost the load generator: {why}")
        self.messages.put_nowait((worker, message))

    async def _next(self, timeout: float) -> tuple[_WorkerProcess, tuple[Any, ...]]:
        try:
            worker, message = await asyncio.wait_for(self.messages.get(), timeout)
        except TimeoutError:
            raise ConfError(f"the load generator did not report within {timeout:g} s") from None
        if message[0] == "error":
            raise ConfError(f"load generator: {message[1]}")
        return worker, message

    async def _wait_ready(self) -> None:
        waiting = set(self.workers)
        deadline = time.monotonic() + READY_TIMEOUT
        while waiting:
            worker, message = await self._next(max(0.1, deadline - time.monotonic()))
            if message[0] == "ready":
                waiting.discard(worker)

    async def _measure(self, url: str, pid: int | None) -> BenchResult:
        config = self.config
        await asyncio.sleep(START_DELAY)  # the hosts' leaving reaches everyone
        t0 = time.monotonic_ns() + int(START_DELAY * 1e9)
        for worker in self.workers:
            worker.conn.send(("start", t0))
        await asyncio.sleep(max(0.0, (t0 - time.monotonic_ns()) / 1e9))
        server_cpu = self.server_meter = CpuMeter(pid) if pid is not None else None
        for meter in [server_cpu, *(w.cpu for w in self.workers)]:
            if meter is not None:
                meter.start()
        sampler = asyncio.create_task(self._sample(t0, server_cpu, pid, url))
        try:
            waiting = set(self.workers)
            while waiting:
                worker, message = await self._next(config.duration + 60.0)
                if message[0] == "tick":
                    tick: Tick = message[1]
                    self._interval(tick.index).add(tick)
                elif message[0] == "done":
                    worker.totals = message[1]
                    waiting.discard(worker)
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        return self._result(url, pid)

    def _interval(self, index: int) -> Interval:
        interval = self.intervals.get(index)
        if interval is None:
            interval = self.intervals[index] = Interval(index)
        return interval

    async def _sample(self, t0: int, meter: CpuMeter | None, pid: int | None, url: str) -> None:
        """Server CPU and memory at the end of every interval; progress after each."""
        step = int(self.config.interval * 1e9)
        index = 0
        while True:
            await asyncio.sleep(max(0.0, (t0 + (index + 1) * step - time.monotonic_ns()) / 1e9))
            interval = self._interval(index)
            if meter is not None and pid is not None:
                interval.server_cpu = meter.sample()
                interval.server_rss = rss_bytes(pid)
            if self.progress is not None and index > 0:
                self.progress(self._result(url, pid, upto=index))
            index += 1

    def _result(self, url: str, pid: int | None, upto: int | None = None) -> BenchResult:
        ordered = [self.intervals[i] for i in sorted(self.intervals) if upto is None or i < upto]
        seconds = self.config.duration if upto is None else upto * self.config.interval
        within = round(self.config.duration / self.config.interval)
        loads = [i.server_cpu for i in ordered if i.server_cpu is not None and i.index < within]
        return BenchResult(
            config=self.config,
            server_url=url,
            server_pid=pid,
            duration=seconds,
            intervals=ordered,
            totals=[w.totals for w in self.workers if w.totals is not None],
            generator_cpu=[w.cpu.overall() for w in self.workers],
            server_cpu=sum(loads) / len(loads) if loads else None,
            server_rss=rss_bytes(pid) if pid is not None else None,
            server_wait=self.server_meter.waited() if self.server_meter is not None else None,
            generator_wait=[w.cpu.waited() for w in self.workers],
        )


async def run_bench(config: BenchConfig, progress: Progress | None = None) -> BenchResult:
    """Run one benchmark and return its figures."""
    return await Bench(config, progress).run()
