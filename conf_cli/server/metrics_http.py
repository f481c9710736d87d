"""The asyncio edge of ``conf server --metrics-port``: an HTTP endpoint serving ``/metrics``.

Each GET renders :class:`conf_cli.server.metrics.ServerCollector` on the event loop, between two packets,
so it reads the hub's state as it stands (no thread races it). With ``--workers`` the parent serves what
:mod:`conf_cli.server.workers.metrics` renders instead: its own metrics and every worker's, merged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from conf_cli.errors import ConfError
from conf_cli.server.metrics import ServerCollector

if TYPE_CHECKING:
    from conf_cli.server.edge import Server

SCRAPE_TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"


@dataclass
class MetricsEndpoint:
    runner: web.AppRunner
    url: str

    async def close(self) -> None:
        await self.runner.cleanup()


def metrics_registry(server: Server, node: str) -> CollectorRegistry:
    """A registry holding only ``server``'s metrics (no process-wide defaults: they lack ``node``)."""
    registry = CollectorRegistry()
    registry.register(ServerCollector(server, node))
    return registry


async def serve_metrics(server: Server, node: str, host: str, port: int) -> MetricsEndpoint:
    """Serve ``server``'s metrics at ``http://HOST:PORT/metrics`` (port 0: a free one)."""
    registry = metrics_registry(server, node)

    async def render(budget: float | None) -> bytes:
        return generate_latest(registry)

    return await serve_rendered(render, host, port)


async def serve_rendered(
    render: Callable[[float | None], Awaitable[bytes]], host: str, port: int
) -> MetricsEndpoint:
    """Serve what ``render(budget)`` gives (Prometheus text) at ``http://HOST:PORT/metrics``; ``budget``
    is the scraper's own timeout in seconds when it says it (Prometheus does, in a header), else None."""

    async def metrics(request: web.Request) -> web.Response:
        budget: float | None = None
        with contextlib.suppress(ValueError):
            budget = float(request.headers.get(SCRAPE_TIMEOUT_HEADER, "")[:20])
        if budget is not None and not 0 < budget < 3600:
            budget = None
        return web.Response(body=await render(budget), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application(client_max_size=1024)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, shutdown_timeout=1.0)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None
    bound_host, bound_port = runner.addresses[0][:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    return MetricsEndpoint(runner, f"http://{shown}:{bound_port}/metrics")
