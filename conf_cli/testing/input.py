"""Input on virtual screens, for remote-control tests and benchmarks: xdotool, and an input probe.

The :class:`InputProbe` is a small tkinter window with a text field, at the top left of a screen, that takes
the keyboard focus and writes what it has seen to a JSON file after every change: the text it holds,
clicks, double clicks, drags (pointer motion with button 1 held) and wheel steps. Read it back with
:meth:`InputProbe.state`. Processes are stopped by PID; every wait has a timeout.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from conf_cli.testing.devices import START_TIMEOUT, VirtualScreen, missing_window_tools, stop_process

T = TypeVar("T")

PROBE_SIZE = (600, 80)  # the probe's window: its text field fills it, at 0,0

PROBE = r"""
import json, os, sys, tkinter as tk
path = sys.argv[1]
root = tk.Tk()
root.title("conf input probe")
root.geometry("600x80+0+0")
text = tk.StringVar()
state = {"text": "", "clicks": 0, "double": 0, "drag": 0, "wheel": 0, "ready": False}
def save(*_):
    state["text"] = text.get()
    with open(path + ".tmp", "w") as out:
        json.dump(state, out)
    os.replace(path + ".tmp", path)
def count(kind, step=1):
    state[kind] += step
    save()
entry = tk.Entry(root, textvariable=text, width=60)
entry.pack(fill="both", expand=True)
entry.bind("<Button-1>", lambda e: count("clicks"), add="+")
entry.bind("<Double-Button-1>", lambda e: count("double"), add="+")
entry.bind("<B1-Motion>", lambda e: count("drag"), add="+")
entry.bind("<Button-4>", lambda e: count("wheel", 1), add="+")
entry.bind("<Button-5>", lambda e: count("wheel", -1), add="+")
text.trace_add("write", save)
def ready():
    root.focus_force()
    entry.focus_set()
    state["ready"] = True
    save()
root.after(300, ready)
root.mainloop()
"""


def missing_input_tools() -> str | None:
    """Why input cannot be driven and read back on a virtual screen here, or ``None``."""
    reason = missing_window_tools()
    if reason is None and importlib.util.find_spec("tkinter") is None:
        reason = "tkinter is not installed (python3-tk; scripts/setup-system.sh installs it)"
    return reason


def wait_for(check: Callable[[], T], what: str, timeout: float = START_TIMEOUT) -> T:
    """Poll ``check`` until it returns something true; AssertionError saying ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout:g} s")
        time.sleep(0.02)


def xdotool(screen: VirtualScreen, *args: str) -> str:
    """Run xdotool on ``screen``; its output."""
    result = subprocess.run(
        ["xdotool", *args],
        env={**os.environ, **screen.env},
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=True,
    )
    return result.stdout


def pointer(screen: VirtualScreen) -> tuple[int, int]:
    """Where the pointer is on ``screen``."""
    fields = dict(part.split(":", 1) for part in xdotool(screen, "getmouselocation").split() if ":" in part)
    return int(fields["x"]), int(fields["y"])


def near(point: tuple[int, int], want: tuple[int, int], slack: int = 3) -> bool:
    return abs(point[0] - want[0]) <= slack and abs(point[1] - want[1]) <= slack


class InputProbe:
    """The probe window on ``screen``, writing to ``path``; started and ready (focused) on return."""

    def __init__(self, screen: VirtualScreen, path: Path, timeout: float = START_TIMEOUT) -> None:
        self.path = path
        self.process = subprocess.Popen(
            [sys.executable, "-c", PROBE, str(path)],
            env={**os.environ, **screen.env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(
                lambda: path.exists() and self.state()["ready"], "the input probe did not start", timeout
            )
        except BaseException:
            self.stop()
            raise

    def state(self) -> dict[str, Any]:
        """What the probe has seen: ``text``, ``clicks``, ``double``, ``drag``, ``wheel`` (up minus down)."""
        return dict(json.loads(self.path.read_text()))

    def stop(self) -> None:
        stop_process(self.process)
