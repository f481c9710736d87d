"""A load-generator process and the pipe to it, shared by ``conf bench`` and ``conf bench --churn``.

The parent starts ``python -m MODULE FD`` with one end of a socket pair, sends it its plan, and reads its
messages (tuples whose first item says what they are; ``("error", text)`` if it failed). The child runs
:func:`run_generator` on its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Coroutine
from multiprocessing.connection import Connection
from typing import IO, Any

from conf_cli.bench.proc import CpuMeter
from conf_cli.errors import ConfError
from conf_cli.loops import fast_loop_factory

STOP_TIMEOUT = 10.0
"""Seconds a load generator has to stop when asked, before it is killed."""


class GeneratorProcess:
    """One load-generator process running ``module`` with ``plan``, and the pipe to it."""

    def __init__(self, module: str, plan: object, nice: int = 0) -> None:
        """``nice``: added to the process's niceness, so that a server on the same machine gets the cores
        first (as it would with its clients on other machines)."""
        ours, theirs = socket.socketpair()
        self.stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.stderr,
            preexec_fn=(lambda: os.nice(nice)) if nice else None,
        )
        theirs.close()
        self.conn = Connection(ours.detach())
        self.conn.send(plan)
        self.cpu = CpuMeter(self.process.pid)

    def receive(self, timeout: float) -> tuple[Any, ...]:
        """The next message (blocking, run it in a thread); ConfError if none comes in time."""
        if not self.conn.poll(timeout):
            raise ConfError(f"the load generator did not report within {timeout:g} s")
        try:
            message: tuple[Any, ...] = self.conn.recv()
        except (EOFError, OSError):
            raise ConfError(f"lost the load generator: {self.error_text()}") from None
        if message[0] == "error":
            raise ConfError(f"load generator: {message[1]}")
        return message

    def error_text(self) -> str:
        self.stderr.seek(0)
        lines = self.stderr.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else f"exit code {self.process.poll()}"

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(("stop",))
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)
        self.conn.close()
        self.stderr.close()


def run_generator(argv: list[str], main: Callable[[Connection], Coroutine[Any, Any, None]]) -> int:
    """The child's side: run ``main`` on the pipe whose descriptor is ``argv[1]``, on uvloop when it is
    installed (a faster event loop makes the load generator less of a bottleneck); a ConfError, timeout
    or socket error is reported to the parent."""
    conn = Connection(int(argv[1]))
    with asyncio.Runner(loop_factory=fast_loop_factory()) as runner:
        runner.run(_reporting(main, conn))
    return 0


async def _reporting(main: Callable[[Connection], Coroutine[Any, Any, None]], conn: Connection) -> None:
    """Run ``main``; a failure it can name goes to the parent as ``("error", text)``."""
    try:
        await main(conn)
    except (ConfError, TimeoutError, OSError) as exc:
        conn.send(("error", str(exc) if isinstance(exc, ConfError) else f"{type(exc).__name__}: {exc}"))
