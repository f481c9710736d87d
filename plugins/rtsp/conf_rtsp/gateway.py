"""The RTSP gateway's asyncio edge: the listener, its sessions, its UDP ports and its timers.

Requests on each connection are read by :class:`~conf_rtsp.wire.RtspReader` and answered in
order by :class:`~conf_rtsp.connection.Connection`. Sessions belong to the gateway, not to a
connection (RFC 2326): a session whose packets go by UDP outlives the connection that set it up and ends
at TEARDOWN or when its client has been silent for the session timeout; one whose packets are
interleaved ends with its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conf_cli import ConfError, RunningService
from conf_cli.addresses import address_group

from .delivery import UdpPorts
from .session import Session, SessionTrack

if TYPE_CHECKING:
    from conf_cli import ServiceContext

    from .connection import Connection

log = logging.getLogger("conf.rtsp")

SESSION_TIMEOUT = 60.0
MAX_CONNECTIONS = 256
MAX_CONNECTIONS_PER_ADDRESS = 16
"""Connections one client address may hold at once (``--rtsp-max-connections-per-address``)."""
SWEEP_INTERVAL = 0.5


class RtspGateway(RunningService):
    """A running RTSP server inside ``conf server``."""

    def __init__(
        self,
        context: ServiceContext,
        host: str,
        port: int,
        media_dir: Path | None,
        session_timeout: float = SESSION_TIMEOUT,
        per_address: int = MAX_CONNECTIONS_PER_ADDRESS,
    ) -> None:
        self.context = context
        self.host = host
        self.port = port
        self.media_dir = media_dir
        self.session_timeout = session_timeout
        self.sessions: dict[str, Session] = {}
        self.connections: set[Connection] = set()
        self.per_address = per_address
        self.by_address: dict[str, int] = {}
        """Open connections per client address (an IPv6 client's /64: :func:`address_group`)."""
        from .files import MediaProbes  # PyAV: loaded when a gateway starts, not with the plugin

        self.probes = MediaProbes()
        self.udp_routes: dict[tuple[str, int], tuple[Session, SessionTrack]] = {}
        self.udp = UdpPorts(host, self._udp_received)
        self.urls: list[str] = []
        self._listener: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.stats = {"connections": 0, "requests": 0, "bad_requests": 0, "sessions": 0, "expired": 0}

    async def start(self) -> None:
        from .connection import Connection

        loop = asyncio.get_running_loop()
        try:
            self._listener = await loop.create_server(lambda: Connection(self), self.host, self.port)
        except OSError as exc:
            raise ConfError(f"cannot serve RTSP on {self.host}:{self.port}: {exc.strerror or exc}") from None
        await self.udp.open()
        sock = self._listener.sockets[0]
        self.port = sock.getsockname()[1]
        shown = f"[{self.host}]" if sock.family == socket.AF_INET6 else self.host
        self.urls = [f"rtsp://{shown}:{self.port}/"]
        self._sweeper = asyncio.create_task(self._sweep())

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._listener is not None:
            self._listener.close()
        for connection in list(self.connections):
            connection.abort("the server is stopping")
        for session in list(self.sessions.values()):
            await self.end_session(session, "the server is stopping")
        for connection in list(self.connections):
            await connection.release()
        self.udp.close()
        self.probes.close()

    # -- connections ----------------------------------------------------------------------------------

    def admit(self, connection: Connection) -> str | None:
        """Count a new connection in; or say why it is refused (the server's or its address's limit)."""
        address = address_group(connection.peer[0])
        if len(self.connections) >= MAX_CONNECTIONS:
            return "too many RTSP connections"
        if self.by_address.get(address, 0) >= self.per_address:
            return f"too many RTSP connections from {address}"
        self.connections.add(connection)
        self.by_address[address] = self.by_address.get(address, 0) + 1
        self.stats["connections"] += 1
        return None

    def forget(self, connection: Connection) -> None:
        if connection not in self.connections:
            return
        self.connections.discard(connection)
        address = address_group(connection.peer[0])
        left = self.by_address.get(address, 1) - 1
        if left > 0:
            self.by_address[address] = left
        else:
            self.by_address.pop(address, None)

    # -- sessions -------------------------------------------------------------------------------------

    def new_session(self, owner: Connection, resource: Any) -> Session:
        session = Session(timeout=self.session_timeout, last_seen=time.monotonic(), resource=resource)
        session.owner = owner
        self.sessions[session.id] = session
        self.stats["sessions"] += 1
        return session

    def route_udp(self, session: Session, track: SessionTrack, host: str, ports: tuple[int, int]) -> None:
        for port in ports:
            self.udp_routes[(host, port)] = (session, track)

    async def end_session(self, session: Session, reason: str) -> None:
        if self.sessions.pop(session.id, None) is None:
            return
        log.info("RTSP session %s ended: %s", session.id, reason)
        for key, (owner, _) in list(self.udp_routes.items()):
            if owner is session:
                del self.udp_routes[key]
        resource, session.resource = session.resource, None
        if resource is not None:
            await resource.close()

    def end_session_soon(self, session: Session, reason: str) -> None:
        task = asyncio.get_running_loop().create_task(self.end_session(session, reason))
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    # -- UDP ------------------------------------------------------------------------------------------

    def _udp_received(self, data: bytes, address: tuple[str, int], rtcp: bool) -> None:
        route = self.udp_routes.get(address)
        if route is None:
            return
        session, track = route
        session.touch(time.monotonic())
        if not rtcp and session.state == "recording":
            session.resource.receive(track, data)

    # -- timers ---------------------------------------------------------------------------------------

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            now = time.monotonic()
            for session in list(self.sessions.values()):
                if session.expired(now):
                    self.stats["expired"] += 1
                    await self.end_session(session, f"no word from its client for {session.timeout:g} s")
            for connection in list(self.connections):
                with contextlib.suppress(Exception):
                    connection.check_timeouts(now)
