"""The admin HTTP API: ``conf server --admin-port PORT`` runs the server's meetings over HTTP (aiohttp).

Routes and their OpenAPI document are in :mod:`conf_cli.server.admin_routes`; what each does to a
meeting, :class:`~conf_cli.server.operator.Operator` decides through the meeting rules, and the
server carries out the resulting actions as it does a participant's (:meth:`Server.apply`). Recording
starts and stops a recorder process (:mod:`conf_cli.server.recorders`). Every
request but ``GET /openapi.json`` needs ``Authorization: Bearer KEY`` with the key of ``admin.key``; a
wrong or missing key is 401 and a failed attempt in the server's attempt limiter (429 while locked out).

Bounds: a body of at most :data:`MAX_BODY` bytes, :data:`MAX_CONNECTIONS` connections at once, each
closed after :data:`CONNECTION_LIFETIME` seconds, and each request answered within
:data:`REQUEST_TIMEOUT` seconds (a recording's start or stop: within the recorders' own time limits).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from conf_cli.errors import ConfError, ProtocolError, RequestRefused
from conf_cli.protocol.control import RECORDER_SUFFIX, check_name
from conf_cli.server.admin_routes import OPENAPI_PATH, RECORDER_OPERATIONS, ROUTES, openapi
from conf_cli.server.meeting import Meeting
from conf_cli.server.operator import Operator, check_passcode, summary
from conf_cli.server.passcode import PasscodeHash, normalise_meeting_id
from conf_cli.server.people import OPERATOR_NAME
from conf_cli.server.recorders import TICK, Recorders
from conf_cli.server.recordings import START_TIMEOUT, STOP_TIMEOUT

if TYPE_CHECKING:
    from conf_cli.server.edge import Server

log = logging.getLogger("conf.admin")

MAX_BODY = 16 * 1024
MAX_CONNECTIONS = 64
CONNECTION_LIFETIME = 30.0
REQUEST_TIMEOUT = 10.0

STATUS = {
    "bad_request": 400,
    "unknown_meeting": 404,
    "unknown_participant": 404,
    "passcode_too_short": 400,
    "recording_limit": 503,
    "not_available": 503,
    "recorder_failed": 502,
    "recorder_timeout": 504,
}
"""HTTP status of a meeting rule's refusal by its code; any other refusal is 409."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": code, "message": message, **extra}, status=status)


class _Limited(asyncio.Protocol):
    """An HTTP connection (aiohttp's protocol inside) that lives at most ``lifetime`` seconds."""

    def __init__(self, inner: asyncio.Protocol, api: AdminApi) -> None:
        self.inner = inner
        self.api = api
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.api.connections += 1
        if self.api.connections > self.api.max_connections:
            transport.close()
        self.timer = asyncio.get_running_loop().call_later(self.api.lifetime, transport.close)
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.api.connections -= 1
        if self.timer is not None:
            self.timer.cancel()
        self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class AdminApi:
    """The admin API of one server process."""

    def __init__(
        self,
        server: Server,
        key: str,
        *,
        lifetime: float = CONNECTION_LIFETIME,
        max_connections: int = MAX_CONNECTIONS,
        request_timeout: float = REQUEST_TIMEOUT,
        recorders: Recorders | None = None,
    ) -> None:
        self.server = server
        self.recorders = recorders
        start, stop = (
            (recorders.registry.start_timeout, recorders.stop_timeout)
            if recorders is not None
            else (START_TIMEOUT, STOP_TIMEOUT)
        )
        self.recorder_timeout = max(request_timeout, start, stop) + 2 * TICK + 5.0
        """Seconds a recording's start or stop may take: the recorders' own limits, and a margin."""
        self.operator = Operator(server.hub)
        self._key = key.encode("utf-8")
        self.lifetime = lifetime
        self.max_connections = max_connections
        self.request_timeout = request_timeout
        self.connections = 0
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._guard])
        for route in ROUTES:
            answer = self.handler(route.operation)
            app.router.add_route(route.method, route.path, answer, name=route.operation)
        app.router.add_get(OPENAPI_PATH, self.openapi)
        return app

    def handler(self, operation: str) -> Handler:
        """What answers ``operation`` (a route of admin_routes.ROUTES): the method of that name."""
        handler: Handler = getattr(self, operation)
        return handler

    async def start(self, host: str, port: int) -> str:
        """Listen on ``host``:``port`` (0: a free one); return the API's base URL."""
        loop = asyncio.get_running_loop()
        runner = web.AppRunner(self.app(), access_log=None, keepalive_timeout=5.0, handle_signals=False)
        await runner.setup()
        self._runner = runner
        handler = runner.server
        assert handler is not None
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            self._listener = await loop.create_server(
                lambda: _Limited(handler(), self), sock=_bound(infos[0])
            )
        except OSError as exc:
            await runner.cleanup()
            raise ConfError(f"cannot serve the admin API on {host}:{port}: {exc.strerror or exc}") from None
        bound_host, bound_port = self._listener.sockets[0].getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"http://{shown}:{bound_port}"
        return self.url

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- the guard: key, attempts, time -------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path != OPENAPI_PATH:
            presented = request.headers.get("Authorization", "")
            scheme, _, token = presented.partition(" ")
            key_ok = scheme.lower() == "bearer" and hmac.compare_digest(
                token.strip().encode("utf-8", "replace"), self._key
            )
            check = self.operator.check_key(request.remote or "", key_ok, time.monotonic())
            if check.retry_after > 0:
                wait = check.retry_after
                response = _error(
                    429,
                    "rate_limited",
                    f"too many failed attempts; try again in {max(1, round(wait))} s",
                    retry_after=round(wait, 1),
                )
                response.headers["Retry-After"] = str(max(1, round(wait)))
                return response
            if not check.allowed:
                log.info("admin API: wrong or missing key from %s", request.remote)
                response = _error(
                    401, "unauthorized", "wrong or missing admin key (Authorization: Bearer KEY)"
                )
                response.headers["WWW-Authenticate"] = 'Bearer realm="conf admin"'
                return response
        timeout = self.request_timeout
        if request.match_info.route.name in RECORDER_OPERATIONS:
            timeout = self.recorder_timeout  # starting or stopping a process takes longer
        try:
            async with asyncio.timeout(timeout):
                return await handler(request)
        except RequestRefused as refusal:
            return _error(STATUS.get(refusal.code, 409), refusal.code, str(refusal))
        except web.HTTPRequestEntityTooLarge:
            return _error(413, "too_large", f"the body is larger than {MAX_BODY} bytes")
        except web.HTTPException as exc:  # no such route (404), or not with that method (405)
            text = "no such route; see /openapi.json" if exc.status in (404, 405) else exc.reason
            code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "bad_request")
            return _error(exc.status, code, text)
        except TimeoutError:
            return _error(503, "timeout", "the server did not finish in time")

    async def _body(self, request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        raw = await request.read()
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise RequestRefused("bad_request", "the body is not JSON") from None
        if not isinstance(body, dict):
            raise RequestRefused("bad_request", "the body must be a JSON object")
        return body

    async def _name(self, request: web.Request, *, required: bool = True) -> str | None:
        body = await self._body(request)
        name = body.get("name")
        if name is None and not required:
            return None
        if not isinstance(name, str):
            raise RequestRefused("bad_request", 'give the participant\'s name: {"name": "..."}')
        try:
            check_name(name)
        except ProtocolError as exc:
            raise RequestRefused("bad_request", str(exc)) from None
        return name

    def _carry_out(self, actions: list[Any]) -> None:
        self.server.apply(actions)

    def _meeting_state(self, meeting_id: str) -> web.Response:
        return web.json_response(self.operator.participants(meeting_id))

    # -- handlers (one per route of admin_routes.ROUTES) -------------------------------------------

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi())

    async def list_meetings(self, request: web.Request) -> web.Response:
        recorded = self.recorders.registry.active if self.recorders is not None else {}
        meetings = [
            {**summary, "recording": summary["meeting"] in recorded} for summary in self.operator.meetings()
        ]
        return web.json_response({"meetings": meetings})

    async def create_meeting(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        unknown = set(body) - {"passcode", "waiting_room"}
        if unknown:
            raise RequestRefused("bad_request", f"unknown field {sorted(unknown)[0]!r}")
        chosen, waiting_room = body.get("passcode"), body.get("waiting_room", False)
        if chosen is not None and not isinstance(chosen, str):
            raise RequestRefused("bad_request", "passcode must be a string")
        if not isinstance(waiting_room, bool):
            raise RequestRefused("bad_request", "waiting_room must be true or false")
        passcode = check_passcode(chosen) if chosen is not None else self.server.hub.new_passcode()
        digest = await asyncio.to_thread(PasscodeHash.of, passcode)
        opened: asyncio.Future[Meeting | None] = asyncio.get_running_loop().create_future()

        def then(meeting: Meeting | None) -> None:
            if not opened.done():  # (the request may have timed out meanwhile)
                opened.set_result(meeting)

        self._carry_out(self.operator.open_claimed(digest, waiting_room=waiting_room, then=then))
        meeting = await opened
        if meeting is None:
            raise RequestRefused("not_available", "the cluster's directory did not answer; try again")
        self._carry_out([])
        return web.json_response({**summary(meeting), "passcode": passcode}, status=201)

    async def end_meeting(self, request: web.Request) -> web.Response:
        meeting_id = self.operator.meeting(request.match_info["meeting"]).id
        self._carry_out(self.operator.end(meeting_id))
        if self.recorders is not None:  # it leaves as the meeting ends; this makes sure it does
            self.recorders.stop_soon(meeting_id, "meeting_ended")
        return web.json_response({"meeting": meeting_id, "ended": True})

    async def list_participants(self, request: web.Request) -> web.Response:
        return self._meeting_state(request.match_info["meeting"])

    async def kick(self, request: web.Request) -> web.Response:
        meeting_id = request.match_info["meeting"]
        name = await self._name(request)
        assert name is not None
        self._carry_out(self.operator.kick(meeting_id, name))
        return self._meeting_state(meeting_id)

    async def unban(self, request: web.Request) -> web.Response:
        meeting_id = request.match_info["meeting"]
        name = await self._name(request)
        assert name is not None
        self._carry_out(self.operator.unban(meeting_id, name))
        return self._meeting_state(meeting_id)

    async def mute(self, request: web.Request) -> web.Response:
        meeting_id = request.match_info["meeting"]
        body = await self._body(request)
        name, muted = body.get("name"), body.get("muted", True)
        if not isinstance(name, str) or not isinstance(muted, bool):
            raise RequestRefused("bad_request", 'give {"name": "...", "muted": true|false}')
        self._carry_out(self.operator.mute(meeting_id, name, muted))
        return self._meeting_state(meeting_id)

    async def lock(self, request: web.Request) -> web.Response:
        meeting_id = request.match_info["meeting"]
        self._carry_out(self.operator.lock(meeting_id, True))
        return self._meeting_state(meeting_id)

    async def unlock(self, request: web.Request) -> web.Response:
        meeting_id = request.match_info["meeting"]
        self._carry_out(self.operator.lock(meeting_id, False))
        return self._meeting_state(meeting_id)

    async def list_waiting(self, request: web.Request) -> web.Response:
        return web.json_response(self.operator.waiting(request.match_info["meeting"]))

    async def admit(self, request: web.Request) -> web.Response:
        meeting_id = request.match_info["meeting"]
        body = await self._body(request)
        everyone = body.get("all") is True
        name = body.get("name")
        if everyone == isinstance(name, str):
            raise RequestRefused("bad_request", 'give {"name": "..."} or {"all": true}')
        self._carry_out(self.operator.admit(meeting_id, None if everyone else name))
        return self._meeting_state(meeting_id)

    async def deny(self, request: web.Request) -> web.Response:
        meeting_id = request.match_info["meeting"]
        name = await self._name(request)
        assert name is not None
        self._carry_out(self.operator.deny(meeting_id, name))
        return self._meeting_state(meeting_id)

    async def start_recording(self, request: web.Request) -> web.Response:
        meeting = self.operator.meeting(request.match_info["meeting"])
        body = await self._body(request)
        unknown = set(body) - {"format", "layout", "file"}
        if unknown:
            raise RequestRefused("bad_request", f"unknown field {sorted(unknown)[0]!r}")
        fmt, layout, chosen = body.get("format", "mp4"), body.get("layout", "grid"), body.get("file")
        if not isinstance(fmt, str) or not isinstance(layout, str):
            raise RequestRefused("bad_request", "format and layout are strings")
        if chosen is not None and not isinstance(chosen, str):
            raise RequestRefused("bad_request", "file is a plain name (a string)")
        recorders = self._recorders()
        if "record" in meeting.forbidden:
            raise RequestRefused(
                "forbidden", f"recording is forbidden in meeting {meeting.id}; its host can /permit record"
            )
        inside, recording = await recorders.start(meeting.id, fmt=fmt, layout=layout, chosen=chosen)
        if inside:
            return web.json_response(recording, status=201)
        return web.json_response(
            {
                **recording,
                "message": f"meeting {meeting.id} is end-to-end encrypted: the recorder holds its keys like "
                f"anyone, so it waits for the host to admit it (/admit {OPERATOR_NAME}{RECORDER_SUFFIX})",
            },
            status=202,
        )

    async def stop_recording(self, request: web.Request) -> web.Response:
        meeting_id = normalise_meeting_id(request.match_info["meeting"])
        recorders = self._recorders()
        if meeting_id not in recorders.running:
            self.operator.meeting(meeting_id)  # 404 for no such meeting
        return web.json_response(await recorders.stop(meeting_id))

    def _recorders(self) -> Recorders:
        if self.recorders is None:
            raise RequestRefused("not_available", "this server runs no recorders")
        return self.recorders


def _bound(info: tuple[Any, ...]) -> socket.socket:
    family, _, _, _, address = info
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock
