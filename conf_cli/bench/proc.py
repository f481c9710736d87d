"""CPU time and resident memory of a process, read from /proc (Linux)."""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a ``conf server --workers`` front and its workers)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{current}/task/{task}/children") as f:
                    todo.extend(int(child) for child in f.read().split())
            except (OSError, ValueError):
                continue
    return found


def _own_cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime: fields 14 and 15 of stat(5)


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time so far of ``pid`` and its descendants, or None if it cannot be read."""
    own = _own_cpu_seconds(pid)
    if own is None:
        return None
    return own + sum(_own_cpu_seconds(child) or 0.0 for child in process_tree(pid)[1:])


def _task_wait(path: str) -> float:
    try:
        with open(path) as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def wait_seconds(pid: int) -> float | None:
    """Seconds the threads of ``pid`` and its descendants have spent ready to run but waiting for a core,
    summed over threads (``/proc/PID/task/TID/schedstat``), or None if it cannot be read."""
    try:
        os.stat(f"/proc/{pid}/task/{pid}/schedstat")
    except OSError:
        return None
    total = 0.0
    for each in process_tree(pid):
        with contextlib.suppress(OSError):
            total += sum(
                _task_wait(f"/proc/{each}/task/{task}/schedstat") for task in os.listdir(f"/proc/{each}/task")
            )
    return total


def thread_times() -> tuple[float, float] | None:
    """(seconds on a core, seconds ready to run but waiting for one) of the calling thread so far, from
    ``/proc/thread-self/schedstat``, or None if it cannot be read."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            running, waiting = f.read().split()[:2]
    except (OSError, ValueError):
        return None
    return int(running) / 1e9, int(waiting) / 1e9


class ThreadMeter:
    """The calling thread's CPU, and its time ready to run but waiting for a core, from its creation to
    :meth:`stop` (called from the same thread), in percent of the time in between."""

    def __init__(self) -> None:
        self._wall, self._cpu, self._times = time.monotonic(), time.thread_time(), thread_times()

    def stop(self) -> tuple[float, float | None]:
        """(CPU %, waiting %: None if it cannot be read)."""
        wall = max(time.monotonic() - self._wall, 1e-9)
        cpu = 100 * (time.thread_time() - self._cpu) / wall
        times = thread_times()
        if times is None or self._times is None:
            return cpu, None
        return cpu, 100 * (times[1] - self._times[1]) / wall


def _own_rss(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def rss_bytes(pid: int) -> int | None:
    """Resident set size of ``pid`` and its descendants, or None if it cannot be read."""
    own = _own_rss(pid)
    if own is None:
        return None
    return own + sum(_own_rss(child) or 0 for child in process_tree(pid)[1:])


@dataclass
class CpuMeter:
    """CPU use of one process between successive :meth:`sample` calls, in percent of one core."""

    pid: int
    _last_cpu: float | None = None
    _last_wall: float = 0.0
    _first_cpu: float | None = None
    _first_wall: float = 0.0
    _first_wait: float | None = None

    def start(self) -> None:
        self._first_cpu = self._last_cpu = cpu_seconds(self.pid)
        self._first_wall = self._last_wall = time.monotonic()
        self._first_wait = wait_seconds(self.pid)

    def sample(self) -> float | None:
        """Percent of one core used since the previous sample (or :meth:`start`)."""
        cpu, wall = cpu_seconds(self.pid), time.monotonic()
        previous, since = self._last_cpu, self._last_wall
        self._last_cpu, self._last_wall = cpu, wall
        if cpu is None or previous is None or wall <= since:
            return None
        return 100.0 * (cpu - previous) / (wall - since)

    def overall(self) -> float | None:
        """Percent of one core used since :meth:`start`."""
        cpu, wall = cpu_seconds(self.pid), time.monotonic()
        if cpu is None or self._first_cpu is None or wall <= self._first_wall:
            return None
        return 100.0 * (cpu - self._first_cpu) / (wall - self._first_wall)

    def waited(self) -> float | None:
        """Time its threads spent ready to run but waiting for a core since :meth:`start`, summed over
        threads, in percent of the time since then (a process whose threads got a core whenever they
        wanted one: 0)."""
        waited, wall = wait_seconds(self.pid), time.monotonic()
        if waited is None or self._first_wait is None or wall <= self._first_wall:
            return None
        return 100.0 * (waited - self._first_wait) / (wall - self._first_wall)


def open_fds(pid: int) -> int | None:
    """Open file descriptors of ``pid`` and its descendants, or None if they cannot be read."""
    try:
        own = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    others = 0
    for child in process_tree(pid)[1:]:
        with contextlib.suppress(OSError):
            others += len(os.listdir(f"/proc/{child}/fd"))
    return own + others
