"""The directory in NATS JetStream key-value buckets (``nats-py``).

Three buckets: ``conf_nodes`` (a node's record by name), ``conf_meetings`` (the holder of each meeting),
``conf_records`` (a meeting's opaque record). NATS 2.9 keeps one time to live per bucket (its streams'
``max_age``), set from the first TTL conf gives when it creates the bucket; an entry written again (a
refresh) starts its age anew. A claim is the key-value ``create``, which fails when the key holds a value;
a refresh is an ``update`` checked against the revision read, so it never overwrites another node's claim.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from conf_cli import ClusterBackend, ClusterBackendFactory, ConfError, DirectoryUnavailable

T = TypeVar("T")

NODES = "conf_nodes"
MEETINGS = "conf_meetings"
RECORDS = "conf_records"
MAX_KEYS = 100_000
STREAM_RETRY = 0.05
"""Seconds before a write that no stream answered is tried again, its buckets looked up (or made) anew,
within the backend's timeout: a bucket another node has just created may not listen on its subjects yet,
or a server restarted empty has none; such a write was not stored."""


class NatsBackend(ClusterBackend):
    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self._nc: Any = None
        self._buckets: dict[str, Any] = {}
        self._lock = asyncio.Lock()

    async def _connection(self) -> Any:
        import nats

        async with self._lock:  # one connection attempt at a time
            if self._nc is not None and not self._nc.is_closed:
                return self._nc
            self._nc = await self._connect(nats)
            self._buckets.clear()
            return self._nc

    async def _connect(self, nats: Any) -> Any:
        async def quiet(*_: object) -> None:  # nats-py logs every failed reconnect otherwise
            return None

        return await nats.connect(
            servers=[self.url],
            connect_timeout=self.timeout,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            error_cb=quiet,
            disconnected_cb=quiet,
            reconnected_cb=quiet,
        )

    async def _bucket(self, name: str, ttl: float | None) -> Any:
        """The bucket ``name``, created with ``ttl`` if missing; None if missing and ``ttl`` is None."""
        from nats.js.api import KeyValueConfig
        from nats.js.errors import BucketNotFoundError

        bucket = self._buckets.get(name)
        if bucket is not None:
            return bucket
        js = (await self._connection()).jetstream(timeout=self.timeout)
        try:
            bucket = await js.key_value(name)
        except BucketNotFoundError:
            if ttl is None:
                return None
            bucket = await js.create_key_value(KeyValueConfig(bucket=name, history=1, ttl=ttl))
        self._buckets[name] = bucket
        return bucket

    async def _run(self, work: Callable[[], Awaitable[T]]) -> T:
        from nats.errors import Error as NatsError
        from nats.js.errors import NoStreamResponseError

        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    try:
                        return await work()
                    except NoStreamResponseError:  # no stream listened (yet): nothing was written
                        self._buckets.clear()  # (or a server restarted empty: make them again)
                        await asyncio.sleep(STREAM_RETRY)
        except (NatsError, OSError, TimeoutError) as exc:
            self._buckets.clear()  # a server that restarted empty has none of them: look again next time
            raise DirectoryUnavailable(
                f"the cluster directory {self.url} cannot be reached: {exc or type(exc).__name__}"
            ) from None

    async def _all(self, name: str) -> dict[str, bytes]:
        """Every live entry of bucket ``name``. The keys come from the stream's subjects (what the server
        stores now), not from a watcher, so that a key just purged or just written is seen as it is."""
        from nats.js.errors import KeyDeletedError, KeyNotFoundError

        bucket = await self._bucket(name, None)
        if bucket is None:
            return {}
        prefix = f"$KV.{name}."
        info = await self._nc.jetstream(timeout=self.timeout).stream_info(f"KV_{name}", subjects_filter=">")
        subjects = info.state.subjects or {}
        found: dict[str, bytes] = {}
        for subject in list(subjects)[:MAX_KEYS]:
            if not subject.startswith(prefix):
                continue
            key = subject[len(prefix) :]
            try:
                entry = await bucket.get(key)
            except (KeyNotFoundError, KeyDeletedError):
                continue
            if entry.value:
                found[key] = entry.value
        return found

    async def _get(self, name: str, key: str) -> Any:
        from nats.js.errors import KeyDeletedError, KeyNotFoundError

        bucket = await self._bucket(name, None)
        if bucket is None:
            return None
        try:
            return await bucket.get(key)
        except (KeyNotFoundError, KeyDeletedError):  # never written, or deleted (purged, released)
            return None

    # -- nodes --------------------------------------------------------------------------------------------

    async def put_node(self, node: str, record: bytes, ttl: float) -> None:
        async def work() -> None:
            await (await self._bucket(NODES, ttl)).put(node, record)

        await self._run(work)

    async def nodes(self) -> dict[str, bytes]:
        return await self._run(lambda: self._all(NODES))

    async def remove_node(self, node: str) -> None:
        async def work() -> None:
            bucket = await self._bucket(NODES, None)
            if bucket is not None:
                await bucket.purge(node)

        await self._run(work)

    # -- claims -------------------------------------------------------------------------------------------

    async def claim(self, meeting: str, node: str, ttl: float) -> bool:
        from nats.js.errors import KeyWrongLastSequenceError

        async def work() -> bool:
            try:
                await (await self._bucket(MEETINGS, ttl)).create(meeting, node.encode())
            except KeyWrongLastSequenceError:
                return False
            return True

        return await self._run(work)

    async def refresh(self, meeting: str, node: str, ttl: float) -> str | None:
        from nats.js.errors import KeyWrongLastSequenceError

        async def work() -> str | None:
            bucket = await self._bucket(MEETINGS, ttl)
            entry = await self._get(MEETINGS, meeting)
            try:
                if entry is None or not entry.value:
                    await bucket.create(meeting, node.encode())
                    return node
                if entry.value.decode() != node:
                    return str(entry.value.decode())
                await bucket.update(meeting, node.encode(), last=entry.revision)
                return node
            except KeyWrongLastSequenceError:  # another node wrote it in between
                entry = await self._get(MEETINGS, meeting)
                return entry.value.decode() if entry is not None and entry.value else None

        return await self._run(work)

    async def holder(self, meeting: str) -> str | None:
        async def work() -> str | None:
            entry = await self._get(MEETINGS, meeting)
            return entry.value.decode() if entry is not None and entry.value else None

        return await self._run(work)

    async def claims(self) -> dict[str, str]:
        async def work() -> dict[str, str]:
            return {key: value.decode() for key, value in (await self._all(MEETINGS)).items()}

        return await self._run(work)

    async def release(self, meeting: str, node: str) -> None:
        async def work() -> None:
            entry = await self._get(MEETINGS, meeting)
            if entry is not None and entry.value == node.encode():
                await (await self._bucket(MEETINGS, None)).purge(meeting)

        await self._run(work)

    # -- records ------------------------------------------------------------------------------------------

    async def put_record(self, meeting: str, data: bytes, ttl: float) -> None:
        async def work() -> None:
            await (await self._bucket(RECORDS, ttl)).put(meeting, data)

        await self._run(work)

    async def get_record(self, meeting: str) -> bytes | None:
        async def work() -> bytes | None:
            entry = await self._get(RECORDS, meeting)
            return bytes(entry.value) if entry is not None and entry.value else None

        return await self._run(work)

    async def delete_record(self, meeting: str) -> None:
        async def work() -> None:
            bucket = await self._bucket(RECORDS, None)
            if bucket is not None:
                await bucket.purge(meeting)

        await self._run(work)

    async def close(self) -> None:
        if self._nc is not None:
            with contextlib.suppress(Exception):  # closing a connection that is already gone
                await self._nc.close()
            self._nc = None


class NatsBackends(ClusterBackendFactory):
    name = "nats"
    schemes = ("nats",)

    async def connect(self, url: str, *, timeout: float) -> ClusterBackend:
        parts = urlsplit(url)
        if not parts.hostname:
            raise ConfError(f"bad cluster URL {url!r}: expected nats://HOST:PORT")
        return NatsBackend(url, timeout)
