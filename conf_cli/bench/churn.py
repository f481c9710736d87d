"""``conf bench --churn``: many clients joining a meeting with its passcode, chatting, and leaving or
dropping their connection, against a real server; join latency, joins a second, and the server's CPU per
join, memory and open files.

The run creates its meetings first, each kept open by a host that stays in it; load-generator processes
(:mod:`conf_cli.bench.churn_worker`) then run ``clients`` clients at once, each connecting (TLS unless
``--encryption none``), joining, chatting, then leaving or dropping its connection, and the next starting in
its place, until ``joins`` joins are done (or ``duration`` seconds have passed with ``joins`` 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conf_cli.bench.churn_plan import CHURN_PASSCODE, ChurnConfig, ChurnPlan, ChurnTotals, shares
from conf_cli.bench.generator import GeneratorProcess
from conf_cli.bench.links import client_options
from conf_cli.bench.proc import CpuMeter, cpu_seconds, open_fds, rss_bytes
from conf_cli.client.link import Client
from conf_cli.errors import ConfError
from conf_cli.plugin.registry import registry
from conf_cli.testing.processes import ConfProcess, start_server
from conf_cli.urls import parse_server_url

READY_TIMEOUT = 120.0
ATTEMPTS = 1_000_000
"""Attempts and creates the server the run starts allows one address per window: every client of the run
joins from this one address, many at once; the limits are for people, not for this."""
STATS_TIMEOUT = 5.0
"""How long to wait for the server's next ``server_stats`` (it reports every second) after the run."""
TARGET_P95_MS = 150.0
TARGET_JOINS_PER_S = 200.0
"""What a server process should reach with 300 joins, 30 at a time (printed beside the figures)."""

Progress = Callable[[str], None]


@dataclass
class Sample:
    t: float
    rss: int | None
    fds: int | None
    cpu_pct: float | None


class _Generator(GeneratorProcess):
    """One churn load-generator process."""

    def __init__(self, plan: ChurnPlan) -> None:
        super().__init__("conf_cli.bench.churn_worker", plan)
        self.totals: ChurnTotals | None = None


@dataclass
class ChurnRun:
    config: ChurnConfig
    progress: Progress | None = None
    server: ConfProcess | None = None
    fingerprint: str | None = None
    generators: list[_Generator] = field(default_factory=list)
    anchors: list[Client] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    draining: list[asyncio.Task[None]] = field(default_factory=list)

    async def run(self) -> dict[str, Any]:
        try:
            return await self._run()
        finally:
            for task in self.draining:
                task.cancel()
            for anchor in self.anchors:
                with contextlib.suppress(ConfError):
                    anchor.send({"type": "leave"})
                await anchor.close()
            await asyncio.to_thread(self._stop_all)

    def _stop_all(self) -> None:
        for generator in self.generators:
            generator.stop()
        if self.server is not None:
            self.server.stop()

    async def _run(self) -> dict[str, Any]:
        config = self.config
        url, pid = config.server_url, config.server_pid
        if url is None:
            server, url = await asyncio.to_thread(
                start_server,
                "--encryption",
                config.encryption,
                *("--max-failures", str(ATTEMPTS), "--max-creates", str(ATTEMPTS)),
                *("--stats-interval", "1"),
                *config.server_args,
                transport=config.transport,
            )
            self.server, pid = server, server.pid
            started = next(e for e in server.seen if e.get("type") == "server_started")
            self.fingerprint = started.get("fingerprint")
        address = parse_server_url(str(url), transport=config.transport if config.server_url else None)
        url = f"{address.scheme}://{address.host}:{address.port}"
        meetings = await self._open_meetings(url)
        procs = max(1, min(config.procs, config.clients))
        joins = shares(config.joins, procs)
        clients = shares(config.clients, procs)
        for index in range(procs):
            plan = ChurnPlan(
                index=index,
                url=url,
                meetings=meetings,
                passcode=CHURN_PASSCODE,
                joins=joins[index],
                clients=clients[index],
                rate=config.rate / procs,
                duration=config.duration,
                drop_every=config.drop_every,
                stay=config.stay,
                chat=config.chat,
                encryption=config.encryption,
                fingerprint=self.fingerprint,
            )
            self.generators.append(_Generator(plan))
        for generator in self.generators:
            await asyncio.to_thread(generator.receive, READY_TIMEOUT)
        return await self._measure(url, pid)

    async def _open_meetings(self, url: str) -> list[str]:
        """Create the run's meetings, each with a host that stays in it (reading, and dropping, its news)."""
        options = client_options(url, self.config.encryption, self.fingerprint)
        meetings = []
        for index in range(self.config.meetings):
            anchor = Client(registry(), parse_server_url(url), options)
            self.anchors.append(anchor)
            await anchor.connect()
            created, _ = await anchor.create(f"churn-host-{index}", CHURN_PASSCODE)
            meetings.append(str(created["meeting"]))
        self.draining = [asyncio.create_task(_drain(anchor)) for anchor in self.anchors]
        return meetings

    async def _measure(self, url: str, pid: int | None) -> dict[str, Any]:
        config = self.config
        idle = Sample(0.0, _maybe(rss_bytes, pid), _maybe(open_fds, pid), None)
        cpu_before = _maybe(cpu_seconds, pid)
        meter = CpuMeter(pid) if pid is not None else None
        for one in [meter, *(g.cpu for g in self.generators)]:
            if one is not None:
                one.start()
        started = time.monotonic()
        for generator in self.generators:
            generator.conn.send(("start",))
        sampler = asyncio.create_task(self._sample(started, meter, pid))
        limit = (config.duration if config.joins == 0 else max(60.0, config.joins)) + 120.0
        try:
            for generator in self.generators:
                message = await asyncio.to_thread(
                    generator.receive, max(1.0, limit - (time.monotonic() - started))
                )
                generator.totals = message[1]
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        elapsed = time.monotonic() - started
        cpu_after = _maybe(cpu_seconds, pid)
        server_cpu = cpu_after - cpu_before if cpu_after is not None and cpu_before is not None else None
        return self._figures(url, pid, idle, elapsed, server_cpu)

    async def _sample(self, started: float, meter: CpuMeter | None, pid: int | None) -> None:
        while True:
            await asyncio.sleep(self.config.interval)
            sample = Sample(
                round(time.monotonic() - started, 3),
                _maybe(rss_bytes, pid),
                _maybe(open_fds, pid),
                meter.sample() if meter is not None else None,
            )
            self.samples.append(sample)
            if self.progress is not None:
                self.progress(_progress_line(sample))

    def _figures(
        self, url: str, pid: int | None, idle: Sample, elapsed: float, server_cpu: float | None
    ) -> dict[str, Any]:
        totals = [g.totals for g in self.generators if g.totals is not None]
        joined = sum(t.joined for t in totals)
        errors: Counter[str] = Counter()
        for t in totals:
            errors.update(t.errors)
        seconds = max((t.seconds for t in totals), default=elapsed)
        join_ms = _percentiles([t.join_ns for t in totals])
        hub = self._hub_stats()  # blocks up to a second or so, once, after the run
        last = self.samples[-1] if self.samples else idle
        figures: dict[str, Any] = {
            "type": "churn_result",
            "config": self.config.as_dict(),
            "seconds": round(seconds, 3),
            "joins": {
                "started": sum(t.started for t in totals),
                "joined": joined,
                "failed": sum(errors.values()),
                "left": sum(t.left for t in totals),
                "dropped": sum(t.dropped for t in totals),
                "errors": dict(errors),
            },
            "joins_per_s": round(joined / seconds, 1) if seconds > 0 else None,
            "join_ms": join_ms,
            "connect_ms": _percentiles([t.connect_ns for t in totals]),
            "chat_ms": _percentiles([t.chat_ns for t in totals]),
            "server": {
                "url": url,
                "pid": pid,
                "cpu_seconds": None if server_cpu is None else round(server_cpu, 3),
                "cpu_pct": None if server_cpu is None else round(100 * server_cpu / elapsed, 1),
                "cpu_ms_per_join": (
                    round(1000 * server_cpu / joined, 3) if server_cpu is not None and joined else None
                ),
                "rss_bytes_idle": idle.rss,
                "rss_bytes_end": last.rss,
                "fds_idle": idle.fds,
                "fds_end": last.fds,
                "passcode_checks": hub.get("passcode_checks"),
                "passcode_hashed": hub.get("passcode_hashed"),
            },
            "generator_cpu_pct": [
                None if (c := g.cpu.overall()) is None else round(c, 1) for g in self.generators
            ],
            "samples": [
                {
                    "t": s.t,
                    "rss_bytes": s.rss,
                    "fds": s.fds,
                    "cpu_pct": None if s.cpu_pct is None else round(s.cpu_pct, 1),
                }
                for s in self.samples
            ],
        }
        p95 = join_ms["p95"] if join_ms else None
        rate = figures["joins_per_s"]
        figures["target"] = {
            "p95_ms": TARGET_P95_MS,
            "joins_per_s": TARGET_JOINS_PER_S,
            "met": p95 is not None
            and rate is not None
            and p95 <= TARGET_P95_MS
            and rate >= TARGET_JOINS_PER_S,
        }
        return figures

    def _hub_stats(self) -> dict[str, Any]:
        """The hub's counters from the latest ``server_stats`` of a server this run started."""
        if self.server is None:
            return {}
        server = self.server
        with contextlib.suppress(queue.Empty):
            while True:  # what came before the run's end
                server.events.get_nowait()
        try:
            event = server.expect("server_stats", timeout=STATS_TIMEOUT)
        except AssertionError:  # the server stopped reporting: no counters, the rest of the figures stand
            return {}
        return dict(event.get("hub") or {})


async def _drain(client: Client) -> None:
    """Read and drop what the meeting tells a host that only keeps it open."""
    while client.closed_reason is None:
        await client.events.get()


def _maybe(read: Callable[[int], Any], pid: int | None) -> Any:
    return None if pid is None else read(pid)


def _percentiles(parts: list[bytes]) -> dict[str, float] | None:
    values = np.concatenate(
        [np.frombuffer(array("q", part), dtype=np.int64) for part in parts if part]
        or [np.zeros(0, dtype=np.int64)]
    )
    if not len(values):
        return None
    p50, p95, p99 = (float(v) / 1e6 for v in np.percentile(values, [50, 95, 99]))
    return {
        "p50": round(p50, 2),
        "p95": round(p95, 2),
        "p99": round(p99, 2),
        "max": round(float(values.max()) / 1e6, 2),
        "mean": round(float(values.mean()) / 1e6, 2),
    }


def _progress_line(sample: Sample) -> str:
    rss = f"  server RSS {sample.rss / 2**20:.1f} MiB" if sample.rss is not None else ""
    cpu = f"  CPU {sample.cpu_pct:.0f}%" if sample.cpu_pct is not None else ""
    fds = f"  fds {sample.fds}" if sample.fds is not None else ""
    return f"{sample.t:6.1f} s{cpu}{rss}{fds}"


async def run_churn(config: ChurnConfig, progress: Progress | None = None) -> dict[str, Any]:
    """Run one churn benchmark and return its figures."""
    return await ChurnRun(config, progress).run()
