"""The ``tone`` source: a steady sine wave, 48 kHz mono ``s16`` in 20 ms frames, paced in real time.

The phase carries over from one frame to the next, so the tone has no clicks at frame edges; samples
come from a sample counter, so the frequency stays exact however long the tone runs.

Options shape the tone for tests of speech features: ``tremolo`` (Hz) modulates its loudness as syllables
do (Opus codes in-band FEC only for what its voice activity detector takes for speech, never for a steady
tone), and ``on``/``off`` (seconds) make it sound ``on`` seconds then fall silent ``off`` seconds, over
and over, starting ``offset`` seconds into that cycle (two speakers taking turns); with ``sync`` the cycle
runs on the wall clock instead (Unix time plus ``offset``), so tones in separate processes take turns at
known instants.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import av
import numpy as np

from conf_cli import CapturedFrame, ConfError, Pacer, Source, SourceFactory

from .options import opt_bool, opt_float

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms
DEFAULT_FREQUENCY = 440.0
DEFAULT_VOLUME = 0.3


class ToneSource(Source):
    """A sine of ``frequency`` Hz at ``volume`` (0 to 1 of full scale), one 20 ms frame per read."""

    kind = "audio"

    def __init__(
        self,
        frequency: float = DEFAULT_FREQUENCY,
        volume: float = DEFAULT_VOLUME,
        *,
        tremolo: float = 0.0,
        on: float = 0.0,
        off: float = 0.0,
        offset: float = 0.0,
        sync: bool = False,
    ) -> None:
        if not 0 < frequency < SAMPLE_RATE / 2:
            raise ConfError(f"tone frequency {frequency:g} Hz must be above 0 and below {SAMPLE_RATE // 2}")
        if not 0 < volume <= 1:
            raise ConfError(f"tone volume {volume:g} must be above 0 and at most 1")
        if tremolo < 0 or tremolo >= 100:
            raise ConfError(f"tone tremolo {tremolo:g} Hz must be from 0 to below 100")
        if on < 0 or off < 0 or offset < 0:
            raise ConfError("tone on, off and offset must not be negative")
        if off > 0 and on == 0:
            raise ConfError("tone off needs on: how long the tone sounds in each cycle")
        self.frequency = frequency
        self.volume = volume
        self.tremolo = tremolo
        self.on = on
        self.off = off
        self.offset = offset
        self.sync = sync
        self.samples = 0  # samples produced so far
        self._step = 2 * np.pi * frequency / SAMPLE_RATE
        self._offsets = np.arange(FRAME_SAMPLES, dtype=np.float64)
        self._pacer = Pacer(FRAME_SAMPLES / SAMPLE_RATE)
        self._time_base = Fraction(1, SAMPLE_RATE)

    def read(self) -> CapturedFrame | None:
        """The next 20 ms of tone, when it is due; ``None`` once closed."""
        if not self._pacer.wait():
            return None
        capture_time = time.time()
        # Phase from the sample counter modulo one period's worth of radians keeps float error bounded.
        phase = (self.samples * self._step) % (2 * np.pi)
        wave = np.sin(phase + self._step * self._offsets) * (self.volume * 32767)
        if self.tremolo:
            seconds = (self.samples + self._offsets) / SAMPLE_RATE
            wave *= 0.6 + 0.4 * np.sin(2 * np.pi * self.tremolo * seconds)
        if self.off:  # in whole samples, so that the schedule does not drift with float error
            on, cycle = round(self.on * SAMPLE_RATE), round((self.on + self.off) * SAMPLE_RATE)
            position = round(capture_time * SAMPLE_RATE) if self.sync else self.samples
            if (round(self.offset * SAMPLE_RATE) + position) % cycle >= on:
                wave *= 0
        frame = av.AudioFrame.from_ndarray(wave.astype(np.int16).reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self.samples
        frame.time_base = self._time_base
        self.samples += FRAME_SAMPLES
        return CapturedFrame(frame, capture_time)

    def close(self) -> None:
        """Stop: a pending or later read returns ``None``."""
        self._pacer.stop()


class ToneSourceFactory(SourceFactory):
    """``tone``: a synthetic sine wave, for testing audio without a microphone."""

    name = "tone"
    kind = "audio"
    description = (
        "sine wave, 48 kHz mono (frequency, default 440 Hz; volume 0-1; tremolo Hz; on/off/offset s; sync)"
    )

    def open(self, options: Mapping[str, Any]) -> ToneSource:
        """Options: ``frequency`` in Hz (default 440), ``volume`` from 0 to 1 (default 0.3), ``tremolo``
        in Hz (default 0: steady), ``on``, ``off`` and ``offset`` in seconds (default: always on),
        ``sync`` (the cycle on the wall clock)."""
        return ToneSource(
            opt_float(options, "frequency", DEFAULT_FREQUENCY),
            opt_float(options, "volume", DEFAULT_VOLUME),
            tremolo=opt_float(options, "tremolo", 0.0, -1.0),
            on=opt_float(options, "on", 0.0, -1.0),
            off=opt_float(options, "off", 0.0, -1.0),
            offset=opt_float(options, "offset", 0.0, -1.0),
            sync=opt_bool(options, "sync", False),
        )
