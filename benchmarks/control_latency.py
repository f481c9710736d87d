"""Remote control: input-to-effect latency on loopback, from an input event to the pointer moving.

Ada runs ``conf create`` on a virtual screen (Xvfb) and accepts control; the pointer on her screen is read
with XQueryPointer in a tight loop, and each sample is the time until it reaches where the input said.
Two paths, one run:

* ``protocol``: an in-process client (Bob) sends ``control_input`` moves itself: server relay, Ada's
  client, the pynput injector and the X server.
* ``viewer``: ``conf control Ada`` shows Ada's desktop in its window on a second virtual screen, and the
  pointer is moved over that window with XTEST: the viewer window (pygame) and Bob's client are added.

    .venv/bin/python benchmarks/control_latency.py --samples 200 --transport tcp
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from conf_cli.client.link import Client
from conf_cli.plugin.registry import registry
from conf_cli.testing.devices import VirtualScreen, start_screen, window_geometry
from conf_cli.testing.processes import ClientPool, ConfProcess, spawn, start_server, test_home
from conf_cli.urls import parse_server_url

SIZE = (1280, 720)
TIMEOUT = 2.0  # a sample that takes longer is counted as lost


def open_display(screen: VirtualScreen) -> Any:
    from Xlib import display

    return display.Display(screen.display)


def pointer_at(dpy: Any) -> tuple[int, int]:
    reply = dpy.screen().root.query_pointer()
    return reply.root_x, reply.root_y


def wait_pointer(dpy: Any, want: tuple[int, int], started: float) -> float | None:
    """Seconds from ``started`` until the pointer is at ``want`` (±1 px), or None after :data:`TIMEOUT`."""
    while True:
        x, y = pointer_at(dpy)
        now = time.perf_counter()
        if abs(x - want[0]) <= 1 and abs(y - want[1]) <= 1:
            return now - started
        if now - started > TIMEOUT:
            return None


def targets(count: int) -> list[tuple[float, float]]:
    """Fractions that alternate between distant points, so that every sample is a real move."""
    return [
        ((0.2 if i % 2 else 0.7) + (i % 7) / 100, (0.3 if i % 2 else 0.6) + (i % 5) / 100)
        for i in range(count)
    ]


def on_screen(fx: float, fy: float) -> tuple[int, int]:
    return min(SIZE[0] - 1, int(fx * SIZE[0])), min(SIZE[1] - 1, int(fy * SIZE[1]))


async def protocol_path(
    url: str, meeting: str, passcode: str, ada: ConfProcess, dpy: Any, n: int
) -> list[float | None]:
    client = Client(registry(), parse_server_url(url))
    await client.connect()
    try:
        await client.join(meeting, "Bob", passcode)
        client.send({"type": "control_request", "name": "Ada"})
        await asyncio.to_thread(ada.expect, "control_requested", None, 30.0)
        ada.send("/accept")
        async with asyncio.timeout(30):
            while (await client.events.get())["type"] != "control_granted":
                pass
        await asyncio.to_thread(ada.expect, "publish_started", lambda e: e.get("kind") == "screen", 30.0)
        await asyncio.sleep(1.0)  # let the screen share settle
        samples: list[float | None] = []
        for fx, fy in targets(n):
            started = time.perf_counter()
            client.send({"type": "control_input", "action": "move", "x": fx, "y": fy})
            samples.append(wait_pointer(dpy, on_screen(fx, fy), started))
            await asyncio.sleep(0.02)  # lets the loop answer pings; also paces the samples
        client.send({"type": "control_revoke"})
        await asyncio.sleep(0.5)
        return samples
    finally:
        await client.close()


def viewer_path(pool: ClientPool, meeting: str, ada: ConfProcess, dpy: Any, n: int) -> list[float | None]:
    from Xlib import X
    from Xlib.ext import xtest

    mine = start_screen(800, 600)
    try:
        env_display = os.environ.get("DISPLAY")
        os.environ["DISPLAY"] = mine.display
        try:
            args = ["control", "Ada", "--meeting", meeting, "--server", pool.url, "--name", "Bo"]
            bob = spawn([*args, "--passcode", pool.passcode, "--json"])
        finally:
            if env_display is None:
                os.environ.pop("DISPLAY", None)
            else:
                os.environ["DISPLAY"] = env_display
        pool.started.append(bob)
        ada.expect("control_requested", timeout=30)
        ada.send("/accept")
        bob.expect("control_granted", timeout=30)
        window = window_geometry(mine, "conf control: Ada's desktop", timeout=30)
        if window is None:
            raise SystemExit("the viewer window did not open")
        x, y, width, height = window
        time.sleep(1.0)
        viewer_dpy = open_display(mine)
        samples: list[float | None] = []
        for fx, fy in targets(n):
            # Where the viewer maps a window pixel, so that the target on Ada's screen is exact.
            px, py = x + int(fx * width), y + int(fy * height)
            want = on_screen((px - x) / width, (py - y) / height)
            started = time.perf_counter()
            xtest.fake_input(viewer_dpy, X.MotionNotify, x=px, y=py)
            viewer_dpy.sync()
            samples.append(wait_pointer(dpy, want, started))
            time.sleep(0.02)
        viewer_dpy.close()
        bob.stop()
        return samples
    finally:
        mine.stop()


def report(name: str, samples: list[float | None]) -> None:
    got = sorted(s * 1000 for s in samples if s is not None)
    lost = len(samples) - len(got)
    if not got:
        print(f"{name:>9}: no sample arrived ({lost} lost)")
        return
    p95 = got[min(len(got) - 1, int(len(got) * 0.95))]
    print(
        f"{name:>9}: n={len(got)} lost={lost} p50={statistics.median(got):.2f} ms "
        f"p95={p95:.2f} ms max={got[-1]:.2f} ms mean={statistics.fmean(got):.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--transport", default="tcp")
    parser.add_argument("--path", choices=("protocol", "viewer", "both"), default="both")
    args = parser.parse_args()
    os.environ["CONF_HOME"] = test_home()  # the servers it starts have throwaway keys: pin them there

    theirs = start_screen(*SIZE)
    server, url = start_server(transport=args.transport)
    pool = ClientPool(url)
    try:
        os.environ["DISPLAY"] = theirs.display  # Ada's conf process drives this screen
        ada, meeting = pool.create("Ada")
        dpy = open_display(theirs)
        runs: list[tuple[str, Callable[[], list[float | None]]]] = []
        if args.path in ("protocol", "both"):
            runs.append(
                (
                    "protocol",
                    lambda: asyncio.run(protocol_path(url, meeting, pool.passcode, ada, dpy, args.samples)),
                )
            )
        if args.path in ("viewer", "both"):
            runs.append(("viewer", lambda: viewer_path(pool, meeting, ada, dpy, args.samples)))
        print(
            f"input-to-effect latency, {args.transport} on loopback, "
            f"pointer moves on a {SIZE[0]}x{SIZE[1]} Xvfb"
        )
        for name, run in runs:
            report(name, run())
        dpy.close()
    finally:
        pool.stop_all()
        server.stop()
        theirs.stop()


if __name__ == "__main__":
    main()
