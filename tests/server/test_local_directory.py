"""The directory of `conf server --workers` without --cluster: the parent's store (sans-I/O, TTLs and
bounds), and the same ClusterBackend contract as Redis and NATS over its real Unix socket, with hostile
requests answered and the server going on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest

from conf_cli.errors import ConfError
from conf_cli.plugin.cluster import ClusterBackend, DirectoryUnavailable
from conf_cli.server.local_directory import (
    MAX_LINE,
    MAX_VALUE,
    DirectoryServer,
    LocalBackends,
    LocalStore,
    StoreBackend,
    StoreFull,
)


def test_entries_lapse_after_their_ttl_and_a_lapsed_claim_is_free() -> None:
    store = LocalStore()
    store.put_node("a", b"{}", 6.0, now=0.0)
    assert store.claim("m-1", "a", 6.0, now=0.0)
    assert not store.claim("m-1", "b", 6.0, now=5.9)
    assert store.refresh("m-1", "a", 6.0, now=5.9) == "a"  # extended to 11.9
    assert store.holder("m-1", now=11.0) == "a" and store.nodes(now=6.0) == {}
    assert store.holder("m-1", now=12.0) is None
    assert store.claim("m-1", "b", 6.0, now=12.0)
    assert store.refresh("m-1", "a", 6.0, now=13.0) == "b"  # never takes another's claim
    store.release("m-1", "a", now=13.0)
    assert store.claims(now=13.0) == {"m-1": "b"}


def test_the_store_is_bounded_in_entries_and_value_size() -> None:
    store = LocalStore(max_entries=3)
    for index in range(3):
        store.put_record(f"m-{index}", b"x", 1.0, now=0.0)
    with pytest.raises(StoreFull):
        store.claim("m-9", "a", 1.0, now=0.5)
    assert store.claim("m-9", "a", 1.0, now=2.0)  # the lapsed ones made room
    with pytest.raises(ConfError, match="bytes"):
        store.put_node("a", b"x" * (MAX_VALUE + 1), 1.0, now=2.0)


Scenario = Callable[[DirectoryServer, Callable[[], Awaitable[ClusterBackend]]], Awaitable[None]]


def run(scenario: Scenario) -> None:
    async def main() -> None:
        server = DirectoryServer(StoreBackend(LocalStore(), "local://"))
        await server.start()
        opened: list[ClusterBackend] = []

        async def backend() -> ClusterBackend:
            opened.append(await LocalBackends().connect(server.url, timeout=2.0))
            return opened[-1]

        try:
            await scenario(server, backend)
        finally:
            for each in opened:
                await each.close()
            await server.close()

    asyncio.run(main())


def test_the_served_directory_keeps_the_backend_contract_over_its_unix_socket() -> None:
    async def scenario(server: DirectoryServer, backend: Callable[[], Awaitable[ClusterBackend]]) -> None:
        assert server.path.stat().st_mode & 0o777 == 0o600
        assert server.folder.stat().st_mode & 0o777 == 0o700
        one, two = await backend(), await backend()
        await one.put_node("a", b'{"x":1}', 30)
        await two.put_node("b", b'{"x":2}', 30)
        assert await one.nodes() == {"a": b'{"x":1}', "b": b'{"x":2}'}
        await one.remove_node("a")
        assert set(await two.nodes()) == {"b"}
        won = await asyncio.gather(*(c.claim("m-1", n, 30) for c, n in ((one, "a"), (two, "b"))))
        assert sorted(won) == [False, True]  # of two at once exactly one wins
        holder = "a" if won[0] else "b"
        other, loser = ("b", two) if holder == "a" else ("a", one)
        assert await loser.holder("m-1") == holder
        assert await loser.refresh("m-1", other, 30) == holder
        await loser.release("m-1", other)
        assert await one.claims() == {"m-1": holder}
        await one.release("m-1", holder)
        assert await two.holder("m-1") is None and await two.claims() == {}
        assert await two.refresh("m-2", "b", 30) == "b"
        await one.put_record("m-2", b"\x00state", 30)
        assert await two.get_record("m-2") == b"\x00state"
        await two.delete_record("m-2")
        assert await one.get_record("m-2") is None

    run(scenario)


def test_hostile_requests_are_answered_with_an_error_and_the_directory_goes_on() -> None:
    async def scenario(server: DirectoryServer, backend: Callable[[], Awaitable[ClusterBackend]]) -> None:
        honest = await backend()
        reader, writer = await asyncio.open_unix_connection(str(server.path), limit=4 * MAX_LINE)
        for line in (
            b"not json",
            b"[1, 2]",
            b'{"op": "drop_everything"}',
            b'{"op": "claim", "meeting": "../../etc", "node": "a", "ttl": 6}',
            b'{"op": "claim", "meeting": "m-1", "node": "a", "ttl": 1e12}',
            b'{"op": "put_node", "node": "a", "data": "%%%", "ttl": 6}',
        ):
            writer.write(line + b"\n")
            answer = json.loads(await reader.readline())
            assert "error" in answer and "ok" not in answer, line
        assert await honest.claims() == {}  # nothing was stored
        writer.write(b"x" * (MAX_LINE + 10) + b"\n")  # a line too long closes that connection only
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert await honest.claim("m-1", "a", 6)
        with pytest.raises(ConfError, match="refused claim"):
            await honest.claim("bad key!", "a", 6)

    run(scenario)


def test_a_directory_that_is_gone_is_directory_unavailable_within_the_timeout() -> None:
    async def main() -> None:
        server = DirectoryServer(StoreBackend(LocalStore(), "local://"))
        await server.start()
        backend = await LocalBackends().connect(server.url, timeout=1.0)
        assert await backend.claim("m-1", "a", 6)
        await server.close()
        started = asyncio.get_running_loop().time()
        with pytest.raises(DirectoryUnavailable, match="cannot be reached"):
            await backend.holder("m-1")
        assert asyncio.get_running_loop().time() - started < 5.0
        await backend.close()

    asyncio.run(main())
    with pytest.raises(ConfError, match="expected local:///PATH"):
        asyncio.run(LocalBackends().connect("local://relative", timeout=1.0))
