"""``conf server --workers N``: the parent process (see :mod:`conf_cli.server.workers`).

It keeps the workers' directory (a :class:`~conf_cli.server.local_directory.LocalStore` served over a
Unix socket, or the ``--cluster`` directory), starts the workers (:mod:`.supervisor`), and listens on the
public ports as a node that holds no meeting: each create and join is answered with a ``redirect`` to a
worker's own port.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from conf_cli.errors import ConfError
from conf_cli.paths import ADMIN_KEY_FILE, WEBHOOK_KEY_FILE, load_or_create_secret, server_dir
from conf_cli.plugin.cluster import ClusterBackend, DirectoryUnavailable, check_key
from conf_cli.plugin.registry import registry
from conf_cli.server.run import ServerConfig, connect_directory, endpoints_for, serve

if TYPE_CHECKING:
    from conf_cli.server.metrics_http import MetricsEndpoint
    from conf_cli.server.workers.metrics import WorkersMetrics

log = logging.getLogger("conf.workers")

CLAIMS_INTERVAL = 1.0
"""Seconds between two reads of the directory's claims (which worker holds which meeting, for stats)."""


def refuse_what_workers_cannot_do(config: ServerConfig) -> None:
    """A clear error for each option a server of several worker processes cannot serve yet."""
    if any(s.wanted(config.settings) for s in registry().services.values()):
        raise ConfError("server services (RTSP, web ...) run with one worker; drop --workers")
    if config.advertise:
        raise ConfError("--advertise goes with one node; workers advertise the ports they listen on")
    if config.cluster is not None and config.node is None:
        raise ConfError("--cluster with --workers needs --node NAME: the workers are NAME-1 ... NAME-N")
    if config.cluster is None and config.node is not None:
        raise ConfError("--node goes with --cluster URL; give the cluster's directory")
    if config.node is not None:
        check_key("--node", config.node)


async def run_workers(config: ServerConfig) -> int:
    """Run ``config.workers`` workers behind a front on the public ports, until cancelled."""
    from conf_cli.plugin.security import server_security
    from conf_cli.plugin.transport import TransportOptions
    from conf_cli.server.accounts import AccountStore
    from conf_cli.server.cluster_node import ClusterNode
    from conf_cli.server.edge import Server
    from conf_cli.server.hub import Hub
    from conf_cli.server.limiter import AttemptLimiter, Limits
    from conf_cli.server.local_directory import DirectoryServer, LocalStore, StoreBackend
    from conf_cli.server.metrics_http import serve_rendered
    from conf_cli.server.operations import Operations, serve_admin
    from conf_cli.server.tokens import TokenKey
    from conf_cli.server.webhooks import check_url
    from conf_cli.server.workers.admin import WorkersAdminApi
    from conf_cli.server.workers.metrics import WorkersMetrics
    from conf_cli.server.workers.supervisor import Workers

    refuse_what_workers_cannot_do(config)
    endpoints = endpoints_for(config.transports, config.host, config.port)
    accounts = None
    if config.require_login or config.accounts_path is not None:
        accounts = AccountStore(config.accounts_path)
        if config.require_login and not accounts.names():
            raise ConfError(
                f"--require-login: no accounts in {accounts.path}; add one with `conf user add NAME`"
            )
    # The identity and the token key exist before any worker starts: they all read the same ones.
    security = server_security(registry().ciphers, config.encryption, config.identity_file)
    fingerprint = security.identity.fingerprint if security and security.identity else None
    token_key = TokenKey.load_or_create(config.token_key_file)
    if config.webhooks:  # each worker posts its own meetings' events, signed with the one key made here
        for url in config.webhooks:
            check_url(url)
        load_or_create_secret(server_dir() / WEBHOOK_KEY_FILE)
    admin_key = None
    if config.admin_port is not None:  # one key, made before the workers start: theirs is the same
        admin_key = load_or_create_secret(server_dir() / ADMIN_KEY_FILE)
    config = dataclasses.replace(config, token_key_file=token_key.path)

    directory: DirectoryServer | None = None
    backend: ClusterBackend
    if config.cluster is None:
        store = LocalStore()
        directory = DirectoryServer(StoreBackend(store, "local://"))
        await directory.start()
        backend = StoreBackend(store, directory.url)
        prefix, directory_url = "worker", directory.url
    else:
        assert config.node is not None
        backend = await connect_directory(config.cluster)
        prefix, directory_url = config.node, config.cluster
    front_node: list[ClusterNode] = []

    async def ended(name: str) -> None:
        """A worker died: forget its record at once, so that no client is sent to its closed port."""
        for node in front_node:
            node.view.nodes.pop(name, None)
        with contextlib.suppress(DirectoryUnavailable):
            await backend.remove_node(name)

    workers = Workers(config, config.workers, directory_url, prefix, ended)
    limits = Limits(
        config.max_failures, config.max_failures_per_target, config.failure_window, config.max_creates
    )
    hub = Hub(
        limiter=AttemptLimiter(limits),
        accounts=accounts,
        require_login=config.require_login,
        token_key=token_key,
    )
    front = Server(registry(), hub, call_port=None)
    claims: dict[str, str] = {}

    async def read_claims() -> None:
        while True:
            with contextlib.suppress(DirectoryUnavailable):
                claims.clear()
                claims.update(await backend.claims())
            await asyncio.sleep(CLAIMS_INTERVAL)

    reading: asyncio.Task[None] | None = None
    metrics: MetricsEndpoint | None = None
    scraper: WorkersMetrics | None = None
    operations = Operations(front)

    async def close() -> None:
        if reading is not None:
            reading.cancel()
        if metrics is not None:
            await metrics.close()
        if scraper is not None:
            await scraper.close()
        await operations.close()
        await front.close()  # and its cluster node, which closes the backend
        await workers.close()
        if directory is not None:
            await directory.close()

    try:
        await workers.start()
        urls = await front.start(endpoints, TransportOptions(security=security))
        node = ClusterNode(
            backend,
            hub,
            f"{prefix}-front",
            urls,
            fingerprint,
            config.capacity,
            front.media_packets_in,
            holds_meetings=False,
        )
        front_node.append(node)
        await front.join_cluster(node)
        reading = asyncio.create_task(read_claims())
        if config.metrics_port is not None:  # one /metrics: the front's own and every worker's
            scraper = WorkersMetrics(front, f"{prefix}-front", workers)
            metrics = await serve_rendered(scraper.render, config.metrics_host, config.metrics_port)
        if admin_key is not None and config.admin_port is not None:  # routes each request to its worker
            api = WorkersAdminApi(front, admin_key, workers, node, backend, config.max_recordings)
            await serve_admin(operations, api, server_dir(), config.admin_host, config.admin_port)
    except BaseException:
        await close()
        raise

    def stats() -> dict[str, object]:
        """The front's own counters, and each worker: its node, PID, URLs, restarts, meetings, load."""
        described = []
        for worker in workers.describe():
            record = node.view.nodes.get(worker["node"])
            meetings = sorted(m for m, holder in claims.items() if holder == worker["node"])
            described.append(
                {
                    **worker,
                    "meetings": meetings,
                    "listed": list(record.urls) if record is not None else [],
                    "participants": record.participants if record is not None else 0,
                    "cpu": record.cpu if record is not None else 0.0,
                }
            )
        traffic = front.traffic.by_transport(front.links.values())
        front_traffic = {
            name: asdict(counts) | {"open": opened} for name, (counts, opened) in traffic.items()
        }
        return {**front.stats(), "front": {"traffic": front_traffic}, "workers": described}

    started: dict[str, Any] = {
        "workers": [worker["pid"] for worker in workers.describe()],
        "nodes": [worker["node"] for worker in workers.describe()],
    }
    if config.cluster is not None:
        started["cluster"] = config.cluster
    return await serve(
        config,
        urls,
        fingerprint,
        stats,
        close,
        started,
        admin_url=operations.admin_url,
        metrics_url=metrics.url if metrics else None,
    )
