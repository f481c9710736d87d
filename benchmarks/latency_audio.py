"""Capture-to-decoded latency of audio on loopback, through a real server.

Method: a real ``conf server`` (TCP, loopback) hosts a meeting created by a receiver in this process
(the receiver of ``latency_screen_audio.py``), whose decoded audio goes to a :class:`ClickProbe` sink.
A second process (this script with ``--send``) joins the meeting and publishes a :class:`ClickSource`
through conf's own publisher: 48 kHz mono, 20 ms frames paced in real time like the ``tone`` source,
silent except for a 2 ms, 3 kHz burst at the start of one frame every ``--interval`` seconds. Each frame
carries its capture time (``time.time()`` of its first sample, as every conf source stamps it); the
sender prints the capture time of every click on stdout. The probe notes the wall-clock time at which
each decoded frame whose samples first rise above a threshold was handed to it (decoding happens in the
receiver's worker thread, right before its sinks are written). A click's latency is that time less the
capture time of the click's frame; every click is matched with the latest one captured before it was
heard (clicks are far apart, so there is no ambiguity). It covers Opus encoding, RTP packetising,
the server's forwarding, the receiver's jitter buffer (its target delay) and Opus decoding, but not the
wait for a frame to fill (a microphone hands over 20 ms at once, so that wait belongs to the device) and
not a speaker's output buffer. Where in the decoded frame the click begins is printed too: Opus delays
the signal by its look-ahead (6.5 ms), which a listener hears on top of the figure. Everything runs on
one machine, so the clocks agree. On an ordered transport (tcp, zmq) the jitter buffer holds nothing; on
rtp it holds audio for its target delay. Figures are printed, never asserted.

Run: ``.venv/bin/python benchmarks/latency_audio.py [--clicks 20] [--interval 0.5] [--transport rtp]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from fractions import Fraction

import av
import numpy as np
from latency_screen_audio import PASSCODE, Receiver, summary

from conf_cli.client.link import Client
from conf_cli.client.media.manager import MediaManager
from conf_cli.media.source import CapturedFrame, Frame, Pacer, Sink, Source
from conf_cli.plugin.registry import registry
from conf_cli.protocol.control import Message
from conf_cli.testing.devices import stop_process
from conf_cli.testing.processes import start_server, test_home
from conf_cli.urls import parse_server_url

RATE = 48_000
FRAME = 960  # 20 ms
CLICK = 96  # 2 ms of a 3 kHz burst
THRESHOLD = 0.1  # of full scale; the click is at 0.8


class ClickSource(Source):
    """Silence with a click at the start of one frame every ``interval`` seconds, paced in real time."""

    kind = "audio"

    def __init__(self, interval: float) -> None:
        self.every = max(1, round(interval * RATE / FRAME))
        self.samples = 0
        self.frames = 0
        self._pacer = Pacer(FRAME / RATE)
        t = np.arange(CLICK) / RATE
        self._click = (np.sin(2 * np.pi * 3000 * t) * 0.8 * 32767).astype(np.int16)

    def read(self) -> CapturedFrame | None:
        if not self._pacer.wait():
            return None
        capture_time = time.time()
        samples = np.zeros(FRAME, np.int16)
        if self.frames % self.every == self.every - 1:
            samples[:CLICK] = self._click
            print(json.dumps({"click": capture_time}), flush=True)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self.samples
        frame.time_base = Fraction(1, RATE)
        self.samples += FRAME
        self.frames += 1
        return CapturedFrame(frame, capture_time)

    def close(self) -> None:
        self._pacer.stop()


class ClickProbe(Sink):
    """Notes when each decoded click arrived, and where in its frame it begins."""

    def __init__(self) -> None:
        self.heard: list[tuple[float, int]] = []  # (wall-clock time, first loud sample in the frame)
        self.frames = 0
        self._loud = False
        self._lock = threading.Lock()

    def write(self, frame: Frame) -> None:
        now = time.time()
        if not isinstance(frame, av.AudioFrame):
            return
        samples = frame.to_ndarray().reshape(-1)
        scale = 1.0 if samples.dtype.kind == "f" else 32768.0
        loud = np.flatnonzero(np.abs(samples) / scale > THRESHOLD)
        with self._lock:
            self.frames += 1
            if loud.size and not self._loud:
                self.heard.append((now, int(loud[0])))
            self._loud = bool(loud.size)

    def close(self) -> None:
        pass


# -- the sender (this script with --send) ------------------------------------------------------------------


async def send(url: str, meeting: str, interval: float) -> None:
    client = Client(registry(), parse_server_url(url))
    await client.connect()
    joined = await client.join(meeting, "clicker", PASSCODE)

    def ignore(event: Message) -> None:
        del event

    media = MediaManager(client, ignore)
    media.handle_event(joined)
    media.publish("click", ClickSource(interval))
    try:
        while True:
            event = await client.events.get()
            media.handle_event(event)
            if event.get("type") in ("left", "meeting_closed", "kicked", "disconnected"):
                break
    finally:
        await media.close()
        await client.close()


# -- the measurement ---------------------------------------------------------------------------------------


def start_sender(url: str, meeting: str, interval: float) -> tuple[subprocess.Popen[str], list[float]]:
    clicks: list[float] = []
    args = [sys.executable, __file__, "--send", url, meeting, "--interval", str(interval)]
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("{"):
                clicks.append(float(json.loads(line)["click"]))

    threading.Thread(target=read, daemon=True).start()
    return process, clicks


async def run(clicks_wanted: int, interval: float, transport: str) -> None:
    server, url = start_server(transport=transport)
    sender = None
    probe = ClickProbe()
    try:
        receiver = await Receiver.create(url, lambda info: [probe] if info.get("kind") == "audio" else [])
        sender, sent = start_sender(url, str(receiver.created["meeting"]), interval)
        deadline = time.monotonic() + 15 + clicks_wanted * interval * 2
        while len(probe.heard) < clicks_wanted + 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await receiver.close()
        heard = match(sent, probe.heard, interval)[1:]  # the first click may meet a cold path
        report(heard, clicks_wanted, probe, transport)
    finally:
        stop_process(sender)
        server.stop()


def match(sent: list[float], heard: list[tuple[float, int]], interval: float) -> list[tuple[float, int]]:
    """(latency s, onset sample) for each click heard, against the latest one captured before it."""
    found = []
    for when, onset in heard:
        before = [t for t in sent if t <= when]
        if before and when - before[-1] < interval:
            found.append((when - before[-1], onset))
    return found


def report(latencies: list[tuple[float, int]], wanted: int, probe: ClickProbe, transport: str) -> None:
    where = f"loopback {transport} through conf server"
    print(f"audio 48 kHz mono Opus, 20 ms frames, {where}; {probe.frames} frames decoded")
    if not latencies:
        print("no click was heard")
        return
    onsets = sorted(onset for _, onset in latencies)
    print(
        f"click captured -> decoded frame handed to the sink: {len(latencies)}/{wanted} clicks; "
        f"{summary([x * 1000 for x, _ in latencies])}"
    )
    delay_ms = onsets[len(onsets) // 2] / RATE * 1000
    print(f"the click begins {onsets[len(onsets) // 2]} samples ({delay_ms:.1f} ms) into its decoded frame")


def main() -> None:
    os.environ["CONF_HOME"] = test_home()  # the servers it starts have throwaway keys: pin them there
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between clicks")
    parser.add_argument("--transport", default="tcp", help="tcp, zmq or rtp (the jitter buffer waits on rtp)")
    parser.add_argument("--send", nargs=2, metavar=("URL", "MEETING"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.send:
        asyncio.run(send(args.send[0], args.send[1], args.interval))
    else:
        asyncio.run(run(args.clicks, args.interval, args.transport))


if __name__ == "__main__":
    main()
