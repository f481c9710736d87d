"""The ``speaker`` sink: plays decoded audio through sounddevice (PortAudio), 48 kHz mono ``s16``.

Options: ``device`` (an index or part of a name, as ``conf devices`` lists them; default: the system's
default output), ``buffer`` (the most audio, in seconds, waiting to play; default 0.2). With PulseAudio,
``PULSE_SINK`` picks which sink the ``pulse``/``default`` device plays into.

:meth:`SpeakerSink.write` resamples any frame to 48 kHz mono ``s16`` and appends it to a bounded buffer;
PortAudio's callback takes from it. When the buffer runs dry the callback plays silence (an underrun);
when it overflows the *oldest* samples are dropped (an overrun), so latency never grows past ``buffer``.
``write`` never blocks on the device.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import av
from av.audio.resampler import AudioResampler

from conf_cli import ConfError, DeviceInfo, Frame, Sink, SinkFactory

from . import audio_devices
from .options import opt_float, opt_str

SAMPLE_RATE = 48_000
BLOCK_SAMPLES = 480  # 10 ms per callback
DEFAULT_BUFFER = 0.2


class SpeakerSink(Sink):
    """Plays 48 kHz mono audio from a bounded buffer through a PortAudio output stream."""

    def __init__(self, device: int | None, label: str, buffer_seconds: float = DEFAULT_BUFFER) -> None:
        sd = audio_devices.load_sounddevice()
        self.label = label
        self.max_bytes = max(BLOCK_SAMPLES, int(buffer_seconds * SAMPLE_RATE)) * 2
        self.underruns = 0
        self.dropped_samples = 0
        self.played_samples = 0
        self._buffer = bytearray()
        self._lock = threading.Lock()
        self._resampler: AudioResampler | None = None
        self._closed = False
        try:
            self._stream = sd.RawOutputStream(
                samplerate=SAMPLE_RATE,
                channels=1,
                dtype="int16",
                blocksize=BLOCK_SAMPLES,
                device=device,
                latency="low",
                callback=self._callback,
            )
            self._stream.start()
        except Exception as exc:  # PortAudioError and friends: the device refused
            raise ConfError(
                f"cannot play to speaker {label}: {exc}; try another speaker device (see `conf devices`)"
            ) from None

    def _callback(self, outdata: Any, frames: int, timing: Any, status: Any) -> None:
        wanted = frames * 2
        with self._lock:
            chunk = bytes(self._buffer[:wanted])
            del self._buffer[:wanted]
        if len(chunk) < wanted:
            if self.played_samples:
                self.underruns += 1
            chunk += bytes(wanted - len(chunk))
        self.played_samples += frames
        outdata[:] = chunk

    def _pcm(self, frame: av.AudioFrame) -> bytes:
        if frame.format.name == "s16" and frame.sample_rate == SAMPLE_RATE and frame.layout.nb_channels == 1:
            return bytes(frame.planes[0])[: frame.samples * 2]
        if self._resampler is None:
            self._resampler = AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        frame.pts = None
        return b"".join(bytes(out.planes[0])[: out.samples * 2] for out in self._resampler.resample(frame))

    def write(self, frame: Frame) -> None:
        """Queue one audio frame for playing (video frames are ignored); never blocks on the device."""
        if self._closed or not isinstance(frame, av.AudioFrame):
            return
        pcm = self._pcm(frame)
        with self._lock:
            self._buffer += pcm
            excess = len(self._buffer) - self.max_bytes
            if excess > 0:
                excess += excess % 2
                del self._buffer[:excess]
                self.dropped_samples += excess // 2

    @property
    def buffered(self) -> float:
        """Seconds of audio waiting to play."""
        with self._lock:
            return len(self._buffer) / 2 / SAMPLE_RATE

    def close(self) -> None:
        """Stop playing and release the device; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            self._stream.abort()
            self._stream.close()
        except Exception:  # a device that vanished: nothing left to release
            pass


class SpeakerSinkFactory(SinkFactory):
    """``speaker``: plays received audio (sounddevice / PortAudio)."""

    name = "speaker"
    kind = "audio"
    description = "plays received audio (device=index or part of its name; see `conf devices`)"
    consumes = "frames"

    def list_devices(self) -> list[DeviceInfo]:
        """Every output device PortAudio sees, or one unavailable row saying why there is none."""
        return audio_devices.list_devices("output")

    def open(self, options: Mapping[str, Any]) -> SpeakerSink:
        """Options: ``device`` (index or part of a name), ``buffer`` (seconds, default 0.2)."""
        device = opt_str(options, "device")
        index = audio_devices.resolve(device, "output")
        label = repr(device) if device else "(default)"
        return SpeakerSink(index, label, opt_float(options, "buffer", DEFAULT_BUFFER))
