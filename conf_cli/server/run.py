"""The body of ``conf server``: build the server the options describe, start it, report its URLs, run
until stopped.

:mod:`conf_cli.cli` parses the options into a :class:`ServerConfig` and runs :func:`run_server`; the
server itself is :class:`conf_cli.server.edge.Server`. ``--workers`` runs
:func:`conf_cli.server.workers.parent.run_workers` instead, which starts servers built here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from conf_cli.errors import ConfError
from conf_cli.paths import server_dir
from conf_cli.plugin.registry import registry
from conf_cli.server.edge import Endpoint

if TYPE_CHECKING:
    from conf_cli.plugin.cluster import ClusterBackend
    from conf_cli.server.metrics_http import MetricsEndpoint


@dataclass(frozen=True)
class ServerConfig:
    """The options of ``conf server`` (see ``conf server --help``)."""

    host: str
    port: int
    transports: tuple[str, ...]
    json_flag: bool
    require_login: bool
    accounts_path: Path | None
    max_failures: int
    max_failures_per_target: int
    max_creates: int
    failure_window: float
    encryption: str
    identity_file: Path | None
    stats_interval: float
    workers: int
    call_port: int
    announce: bool | None
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    log_format: str = "text"
    admin_host: str = "127.0.0.1"
    admin_port: int | None = None
    """Serve the admin HTTP API on this port of ``admin_host`` (None: no admin API)."""
    max_recordings: int = 4
    """Recorders the admin API may run at once."""
    admin_url_file: bool = True
    """Write the admin API's URL to ``admin.url`` in the server folder (not a worker's: its parent's)."""
    webhooks: tuple[str, ...] = ()
    """URLs that get a signed POST for each meeting event."""
    token_key_file: Path | None = None
    """Where the key of access tokens is (``conf token create``); None: token.key in the server folder."""
    cluster: str | None = None
    """The directory's URL (``--cluster``): the server is a node of that cluster. None: on its own."""
    node: str | None = None
    advertise: tuple[str, ...] = ()
    """URLs other nodes send clients to; empty: the URLs it listens on."""
    capacity: int = 500
    cascade: str = "full"
    """When a join of a meeting held on another node is carried there (conf_cli.server.cascade)."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Every option by name, service plugins' own included: what services see."""


log = logging.getLogger("conf.server")


def node_name(settings: dict[str, Any]) -> str:
    """The server's name in its metrics: its cluster node name where it has one, else the host name."""
    return str(settings.get("node") or socket.gethostname())


DIRECTORY_TIMEOUT = 1.0
"""Seconds any one operation on the cluster's directory may take before it counts as unreachable."""


async def _cluster_backend(config: ServerConfig) -> ClusterBackend | None:
    """The directory of ``--cluster`` (not reached yet: a node starts while it is down), or None."""
    if config.cluster is None:
        if config.node is not None or config.advertise:
            raise ConfError("--node and --advertise go with --cluster URL; give the cluster's directory")
        return None
    from conf_cli.plugin.cluster import check_key

    if config.node is None:
        raise ConfError("--cluster needs --node NAME: this server's name in the cluster")
    check_key("--node", config.node)
    for url in config.advertise:
        if "://" not in url:
            raise ConfError(f"bad --advertise {url!r}: expected a URL such as tcp://HOST:PORT")
    return await connect_directory(config.cluster)


async def connect_directory(url: str, timeout: float = DIRECTORY_TIMEOUT) -> ClusterBackend:
    """A backend for the directory at ``url``: a plugin's, or the one a ``--workers`` parent serves."""
    from conf_cli.server.local_directory import SCHEME, LocalBackends

    if url.partition("://")[0] == SCHEME:
        return await LocalBackends().connect(url, timeout=timeout)
    return await registry().cluster_backend_for(url).connect(url, timeout=timeout)


def endpoints_for(transports: tuple[str, ...], host: str, port: int) -> list[Endpoint]:
    """``tcp``, ``zmq:7460`` ... → endpoints; transports without a port get --port, --port+2, --port+4 ..."""
    endpoints: list[Endpoint] = []
    for index, spec in enumerate(transports):
        name, _, given = spec.partition(":")
        if given:
            if not given.isdigit() or not 0 <= int(given) <= 65535:
                raise ConfError(f"bad transport {spec!r}: expected NAME or NAME:PORT with PORT 0..65535")
            chosen = int(given)
        else:
            chosen = 0 if port == 0 else port + 2 * index
        endpoints.append(Endpoint(name, host, chosen))
    return endpoints


async def run_server(config: ServerConfig) -> int:
    """Start the server ``config`` describes, print its URLs (or a ``server_started`` event with
    ``--json``), then serve until cancelled; stop everything it started on the way out."""
    from conf_cli.plugin.security import server_security
    from conf_cli.plugin.transport import TransportOptions
    from conf_cli.server.accounts import AccountStore
    from conf_cli.server.edge import Server
    from conf_cli.server.hub import Hub
    from conf_cli.server.limiter import AttemptLimiter, Limits
    from conf_cli.server.operations import Operations, start_operations
    from conf_cli.server.record_store import RECORD_MAX_AGE, FileMeetingStore
    from conf_cli.server.resume import ResumeKey
    from conf_cli.server.tokens import TokenKey

    host = config.host
    require_login, accounts_path, settings = config.require_login, config.accounts_path, config.settings
    metrics: MetricsEndpoint | None = None
    operations: Operations | None = None
    endpoints = endpoints_for(config.transports, host, config.port)
    accounts = AccountStore(accounts_path) if require_login or accounts_path is not None else None
    limits = Limits(
        config.max_failures, config.max_failures_per_target, config.failure_window, config.max_creates
    )
    if require_login and accounts is not None and not accounts.names():
        raise ConfError(f"--require-login: no accounts in {accounts.path}; add one with `conf user add NAME`")
    cluster = await _cluster_backend(config)
    security = server_security(registry().ciphers, config.encryption, config.identity_file)
    fingerprint = security.identity.fingerprint if security and security.identity else None
    token_key = TokenKey.load_or_create(config.token_key_file)  # made on first start, as the identity is
    hub = Hub(
        limiter=AttemptLimiter(limits),
        accounts=accounts,
        require_login=require_login,
        token_key=token_key,
        # resume tokens travel only inside the links' encryption: a server without it gives none
        resume_key=ResumeKey.from_identity(security.identity.seed())
        if security is not None and security.identity is not None
        else None,
    )
    if hub.resume_key is not None and cluster is not None:  # any node can take a meeting over
        from conf_cli.server.cluster_store import ClusterMeetingStore

        hub.records = ClusterMeetingStore(cluster, asyncio.get_running_loop())
    elif hub.resume_key is not None:  # a meeting's record lets a restarted server take its people back
        store = FileMeetingStore(server_dir() / "meetings")
        await asyncio.to_thread(store.prune, RECORD_MAX_AGE)
        hub.records = store
    srv = Server(registry(), hub, call_port=config.call_port)
    try:
        urls = await srv.start(endpoints, TransportOptions(security=security))
        if cluster is not None:
            from conf_cli.server.cluster_node import ClusterNode

            assert config.node is not None
            if config.advertise:  # where clients reach this node, listed in welcome for reconnecting
                hub.urls = list(config.advertise)
            await srv.join_cluster(
                ClusterNode(
                    cluster,
                    hub,
                    config.node,
                    list(config.advertise) or urls,
                    fingerprint,
                    config.capacity,
                    srv.media_packets_in,
                )
            )
            cluster = None  # the server closes it from now on
            from conf_cli.server.node_links import NodeLinks

            identity = security.identity if security is not None else None
            secret = identity.curve_secret() if identity is not None else None
            links = srv.node_links = NodeLinks(srv, config.node, secret, security)
            assert srv.cluster is not None
            srv.cluster.carried = links.relays.total
            assert hub.cluster is not None
            hub.cluster.cascade = config.cascade if secret is not None else "never"
        urls += await srv.start_services(settings)
        if config.metrics_port is not None:
            from conf_cli.server.metrics_http import serve_metrics

            metrics = await serve_metrics(srv, node_name(settings), config.metrics_host, config.metrics_port)
        operations = await start_operations(
            srv,
            server_dir(),
            admin_host=config.admin_host,
            admin_port=config.admin_port,
            webhooks=config.webhooks,
            fingerprint=fingerprint,
            encryption=config.encryption,
            max_recordings=config.max_recordings,
            url_file=config.admin_url_file,
        )
    except BaseException:
        if cluster is not None:
            await cluster.close()
        await srv.close()
        raise
    started: dict[str, Any] = {"call_port": srv.call_port}
    if config.cluster is not None:
        started["node"] = config.node
        started["cluster"] = config.cluster

    async def close() -> None:
        if metrics is not None:
            await metrics.close()
        if operations is not None:
            await operations.close()
        await srv.close()

    return await serve(
        config,
        urls,
        fingerprint,
        srv.stats,
        close,
        started,
        admin_url=operations.admin_url if operations is not None else None,
        metrics_url=metrics.url if metrics is not None else None,
    )


async def serve(
    config: ServerConfig,
    urls: list[str],
    fingerprint: str | None,
    stats: Callable[[], dict[str, object]],
    close: Callable[[], Awaitable[None]],
    started_fields: dict[str, Any],
    *,
    admin_url: str | None = None,
    metrics_url: str | None = None,
) -> int:
    """Announce a started server, report its URLs (a ``server_started`` event with ``--json``, with
    ``started_fields``), write ``stats()`` every ``--stats-interval``, and serve until cancelled or
    SIGTERM (exit code 0, as after Ctrl-C); then ``close()`` it (its recorders and workers stop by PID)."""
    terminated = asyncio.Event()
    task = asyncio.current_task()

    def terminate() -> None:
        terminated.set()
        if task is not None:
            task.cancel()

    with contextlib.suppress(NotImplementedError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, terminate)
    try:
        return await _serve(config, urls, fingerprint, stats, close, started_fields, admin_url, metrics_url)
    except asyncio.CancelledError:
        if terminated.is_set():
            return 0
        raise


async def _serve(
    config: ServerConfig,
    urls: list[str],
    fingerprint: str | None,
    stats: Callable[[], dict[str, object]],
    close: Callable[[], Awaitable[None]],
    started_fields: dict[str, Any],
    admin_url: str | None,
    metrics_url: str | None,
) -> int:
    from conf_cli.discovery import Announcer, is_loopback
    from conf_cli.machine import emit

    host, json_flag = config.host, config.json_flag
    announcer = None
    if config.announce or (config.announce is None and not is_loopback(host)):
        announcer = Announcer(urls, host, fingerprint)
        try:
            await announcer.start()
        except BaseException:
            await close()
            raise
    if json_flag:
        started: dict[str, Any] = {"type": "server_started", "urls": urls, "fingerprint": fingerprint}
        started.update(started_fields)
        started["announced"] = announcer is not None
        if admin_url is not None:
            started["admin"] = admin_url
        if metrics_url is not None:
            started["metrics"] = metrics_url
        emit(started)
    else:
        for url in urls:
            click.echo(url)
        sys.stdout.flush()

        def notice(text: str) -> None:
            """A line for whoever started the server (a JSON log line with --log-format json)."""
            if config.log_format == "json":
                log.info(text)
            else:
                click.echo(text, err=True)

        if fingerprint is not None:
            notice(f"conf server key: {fingerprint}")
        if metrics_url is not None:
            notice(f"conf metrics: {metrics_url}")
        if admin_url is not None:
            notice(f"admin API: {admin_url} (key in {server_dir() / 'admin.key'})")
        if config.workers > 1:
            notice(f"conf workers: {', '.join(started_fields.get('nodes', []))}")
        elif config.cluster is not None:
            notice(f"conf cluster node {config.node} of {config.cluster}")
        notice("conf server running; clients use the URL above. Ctrl-C stops it.")
    if admin_url is not None and not is_loopback(config.admin_host):
        click.echo(
            f"conf: the admin API at {admin_url} is plain HTTP beyond loopback: its key crosses the network "
            "readable; reach it through a TLS proxy, or keep --admin-host on loopback",
            err=True,
        )
    try:
        while True:
            if json_flag and config.stats_interval > 0:
                await asyncio.sleep(config.stats_interval)
                emit(stats())
            else:
                await asyncio.Event().wait()
    finally:
        if announcer is not None:
            announcer.close()
        await close()
