"""Cluster backends: found through ``conf_register_cluster_backends`` by URL scheme, and the built-in
Redis and NATS ones keeping the contract of ``ClusterBackend`` against a real redis-server and
nats-server (conf_cli.testing.directories)."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Iterator

import pytest

from conf_cli import ClusterBackend, ClusterBackendFactory, ConfError, DirectoryUnavailable, hookimpl
from conf_cli.plugin.cluster import check_key
from conf_cli.plugin.registry import ONLY_ENV, create_registry
from conf_cli.testing.directories import Directory, free_port, start_directory


class Elsewhere(ClusterBackendFactory):
    name = "elsewhere"
    schemes = ("mem",)

    async def connect(self, url: str, *, timeout: float) -> ClusterBackend:
        raise ConfError(f"would connect to {url}")


def test_a_plugin_registers_a_backend_found_by_its_url_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ONLY_ENV, "cluster")

    def conf_register_cluster_backends(register):  # type: ignore[no-untyped-def]
        register(Elsewhere())

    plugin = types.SimpleNamespace(
        __name__="elsewhere", conf_register_cluster_backends=hookimpl(conf_register_cluster_backends)
    )
    registry = create_registry((plugin,))
    assert registry.cluster_backend_for("mem://x").name == "elsewhere"
    assert registry.cluster_backend_for("redis://127.0.0.1:6379/0").name == "redis"
    assert registry.cluster_backend_for("NATS://127.0.0.1:4222").name == "nats"
    with pytest.raises(ConfError, match=r"no cluster backend for 'etcd://h:1' .*mem, nats, redis, rediss"):
        registry.cluster_backend_for("etcd://h:1")


def test_node_names_and_meeting_ids_fit_every_backend() -> None:
    assert check_key("--node", "node-1_eu") == "node-1_eu"
    for bad in ("", "a b", "a.b", "a*", "a>", "a:b", "a/b", "x" * 65, "é"):
        with pytest.raises(ConfError):
            check_key("--node", bad)


@pytest.fixture(params=["redis", "nats"])
def directory(request: pytest.FixtureRequest) -> Iterator[Directory]:
    started = start_directory(request.param)
    try:
        yield started
    finally:
        started.close()


async def _backend(url: str) -> ClusterBackend:
    return await create_registry().cluster_backend_for(url).connect(url, timeout=2.0)


def test_the_backend_keeps_its_contract_on_a_real_engine(directory: Directory) -> None:
    async def scenario() -> None:
        one, two = await _backend(directory.url), await _backend(directory.url)
        try:
            # nodes
            await one.put_node("a", b'{"x":1}', 30)
            await two.put_node("b", b'{"x":2}', 30)
            assert await one.nodes() == {"a": b'{"x":1}', "b": b'{"x":2}'}
            await one.remove_node("a")
            assert set(await two.nodes()) == {"b"}
            # claims: of two at once exactly one wins
            won = await asyncio.gather(one.claim("m-1", "a", 30), two.claim("m-1", "b", 30))
            assert sorted(won) == [False, True]
            holder = "a" if won[0] else "b"
            other, loser = ("b", two) if holder == "a" else ("a", one)
            assert await loser.holder("m-1") == holder
            assert await loser.refresh("m-1", other, 30) == holder  # never takes another's claim
            await loser.release("m-1", other)  # nor releases it
            assert await one.claims() == {"m-1": holder}
            await one.release("m-1", holder)
            assert await two.holder("m-1") is None and await two.claims() == {}
            assert await two.refresh("m-2", "b", 30) == "b"  # a lapsed claim is claimed again
            # records
            await one.put_record("m-2", b"\x00state", 30)
            assert await two.get_record("m-2") == b"\x00state"
            await two.delete_record("m-2")
            assert await one.get_record("m-2") is None
        finally:
            await one.close()
            await two.close()

    asyncio.run(scenario())


def test_a_nats_bucket_gone_under_a_backend_is_made_again_at_its_next_write() -> None:
    """A NATS server restarted empty, or a bucket another node has just made that does not listen yet: a
    write that no stream answers was not stored, and is tried again with the bucket looked up (made)
    anew, within the timeout, instead of failing. Here the buckets are deleted behind the backend's back,
    as a restart would leave them."""
    import nats

    started = start_directory("nats")

    async def scenario() -> None:
        one = await _backend(started.url)
        other = await nats.connect(started.url, connect_timeout=2)
        try:
            await one.put_node("a", b"{}", 30)
            assert await one.claim("m-1", "a", 30)  # both buckets made and kept by the backend
            js = other.jetstream()
            for bucket in ("conf_nodes", "conf_meetings"):
                await js.delete_key_value(bucket)
            assert await one.claim("m-2", "a", 30)  # its cached bucket has no stream behind it now
            await one.put_node("a", b"{}", 30)
            assert await one.holder("m-2") == "a" and set(await one.nodes()) == {"a"}
        finally:
            await other.close()
            await one.close()

    try:
        asyncio.run(scenario())
    finally:
        started.close()


def test_entries_lapse_after_their_ttl(directory: Directory) -> None:
    async def scenario() -> None:
        backend = await _backend(directory.url)
        try:
            await backend.put_node("a", b"{}", 1.0)
            assert await backend.claim("m-1", "a", 1.0)
            deadline = asyncio.get_running_loop().time() + 10.0
            while await backend.nodes() or await backend.holder("m-1"):
                assert asyncio.get_running_loop().time() < deadline, "entries outlived their TTL"
                await asyncio.sleep(0.2)
            assert await backend.claim("m-1", "b", 1.0)  # free for another node
        finally:
            await backend.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("scheme", ["redis", "nats"])
def test_an_engine_that_is_not_there_is_directory_unavailable_within_the_timeout(scheme: str) -> None:
    url = f"{scheme}://127.0.0.1:{free_port()}" + ("/0" if scheme == "redis" else "")

    async def scenario() -> float:
        backend = await create_registry().cluster_backend_for(url).connect(url, timeout=1.0)
        started = asyncio.get_running_loop().time()
        try:
            with pytest.raises(DirectoryUnavailable, match="cannot be reached"):
                await backend.claim("m-1", "a", 6)
        finally:
            await backend.close()
        return asyncio.get_running_loop().time() - started

    assert asyncio.run(scenario()) < 5.0
