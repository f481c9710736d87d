"""The web plugin's tests share one in-process server."""

from __future__ import annotations

from collections.abc import AsyncIterator

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
