"""The directory of ``conf server --workers N`` without ``--cluster``: kept in the parent process, served
to the workers over a Unix socket.

- :class:`LocalStore` is the directory itself, sans-I/O (``now`` passed in): node records, meeting claims
  and per-meeting records, each under a time to live, bounded in count and size. It runs in one asyncio
  loop, so every operation is atomic: of two workers claiming one meeting ID, the one whose request is
  read first gets it, as with Redis ``SET NX``.
- :class:`StoreBackend` is a :class:`~conf_cli.plugin.cluster.ClusterBackend` over a store in the same
  process (the parent's own front uses it), :func:`serve_directory` serves one to other processes, and
  :class:`LocalBackend` is a worker's backend speaking to it (``local:///PATH/directory.sock``).

The protocol is one JSON object per line each way, a request at most :data:`MAX_LINE` bytes:
``{"op": "claim", "meeting": ID, "node": NAME, "ttl": SECONDS}`` → ``{"ok": true}``, or
``{"error": TEXT}`` for a request it cannot serve. Bytes travel in base64. The socket lives in a folder
only its user can open (mode 0700).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conf_cli.errors import ConfError
from conf_cli.plugin.cluster import (
    ClusterBackend,
    ClusterBackendFactory,
    DirectoryUnavailable,
    check_key,
)

log = logging.getLogger("conf.directory")

SCHEME = "local"
MAX_LINE = 64 * 1024
"""A request or an answer is at most this many bytes (a node record is at most 8 KiB)."""
MAX_VALUE = 16 * 1024
MAX_ENTRIES = 100_000
"""Entries the store keeps at most (nodes, claims and records together)."""
MAX_TTL = 3600.0
MAX_CONNECTIONS = 256
IDLE_TIMEOUT = 60.0
"""Seconds a served connection may stay silent (a node asks every 2 s)."""


class StoreFull(ConfError):
    """The store holds :data:`MAX_ENTRIES` live entries already."""


class LocalStore:
    """The directory: ``kind:key`` → (value, expiry). Expired entries are dropped when met."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.entries: dict[str, tuple[bytes, float]] = {}
        self.max_entries = max_entries

    def _live(self, key: str, now: float) -> bytes | None:
        entry = self.entries.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            del self.entries[key]
            return None
        return entry[0]

    def _put(self, key: str, value: bytes, ttl: float, now: float) -> None:
        if len(value) > MAX_VALUE:
            raise ConfError(f"a value of {len(value)} bytes (at most {MAX_VALUE})")
        if key not in self.entries and len(self.entries) >= self.max_entries:
            self.expire(now)
            if len(self.entries) >= self.max_entries:
                raise StoreFull(f"the directory holds {self.max_entries} entries")
        self.entries[key] = (value, now + min(max(ttl, 0.0), MAX_TTL))

    def expire(self, now: float) -> None:
        """Drop every expired entry."""
        for key in [k for k, (_, expiry) in self.entries.items() if expiry <= now]:
            del self.entries[key]

    def _all(self, kind: str, now: float) -> dict[str, bytes]:
        prefix = kind + ":"
        found: dict[str, bytes] = {}
        for key in [k for k in self.entries if k.startswith(prefix)]:
            value = self._live(key, now)
            if value is not None:
                found[key[len(prefix) :]] = value
        return found

    # -- the operations of a ClusterBackend --------------------------------------------------------------

    def put_node(self, node: str, record: bytes, ttl: float, now: float) -> None:
        self._put(f"node:{node}", record, ttl, now)

    def nodes(self, now: float) -> dict[str, bytes]:
        return self._all("node", now)

    def remove_node(self, node: str) -> None:
        self.entries.pop(f"node:{node}", None)

    def claim(self, meeting: str, node: str, ttl: float, now: float) -> bool:
        key = f"meeting:{meeting}"
        if self._live(key, now) is not None:
            return False
        self._put(key, node.encode(), ttl, now)
        return True

    def refresh(self, meeting: str, node: str, ttl: float, now: float) -> str | None:
        key = f"meeting:{meeting}"
        holder = self._live(key, now)
        if holder is not None and holder != node.encode():
            return holder.decode()
        self._put(key, node.encode(), ttl, now)
        return node

    def holder(self, meeting: str, now: float) -> str | None:
        holder = self._live(f"meeting:{meeting}", now)
        return holder.decode() if holder is not None else None

    def claims(self, now: float) -> dict[str, str]:
        return {meeting: node.decode() for meeting, node in self._all("meeting", now).items()}

    def release(self, meeting: str, node: str, now: float) -> None:
        if self._live(f"meeting:{meeting}", now) == node.encode():
            del self.entries[f"meeting:{meeting}"]

    def put_record(self, meeting: str, data: bytes, ttl: float, now: float) -> None:
        self._put(f"record:{meeting}", data, ttl, now)

    def get_record(self, meeting: str, now: float) -> bytes | None:
        return self._live(f"record:{meeting}", now)

    def delete_record(self, meeting: str) -> None:
        self.entries.pop(f"record:{meeting}", None)


class StoreBackend(ClusterBackend):
    """A :class:`LocalStore` of this process seen as a cluster backend (never unreachable)."""

    def __init__(self, store: LocalStore, url: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.url = url
        self.clock = clock

    async def put_node(self, node: str, record: bytes, ttl: float) -> None:
        self.store.put_node(node, record, ttl, self.clock())

    async def nodes(self) -> dict[str, bytes]:
        return self.store.nodes(self.clock())

    async def remove_node(self, node: str) -> None:
        self.store.remove_node(node)

    async def claim(self, meeting: str, node: str, ttl: float) -> bool:
        return self.store.claim(meeting, node, ttl, self.clock())

    async def refresh(self, meeting: str, node: str, ttl: float) -> str | None:
        return self.store.refresh(meeting, node, ttl, self.clock())

    async def holder(self, meeting: str) -> str | None:
        return self.store.holder(meeting, self.clock())

    async def claims(self) -> dict[str, str]:
        return self.store.claims(self.clock())

    async def release(self, meeting: str, node: str) -> None:
        self.store.release(meeting, node, self.clock())

    async def put_record(self, meeting: str, data: bytes, ttl: float) -> None:
        self.store.put_record(meeting, data, ttl, self.clock())

    async def get_record(self, meeting: str) -> bytes | None:
        return self.store.get_record(meeting, self.clock())

    async def delete_record(self, meeting: str) -> None:
        self.store.delete_record(meeting)

    async def close(self) -> None:
        return None


# -- the protocol ----------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: object) -> bytes:
    if not isinstance(text, str) or len(text) > MAX_LINE:
        raise ValueError("expected base64 text")
    return base64.b64decode(text, validate=True)


def _text(request: dict[str, Any], key: str) -> str:
    value = request.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{key} must be text")
    return check_key(key, value)


def _ttl(request: dict[str, Any]) -> float:
    value = request.get("ttl")
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_TTL:
        raise ValueError(f"ttl must be a number of seconds, 0 to {MAX_TTL:g}")
    return float(value)


async def answer(backend: ClusterBackend, line: bytes) -> dict[str, Any]:
    """The answer to one request ``line`` (see the module's docstring), asked of ``backend``."""
    try:
        request = json.loads(line)
        if not isinstance(request, dict):
            raise ValueError("a request is a JSON object")
        op = request.get("op")
        if op == "put_node":
            await backend.put_node(_text(request, "node"), _unb64(request.get("data")), _ttl(request))
            return {"ok": None}
        if op == "nodes":
            return {"ok": {name: _b64(data) for name, data in (await backend.nodes()).items()}}
        if op == "remove_node":
            await backend.remove_node(_text(request, "node"))
            return {"ok": None}
        if op == "claim":
            got = await backend.claim(_text(request, "meeting"), _text(request, "node"), _ttl(request))
            return {"ok": got}
        if op == "refresh":
            holder = await backend.refresh(_text(request, "meeting"), _text(request, "node"), _ttl(request))
            return {"ok": holder}
        if op == "holder":
            return {"ok": await backend.holder(_text(request, "meeting"))}
        if op == "claims":
            return {"ok": await backend.claims()}
        if op == "release":
            await backend.release(_text(request, "meeting"), _text(request, "node"))
            return {"ok": None}
        if op == "put_record":
            meeting = _text(request, "meeting")
            await backend.put_record(meeting, _unb64(request.get("data")), _ttl(request))
            return {"ok": None}
        if op == "get_record":
            data = await backend.get_record(_text(request, "meeting"))
            return {"ok": _b64(data) if data is not None else None}
        if op == "delete_record":
            await backend.delete_record(_text(request, "meeting"))
            return {"ok": None}
        raise ValueError(f"unknown op {str(op)[:40]!r}")
    except (ValueError, binascii.Error, ConfError) as exc:
        return {"error": str(exc)[:200]}


class DirectoryServer:
    """Serves a backend (the parent's store) to the workers over a Unix socket in a private folder."""

    def __init__(self, backend: ClusterBackend) -> None:
        self.backend = backend
        self.folder = Path(tempfile.mkdtemp(prefix="conf-directory-"))  # mode 0700
        self.path = self.folder / "directory.sock"
        self.url = f"{SCHEME}://{self.path}"
        self.requests = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, str(self.path), limit=MAX_LINE)
        os.chmod(self.path, 0o600)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._connections) >= MAX_CONNECTIONS:
            writer.close()
            return
        self._connections.add(writer)
        try:
            while True:
                async with asyncio.timeout(IDLE_TIMEOUT):
                    line = await reader.readline()
                if not line.endswith(b"\n"):
                    return  # closed, or a line too long
                self.requests += 1
                writer.write(json.dumps(await answer(self.backend, line)).encode() + b"\n")
                await writer.drain()
        except (OSError, TimeoutError, ValueError, asyncio.LimitOverrunError):
            return
        finally:
            self._connections.discard(writer)
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._connections):
            writer.close()
        shutil.rmtree(self.folder, ignore_errors=True)


# -- a worker's side -------------------------------------------------------------------------------------


class LocalBackend(ClusterBackend):
    """A worker's connection to its parent's directory (one request at a time, reconnecting as needed)."""

    def __init__(self, url: str, path: str, timeout: float) -> None:
        self.url = url
        self.path = path
        self.timeout = timeout
        self._lock = asyncio.Lock()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _call(self, request: dict[str, Any]) -> Any:
        async with self._lock:
            try:
                async with asyncio.timeout(self.timeout):
                    if self._writer is None or self._reader is None:
                        self._reader, self._writer = await asyncio.open_unix_connection(
                            self.path, limit=MAX_LINE
                        )
                    self._writer.write(json.dumps(request).encode() + b"\n")
                    line = await self._reader.readline()
                if not line.endswith(b"\n"):
                    raise ConnectionError("the directory closed the connection")
                reply = json.loads(line)
            except (OSError, TimeoutError, ValueError, asyncio.LimitOverrunError) as exc:
                self._drop()
                raise DirectoryUnavailable(
                    f"the workers' directory ({self.url}) cannot be reached: {exc or 'no answer in time'}"
                ) from None
        if not isinstance(reply, dict) or "error" in reply:
            error = reply.get("error") if isinstance(reply, dict) else "not an object"
            raise ConfError(f"the workers' directory refused {request.get('op')}: {error}")
        return reply.get("ok")

    def _drop(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def put_node(self, node: str, record: bytes, ttl: float) -> None:
        await self._call({"op": "put_node", "node": node, "data": _b64(record), "ttl": ttl})

    async def nodes(self) -> dict[str, bytes]:
        found = await self._call({"op": "nodes"})
        if not isinstance(found, dict):
            return {}
        return {str(name): _unb64(data) for name, data in found.items()}

    async def remove_node(self, node: str) -> None:
        await self._call({"op": "remove_node", "node": node})

    async def claim(self, meeting: str, node: str, ttl: float) -> bool:
        return bool(await self._call({"op": "claim", "meeting": meeting, "node": node, "ttl": ttl}))

    async def refresh(self, meeting: str, node: str, ttl: float) -> str | None:
        holder = await self._call({"op": "refresh", "meeting": meeting, "node": node, "ttl": ttl})
        return holder if isinstance(holder, str) else None

    async def holder(self, meeting: str) -> str | None:
        holder = await self._call({"op": "holder", "meeting": meeting})
        return holder if isinstance(holder, str) else None

    async def claims(self) -> dict[str, str]:
        found = await self._call({"op": "claims"})
        return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}

    async def release(self, meeting: str, node: str) -> None:
        await self._call({"op": "release", "meeting": meeting, "node": node})

    async def put_record(self, meeting: str, data: bytes, ttl: float) -> None:
        await self._call({"op": "put_record", "meeting": meeting, "data": _b64(data), "ttl": ttl})

    async def get_record(self, meeting: str) -> bytes | None:
        data = await self._call({"op": "get_record", "meeting": meeting})
        return _unb64(data) if data is not None else None

    async def delete_record(self, meeting: str) -> None:
        await self._call({"op": "delete_record", "meeting": meeting})

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            async with self._lock:
                self._drop()


class LocalBackends(ClusterBackendFactory):
    """``local:///PATH``: the directory a ``conf server --workers`` parent serves its workers."""

    name = "local"
    schemes = (SCHEME,)

    async def connect(self, url: str, *, timeout: float) -> ClusterBackend:
        scheme, _, path = url.partition("://")
        if scheme != SCHEME or not path.startswith("/"):
            raise ConfError(f"bad directory URL {url!r}: expected {SCHEME}:///PATH/directory.sock")
        return LocalBackend(url, path, timeout)
