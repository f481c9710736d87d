"""A server as one node of a cluster (``conf server --cluster URL --node NAME``): the asyncio side.

Every :data:`~conf_cli.server.directory.REFRESH_INTERVAL` the node writes its record (URLs, key
fingerprint, load) into the directory, reads the other nodes' records for placement, and refreshes the
claim of every meeting it runs (claiming again what a directory that restarted empty lost); it releases
the claims of meetings that ended. It answers the hub's questions (:class:`~conf_cli.server.hub.Ask`).
The decisions are in :mod:`conf_cli.server.directory`; the directory is a plugin's
:class:`~conf_cli.plugin.cluster.ClusterBackend`. See docs/cluster.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict

from conf_cli.plugin.cluster import ClusterBackend, DirectoryUnavailable
from conf_cli.server.directory import (
    CLAIM_TTL,
    NODE_TTL,
    RECORD_REWRITE,
    REFRESH_INTERVAL,
    UNREACHABLE,
    ClaimBook,
    ClaimMeeting,
    ClusterView,
    FindHolder,
    Holder,
    LoadMeter,
    NodeInfo,
    Question,
)
from conf_cli.server.hub import Hub

log = logging.getLogger("conf.cluster")

CLOSE_TIMEOUT = 2.0
"""Seconds a stopping node spends releasing its claims and removing its record."""


class ClusterNode:
    """One node's duties towards its cluster's directory."""

    def __init__(
        self,
        backend: ClusterBackend,
        hub: Hub,
        name: str,
        urls: list[str],
        fingerprint: str | None,
        capacity: int,
        packets: Callable[[], int],
        *,
        holds_meetings: bool = True,
    ) -> None:
        self.backend = backend
        self.holds_meetings = holds_meetings
        """False for the front of ``conf server --workers``: it writes no record (so no meeting is placed
        on it) and sends every create and join on to a worker."""
        self.hub = hub
        self.urls = urls
        self.capacity = capacity
        self.packets = packets
        """The media packets the server has received so far (for its load)."""
        self.view = ClusterView(name, backend.url, fingerprint, holds_meetings=holds_meetings)
        self.book = ClaimBook()
        self.meter = LoadMeter()
        self.record = NodeInfo(name, tuple(urls), fingerprint, capacity=capacity)
        self.conflicts = 0
        """Refreshes that found another node holding one of this node's meetings."""
        self.refreshes = 0
        self.carried: Callable[[], int] = lambda: 0
        """Participants connected here whom this node carries to other nodes' meetings (cascading):
        they count in its record's participants, as those in its own meetings do."""
        self._records_written: float | None = None
        """When this node last had every running meeting's record written again (:data:`RECORD_REWRITE`)."""
        self._task: asyncio.Task[None] | None = None
        self._first = asyncio.Event()
        hub.cluster = self.view

    @property
    def name(self) -> str:
        return self.view.name

    async def start(self, wait: float = 2.0) -> None:
        """Start refreshing; wait up to ``wait`` seconds for the first round (the directory may be
        down: the node then runs on its own until it is back)."""
        self._task = asyncio.create_task(self._run(), name="cluster-node")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._first.wait()

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            await self.refresh(started)
            self._first.set()
            await asyncio.sleep(max(0.1, REFRESH_INTERVAL - (time.monotonic() - started)))

    async def refresh(self, now: float) -> None:
        """One round: the node's record, the other nodes', and the claims of this node's meetings."""
        cpu, rate = self.meter.sample(now, time.process_time(), self.packets())
        hub = self.hub
        self.record = NodeInfo(
            self.name,
            tuple(self.urls),
            self.view.fingerprint,
            cpu=round(cpu, 3),
            participants=sum(len(m.participants) for m in hub.meetings.values()) + self.carried(),
            packets_per_second=round(rate, 1),
            meetings=len(hub.meetings),
            capacity=self.capacity,
        )
        refresh, release = self.book.plan(hub.meetings)
        try:
            if self.holds_meetings:
                await self.backend.put_node(self.name, self.record.to_bytes(), NODE_TTL)
            records = await self.backend.nodes()
            for meeting in refresh:
                holder = await self.backend.refresh(meeting, self.name, CLAIM_TTL)
                if holder is not None and holder != self.name:
                    self.conflicts += 1
                    log.warning("meeting %s is claimed by node %s too; it goes on here", meeting, holder)
            for meeting in release:
                await self.backend.release(meeting, self.name)
                self.book.released(meeting)
        except DirectoryUnavailable as exc:
            if self.view.lost(time.monotonic()):
                log.warning("%s; running meetings go on, creates and joins from elsewhere wait", exc)
            return
        self.refreshes += 1
        back = self.view.answered(time.monotonic())
        if back:
            done = "registered" if self.holds_meetings else "reading the others"
            log.warning("cluster directory %s reachable: node %s %s", self.backend.url, self.name, done)
        if back or self._records_written is None or now - self._records_written >= RECORD_REWRITE:
            self._records_written = now
            self.hub.rewrite_records()  # the edge writes them with its next actions
        for bad in self.view.seen(records, time.monotonic()):
            log.debug("directory entry %s is not a node record: ignored", bad)

    async def answer(self, question: Question) -> object:
        """The directory's answer to one of the hub's questions, or UNREACHABLE."""
        try:
            if isinstance(question, ClaimMeeting):
                got = await self.backend.claim(question.meeting, self.name, CLAIM_TTL)
                if got:
                    self.book.claimed(question.meeting)
                return got
            if isinstance(question, FindHolder):
                holder = await self.backend.holder(question.meeting)
                if holder is None:
                    return None
                node = self.view.nodes.get(holder)
                if node is None and holder != self.name:  # a node that started since the last round
                    self.view.seen(await self.backend.nodes(), time.monotonic())
                    node = self.view.nodes.get(holder)
                return Holder(holder, node)
        except DirectoryUnavailable as exc:
            if self.view.lost(time.monotonic()):
                log.warning("%s", exc)
            return UNREACHABLE
        raise TypeError(f"not a question for the directory: {question!r}")

    def stats(self) -> dict[str, object]:
        """What ``server_stats`` says of the cluster."""
        return {
            "directory": self.backend.url,
            "reachable": self.view.reachable,
            "nodes": sorted(self.view.nodes),
            "claims": len(self.book.held),
            "refreshes": self.refreshes,
            "conflicts": self.conflicts,
            "load": asdict(self.record) | {"urls": list(self.record.urls)},
        }

    async def close(self) -> None:
        """Stop refreshing; release this node's claims and remove its record (best effort)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(DirectoryUnavailable, TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                for meeting in sorted(self.book.held | set(self.hub.meetings)):
                    await self.backend.release(meeting, self.name)
                if self.holds_meetings:
                    await self.backend.remove_node(self.name)
        await self.backend.close()
