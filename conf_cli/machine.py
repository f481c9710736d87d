"""Machine mode: commands one per line on stdin, one JSON event per line on stdout."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import AsyncIterator
from typing import TextIO

from conf_cli.protocol.control import Message
from conf_cli.text import json_line


def emit(event: Message, out: TextIO | None = None) -> None:
    """Write one event as a JSON line (no raw control character in it: see json_line) and flush."""
    stream = out or sys.stdout
    stream.write(json_line(event) + "\n")
    stream.flush()


async def read_lines(source: TextIO) -> AsyncIterator[str]:
    """Lines from a blocking text stream, read in a daemon thread so the event loop never waits on it."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=256)

    def pump() -> None:
        try:
            for line in source:
                asyncio.run_coroutine_threadsafe(queue.put(line), loop).result()
        except (OSError, ValueError, RuntimeError):
            pass
        finally:
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                asyncio.run_coroutine_threadsafe(queue.put(None), loop)

    threading.Thread(target=pump, name="stdin", daemon=True).start()
    while (line := await queue.get()) is not None:
        yield line.rstrip("\n")
