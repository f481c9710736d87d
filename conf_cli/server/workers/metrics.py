"""``conf server --workers N --metrics-port PORT``: one ``/metrics`` for the whole server, served by the
parent.

Each worker serves its own metrics on a free loopback port (it says where in its ``server_started``);
on each scrape the parent reads every worker's at once, each within :data:`SCRAPE_TIMEOUT` seconds (less
when Prometheus says its own scrape timeout is shorter), and
answers its own metrics and theirs merged by name (:mod:`conf_cli.server.metrics_merge`), each sample
carrying its process's ``node`` label, plus ``conf_worker_up{node}``: a worker that is stuck or gone
costs the scrape at most the timeout, and its samples are missing (``conf_worker_up`` 0) rather than
the whole scrape failing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import aiohttp
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from conf_cli.server.metrics import ServerCollector
from conf_cli.server.metrics_merge import MAX_TEXT, merge, parse, worker_up

if TYPE_CHECKING:
    from conf_cli.server.edge import Server
    from conf_cli.server.workers.supervisor import WorkerProcess, Workers

log = logging.getLogger("conf.workers")

SCRAPE_TIMEOUT = 2.0
"""Seconds one worker's metrics may take to arrive, per scrape."""


class _Families(Collector):
    """Families already gathered, for one rendering."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def describe(self) -> list[Metric]:
        return []  # nothing to register up front: each scrape renders a registry of its own

    def collect(self) -> list[Metric]:
        return self.families


class WorkersMetrics:
    """The parent's ``/metrics``: its own (``node``) and each worker's, merged."""

    def __init__(
        self, front: Server, node: str, workers: Workers, *, timeout: float = SCRAPE_TIMEOUT
    ) -> None:
        self.own = ServerCollector(front, node)
        self.workers = workers
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def render(self, budget: float | None = None) -> bytes:
        """The merged metrics; each worker gets :attr:`timeout` seconds, or less when the scraper's own
        timeout (``budget``) is shorter, so that the scrape is answered in its time."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        timeout = self.timeout if budget is None else min(self.timeout, budget * 0.6)
        workers = list(self.workers.workers)
        read = await asyncio.gather(*(self._read(self._session, worker, timeout) for worker in workers))
        families = merge([list(self.own.collect()), *(got for got in read if got is not None)])
        answered = {worker.node: got is not None for worker, got in zip(workers, read, strict=True)}
        families.append(worker_up(answered))
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Families(families))
        return generate_latest(registry)

    async def _read(
        self, session: aiohttp.ClientSession, worker: WorkerProcess, timeout: float
    ) -> list[Metric] | None:
        url = worker.metrics_url
        if url is None:
            return None
        try:
            async with asyncio.timeout(timeout):
                async with session.get(url, allow_redirects=False) as response:
                    if response.status != 200:
                        raise ValueError(f"HTTP {response.status}")
                    body = await response.content.read(MAX_TEXT + 1)
            return parse(body.decode("utf-8", "replace"))
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            log.info("metrics of worker %s not read: %s", worker.node, str(exc) or type(exc).__name__)
            return None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
