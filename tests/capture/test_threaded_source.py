"""ThreadedSource: a blocking source in a thread, fed to asyncio, dropping the oldest frames when behind."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from conf_capture.file import FileSource
from conf_capture.pattern import PatternSource, read_pattern_stamp
from conf_capture.tone import FRAME_SAMPLES, ToneSource

from conf_cli.media.source import CapturedFrame, Source, ThreadedSource
from conf_cli.testing.media import make_clip


async def test_frames_arrive_in_order_in_real_time() -> None:
    async with ThreadedSource(ToneSource()) as frames:
        start = time.monotonic()
        pts = [(await anext(frames)).frame.pts for _ in range(11)]
        elapsed = time.monotonic() - start
    assert pts == [i * FRAME_SAMPLES for i in range(11)]
    assert 0.15 <= elapsed <= 0.5  # ten 20 ms intervals
    assert frames.dropped == 0


async def test_a_slow_consumer_gets_the_newest_frames_and_the_oldest_are_dropped() -> None:
    source = PatternSource(320, 180, fps=100)
    async with ThreadedSource(source, maxsize=3) as frames:
        await asyncio.sleep(0.3)  # about 30 frames are captured meanwhile
        produced = source.counter
        got = [await anext(frames) for _ in range(3)]
        stamps = [read_pattern_stamp(item.frame) for item in got]  # type: ignore[arg-type]
        counters = [stamp.counter for stamp in stamps if stamp is not None]
        assert counters == [counters[0], counters[0] + 1, counters[0] + 2]  # the newest, in order
        assert counters[0] >= produced - 3 > 10
        assert frames.dropped >= counters[0]  # every older frame was dropped, none queued up
        after = await anext(frames)  # and then the stream carries on live
        stamp = read_pattern_stamp(after.frame)  # type: ignore[arg-type]
        assert stamp is not None and stamp.counter >= produced
        assert time.time() - after.capture_time < 0.1


async def test_iteration_ends_when_the_source_ends(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "short.mp4", seconds=0.4, fps=15, audio=False)
    received = [item async for item in ThreadedSource(FileSource(str(clip), loop=False), maxsize=32)]
    assert len(received) == 6


class FailingSource(Source):
    """Yields one tone frame, then fails as a device that goes away would."""

    kind = "audio"

    def __init__(self) -> None:
        self.tone = ToneSource()

    def read(self) -> CapturedFrame | None:
        if self.tone.samples:
            raise OSError("device unplugged")
        return self.tone.read()

    def close(self) -> None:
        self.tone.close()


async def test_an_error_in_read_reaches_the_consumer() -> None:
    frames = ThreadedSource(FailingSource())
    first = await anext(frames)
    assert first.is_audio
    with pytest.raises(OSError, match="unplugged"):
        await anext(frames)
    with pytest.raises(StopAsyncIteration):
        await anext(frames)
    await frames.stop()


async def test_stop_wakes_a_blocked_read_and_joins_the_thread() -> None:
    source = PatternSource(320, 180, fps=0.5)  # one frame every two seconds
    frames = ThreadedSource(source)
    await anext(frames)  # the first frame comes at once; the next read now waits
    await asyncio.sleep(0.05)
    start = time.monotonic()
    await frames.stop()
    assert time.monotonic() - start < 0.5
    assert not any(t.name == "conf-source" and t.is_alive() for t in threading.enumerate())
    with pytest.raises(StopAsyncIteration):
        await anext(frames)


def test_queue_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ThreadedSource(ToneSource(), maxsize=0)
