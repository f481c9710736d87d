"""The event loop the server and the benchmark run on: uvloop when it is installed, else asyncio's own."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

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
