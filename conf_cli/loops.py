"""Running a command's coroutine (:func:`run_main`), and the event loop the server and the benchmark run on:
uvloop when it is installed, else asyncio's own."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import click

from conf_cli.errors import ConfError

LOOP_ENV = "CONF_EVENT_LOOP"
"""Set to ``asyncio`` to run on asyncio's own loop even when uvloop is installed (to compare them)."""


def fast_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """``uvloop.new_event_loop`` when uvloop is installed (the ``bench`` extra), else None (asyncio's)."""
    if os.environ.get(LOOP_ENV) == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_main(main: Callable[[], Coroutine[Any, Any, int | None]], *, fast_loop: bool = False) -> None:
    """Run a coroutine; turn ConfError into one line on stderr and Ctrl-C into a quiet exit.

    With ``fast_loop`` (the server and the benchmark) the coroutine runs on uvloop when it is installed.
    """
    try:
        with asyncio.Runner(loop_factory=fast_loop_factory() if fast_loop else None) as runner:
            code = runner.run(main())
    except ConfError as exc:
        from conf_cli.text import printable

        click.echo(f"conf: {printable(exc)}", err=True)  # it may quote the server
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code or 0)
