"""``conf server --workers N --admin-port PORT``: the parent's admin API, in front of the workers'.

Each worker serves the admin API of its own meetings on a free loopback port (with the one
``admin.key`` the parent made before starting them, and its own recorders). The parent serves the API
on ``--admin-port`` with the same guard (key, failed attempts, bounds) and routes each request:

- a meeting's route goes to the worker that holds the meeting, as the workers' directory says; its
  answer comes back as it is (no such meeting anywhere: 404);
- ``GET /meetings`` asks every worker and lists all their meetings;
- ``POST /meetings`` goes to the worker the parent would send a new meeting's creator to;
- a recording's start goes to the meeting's worker only while the workers together record fewer than
  ``--max-recordings`` meetings (each worker also keeps that limit of its own): the limit is the
  machine's, as without ``--workers``.

The parent holds no meeting, so it decides nothing about one: the worker's own rules answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from conf_cli.errors import RequestRefused
from conf_cli.plugin.cluster import ClusterBackend, DirectoryUnavailable
from conf_cli.server.admin import AdminApi, Handler
from conf_cli.server.admin_routes import RECORDER_OPERATIONS
from conf_cli.server.directory import is_meeting_key
from conf_cli.server.passcode import normalise_meeting_id
from conf_cli.server.recordings import MAX_RECORDINGS

if TYPE_CHECKING:
    from conf_cli.server.cluster_node import ClusterNode
    from conf_cli.server.edge import Server
    from conf_cli.server.workers.supervisor import WorkerProcess, Workers

log = logging.getLogger("conf.admin")

MAX_ANSWER = 4 << 20
"""Bytes of a worker's answer at most."""
DIRECTORY_TIMEOUT = 2.0


class WorkersAdminApi(AdminApi):
    """The admin API of a ``--workers`` parent: each request answered by the worker it concerns."""

    def __init__(
        self,
        front: Server,
        key: str,
        workers: Workers,
        node: ClusterNode,
        backend: ClusterBackend,
        max_recordings: int = MAX_RECORDINGS,
    ) -> None:
        super().__init__(front, key)
        self.workers = workers
        self.node = node
        self.backend = backend
        self.max_recordings = max_recordings
        self._session: aiohttp.ClientSession | None = None
        self._counting = asyncio.Lock()
        self._starting: set[str] = set()
        """Meetings whose recording's start was sent on and not yet answered."""

    def handler(self, operation: str) -> Handler:
        if operation in ("list_meetings", "create_meeting", "start_recording"):
            return super().handler(operation)
        return self.forward

    async def close(self) -> None:
        await super().close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- what the parent answers itself -----------------------------------------------------------

    async def list_meetings(self, request: web.Request) -> web.Response:
        return web.json_response({"meetings": await self._meetings(request)})

    async def _meetings(self, request: web.Request) -> list[Any]:
        """Every worker's meetings (a worker that does not answer is logged and left out)."""
        workers = [worker for worker in self.workers.workers if worker.admin_url is not None]
        asked = [self._ask(request, worker, "GET", "/meetings", b"") for worker in workers]
        answers = await asyncio.gather(*asked)
        meetings: list[Any] = []
        for worker, (status, body) in zip(workers, answers, strict=True):
            listed = _json(body).get("meetings") if status == 200 else None
            if isinstance(listed, list):
                meetings += listed
            else:
                log.info("admin API: worker %s did not list its meetings (HTTP %d)", worker.node, status)
        return meetings

    async def start_recording(self, request: web.Request) -> web.Response:
        """Sent on to the meeting's worker unless the workers record ``max_recordings`` meetings already
        (those listed as recording and those whose start is on its way), counted under a lock so that two
        starts at once cannot both take the last place."""
        meeting = normalise_meeting_id(request.match_info["meeting"])
        if not is_meeting_key(meeting):  # (as forward answers it: no meeting by that name anywhere)
            raise RequestRefused("unknown_meeting", f"no meeting {meeting!r} on this server")
        async with self._counting:
            listed = await self._meetings(request)
            busy = {m.get("meeting") for m in listed if isinstance(m, dict) and m.get("recording")}
            busy |= self._starting
            if meeting not in busy and len(busy) >= self.max_recordings:
                raise RequestRefused(
                    "recording_limit",
                    f"this server records at most {self.max_recordings} meetings at once (over all its "
                    "workers); stop one, or try again later",
                )
            self._starting.add(meeting)
        try:
            return await self.forward(request)
        finally:
            self._starting.discard(meeting)

    async def create_meeting(self, request: web.Request) -> web.Response:
        chosen = self.node.view.placement()
        worker = self._worker(chosen.name if chosen is not None else None)
        if worker is None:
            raise RequestRefused("not_available", "no worker is ready to hold a meeting; try again shortly")
        status, body = await self._ask(request, worker, "POST", "/meetings", await request.read())
        return _relay(status, body)

    # -- what a meeting's worker answers ----------------------------------------------------------

    async def forward(self, request: web.Request) -> web.Response:
        meeting = normalise_meeting_id(request.match_info["meeting"])
        if not is_meeting_key(meeting):
            raise RequestRefused("unknown_meeting", f"no meeting {meeting!r} on this server")
        try:
            async with asyncio.timeout(DIRECTORY_TIMEOUT):
                holder = await self.backend.holder(meeting)
        except (DirectoryUnavailable, TimeoutError):
            raise RequestRefused("not_available", "the workers' directory did not answer; retry") from None
        worker = self._worker(holder)
        if worker is None:
            raise RequestRefused("unknown_meeting", f"no meeting {meeting!r} on this server")
        path = request.raw_path.partition("?")[0]
        status, body = await self._ask(request, worker, request.method, path, await request.read())
        return _relay(status, body)

    def _worker(self, node: str | None) -> WorkerProcess | None:
        for worker in self.workers.workers:
            if worker.node == node and worker.admin_url is not None:
                return worker
        return None

    async def _ask(
        self, request: web.Request, worker: WorkerProcess, method: str, path: str, body: bytes
    ) -> tuple[int, bytes]:
        """``method path`` on ``worker``'s admin API, with the key the request presented (the parent's
        guard has checked it: the same key): its status and body."""
        assert worker.admin_url is not None
        if self._session is None:
            self._session = aiohttp.ClientSession()
        slow = request.match_info.route.name in RECORDER_OPERATIONS
        limit = (self.recorder_timeout if slow else self.request_timeout) - 1.0
        headers = {"Authorization": request.headers.get("Authorization", "")}
        if body:
            headers["Content-Type"] = "application/json"
        try:
            async with asyncio.timeout(limit):
                async with self._session.request(
                    method, worker.admin_url + path, data=body or None, headers=headers, allow_redirects=False
                ) as answer:
                    return answer.status, await answer.content.read(MAX_ANSWER)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.info("admin API: worker %s did not answer: %s", worker.node, str(exc) or type(exc).__name__)
            return 502, json.dumps(
                {"error": "worker_unavailable", "message": f"worker {worker.node} did not answer; try again"}
            ).encode()


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _relay(status: int, body: bytes) -> web.Response:
    """A worker's answer, passed on as it is (bounded: MAX_ANSWER bytes)."""
    return web.Response(status=status, body=body, content_type="application/json")
