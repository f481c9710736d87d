from __future__ import annotations

from collections.abc import Iterator

import pytest

from conf_cli.testing.processes import ClientPool, start_server


@pytest.fixture
def server_url() -> Iterator[str]:
    server, url = start_server()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
def plain_server() -> Iterator[str]:
    """A ``conf server --encryption none``: for tests that tap or rewrite its wire (a server holds its
    link keys anyway, so link encryption changes nothing about what a lying server can do)."""
    server, url = start_server("--encryption", "none")
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
