"""The ``audio`` source and the ``speaker`` sink on a real (virtual) PulseAudio server.

A 440 Hz tone played into ``micfeed`` is recorded from ``vmic`` by the microphone source; a tone written
to the speaker sink is heard on ``vsink.monitor``. Both are checked by the peak of their spectrum.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest
from conf_capture.microphone import FRAME_SAMPLES, MicrophoneSourceFactory
from conf_capture.speaker import SpeakerSinkFactory
from conf_capture.tone import ToneSource

from conf_cli.errors import ConfError
from conf_cli.testing.devices import VirtualSound, recording

RATE = 48_000


def tone_pcm(frequency: float, seconds: float, amplitude: int = 10_000) -> bytes:
    t = np.arange(int(RATE * seconds)) / RATE
    return (np.sin(2 * np.pi * frequency * t) * amplitude).astype("<i2").tobytes()


def peak_frequency(samples: npt.NDArray[np.float64]) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * RATE / len(samples))


def play_into(sound: VirtualSound, sink: str, pcm: bytes) -> subprocess.Popen[bytes]:
    player = subprocess.Popen(
        ["pacat", "--playback", f"--device={sink}", "--rate=48000", "--channels=1", "--format=s16le"],
        stdin=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=sound.client_env(),
    )
    assert player.stdin is not None
    player.stdin.write(pcm)
    player.stdin.close()
    return player


def test_microphone_records_a_tone_played_into_the_virtual_microphone(
    sound: VirtualSound, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PULSE_SOURCE", "vmic")
    with MicrophoneSourceFactory().open({"device": "pulse"}) as source:
        player = play_into(sound, "micfeed", tone_pcm(440, 2.5))
        try:
            blocks: list[npt.NDArray[np.int16]] = []
            deadline = time.monotonic() + 10
            while len(blocks) < 100 and time.monotonic() < deadline:
                captured = source.read()
                assert captured is not None
                frame = captured.frame
                assert isinstance(frame, av.AudioFrame)
                assert (frame.format.name, frame.sample_rate, frame.samples) == ("s16", RATE, FRAME_SAMPLES)
                assert abs(captured.capture_time - time.time()) < 2.0
                blocks.append(frame.to_ndarray()[0])
        finally:
            player.wait(10)
    recorded = np.concatenate(blocks).astype(np.float64)[-RATE:]
    assert recorded.std() > 1000, "the virtual microphone heard nothing"
    assert abs(peak_frequency(recorded) - 440) <= 2


def test_speaker_plays_into_the_virtual_speaker(sound: VirtualSound, tmp_path: Path) -> None:
    with (
        recording(sound, "vsink.monitor", tmp_path / "speaker.raw") as heard_file,
        SpeakerSinkFactory().open({}) as speaker,
    ):
        tone = ToneSource(660)  # paced in real time, 20 ms a frame, as received audio arrives
        for _ in range(75):
            captured = tone.read()
            assert captured is not None
            speaker.write(captured.frame)
        time.sleep(0.2)
        assert speaker.played_samples > 0
    data = heard_file.read_bytes()
    heard = np.frombuffer(data, "<i2").astype(np.float64)
    loud = heard[np.abs(heard) > 0]
    assert len(loud) > RATE // 2, "the virtual speaker heard nothing"
    assert abs(peak_frequency(heard[-RATE:]) - 660) <= 2


def test_speaker_resamples_and_drops_the_oldest_audio_when_too_much_arrives(sound: VirtualSound) -> None:
    with SpeakerSinkFactory().open({"buffer": 0.1}) as speaker:
        stereo = np.zeros((1, 2 * 4410), dtype=np.int16)  # 100 ms of 44.1 kHz interleaved stereo
        for _ in range(10):
            frame = av.AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
            frame.sample_rate = 44_100
            speaker.write(frame)
        assert speaker.buffered <= 0.1 + 1e-9
        assert speaker.dropped_samples > 0


def test_devices_are_listed(sound: VirtualSound) -> None:
    inputs = MicrophoneSourceFactory().list_devices()
    outputs = SpeakerSinkFactory().list_devices()
    assert any("pulse" in d.description for d in inputs) and all(d.available for d in inputs)
    assert any("pulse" in d.description for d in outputs)


def test_unknown_devices_fail_in_one_line(sound: VirtualSound) -> None:
    with pytest.raises(ConfError, match=r"no microphone named like 'nosuch' \(there are: .*pulse") as caught:
        MicrophoneSourceFactory().open({"device": "nosuch"})
    assert "\n" not in str(caught.value) and "conf devices" in str(caught.value)
    with pytest.raises(ConfError, match="no speaker with index 99"):
        SpeakerSinkFactory().open({"device": "99"})
