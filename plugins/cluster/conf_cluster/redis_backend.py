"""The directory in Redis (the ``redis`` package's asyncio client).

Keys, under the URL's database: ``conf:node:NAME`` (a node's record), ``conf:meeting:ID`` (the name of the
node holding the meeting), ``conf:record:ID`` (a meeting's opaque record); each with a time to live
(``PX``). A claim is ``SET NX PX``; refreshing and releasing one check its holder in one server-side
script, so a node never extends or removes another node's claim.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar
from urllib.parse import urlsplit

from conf_cli import ClusterBackend, ClusterBackendFactory, ConfError, DirectoryUnavailable

T = TypeVar("T")

NODE = "conf:node:"
MEETING = "conf:meeting:"
RECORD = "conf:record:"
MAX_NODES = 10_000
"""At most this many node keys are read by :meth:`RedisBackend.nodes` (bounded work per refresh)."""

# KEYS[1] the claim, ARGV[1] the node, ARGV[2] the TTL in ms: the holder afterwards.
REFRESH = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return ARGV[1]
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
return holder
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def _ms(ttl: float) -> int:
    return max(1, round(ttl * 1000))


class RedisBackend(ClusterBackend):
    def __init__(self, url: str, timeout: float) -> None:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.url = url
        self.timeout = timeout
        try:
            self._redis = aioredis.from_url(
                url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0),
                decode_responses=False,
            )
        except ValueError as exc:
            raise ConfError(f"bad cluster URL {url!r}: {exc}") from None

    async def _run(self, call: Awaitable[T]) -> T:
        from redis.exceptions import RedisError

        try:
            async with asyncio.timeout(self.timeout):
                return await call
        except (RedisError, OSError, TimeoutError) as exc:
            raise DirectoryUnavailable(f"the cluster directory {self.url} cannot be reached: {exc}") from None

    async def put_node(self, node: str, record: bytes, ttl: float) -> None:
        await self._run(self._redis.set(NODE + node, record, px=_ms(ttl)))

    async def nodes(self) -> dict[str, bytes]:
        async def read() -> dict[str, bytes]:
            keys: list[bytes] = []
            async for key in self._redis.scan_iter(match=NODE + "*", count=200):
                keys.append(key)
                if len(keys) >= MAX_NODES:
                    break
            if not keys:
                return {}
            values = await self._redis.mget(keys)
            return {
                key.decode()[len(NODE) :]: bytes(value)
                for key, value in zip(keys, values, strict=True)
                if isinstance(value, bytes) and value
            }

        return await self._run(read())

    async def remove_node(self, node: str) -> None:
        await self._run(self._redis.delete(NODE + node))

    async def claim(self, meeting: str, node: str, ttl: float) -> bool:
        return bool(await self._run(self._redis.set(MEETING + meeting, node, nx=True, px=_ms(ttl))))

    async def refresh(self, meeting: str, node: str, ttl: float) -> str | None:
        holder = await self._run(self._redis.eval(REFRESH, 1, MEETING + meeting, node, _ms(ttl)))
        return holder.decode() if isinstance(holder, bytes) else None

    async def holder(self, meeting: str) -> str | None:
        value = await self._run(self._redis.get(MEETING + meeting))
        return value.decode() if isinstance(value, bytes) else None

    async def claims(self) -> dict[str, str]:
        async def read() -> dict[str, str]:
            keys: list[bytes] = []
            async for key in self._redis.scan_iter(match=MEETING + "*", count=500):
                keys.append(key)
                if len(keys) >= MAX_NODES * 10:
                    break
            if not keys:
                return {}
            values = await self._redis.mget(keys)
            return {
                key.decode()[len(MEETING) :]: value.decode()
                for key, value in zip(keys, values, strict=True)
                if isinstance(value, bytes) and value
            }

        return await self._run(read())

    async def release(self, meeting: str, node: str) -> None:
        await self._run(self._redis.eval(RELEASE, 1, MEETING + meeting, node))

    async def put_record(self, meeting: str, data: bytes, ttl: float) -> None:
        await self._run(self._redis.set(RECORD + meeting, data, px=_ms(ttl)))

    async def get_record(self, meeting: str) -> bytes | None:
        value = await self._run(self._redis.get(RECORD + meeting))
        return value if isinstance(value, bytes) else None

    async def delete_record(self, meeting: str) -> None:
        await self._run(self._redis.delete(RECORD + meeting))

    async def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a connection that is already gone
            await self._redis.aclose()


class RedisBackends(ClusterBackendFactory):
    name = "redis"
    schemes = ("redis", "rediss")

    async def connect(self, url: str, *, timeout: float) -> ClusterBackend:
        parts = urlsplit(url)
        if not parts.hostname:
            raise ConfError(f"bad cluster URL {url!r}: expected redis://HOST:PORT/DB")
        return RedisBackend(url, timeout)
