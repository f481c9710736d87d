"""The web plugin's tests share one in-process server, and the browser tests a loopback-only namespace."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator

import pytest

from conf_cli.plugin.registry import create_registry
from conf_cli.server.edge import Endpoint, Server


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    """A conf server in this process, on a free loopback TCP port, without encryption."""
    srv = Server(create_registry())
    await srv.start([Endpoint("tcp", "127.0.0.1", 0)])
    try:
        yield srv
    finally:
        await srv.close()


@pytest.fixture
def browser_namespace() -> Iterator[str]:
    """A network namespace with only ``lo`` (up), deleted afterwards: a browser in it offers ICE only
    127.0.0.1, and nothing leaves the machine."""
    name = f"confpage{os.getpid()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10, check=False)
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, timeout=10)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, timeout=10)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10, check=False)
