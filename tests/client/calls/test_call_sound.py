"""A call's audio played on the callee's speaker (a PulseAudio null sink), heard back at its pitch."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from conf_cli.testing.devices import missing_sound_tools, recording, virtual_sound
from conf_cli.testing.processes import ConfProcess, spawn, start_server

RATE = 48_000


@pytest.mark.skipif(
    missing_sound_tools() is not None, reason=f"no virtual sound server: {missing_sound_tools()}"
)
def test_the_callee_hears_the_callers_tone(tmp_path: Path) -> None:
    server, url = start_server()
    started: list[ConfProcess] = [server]
    try:
        with virtual_sound(tmp_path) as sound:
            env = {**sound.env, "PULSE_SINK": "vsink"}
            bob = spawn(
                ["call", "--listen", "--accept", "--play", "--name", "bob", "--json", "--server", url], env
            )
            started.append(bob)
            bob.expect("online")
            ada = spawn(
                [
                    "call",
                    "bob",
                    "--name",
                    "ada",
                    "--json",
                    "--server",
                    url,
                    "--share",
                    "tone",
                    "--frequency",
                    "660",
                ]
            )
            started.append(ada)
            assert bob.expect("call_path", timeout=20)["path"] == "direct"
            bob.expect("track_stats", lambda e: e["kind"] == "audio" and e["frames"] > 0, timeout=20)
            with recording(sound, "vsink.monitor", tmp_path / "heard.raw") as heard_file:
                time.sleep(3.0)
            heard = np.frombuffer(heard_file.read_bytes(), "<i2").astype(np.float64)
            loud = np.flatnonzero(np.abs(heard) > 1000)
            assert len(loud) > RATE // 2, "the callee played less than half a second of the tone"
            middle = heard[loud[0] : loud[-1]]
            part = middle[len(middle) // 4 : len(middle) // 4 + RATE // 2]
            spectrum = np.abs(np.fft.rfft(part * np.hanning(len(part))))
            assert abs(np.argmax(spectrum) * RATE / len(part) - 660) <= 4
    finally:
        for process in started:
            process.stop()
