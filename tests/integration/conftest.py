from __future__ import annotations

from collections.abc import Iterator

import pytest

from conf_cli.testing import ClientPool, start_server


@pytest.fixture
def server_url() -> Iterator[str]:
    server, url = start_server()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
def clients(server_url: str) -> Iterator[ClientPool]:
    pool = ClientPool(server_url)
    try:
        yield pool
    finally:
        pool.stop_all()
