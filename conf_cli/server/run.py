"""The body of ``conf server``: build the server the options describe, start it, report its URLs, run
until stopped.

:mod:`conf_cli.cli` parses the options into a :class:`ServerConfig` and runs :func:`run_server`; the
server itself is :class:`conf_cli.server.edge.Server` (one process) or
:class:`conf_cli.server.workers.front.Front` (``--workers``).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from conf_cli.errors import ConfError
from conf_cli.plugin.registry import registry
from conf_cli.server.edge import Endpoint


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
    token_key_file: Path | None = None
    """Where the key of access tokens is (``conf token create``); None: token.key in the server folder."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Every option by name, service plugins' own included: what services see."""


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
    from conf_cli.discovery import Announcer, is_loopback
    from conf_cli.machine import emit
    from conf_cli.plugin.security import server_security
    from conf_cli.plugin.transport import TransportOptions
    from conf_cli.server.accounts import AccountStore
    from conf_cli.server.edge import Server
    from conf_cli.server.hub import Hub
    from conf_cli.server.limiter import AttemptLimiter, Limits
    from conf_cli.server.tokens import TokenKey

    host, workers, json_flag = config.host, config.workers, config.json_flag
    require_login, accounts_path, settings = config.require_login, config.accounts_path, config.settings
    srv: Any
    endpoints = endpoints_for(config.transports, host, config.port)
    accounts = AccountStore(accounts_path) if require_login or accounts_path is not None else None
    limits = Limits(
        config.max_failures, config.max_failures_per_target, config.failure_window, config.max_creates
    )
    if require_login and accounts is not None and not accounts.names():
        raise ConfError(f"--require-login: no accounts in {accounts.path}; add one with `conf user add NAME`")
    security = server_security(registry().ciphers, config.encryption, config.identity_file)
    fingerprint = security.identity.fingerprint if security and security.identity else None
    token_key = TokenKey.load_or_create(config.token_key_file)  # made on first start, as the identity is
    if workers > 1:
        from conf_cli.server.workers.front import Front

        if len(endpoints) != 1 or endpoints[0].transport != "tcp":
            raise ConfError("--workers needs one --transport tcp; ZeroMQ and RTP run in one process for now")
        if accounts is not None:
            raise ConfError(
                "accounts (--require-login, --accounts) need a server in one process, without --workers"
            )
        if any(s.wanted(settings) for s in registry().services.values()):
            raise ConfError("server services (RTSP, web ...) run with one worker; drop --workers")
        srv = Front(workers, logging.getLogger().getEffectiveLevel(), security, limits, token_key.path)
        urls = await srv.start(endpoints[0].host, endpoints[0].port)
    else:
        hub = Hub(
            limiter=AttemptLimiter(limits),
            accounts=accounts,
            require_login=require_login,
            token_key=token_key,
        )
        srv = Server(registry(), hub, call_port=config.call_port)
        try:
            urls = await srv.start(endpoints, TransportOptions(security=security))
            urls += await srv.start_services(settings)
        except BaseException:
            await srv.close()
            raise
    announcer = None
    if config.announce or (config.announce is None and not is_loopback(host)):
        announcer = Announcer(urls, host, fingerprint)
        try:
            await announcer.start()
        except BaseException:
            await srv.close()
            raise
    if json_flag:
        started: dict[str, Any] = {"type": "server_started", "urls": urls, "fingerprint": fingerprint}
        if workers == 1:
            started["call_port"] = srv.call_port
        started["announced"] = announcer is not None
        if workers > 1:
            started["workers"] = [worker.process.pid for worker in srv.workers]
        emit(started)
    else:
        for url in urls:
            click.echo(url)
        sys.stdout.flush()
        if fingerprint is not None:
            click.echo(f"conf server key: {fingerprint}", err=True)
        click.echo("conf server running; clients use the URL above. Ctrl-C stops it.", err=True)
    try:
        while True:
            if json_flag and config.stats_interval > 0:
                await asyncio.sleep(config.stats_interval)
                emit(srv.stats())
            else:
                await asyncio.Event().wait()
    finally:
        if announcer is not None:
            announcer.close()
        await srv.close()
