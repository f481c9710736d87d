"""The parent of ``conf server --workers N``: starts the worker processes, restarts one that dies, and
stops them by process ID (see :mod:`conf_cli.server.workers`)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from conf_cli.errors import ConfError
from conf_cli.server.run import ServerConfig
from conf_cli.server.workers.node import config_line

log = logging.getLogger("conf.workers")

START_TIMEOUT = 60.0
"""Seconds a worker may take to report that it is serving."""
STOP_TIMEOUT = 5.0
"""Seconds a worker gets to stop after SIGTERM before it is killed."""
QUICK_DEATH = 10.0
"""A worker that dies this soon after it started is restarted after a growing pause (up to
:data:`MAX_PAUSE`), so a worker that cannot start does not spin."""
MAX_PAUSE = 10.0


@dataclass
class WorkerProcess:
    """One worker: its node name, process and what it reported when it started."""

    node: str
    config: ServerConfig
    process: asyncio.subprocess.Process | None = None
    urls: list[str] = field(default_factory=list)
    metrics_url: str | None = None
    """Where it serves its own metrics (on loopback; with ``--metrics-port``), as it said when it started."""
    admin_url: str | None = None
    """Where it serves its own admin API (on loopback; with ``--admin-port``), which the parent's fronts."""
    started: float = 0.0
    restarts: int = 0
    pause: float = 0.5

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def describe(self) -> dict[str, Any]:
        return {"node": self.node, "pid": self.pid, "urls": self.urls, "restarts": self.restarts}


class Workers:
    """N worker processes, each a node of the directory at ``directory`` named ``prefix-1`` ..."""

    def __init__(
        self,
        config: ServerConfig,
        count: int,
        directory: str,
        prefix: str,
        ended: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.ended = ended
        """Called with a worker's node name when it dies, before it is restarted."""
        self.workers = [
            WorkerProcess(f"{prefix}-{index}", _worker_config(config, directory, f"{prefix}-{index}"))
            for index in range(1, count + 1)
        ]
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start every worker and wait until each serves; then watch them."""
        try:
            await asyncio.gather(*(self._start(worker) for worker in self.workers))
        except BaseException:
            await self.close()
            raise
        self._tasks = [asyncio.create_task(self._watch(worker)) for worker in self.workers]

    async def _start(self, worker: WorkerProcess) -> None:
        env = {**os.environ, "CONF_WORKER_LOG_LEVEL": str(logging.getLogger().getEffectiveLevel())}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "conf_cli.server.workers.node",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        worker.process, worker.started = process, time.monotonic()
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(config_line(worker.config))  # stdin stays open: it closes when we go
        try:
            async with asyncio.timeout(START_TIMEOUT):
                line = await process.stdout.readline()
            started = json.loads(line) if line else {}
        except (TimeoutError, ValueError):
            started = {}
        if not isinstance(started, dict) or started.get("type") != "server_started":
            await self._stop(worker)
            raise ConfError(f"worker {worker.node} did not start (see its message above)")
        worker.urls = [str(url) for url in started.get("urls") or []]
        metrics, admin = started.get("metrics"), started.get("admin")
        worker.metrics_url = metrics if isinstance(metrics, str) else None
        worker.admin_url = admin if isinstance(admin, str) else None
        log.info("worker %s is PID %d at %s", worker.node, process.pid, " ".join(worker.urls))

    async def _watch(self, worker: WorkerProcess) -> None:
        """Restart ``worker`` whenever it dies, until the server stops."""
        while not self._stopping:
            process = worker.process
            assert process is not None and process.stdout is not None
            await process.stdout.read()  # nothing more is written; this ends when the worker does
            code = await process.wait()
            if self._stopping:
                return
            quick = time.monotonic() - worker.started < QUICK_DEATH
            worker.pause = min(MAX_PAUSE, worker.pause * 2) if quick else 0.5
            log.warning(
                "worker %s (PID %d) ended with %s; its meetings' people resume; restarting it in %.1f s",
                worker.node,
                process.pid,
                code,
                worker.pause,
            )
            if self.ended is not None:
                await self.ended(worker.node)
            await asyncio.sleep(worker.pause)
            try:
                await self._start(worker)
            except (ConfError, OSError) as exc:
                log.warning("worker %s: %s", worker.node, exc)
                continue
            worker.restarts += 1

    async def _stop(self, worker: WorkerProcess) -> None:
        process = worker.process
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()  # by its PID
            try:
                async with asyncio.timeout(STOP_TIMEOUT):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if process.stdin is not None:
            process.stdin.close()

    def describe(self) -> list[dict[str, Any]]:
        return [worker.describe() for worker in self.workers]

    async def close(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*(self._stop(worker) for worker in self.workers), return_exceptions=True)


def _worker_config(config: ServerConfig, directory: str, node: str) -> ServerConfig:
    """What one worker runs: the server's own options, on ports of its own, as ``node`` of
    ``directory``, with nothing only the parent does (announcing, stats); with ``--metrics-port`` its
    metrics, with ``--admin-port`` its admin API, each on a free loopback port, which the parent fronts."""
    transports = tuple(spec.partition(":")[0] for spec in config.transports)
    return dataclasses.replace(
        config,
        port=0,
        transports=transports,
        json_flag=True,
        stats_interval=0,
        workers=1,
        call_port=0,
        announce=False,
        metrics_port=None if config.metrics_port is None else 0,
        metrics_host="127.0.0.1",
        admin_port=None if config.admin_port is None else 0,
        admin_host="127.0.0.1",
        admin_url_file=False,
        cluster=directory,
        node=node,
        advertise=(),
        settings={**config.settings, "node": node, "workers": 1},
    )
