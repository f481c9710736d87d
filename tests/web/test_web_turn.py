"""TURN credentials from ``--turn-secret`` against a real coturn (``use-auth-secret``) on loopback.

A page admitted to a meeting gets credentials that coturn accepts for an allocation; the same scheme
with an expired time or another secret is refused. Skipped without coturn's ``turnserver``
(scripts/setup-system.sh installs it).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from aioice.stun import TransactionFailed
from aioice.turn import create_turn_endpoint
from conf_web.ice import turn_credentials
from conf_web.service import WebServer, WebService

from conf_cli.client.link import Client
from conf_cli.server.edge import Server
from conf_cli.server.local_link import LocalServiceContext, LocalTransport
from conf_cli.urls import ServerAddress

pytestmark = pytest.mark.skipif(shutil.which("turnserver") is None, reason="needs coturn (turnserver)")

SECRET = "a-secret-shared-with-coturn"


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[int]:
    port = _free_udp_port()
    process = subprocess.Popen(
        [
            *("turnserver", "--use-auth-secret", f"--static-auth-secret={SECRET}", "--realm=conf.test"),
            *("--listening-ip=127.0.0.1", f"--listening-port={port}", "--relay-ip=127.0.0.1"),
            *("--no-tls", "--no-dtls", "--no-cli", "--allow-loopback-peers", "--log-file=stdout"),
            *(f"--userdb={tmp_path / 'turn.db'}", f"--pidfile={tmp_path / 'turn.pid'}"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _allocate(port: int, username: str, password: str) -> tuple[str, int]:
    """A TURN allocation with these credentials: the relayed address coturn gives."""
    deadline = time.monotonic() + 15
    while True:  # coturn may still be starting
        try:
            async with asyncio.timeout(5):
                transport, _ = await create_turn_endpoint(
                    asyncio.DatagramProtocol, ("127.0.0.1", port), username, password
                )
            break
        except TimeoutError:
            if time.monotonic() > deadline:
                raise
    try:
        relayed = transport.get_extra_info("sockname")
        return str(relayed[0]), int(relayed[1])
    finally:
        transport.close()


async def test_coturn_accepts_the_credentials_an_admitted_page_gets(server: Server, coturn: int) -> None:
    running = await WebService().start(
        LocalServiceContext(server),
        {
            "host": "127.0.0.1",
            "web_port": 0,
            "ice_servers": (f"turn:127.0.0.1:{coturn}?transport=udp",),
            "turn_secret": SECRET,
        },
    )
    server.services.append(running)
    assert isinstance(running, WebServer)
    host = Client(server.registry, ServerAddress("local", "host", 0), transport=LocalTransport(server))
    await host.connect()
    created, _ = await host.create("host", passcode="pass-123")
    url = running.urls[0].replace("http://", "ws://") + "ws"
    try:
        async with websockets.connect(url, proxy=None) as ws:
            join = {"type": "join", "meeting": created["meeting"], "name": "web", "passcode": "pass-123"}
            await ws.send(json.dumps(join))
            ice: dict[str, Any] = {}
            async with asyncio.timeout(15):
                while ice.get("type") != "web_ice":
                    ice = json.loads(await ws.recv())
            (turn,) = ice["ice_servers"]
            relayed = await _allocate(coturn, turn["username"], turn["credential"])
            assert relayed[0] == "127.0.0.1" and relayed[1] > 0
    finally:
        await host.close()

    # The scheme's limits, checked by coturn: expired credentials and another secret's are refused.
    expired = turn_credentials(SECRET, "web-0", time.time() - 60)
    forged = turn_credentials("another-secret", "web-0", time.time() + 600)
    for username, password in (expired, forged):
        with pytest.raises(TransactionFailed, match="401"):
            await _allocate(coturn, username, password)
