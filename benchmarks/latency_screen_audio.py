"""Screen-to-decoded-picture latency of `conf share screen` on loopback, through a real server.

Method: a 1280x720 Xvfb screen is shared by a real ``conf share screen --fps 30`` process into a meeting
on a real ``conf server`` (TCP, loopback). The receiver runs in this process: a
:class:`~conf_cli.client.media.manager.MediaManager` whose video sink looks at the centre of every decoded
picture. Every ``--interval`` seconds the screen flips between black and white (``xsetroot -solid``);
the time is taken when ``xsetroot`` returns, the X server having drawn the new colour by then. The
latency of a flip is the wall-clock time of the first decoded picture whose centre has the new
brightness, less the time of the flip. It therefore covers waiting for the next capture (0 to 1/fps s,
half a frame interval on average), grabbing, colour conversion, H.264 encoding, RTP packetising, the
server's forwarding, the receiver's jitter buffer (its target delay) and decoding. Everything runs on one
machine, so the clocks agree. Figures are printed, never asserted.

Audio latency is measured by ``latency_audio.py``, which reuses this script's receiver and summary.

Run: ``.venv/bin/python benchmarks/latency_screen_audio.py [--flips 20] [--interval 0.4]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import threading
import time
from collections.abc import Callable

import av

from conf_cli.client.link import Client
from conf_cli.client.media.manager import MediaManager
from conf_cli.media.source import Frame, Sink
from conf_cli.plugin.registry import registry
from conf_cli.protocol.control import Message
from conf_cli.testing.devices import paint_screen, start_screen
from conf_cli.testing.processes import spawn, start_server, test_home
from conf_cli.urls import parse_server_url

PASSCODE = "bench-123"


class Receiver:
    """A meeting created in this process whose remote tracks' decoded frames go to the sinks given."""

    def __init__(self, client: Client, media: MediaManager, created: Message) -> None:
        self.client = client
        self.media = media
        self.created = created
        self._pump = asyncio.create_task(self._run())

    @classmethod
    async def create(cls, url: str, sinks_for: Callable[[Message], list[Sink]]) -> Receiver:
        """Connect to ``url``, create a meeting (passcode :data:`PASSCODE`) and receive into ``sinks_for``."""
        client = Client(registry(), parse_server_url(url))
        await client.connect()
        created, joined = await client.create("bench", PASSCODE)

        def ignore(event: Message) -> None:
            del event

        media = MediaManager(client, ignore, None, sinks_for)
        media.handle_event(joined)
        return cls(client, media, created)

    async def _run(self) -> None:
        while True:
            self.media.handle_event(await self.client.events.get())

    async def close(self) -> None:
        self._pump.cancel()
        await self.media.close()
        await self.client.close()


def summary(values_ms: list[float]) -> str:
    """Median, mean, min, p90 and max of some milliseconds."""
    ms = sorted(values_ms)
    p90 = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
    return (
        f"median {statistics.median(ms):.1f} ms, mean {statistics.mean(ms):.1f} ms, "
        f"min {ms[0]:.1f} ms, p90 {p90:.1f} ms, max {ms[-1]:.1f} ms"
    )


class BrightnessProbe(Sink):
    """Records when each decoded picture's centre turned bright or dark."""

    def __init__(self) -> None:
        self.changes: list[tuple[float, bool]] = []
        self.frames = 0
        self._lock = threading.Lock()
        self._last: bool | None = None

    def write(self, frame: Frame) -> None:
        now = time.time()
        if not isinstance(frame, av.VideoFrame):
            return
        plane = frame.planes[0]
        luma = memoryview(plane)[(plane.height // 2) * plane.line_size + plane.width // 2]
        bright = luma > 128
        with self._lock:
            self.frames += 1
            if bright != self._last:
                self._last = bright
                self.changes.append((now, bright))

    def first_change_after(self, when: float, bright: bool) -> float | None:
        with self._lock:
            return next((t for t, b in self.changes if t >= when and b == bright), None)

    def close(self) -> None:
        pass


async def run(flips: int, interval: float, fps: float) -> None:
    screen = start_screen(1280, 720)
    server, url = start_server()
    sharer = None
    probe = BrightnessProbe()
    try:
        paint_screen(screen, "#000000")
        receiver = await Receiver.create(url, lambda info: [probe] if info.get("kind") == "screen" else [])
        created = receiver.created
        args = ["share", "screen", "--meeting", str(created["meeting"]), "--server", url, "--name", "sharer"]
        args += ["--passcode", PASSCODE, "--json", "--fps", str(fps), "--bitrate", "2000000"]
        sharer = spawn(args, env={"DISPLAY": screen.display})
        await asyncio.to_thread(sharer.expect, "publish_started")
        deadline = time.monotonic() + 10
        while probe.frames < 10 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if probe.frames < 10:
            raise SystemExit(f"no pictures arrived; sharer said {sharer.stderr_lines[-3:]}")
        latencies: list[float] = []
        bright = False
        for _ in range(flips):
            bright = not bright
            await asyncio.to_thread(paint_screen, screen, "#ffffff" if bright else "#000000")
            flipped = time.time()
            await asyncio.sleep(interval)
            seen = probe.first_change_after(flipped - 0.005, bright)
            if seen is not None:
                latencies.append(seen - flipped)
        await receiver.close()
        report(latencies, flips, fps, probe.frames)
    finally:
        if sharer is not None:
            sharer.stop()
        server.stop()
        screen.stop()


def report(latencies: list[float], flips: int, fps: float, frames: int) -> None:
    print(f"screen 1280x720 @ {fps:g} fps, loopback TCP through conf server; {frames} pictures decoded")
    if not latencies:
        print(f"no flip was seen in {flips} tries")
        return
    print(
        f"screen change -> decoded picture: {len(latencies)}/{flips} flips seen; "
        f"{summary([x * 1000 for x in latencies])} "
        f"(includes 0-{1000 / fps:.0f} ms waiting for the next capture)"
    )


def main() -> None:
    os.environ["CONF_HOME"] = test_home()  # the servers it starts have throwaway keys: pin them there
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--flips", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.4)
    parser.add_argument("--fps", type=float, default=30.0)
    args = parser.parse_args()
    os.environ.pop("DISPLAY", None)
    asyncio.run(run(args.flips, args.interval, args.fps))


if __name__ == "__main__":
    main()
