"""Capture-to-decoded latency of conf against aiortc, side by side, from one run.

Method. Both pipelines carry the same two sources for ``--seconds`` each, one pipeline after the other:

* video: conf's ``pattern`` source, 1280x720 at 30 fps, every frame stamped with its capture time (to the
  millisecond). The receiver reads the stamp back from each decoded picture
  (:func:`conf_capture.pattern.read_pattern_stamp`); latency = when the decoded picture reached the probe,
  less the stamp. It covers rendering, H.264 encoding, packetising, the network path, the receiver's
  jitter buffer and decoding.
* audio: 48 kHz mono in 20 ms frames, silent but for a 20 ms 1 kHz burst every half second. The source
  notes when it hands out a burst frame (as a microphone callback would, so both pipelines exclude the
  same 20 ms of framing); the receiver notes when the first loud decoded frame after a quiet spell
  reaches it. Latency = the difference: Opus encoding, the network path, jitter buffer, decoding.

Pipelines:

* ``aiortc``: two RTCPeerConnections in this process on loopback (``iceServers: []``, host candidates
  limited to 127.0.0.1), H.264 chosen for video so that both use libx264; tracks are
  :class:`MediaStreamTrack` subclasses producing the frames above; the receiver awaits ``track.recv()``.
  No server sits between the peers.
* ``conf tcp`` / ``conf rtp``: a real ``conf server`` subprocess on loopback and two conf clients in this
  process (a :class:`~conf_cli.client.media.manager.MediaManager` each): one publishes both sources, the other
  receives them through the server into probe sinks.

Everything runs on one host, so clocks agree. The first ``--warmup`` seconds of each pipeline are not
counted. Figures are printed, never asserted.

Run: ``.venv/bin/python benchmarks/latency_vs_aiortc.py [--seconds 15] [--only aiortc,tcp,rtp]``
(needs ``pip install aiortc``, the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import av
import numpy as np
from conf_capture.pattern import PatternGenerator, PatternSource, read_pattern_stamp

from conf_cli.client.link import Client
from conf_cli.client.media.manager import MediaManager
from conf_cli.media.source import CapturedFrame, Frame, Pacer, Sink, Source
from conf_cli.plugin.registry import registry
from conf_cli.protocol.control import Message
from conf_cli.testing.processes import start_server, test_home
from conf_cli.urls import parse_server_url

WIDTH, HEIGHT, FPS = 1280, 720, 30
RATE, FRAME = 48_000, 960  # 20 ms
MARKER_EVERY = 25  # frames: one burst every 0.5 s
LOUD = 3000  # peak sample value that counts as the burst
PASSCODE = "bench-latency"


# -- measuring ----------------------------------------------------------------------------------------


class Probe:
    """Latencies (seconds) recorded from any thread, ignoring those before ``counting_from``."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.seen = 0
        self.counting_from = float("inf")
        self._lock = threading.Lock()

    def add(self, latency: float, now: float) -> None:
        with self._lock:
            self.seen += 1
            if now >= self.counting_from:
                self.values.append(latency)


class VideoProbe(Probe):
    def picture(self, frame: av.VideoFrame) -> None:
        now = time.time()
        stamp = read_pattern_stamp(frame)
        if stamp is not None:
            self.add(now - stamp.capture_time, now)


class Markers:
    """The audio bursts: the source notes when each leaves, the receiver when one is heard."""

    def __init__(self) -> None:
        self.sent: list[float] = []
        self.probe = Probe()
        self._quiet = 0
        burst = np.sin(2 * np.pi * 1000 * np.arange(FRAME) / RATE) * 16000
        self._burst = burst.astype(np.int16).reshape(1, -1)
        self._silence = np.zeros((1, FRAME), dtype=np.int16)

    def frame(self, index: int) -> av.AudioFrame:
        """Audio frame ``index``; a burst frame is noted as sent now."""
        burst = index % MARKER_EVERY == MARKER_EVERY - 1
        frame = av.AudioFrame.from_ndarray(
            self._burst if burst else self._silence, format="s16", layout="mono"
        )
        frame.sample_rate = RATE
        frame.pts = index * FRAME
        frame.time_base = Fraction(1, RATE)
        if burst:
            self.sent.append(time.time())
        return frame

    def heard(self, frame: av.AudioFrame) -> None:
        now = time.time()
        samples = np.abs(frame.to_ndarray())
        scale = 32768 if frame.format.name.startswith("flt") else 1  # conf decodes to float, aiortc to s16
        peak = float(samples.max()) * scale if samples.size else 0.0
        if peak < LOUD:
            self._quiet += 1
            return
        if self._quiet >= 5:
            sent = [t for t in self.sent if t <= now]
            if sent:
                self.probe.add(now - sent[-1], now)
        self._quiet = 0


# -- conf -----------------------------------------------------------------------------------------------


class MarkerSource(Source):
    kind = "audio"

    def __init__(self, markers: Markers) -> None:
        self.markers = markers
        self.index = 0
        self._pacer = Pacer(FRAME / RATE)

    def read(self) -> CapturedFrame | None:
        if not self._pacer.wait():
            return None
        frame = self.markers.frame(self.index)
        self.index += 1
        return CapturedFrame(frame, time.time())

    def close(self) -> None:
        self._pacer.stop()


class ProbeSink(Sink):
    def __init__(self, write: Callable[[Any], None]) -> None:
        self._write = write

    def write(self, frame: Frame) -> None:
        self._write(frame)

    def close(self) -> None:
        pass


async def _pump(client: Client, media: MediaManager) -> None:
    while True:
        media.handle_event(await client.events.get())


async def run_conf(transport: str, seconds: float, warmup: float) -> tuple[VideoProbe, Probe]:
    server, url = await asyncio.to_thread(start_server, transport=transport)
    video, markers = VideoProbe(), Markers()

    def sinks(info: Message) -> list[Sink]:
        if info.get("kind") == "audio":
            return [ProbeSink(markers.heard)]
        return [ProbeSink(video.picture)]

    address = parse_server_url(url)
    sender, receiver = Client(registry(), address), Client(registry(), address)
    tasks: list[asyncio.Task[None]] = []
    managers: list[MediaManager] = []
    try:
        await sender.connect()
        await receiver.connect()
        created, joined = await sender.create("sender", PASSCODE)
        sending = MediaManager(sender, lambda event: None)
        sending.handle_event(joined)
        receiving = MediaManager(receiver, lambda event: None, None, sinks)
        receiving.handle_event(await receiver.join(str(created["meeting"]), "receiver", PASSCODE))
        managers = [sending, receiving]
        tasks = [asyncio.create_task(_pump(sender, sending)), asyncio.create_task(_pump(receiver, receiving))]
        sending.publish("pattern", PatternSource(WIDTH, HEIGHT, FPS), fps=FPS)
        sending.publish("marker", MarkerSource(markers))
        video.counting_from = markers.probe.counting_from = time.time() + warmup
        await asyncio.sleep(warmup + seconds)
    finally:
        for task in tasks:
            task.cancel()
        for manager in managers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(manager.close(), 5)
        for client in (sender, receiver):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), 5)
        await asyncio.to_thread(server.stop)
    return video, markers.probe


# -- aiortc ---------------------------------------------------------------------------------------------


async def run_aiortc(seconds: float, warmup: float) -> tuple[VideoProbe, Probe]:
    import aioice.ice
    from aiortc import (
        MediaStreamTrack,
        RTCConfiguration,
        RTCPeerConnection,
        RTCRtpSender,
    )
    from aiortc.mediastreams import MediaStreamError

    # Host candidates on loopback only: no traffic leaves the machine's loopback interface.
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]

    video, markers = VideoProbe(), Markers()

    class PatternTrack(MediaStreamTrack):
        kind = "video"

        def __init__(self) -> None:
            super().__init__()
            self.generator = PatternGenerator(WIDTH, HEIGHT)
            self.counter = 0
            self.start = time.monotonic()

        async def recv(self) -> av.VideoFrame:
            due = self.start + self.counter / FPS
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            capture_time = round(time.time() * 1000) / 1000
            frame = await asyncio.to_thread(self.generator.render, self.counter, capture_time)
            frame.pts = self.counter * 3000
            frame.time_base = Fraction(1, 90_000)
            self.counter += 1
            return frame

    class MarkerTrack(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.index = 0
            self.start = time.monotonic()

        async def recv(self) -> av.AudioFrame:
            due = self.start + (self.index + 1) * FRAME / RATE  # a frame is ready once its last sample is
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            frame = markers.frame(self.index)
            self.index += 1
            return frame

    async def consume(track: Any, write: Callable[[Any], None]) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if isinstance(frame, av.VideoFrame):
                    await asyncio.to_thread(write, frame)  # reading the stamp off the loop, as conf's sink
                else:
                    write(frame)

    config = RTCConfiguration(iceServers=[])
    offerer, answerer = RTCPeerConnection(config), RTCPeerConnection(config)
    consumers: list[asyncio.Task[None]] = []

    @answerer.on("track")
    def on_track(track: Any) -> None:
        write = markers.heard if track.kind == "audio" else video.picture
        consumers.append(asyncio.create_task(consume(track, write)))

    try:
        offerer.addTrack(PatternTrack())
        offerer.addTrack(MarkerTrack())
        h264 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/H264"]
        for transceiver in offerer.getTransceivers():
            if transceiver.kind == "video":
                transceiver.setCodecPreferences(h264)
        await offerer.setLocalDescription(await offerer.createOffer())
        await answerer.setRemoteDescription(offerer.localDescription)
        await answerer.setLocalDescription(await answerer.createAnswer())
        await offerer.setRemoteDescription(answerer.localDescription)
        video.counting_from = markers.probe.counting_from = time.time() + warmup
        await asyncio.sleep(warmup + seconds)
    finally:
        for task in consumers:
            task.cancel()
        await asyncio.wait_for(offerer.close(), 10)
        await asyncio.wait_for(answerer.close(), 10)
    return video, markers.probe


# -- report ---------------------------------------------------------------------------------------------


def percentiles(values: list[float]) -> tuple[float, float, float] | None:
    if not values:
        return None
    ms = sorted(v * 1000 for v in values)

    def at(q: float) -> float:
        return ms[min(len(ms) - 1, int(q * len(ms)))]

    return at(0.5), at(0.95), at(0.99)


def _cells(probe: Probe) -> str:
    figures = percentiles(probe.values)
    if figures is None:
        return f"{'-':>7} {'-':>7} {'-':>7} {0:>6}"
    return " ".join(f"{v:7.1f}" for v in figures) + f" {len(probe.values):>6}"


def report(results: dict[str, tuple[VideoProbe, Probe]], seconds: float) -> None:
    print(f"capture -> decoded, ms; {WIDTH}x{HEIGHT}@{FPS} H.264 video, Opus 20 ms audio, {seconds:g} s each")
    print(
        f"{'pipeline':<24} {'video p50':>9} {'p95':>7} {'p99':>7} {'frames':>6}   "
        f"{'audio p50':>9} {'p95':>7} {'p99':>7} {'bursts':>6}"
    )
    for name, (video, audio) in results.items():
        print(f"{name:<24}   {_cells(video)}     {_cells(audio)}")
    base = results.get("aiortc (no server)")
    if base is None:
        return
    base_video, base_audio = percentiles(base[0].values), percentiles(base[1].values)
    for name, (video, audio) in results.items():
        if name.startswith("aiortc"):
            continue
        mine_video, mine_audio = percentiles(video.values), percentiles(audio.values)
        parts = []
        for label, mine, theirs in (("video", mine_video, base_video), ("audio", mine_audio, base_audio)):
            if mine and theirs:
                ratios = "/".join(f"{m / t:.2f}" for m, t in zip(mine, theirs, strict=True))
                parts.append(f"{label} p50/p95/p99 {ratios}")
        print(f"{name} / aiortc: " + "; ".join(parts))


async def main_async(seconds: float, warmup: float, only: list[str]) -> None:
    results: dict[str, tuple[VideoProbe, Probe]] = {}
    for name in only:
        if name == "aiortc":
            results["aiortc (no server)"] = await run_aiortc(seconds, warmup)
        else:
            results[f"conf {name} (via server)"] = await run_conf(name, seconds, warmup)
    report(results, seconds)


def main() -> None:
    os.environ["CONF_HOME"] = test_home()  # the servers it starts have throwaway keys: pin them there
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per pipeline")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds not counted at the start")
    parser.add_argument("--only", default="aiortc,tcp,rtp", help="pipelines to run, in order")
    args = parser.parse_args()
    asyncio.run(main_async(args.seconds, args.warmup, [n.strip() for n in args.only.split(",") if n.strip()]))


if __name__ == "__main__":
    main()
