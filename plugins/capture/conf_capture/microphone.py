"""The ``audio`` source: a microphone through sounddevice (PortAudio), 48 kHz mono ``s16`` in 20 ms frames.

Options: ``device`` (an index or part of a name, as ``conf devices`` lists them; default: the system's
default input). With PulseAudio, ``PULSE_SOURCE`` picks which source the ``pulse``/``default`` device
records.

PortAudio calls back from its own thread with each 960-sample block; the block is copied into a small
bounded queue that drops the *oldest* block when the reader falls behind, so what is sent is always
fresh. Each frame's capture time is the wall-clock time of its first sample, from the callback's ADC time
when PortAudio knows it (otherwise the arrival time less the block's length).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import av

from conf_cli import CapturedFrame, ConfError, DeviceInfo, Source, SourceFactory

from . import audio_devices
from .options import opt_str

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms
QUEUE_BLOCKS = 8  # 160 ms of audio at most waits for the reader
STALL_TIMEOUT = 5.0  # a device that delivers nothing for this long has failed
_TIME_BASE = Fraction(1, SAMPLE_RATE)


class MicrophoneSource(Source):
    """Records 20 ms blocks from an open PortAudio input stream."""

    kind = "audio"

    def __init__(self, device: int | None, label: str) -> None:
        sd = audio_devices.load_sounddevice()
        self.label = label
        self.samples = 0
        self.dropped = 0
        self.overflows = 0
        self._queue: queue.Queue[tuple[Any, float] | None] = queue.Queue(QUEUE_BLOCKS)
        self._closed = threading.Event()
        self._lock = threading.Lock()
        try:
            self._stream = sd.InputStream(
                samplerate=SAMPLE_RATE,
                channels=1,
                dtype="int16",
                blocksize=FRAME_SAMPLES,
                device=device,
                callback=self._callback,
            )
            self._stream.start()
        except Exception as exc:  # PortAudioError and friends: the device refused
            raise ConfError(
                f"cannot record from microphone {label}: {exc}; try another --device (see `conf devices`)"
            ) from None

    def _callback(self, indata: Any, frames: int, timing: Any, status: Any) -> None:
        now = time.time()
        if status and status.input_overflow:
            self.overflows += 1
        adc = float(getattr(timing, "inputBufferAdcTime", 0.0) or 0.0)
        current = float(getattr(timing, "currentTime", 0.0) or 0.0)
        if adc > 0 and current > 0 and 0 <= current - adc < 1.0:
            capture_time = now - (current - adc)
        else:
            capture_time = now - frames / SAMPLE_RATE
        item = (indata[:, 0].copy(), capture_time)
        while True:
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def read(self) -> CapturedFrame | None:
        """The next 20 ms block; ``None`` once closed."""
        deadline = time.monotonic() + STALL_TIMEOUT
        while not self._closed.is_set():
            try:
                item = self._queue.get(timeout=min(0.1, max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                if time.monotonic() >= deadline:
                    raise ConfError(
                        f"microphone {self.label} delivered no sound for {STALL_TIMEOUT:g} s; "
                        "try another --device (see `conf devices`)"
                    ) from None
                continue
            if item is None:
                break
            samples, capture_time = item
            frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            frame.pts = self.samples
            frame.time_base = _TIME_BASE
            self.samples += samples.shape[0]
            return CapturedFrame(frame, capture_time)
        return None

    def close(self) -> None:
        """Stop recording and release the device; a pending read returns ``None``."""
        with self._lock:
            if self._closed.is_set():
                return
            self._closed.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        try:
            self._stream.abort()
            self._stream.close()
        except Exception:  # a device that vanished: nothing left to release
            pass


class MicrophoneSourceFactory(SourceFactory):
    """``audio``: a microphone (sounddevice / PortAudio)."""

    name = "audio"
    kind = "audio"
    description = "a microphone, 48 kHz mono (device=index or part of its name; see `conf devices`)"

    def list_devices(self) -> list[DeviceInfo]:
        """Every input device PortAudio sees, or one unavailable row saying why there is none."""
        return audio_devices.list_devices("input")

    def open(self, options: Mapping[str, Any]) -> MicrophoneSource:
        """Options: ``device`` (index or part of a name; default: the default input)."""
        device = opt_str(options, "device")
        index = audio_devices.resolve(device, "input")
        label = repr(device) if device else "(default)"
        return MicrophoneSource(index, label)
