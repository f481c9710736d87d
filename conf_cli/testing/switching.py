"""The picture across a simulcast layer switch, with real processes: how long it stood still.

Two figures per switch (:func:`switches`). The wait across it: from the last picture the subscriber
decoded of the old layer to the first of the new (``track_stats.switch_freeze_ms``: the wait that ended at
a picture of another size, :class:`~conf_cli.media.rtp_stream.FreezeMeter`). And the longest wait between
two consecutive decoded pictures from what caused the switch (a window resized, a limit lifted, a limit
begun) until :data:`SETTLE` seconds after the server's ``layer_switched`` (``track_stats.freeze_ms`` gives
the longest wait since the subscriber's last stats, one still going on included, so the longest of the
stats over that span is the longest wait in it): it also holds whatever else stalled the subscriber over
those seconds (on a loaded machine, its own process).

:func:`run_window_scenario` switches a subscriber by its view alone: a ``--view window`` subscriber on a
virtual X screen, whose window is made small (the server moves it down: ``receive {max_height}``) and
larger again (up). Nothing limits its path: the server chooses these switches itself, and keeps forwarding
the old layer until the new layer's keyframe has gone out, so the picture should not stop at all.
``conf_cli.testing.downlink`` measures the switches a limited downlink forces (and the climb back once the
limit is lifted) the same way.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from conf_cli.testing.devices import START_TIMEOUT, VirtualScreen, virtual_screen, window_geometry
from conf_cli.testing.processes import ClientPool, ConfProcess, spawn, start_server

Event = dict[str, Any]
Timed = list[tuple[float, Event]]

SETTLE = 2.5
"""Seconds after the server's ``layer_switched`` the freeze of a switch is measured over (its stats come
once a second; the wait that ends at the new layer's first picture shows in the one after it)."""


@dataclass(frozen=True)
class Switch:
    """One layer switch a subscriber saw (times in seconds)."""

    cause: str
    """What made the server switch it (``window smaller``, ``limit lifted`` ...)."""
    before: int
    after: int
    """The layer it received before and the one it moved to."""
    took: float
    """From the cause to the server's ``layer_switched``."""
    freeze: float
    """The longest wait between two decoded pictures from the cause to :data:`SETTLE` s after the switch."""
    across: float | None
    """The wait across the switch itself: from the old layer's last decoded picture to the new layer's
    first (``track_stats.switch_freeze_ms``); None if no stats told it."""


@dataclass
class SwitchRun:
    transport: str
    switches: list[Switch] = field(default_factory=list)
    baseline: float | None = None
    """The longest wait between two decoded pictures over a few seconds with no switch (the same path)."""
    missing: list[str] = field(default_factory=list)
    """Causes after which no switch came."""


def watch(process: ConfProcess, seconds: float) -> Timed:
    """The events of ``process`` over ``seconds``, with when each was read (monotonic)."""
    got: Timed = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for event in process.drain(0.05):
            got.append((time.monotonic(), event))
    return got


def video_stats(event: Event, name: str) -> bool:
    """Whether ``event`` is the ``track_stats`` of ``name``'s video (a simulcast one: it has a layer)."""
    return (
        event.get("type") == "track_stats"
        and event.get("name") == name
        and event.get("kind") != "audio"
        and "height" in event
    )


def longest_wait(events: Timed, name: str, start: float, end: float) -> float | None:
    """The longest wait between two decoded pictures of ``name``'s video that the stats read from
    ``start`` to ``end`` (monotonic) report, seconds; None without stats."""
    waits = [
        int(e.get("freeze_ms", 0)) / 1000
        for when, e in events
        if start <= when <= end and video_stats(e, name)
    ]
    return max(waits, default=None)


def wait_across(events: Timed, name: str, start: float, end: float) -> float | None:
    """The longest wait that ended at a picture of a new size (a switch) that the stats of ``name``'s
    video read from ``start`` to ``end`` (monotonic) report, seconds; None if they report none."""
    waits = [
        int(e["switch_freeze_ms"]) / 1000
        for when, e in events
        if start <= when <= end and video_stats(e, name) and "switch_freeze_ms" in e
    ]
    return max(waits, default=None)


def switches(events: Timed, name: str, cause: str, at: float, layer: int, up: bool) -> Switch | None:
    """The first switch of ``name``'s video after ``at`` (monotonic; what caused it) from ``layer`` up
    (``up``) or down, and the freeze across it; None if none came."""
    for when, event in events:
        if when < at or event.get("type") != "layer_switched":
            continue
        moved = int(event["layer"])
        if (moved > layer) if up else (moved < layer):
            freeze = longest_wait(events, name, at, when + SETTLE)
            across = wait_across(events, name, at, when + SETTLE)
            return Switch(
                cause, layer, moved, when - at, freeze if freeze is not None else float("inf"), across
            )
    return None


def _resize(screen: VirtualScreen, title: str, width: int, height: int) -> None:
    env = {**os.environ, **screen.env}
    info = subprocess.run(
        ["xwininfo", "-name", title],
        env=env,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    ).stdout
    if "Window id:" not in info:
        raise RuntimeError(f"no window called {title!r}")
    window = info.split("Window id:")[1].split()[0]
    subprocess.run(["xdotool", "windowsize", window, str(width), str(height)], env=env, timeout=START_TIMEOUT)


def _layer_now(viewer: ConfProcess, name: str, wanted: int, timeout: float) -> Timed:
    """Wait until ``viewer``'s stats of ``name``'s video say layer ``wanted`` with pictures decoded; the
    events read meanwhile."""
    got: Timed = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for when, event in watch(viewer, 0.2):
            got.append((when, event))
            if video_stats(event, name) and event.get("layer") == wanted and int(event.get("frames", 0)) > 0:
                return got
    raise TimeoutError(f"the viewer did not reach layer {wanted} within {timeout:g} s")


def run_window_scenario(transport: str = "rtp", *, fps: int = 15, settle: float = 4.0) -> SwitchRun:
    """A ``--view window`` subscriber of a 1280x720 simulcast pattern over ``transport``: its window made
    400x200 (the server moves it down to the 180-line layer), then 1000x600 (up to the 360-line one).
    Each switch's freeze, and the longest wait over ``settle`` seconds before the first."""
    server, url = start_server(transport=transport)
    pool = ClientPool(url)
    title = "conf: cam's video"
    run = SwitchRun(transport)
    try:
        with virtual_screen(1280, 720) as screen:
            _, meeting = pool.create("host")
            args = ["join", meeting, "--server", url, "--name", "viewer", "--view", "window", "--json"]
            viewer = spawn(
                [*args, "--passcode", pool.passcode], {**screen.env, "PYGAME_HIDE_SUPPORT_PROMPT": "1"}
            )
            pool.started.append(viewer)
            viewer.expect("joined", timeout=15)
            sharer = pool.share(
                meeting, "cam", "pattern", "--width", "1280", "--height", "720", "--fps", str(fps)
            )
            sharer.expect("publish_started", timeout=15)
            if window_geometry(screen, title) is None:
                raise RuntimeError(f"no window called {title!r}")
            # the window opens at 90 % of the screen (648 lines): the 360-line layer fits it
            _layer_now(viewer, "cam", 1, 20)
            quiet = watch(viewer, settle)
            run.baseline = longest_wait(quiet, "cam", quiet[0][0] if quiet else 0.0, time.monotonic())
            for cause, size, layer, up in (
                ("window smaller", (400, 200), 1, False),
                ("window larger", (1000, 600), 0, True),
            ):
                at = time.monotonic()
                _resize(screen, title, *size)
                events = watch(viewer, 0.0)
                deadline = at + 15
                switch = None
                while switch is None and time.monotonic() < deadline:
                    events += watch(viewer, 0.5)
                    switch = switches(events, "cam", cause, at, layer, up)
                if switch is None:
                    run.missing.append(cause)
                    continue
                events += watch(viewer, max(0.0, at + switch.took + SETTLE + 0.5 - time.monotonic()))
                switch = switches(events, "cam", cause, at, layer, up)
                if switch is not None:
                    run.switches.append(switch)
        return run
    finally:
        pool.stop_all()
        server.stop()
