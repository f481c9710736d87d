"""Real devices end to end: `conf share screen` from an Xvfb screen and `conf share audio` from a PulseAudio
microphone, received by `conf join` in other processes, read back from what the receiver decoded.

Skipped (with the reason) where Xvfb or PulseAudio is not installed.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from conf_cli.testing.devices import (
    VirtualScreen,
    VirtualSound,
    missing_screen_tools,
    missing_sound_tools,
    paint_screen,
    recording,
    start_screen,
    start_sound,
)
from conf_cli.testing.processes import ClientPool, run_conf

RATE = 48_000
RED, GREEN = (255, 0, 0), (0, 255, 0)
COLOUR_TOLERANCE = 40  # H.264 and the BGRA -> YUV 4:2:0 -> RGB round trip shift colours a little


@pytest.fixture
def screen(monkeypatch: pytest.MonkeyPatch) -> Iterator[VirtualScreen]:
    reason = missing_screen_tools()
    if reason is not None:
        pytest.skip(f"no virtual screen: {reason}")
    virtual = start_screen(640, 480)
    try:
        monkeypatch.setenv("DISPLAY", virtual.display)  # every conf process started in the test sees it
        yield virtual
    finally:
        virtual.stop()


@pytest.fixture
def sound(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[VirtualSound]:
    reason = missing_sound_tools()
    if reason is not None:
        pytest.skip(f"no virtual sound server: {reason}")
    virtual = start_sound(tmp_path)
    try:
        monkeypatch.setenv("PULSE_SERVER", virtual.server)
        monkeypatch.setenv("PULSE_SOURCE", "vmic")  # microphones record what is played into micfeed
        monkeypatch.setenv("PULSE_SINK", "vsink")  # speakers play into vsink (heard on vsink.monitor)
        yield virtual
    finally:
        virtual.stop()


def has_frames(event: dict[str, object]) -> bool:
    return int(event["frames"]) > 0  # type: ignore[call-overload]


def recorded_video(directory: Path) -> Path:
    found = sorted(directory.glob("*-screen-*.mkv")) + sorted(directory.glob("*-screen-*.h264"))
    assert found, f"no screen recording in {sorted(p.name for p in directory.iterdir())}"
    return found[0]


def centre_colours(path: Path) -> list[tuple[int, int, int]]:
    import av

    colours = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            rgb = frame.to_ndarray(format="rgb24")
            height, width = rgb.shape[:2]
            r, g, b = rgb[height // 2, width // 2]
            colours.append((int(r), int(g), int(b)))
    return colours


def near(colour: tuple[int, int, int], expected: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= COLOUR_TOLERANCE for a, b in zip(colour, expected, strict=True))


def test_screen_share_reaches_a_receiver_and_follows_colour_changes(
    screen: VirtualScreen, clients: ClientPool, tmp_path: Path
) -> None:
    paint_screen(screen, "#ff0000")
    _, meeting = clients.create("host")
    record = tmp_path / "rec"
    viewer = clients.joined(meeting, "viewer", "--record", str(record))
    sharer = clients.share(meeting, "s", "screen", "--fps", "15")
    published = sharer.expect("publish_started")
    assert (published["kind"], published["codec"]) == ("screen", "H264")
    assert viewer.expect("track_started")["kind"] == "screen"
    viewer.expect("track_stats", has_frames, timeout=10)
    time.sleep(0.5)
    paint_screen(screen, "#00ff00")
    time.sleep(1.5)
    viewer.send("/leave")
    ended = viewer.expect("track_ended")
    assert ended["frames"] >= 15 and ended["packets_lost"] == 0
    assert viewer.wait() == 0

    colours = centre_colours(recorded_video(record))
    assert len(colours) >= 15
    first_green = next(i for i, c in enumerate(colours) if near(c, GREEN))
    assert first_green > 0 and all(near(c, RED) for c in colours[:first_green]), colours
    assert all(near(c, GREEN) for c in colours[first_green:]), colours


def spectrum_peak(samples: npt.NDArray[np.float64]) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * RATE / len(samples))


def tone_into_microphone(sound: VirtualSound, frequency: float, seconds: float) -> subprocess.Popen[bytes]:
    t = np.arange(int(RATE * seconds)) / RATE
    pcm = (np.sin(2 * np.pi * frequency * t) * 12_000).astype("<i2").tobytes()
    player = subprocess.Popen(
        ["pacat", "--playback", "--device=micfeed", "--rate=48000", "--channels=1", "--format=s16le"],
        stdin=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=sound.client_env(),
    )
    assert player.stdin is not None
    player.stdin.write(pcm)
    player.stdin.close()
    return player


def test_microphone_share_is_played_by_the_receiver(
    sound: VirtualSound, clients: ClientPool, tmp_path: Path
) -> None:
    _, meeting = clients.create("host")
    listener = clients.joined(meeting, "listener", "--play")
    sharer = clients.share(meeting, "s", "audio", "--device", "pulse")
    assert sharer.expect("publish_started")["codec"] == "opus"
    listener.expect("track_stats", lambda e: e["kind"] == "audio" and has_frames(e), timeout=10)
    with recording(sound, "vsink.monitor", tmp_path / "speaker.raw") as heard_file:
        # A fresh sound chain can start late on a busy machine: play long enough that a whole second
        # of tone is heard even so.
        player = tone_into_microphone(sound, 440, 6.0)
        player.wait(15)
        time.sleep(0.3)
    heard = np.frombuffer(heard_file.read_bytes(), "<i2").astype(np.float64)
    loud = np.flatnonzero(np.abs(heard) > 2000)
    assert len(loud) > RATE, "the receiver played less than a second of the tone"
    middle = heard[loud[0] : loud[-1]]
    assert abs(spectrum_peak(middle[len(middle) // 4 : len(middle) // 4 + RATE]) - 440) <= 3
    stats = listener.expect("track_stats", lambda e: e["kind"] == "audio")
    assert stats["packets_lost"] == 0 and stats["decode_errors"] == 0
    assert not [e for e in listener.seen if e.get("type") == "error"]


def test_sharing_the_screen_without_a_display_fails_in_one_line(
    clients: ClientPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, meeting = clients.create("host")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    result = run_conf("share", "screen", "--meeting", meeting, "--server", clients.url, "--json")
    assert result.returncode == 1
    assert result.stderr == (
        "conf: no display: DISPLAY is not set; run under a desktop session or share 'pattern' instead\n"
    )


def test_unknown_sound_devices_fail_in_one_line(sound: VirtualSound, clients: ClientPool) -> None:
    _, meeting = clients.create("host")
    no_microphone = run_conf(
        "share", "audio", "--device", "nosuch", "--meeting", meeting, "--server", clients.url
    )
    assert no_microphone.returncode == 1
    assert no_microphone.stderr.startswith("conf: no microphone named like 'nosuch' (there are: ")
    assert no_microphone.stderr.count("\n") == 1
    no_speaker = run_conf("join", meeting, "--server", clients.url, "--json", "--play", "--speaker", "nosuch")
    assert no_speaker.returncode == 1
    assert no_speaker.stderr.startswith("conf: no speaker named like 'nosuch' (there are: ")
    assert no_speaker.stderr.count("\n") == 1
