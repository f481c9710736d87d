"""The tone source: exact pitch through a real Opus round trip, continuous phase, real-time pacing."""

from __future__ import annotations

import itertools
import time

import av
import numpy as np
import pytest
from conf_capture.tone import FRAME_SAMPLES, SAMPLE_RATE, ToneSource, ToneSourceFactory

from conf_cli.errors import ConfError
from conf_cli.media.codecs import OpusDecoder, OpusEncoder


def peak_frequency(samples: np.ndarray) -> float:
    window = samples * np.hanning(len(samples))
    spectrum = np.abs(np.fft.rfft(window))
    return float(np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)[int(np.argmax(spectrum))])


@pytest.mark.parametrize("frequency", [440.0, 1000.0])
def test_tone_through_opus_peaks_at_its_frequency(frequency: float) -> None:
    source = ToneSourceFactory().open({"frequency": str(frequency)})
    source._pacer.interval = 0  # as fast as possible: pacing is tested below
    encoder, decoder = OpusEncoder(), OpusDecoder()
    decoded = []
    for _ in range(50):  # one second
        captured = source.read()
        assert captured is not None and isinstance(captured.frame, av.AudioFrame)
        assert captured.frame.samples == FRAME_SAMPLES and captured.frame.sample_rate == SAMPLE_RATE
        assert captured.frame.format.name == "s16" and captured.frame.layout.name == "mono"
        for unit in encoder.encode(captured):
            for frame in decoder.decode(unit.data):
                decoded.append(frame.to_ndarray().reshape(-1))
    source.close()
    samples = np.concatenate(decoded).astype(np.float64)[SAMPLE_RATE // 10 :]
    assert abs(peak_frequency(samples) - frequency) <= 2.0


def test_phase_is_continuous_across_frames() -> None:
    source = ToneSource(440.0, volume=0.5)
    source._pacer.interval = 0
    frames = [source.read() for _ in range(5)]
    samples = np.concatenate([f.frame.to_ndarray().reshape(-1) for f in frames if f is not None])
    expected = (np.sin(2 * np.pi * 440 * np.arange(len(samples)) / SAMPLE_RATE) * 0.5 * 32767).astype(
        np.int16
    )
    assert np.abs(samples.astype(np.int32) - expected).max() <= 1
    assert [f.frame.pts for f in frames if f is not None] == [i * FRAME_SAMPLES for i in range(5)]


def test_paced_in_real_time_with_capture_times_and_closes_promptly() -> None:
    source = ToneSource()
    start = time.monotonic()
    frames = [source.read() for _ in range(26)]
    elapsed = time.monotonic() - start
    assert 0.45 <= elapsed <= 0.8  # 25 intervals of 20 ms after the first frame
    times = [f.capture_time for f in frames if f is not None]
    # Each frame is stamped when it was due: the stamps rise by 20 ms a frame (a stall on a loaded machine
    # shows in one interval and is caught up in the next, so it is the typical interval that says the pace).
    intervals = sorted(b - a for a, b in itertools.pairwise(times))
    assert intervals[0] > 0 and 0.015 <= intervals[len(intervals) // 2] <= 0.025
    source.close()
    assert source.read() is None


def test_bad_options_fail_in_one_line() -> None:
    with pytest.raises(ConfError, match="frequency"):
        ToneSourceFactory().open({"frequency": "loud"})
    with pytest.raises(ConfError, match="below 24000"):
        ToneSourceFactory().open({"frequency": 30_000})


def test_on_off_schedule_and_tremolo_shape_the_tone() -> None:
    source = ToneSource(440.0, volume=0.5, on=0.1, off=0.1, offset=0.0, tremolo=4.0)
    source._pacer.interval = 0
    frames = [source.read() for _ in range(20)]  # 400 ms: on, off, on, off
    peaks = [int(np.abs(f.frame.to_ndarray()).max()) for f in frames if f is not None]
    assert all(p > 1000 for p in peaks[0:5]) and all(p == 0 for p in peaks[5:10])
    assert all(p > 1000 for p in peaks[10:15]) and all(p == 0 for p in peaks[15:20])
    late = ToneSource(440.0, on=0.1, off=0.1, offset=0.1)  # starts in the silent half
    late._pacer.interval = 0
    first = late.read()
    assert first is not None and int(np.abs(first.frame.to_ndarray()).max()) == 0
    with pytest.raises(ConfError):
        ToneSource(off=1.0)
    with pytest.raises(ConfError):
        ToneSource(tremolo=-1.0)
