"""One ``conf server --workers`` worker: an ordinary server that adopts the sockets the front hands on.

Run by the front as ``python -m conf_cli.server.workers.worker FD INDEX URL LOGLEVEL``: ``FD`` is its end of
the channel, ``INDEX`` its number (the first character of its meeting IDs), ``URL`` what clients connected
to. It exits when the channel closes (the front stopped) or on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections import deque
from pathlib import Path
from typing import Any

from conf_cli.errors import ConfError
from conf_cli.loops import fast_loop_factory
from conf_cli.plugin.registry import registry
from conf_cli.plugin.transport import Link
from conf_cli.server.edge import Server
from conf_cli.server.hub import Hub
from conf_cli.server.json_log import LOG_FORMAT_ENV, use_json_logs
from conf_cli.server.limiter import AttemptLimiter, Limits
from conf_cli.server.passcode import ID_ALPHABET, new_meeting_id
from conf_cli.server.tokens import TokenKey
from conf_cli.server.workers.channel import MAX_RECORD, parse_handoff, report_record

log = logging.getLogger("conf.worker")

REPORT_INTERVAL = 0.25


class _Adopted:
    """The server's events, but a link opens already greeted: the front answered its hello."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def link_opened(self, link: Link) -> None:
        self.server.link_opened(link)
        self.server.hub.greet(link.id)

    def control_received(self, link: Link, data: bytes) -> None:
        self.server.control_received(link, data)

    def media_received(self, link: Link, packet: bytes) -> None:
        self.server.media_received(link, packet)

    def keepalive_received(self, link: Link) -> None:
        self.server.keepalive_received(link)

    def link_closed(self, link: Link, reason: str) -> None:
        self.server.link_closed(link, reason)


class Worker:
    def __init__(
        self,
        channel: socket.socket,
        index: int,
        url: str,
        limits: Limits | None = None,
        token_key: TokenKey | None = None,
    ) -> None:
        self.channel = channel
        self.index = index
        self.reserved: deque[str] = deque()  # meeting IDs the front chose for creates handed to us
        self.registry = registry()
        transport = self.registry.transport_for("tcp")
        if not transport.adopts:
            raise ConfError("the tcp transport plugin cannot adopt connections (--workers)")
        self.transport = transport
        self.server = Server(
            self.registry,
            Hub(new_id=self._new_id, limiter=AttemptLimiter(limits or Limits()), token_key=token_key),
            call_port=None,
        )
        self.listener = self.transport.adoption_listener(url)
        self.events = _Adopted(self.server)
        self._tasks: set[asyncio.Task[Any]] = set()

    def _new_id(self) -> str:
        if self.reserved:
            return self.reserved.popleft()
        return ID_ALPHABET[self.index] + new_meeting_id()[1:]

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        stopped: asyncio.Future[None] = loop.create_future()
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGTERM, self._stop, stopped)
        self.channel.setblocking(False)
        loop.add_reader(self.channel.fileno(), self._readable, stopped)
        self.server.listeners.append(self.listener)
        await self.server.start([])
        reporting = asyncio.create_task(self._report_forever())
        try:
            await stopped
        finally:
            reporting.cancel()
            loop.remove_reader(self.channel.fileno())
            await self.server.close()

    @staticmethod
    def _stop(stopped: asyncio.Future[None]) -> None:
        if not stopped.done():
            stopped.set_result(None)

    def _readable(self, stopped: asyncio.Future[None]) -> None:
        try:
            record, fds, _flags, _addr = socket.recv_fds(self.channel, MAX_RECORD, 1)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            record, fds = b"", []
        if not record and not fds:
            self._stop(stopped)  # the front has gone
            return
        socks = [socket.socket(fileno=fd) for fd in fds]
        try:
            header, already_read = parse_handoff(record)
        except ValueError as exc:
            log.warning("worker %d: bad hand-off (%s)", self.index, exc)
            for sock in socks:
                sock.close()
            return
        if not socks:
            return
        meeting = header.get("meeting")
        if isinstance(meeting, str):
            self.reserved.append(meeting)
        peer = header.get("peer")
        task = asyncio.create_task(self._adopt(socks[0], already_read, peer if isinstance(peer, str) else ""))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _adopt(self, sock: socket.socket, already_read: bytes, peer: str) -> None:
        try:
            await self.transport.adopt(self.listener, sock, already_read, self.events, peer)
        except OSError as exc:
            log.info("worker %d: cannot adopt a connection: %s", self.index, exc)
            sock.close()

    def report(self) -> dict[str, Any]:
        hub = self.server.hub
        return {
            "pid": os.getpid(),
            "index": self.index,
            "meetings": sorted(hub.meetings),
            "connections": hub.stats.connections,
        }

    async def _report_forever(self) -> None:
        while True:
            with contextlib.suppress(BlockingIOError):
                self.channel.send(report_record(self.report()))
            await asyncio.sleep(REPORT_INTERVAL)


def main(argv: list[str]) -> None:
    fd, index, url, level = int(argv[0]), int(argv[1]), argv[2], int(argv[3])
    limits = Limits(int(argv[4]), int(argv[5]), float(argv[6]), int(argv[7])) if len(argv) >= 8 else Limits()
    token_key = TokenKey.load_or_create(Path(argv[8]) if len(argv) >= 9 and argv[8] else None)
    logging.basicConfig(
        level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr
    )
    if os.environ.get(LOG_FORMAT_ENV) == "json":
        use_json_logs()
    channel = socket.socket(fileno=fd)

    async def run() -> None:
        await Worker(channel, index, url, limits, token_key).run()

    with asyncio.Runner(loop_factory=fast_loop_factory()) as runner, contextlib.suppress(KeyboardInterrupt):
        runner.run(run())


if __name__ == "__main__":
    main(sys.argv[1:])
