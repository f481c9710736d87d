"""A hostile server for tests: a real conf server behind a ``tcp://`` proxy that rewrites or drops its
control messages.

Together, a ``conf server --encryption none`` and a :class:`ControlTap` in front of it are a server
that lies: every control message from a client (``upstream``) and to it (``downstream``) passes through
a function of the test's that may return it as it is, changed, or ``None`` to drop it. Media frames
pass untouched. Clients connect to the tap's port with ``--encryption none`` (a server holds its link
keys anyway, so link encryption changes nothing about what a lying server can do)::

    def downstream(conn: int, message: Message) -> Message | None:
        if message["type"] == "joined":
            return {**message, "e2ee": False}
        return message

    with start_tap(server_url, downstream=downstream) as tap:
        ...  # clients use tap.url

The functions run in the tap's own thread; ``conn`` numbers the client connections from 1 in the order
they were accepted. A ``media`` function, when given, sees a copy of every media frame as it passes
(``"up"`` from a client, ``"down"`` to it).

``python -m conf_cli.testing.tap tcp://HOST:PORT`` runs a tap that changes nothing (say, in a network
namespace) and writes JSON lines on stdout: ``{"type": "tap_started", "url": ...}``, then one
``{"type": "tapped", "conn": N, "direction": "up"|"down", "packet": HEX}`` per RTP packet (not RTCP).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from conf_cli.protocol.control import encode
from conf_cli.protocol.framing import FrameDecoder, frame, is_control
from conf_cli.testing.processes import ThreadLoop, start_thread_loop

Message = dict[str, Any]
Rewrite = Callable[[int, Message], Message | None]
Observe = Callable[[int, str, bytes], None]
CONNECT_TIMEOUT = 5.0


def unchanged(conn: int, message: Message) -> Message | None:
    return message


class ControlTap:
    """The proxy itself, on the running event loop (see :func:`start_tap` for a thread of its own)."""

    def __init__(
        self, target: tuple[str, int], upstream: Rewrite, downstream: Rewrite, media: Observe | None = None
    ) -> None:
        self.target = target
        self.upstream = upstream
        self.downstream = downstream
        self.media = media
        self.port = 0
        self._numbers = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str = "127.0.0.1") -> None:
        self._server = await asyncio.start_server(self._pipe, host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = next(self._numbers)
        up_writer: asyncio.StreamWriter | None = None
        try:
            up_reader, upstream = await asyncio.wait_for(
                asyncio.open_connection(*self.target), CONNECT_TIMEOUT
            )
            up_writer = upstream
            await asyncio.gather(
                self._copy(conn, reader, upstream, self.upstream, self._observer("up")),
                self._copy(conn, up_reader, writer, self.downstream, self._observer("down")),
            )
        except (OSError, TimeoutError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            for stream in (writer, up_writer):
                if stream is not None:
                    with contextlib.suppress(OSError, RuntimeError):
                        stream.close()

    def _observer(self, direction: str) -> Callable[[int, bytes], None] | None:
        media = self.media
        if media is None:
            return None
        return lambda conn, payload: media(conn, direction, payload)

    @staticmethod
    async def _copy(
        conn: int,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        rewrite: Rewrite,
        observe: Callable[[int, bytes], None] | None = None,
    ) -> None:
        decoder = FrameDecoder()
        try:
            while data := await source.read(65_536):
                out = bytearray()
                for payload in decoder.feed(data):
                    if payload and is_control(payload):
                        changed = rewrite(conn, json.loads(payload))
                        if changed is None:
                            continue
                        payload = encode(changed)
                    elif payload and observe is not None:
                        observe(conn, bytes(payload))
                    out += frame(payload)
                if out:
                    sink.write(bytes(out))
                    await sink.drain()
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                sink.close()


@dataclass
class TapHandle:
    """A tap running on its own event loop in a daemon thread."""

    tap: ControlTap
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.tap.port}"

    def close(self) -> None:
        ThreadLoop(self.loop, self.thread).stop(self.tap.close())


@contextlib.contextmanager
def start_tap(
    server_url: str,
    *,
    upstream: Rewrite = unchanged,
    downstream: Rewrite = unchanged,
    media: Observe | None = None,
) -> Iterator[TapHandle]:
    """Run a :class:`ControlTap` in front of the ``tcp://`` server at ``server_url``; stop it on exit."""
    host, port = server_url.split("://", 1)[1].rsplit(":", 1)
    tap = ControlTap((host.strip("[]"), int(port)), upstream, downstream, media)
    running = start_thread_loop(tap.start(), "control tap")
    handle = TapHandle(tap, running.loop, running.thread)
    try:
        yield handle
    finally:
        handle.close()


def main(argv: list[str]) -> int:
    """A tap that changes nothing in front of ``argv[0]`` and writes every RTP packet it sees."""
    from conf_cli.machine import emit
    from conf_cli.protocol.rtp import is_rtcp

    lock = threading.Lock()

    def media(conn: int, direction: str, packet: bytes) -> None:
        if not is_rtcp(packet):
            with lock:
                emit({"type": "tapped", "conn": conn, "direction": direction, "packet": packet.hex()})

    with start_tap(argv[0], media=media) as tap:
        emit({"type": "tap_started", "url": tap.url})
        threading.Event().wait()
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
