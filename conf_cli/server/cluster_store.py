"""A cluster's meeting records (:mod:`conf_cli.server.record`): kept in the cluster's directory (Redis,
NATS) beside the meeting's claim, so that any node can recreate a meeting whose node died.

The store has the :class:`~conf_cli.server.record.MeetingStore` interface the hub and the edge use for a
lone server's files: its methods are called from the edge's worker threads (never from the event loop)
and run the backend's coroutines on the loop, each waiting at most :data:`STORE_TIMEOUT` seconds. A record
lives :data:`RECORD_TTL` seconds after it was last written; the hub rewrites a live meeting's record more
often than that, and deletes it when the meeting ends. A directory that cannot be reached raises
:class:`~conf_cli.plugin.cluster.DirectoryUnavailable` (the edge logs a failed write; the hub refuses a
resume that needs the record, retryably).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from conf_cli.errors import ConfError
from conf_cli.plugin.cluster import ClusterBackend, DirectoryUnavailable
from conf_cli.server.record import MAX_RECORD_BYTES
from conf_cli.server.record_store import RECORD_MAX_AGE

RECORD_TTL = RECORD_MAX_AGE
"""Seconds a meeting's record lives in the directory after its last write: as long as a lone server keeps
an unwritten record file (a resume token's life and one refresh), so a record outlives its meeting's
claim long enough for the meeting's people to come back elsewhere."""
STORE_TIMEOUT = 3.0
"""Seconds one read or write of a record waits for the directory (the backend's own timeout is shorter)."""

T = TypeVar("T")


class ClusterMeetingStore:
    """Meeting records in the cluster's directory, through ``backend``, whose coroutines run on ``loop``."""

    def __init__(self, backend: ClusterBackend, loop: asyncio.AbstractEventLoop) -> None:
        self.backend = backend
        self.loop = loop

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(work, self.loop)
        try:
            return future.result(STORE_TIMEOUT)
        except FutureTimeout:
            future.cancel()
            raise DirectoryUnavailable(
                f"the cluster's directory ({self.backend.url}) did not answer within {STORE_TIMEOUT:g} s"
            ) from None

    def save(self, meeting: str, data: bytes) -> None:
        if len(data) > MAX_RECORD_BYTES:
            raise ConfError(f"a meeting record of {len(data)} bytes is over {MAX_RECORD_BYTES}")
        self._run(self.backend.put_record(meeting, data, RECORD_TTL))

    def load(self, meeting: str) -> bytes | None:
        data = self._run(self.backend.get_record(meeting))
        if data is not None and len(data) > MAX_RECORD_BYTES:
            raise ConfError(
                f"the record of meeting {meeting} in the directory is over {MAX_RECORD_BYTES} bytes"
            )
        return data

    def delete(self, meeting: str) -> None:
        self._run(self.backend.delete_record(meeting))
