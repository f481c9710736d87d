"""Virtual devices for tests: a screen (Xvfb) and a sound server (PulseAudio with clocked null sinks).

Tests of conf and of capture plugins use these on machines with no screen and no sound card::

    with virtual_screen(1280, 720) as screen, virtual_sound(tmp_path) as sound:
        env = {**screen.env, **sound.env}                # DISPLAY and PULSE_SERVER for child processes
        paint_screen(screen, "#ff0000")

The sound server loads the recipe of ``null.pa`` below: ``vsink`` is a speaker (``vsink.monitor`` hears what
is played into it), ``micfeed`` is where a test plays sound, and ``vmic`` records ``micfeed`` as a
microphone (``PULSE_SOURCE=vmic``). Both sinks are kept busy by a silent low-latency stream, without which a
new capture stream's first callback arrives seconds late.

Every process started here is stopped by its PID (SIGTERM, then SIGKILL), and every wait has a timeout.
:func:`missing_screen_tools` and :func:`missing_sound_tools` say what is absent, for ``pytest.skip``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Rect = tuple[int, int, int, int]

START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0

NULL_PA = """\
load-module module-native-protocol-unix auth-anonymous=1 socket={socket}
load-module module-null-sink sink_name=vsink rate=48000 channels=1
load-module module-null-sink sink_name=micfeed rate=48000 channels=1
load-module module-remap-source source_name=vmic master=micfeed.monitor
set-default-sink vsink
set-default-source vsink.monitor
"""


class DeviceSetupError(RuntimeError):
    """A virtual device did not start (the message says which and why)."""


def stop_process(process: subprocess.Popen[bytes] | subprocess.Popen[str] | None) -> None:
    """Stop one process by its PID: SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT` seconds."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait(STOP_TIMEOUT)


def _missing(tools: Sequence[str]) -> str | None:
    absent = [tool for tool in tools if shutil.which(tool) is None]
    if not absent:
        return None
    return f"{', '.join(absent)} not installed (scripts/setup-system.sh installs them)"


def missing_screen_tools() -> str | None:
    """Why a virtual screen cannot be started here, or ``None`` if it can."""
    return _missing(["Xvfb", "xsetroot"])


def missing_window_tools() -> str | None:
    """Why windows on a virtual screen cannot be inspected here (``xwininfo``, ``xdotool``), or ``None``."""
    return _missing(["Xvfb", "xwininfo", "xdotool"])


def missing_sound_tools() -> str | None:
    """Why a virtual sound server cannot be started here, or ``None`` if it can."""
    return _missing(["pulseaudio", "pacat", "parec"])


# --------------------------------------------------------------------------------------------------
# A screen
# --------------------------------------------------------------------------------------------------


@dataclass
class VirtualScreen:
    """A running Xvfb: its display name (``:N``), size and process."""

    display: str
    width: int
    height: int
    process: subprocess.Popen[bytes]

    @property
    def env(self) -> dict[str, str]:
        """The environment a client needs to see this screen."""
        return {"DISPLAY": self.display}

    def stop(self) -> None:
        stop_process(self.process)


def _free_display(first: int = 90) -> int:
    for number in range(first, first + 400):
        if not Path(f"/tmp/.X11-unix/X{number}").exists() and not Path(f"/tmp/.X{number}-lock").exists():
            return number
    raise DeviceSetupError("no free X display number between :90 and :489")


def start_screen(width: int = 1280, height: int = 720, depth: int = 24) -> VirtualScreen:
    """Start Xvfb on a free display and wait (up to :data:`START_TIMEOUT` s) until it accepts clients.

    ``-noreset`` keeps what a client drew (``xsetroot``) after it disconnects.
    """
    reason = missing_screen_tools()
    if reason is not None:
        raise DeviceSetupError(reason)
    for _attempt in range(3):
        number = _free_display()
        process = subprocess.Popen(
            [
                "Xvfb",
                f":{number}",
                "-screen",
                "0",
                f"{width}x{height}x{depth}",
                "-nolisten",
                "tcp",
                "-noreset",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        socket = Path(f"/tmp/.X11-unix/X{number}")
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None and not socket.exists():
            time.sleep(0.02)
        if socket.exists() and process.poll() is None:
            return VirtualScreen(f":{number}", width, height, process)
        stop_process(process)  # lost a race for the display number, or Xvfb failed: try another
    raise DeviceSetupError(f"Xvfb did not start within {START_TIMEOUT:g} s")


@contextlib.contextmanager
def virtual_screen(width: int = 1280, height: int = 720) -> Iterator[VirtualScreen]:
    """A virtual screen for the duration of a ``with`` block, stopped by PID at the end."""
    screen = start_screen(width, height)
    try:
        yield screen
    finally:
        screen.stop()


def paint_screen(screen: VirtualScreen, colour: str, timeout: float = START_TIMEOUT) -> None:
    """Fill the root window of ``screen`` with ``colour`` (``#rrggbb`` or an X colour name)."""
    subprocess.run(
        ["xsetroot", "-solid", colour],
        env={**os.environ, **screen.env},
        check=True,
        timeout=timeout,
        capture_output=True,
    )


def grab_screen(screen: VirtualScreen) -> Any:
    """A screenshot of ``screen`` as a numpy array, ``height x width x 4`` (BGRA), taken with mss."""
    import mss
    import numpy as np

    with mss.MSS(display=screen.display) as grabber:
        return np.array(grabber.grab(grabber.monitors[1]))


def window_geometry(screen: VirtualScreen, title: str, timeout: float = START_TIMEOUT) -> Rect | None:
    """Where the window called ``title`` is on ``screen`` (x, y, width, height), from ``xwininfo``;
    ``None`` if no such window shows up within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = subprocess.run(
            ["xwininfo", "-name", title],
            env={**os.environ, **screen.env},
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
            check=False,
        )
        fields = dict(
            (key.strip(), value.strip())
            for key, _, value in (line.partition(":") for line in result.stdout.splitlines())
        )
        keys = ("Absolute upper-left X", "Absolute upper-left Y", "Width", "Height")
        if result.returncode == 0 and all(key in fields for key in keys):
            x, y, width, height = (int(fields[key]) for key in keys)
            if fields.get("Map State") == "IsViewable":
                return x, y, width, height
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)


# --------------------------------------------------------------------------------------------------
# Sound
# --------------------------------------------------------------------------------------------------


@dataclass
class VirtualSound:
    """A running PulseAudio server with ``vsink``, ``micfeed`` and ``vmic``, and its keep-alive streams."""

    directory: Path
    process: subprocess.Popen[bytes]
    keepalive: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def server(self) -> str:
        """The ``PULSE_SERVER`` value of this server."""
        return f"unix:{self.directory / 'native'}"

    @property
    def env(self) -> dict[str, str]:
        """The environment a client needs to use this server (add ``PULSE_SOURCE``/``PULSE_SINK``)."""
        return {"PULSE_SERVER": self.server}

    def client_env(self, **extra: str) -> dict[str, str]:
        """``os.environ`` plus :attr:`env` plus ``extra`` (``PULSE_SOURCE="vmic"``, say)."""
        return {**os.environ, **self.env, **extra}

    def stop(self) -> None:
        for process in self.keepalive:
            stop_process(process)
        stop_process(self.process)


def _pactl_ready(server: str) -> bool:
    try:
        result = subprocess.run(
            ["pactl", "list", "short", "sinks"],
            env={**os.environ, "PULSE_SERVER": server},
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and "micfeed" in result.stdout


def start_sound(directory: Path | None = None) -> VirtualSound:
    """Start PulseAudio with the null-sink recipe in ``directory`` (a new temporary one if omitted)."""
    reason = missing_sound_tools()
    if reason is not None:
        raise DeviceSetupError(reason)
    base = Path(tempfile.mkdtemp(prefix="conf-pulse-", dir=directory))
    (base / "xdg").mkdir(mode=0o700)
    socket = base / "native"
    config = base / "null.pa"
    config.write_text(NULL_PA.format(socket=socket))
    env = {**os.environ, "XDG_RUNTIME_DIR": str(base / "xdg"), "HOME": str(base)}
    env.pop("PULSE_SERVER", None)
    process = subprocess.Popen(
        ["pulseaudio", "-n", "-F", str(config), "--exit-idle-time=-1", "--daemonize=no", "--use-pid-file=no"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sound = VirtualSound(base, process)
    deadline = time.monotonic() + START_TIMEOUT
    ready = False
    while time.monotonic() < deadline and process.poll() is None:
        if socket.exists() and (shutil.which("pactl") is None or _pactl_ready(sound.server)):
            ready = True
            break
        time.sleep(0.05)
    if not ready:
        sound.stop()
        raise DeviceSetupError(f"pulseaudio did not start within {START_TIMEOUT:g} s")
    for sink in ("vsink", "micfeed"):
        sound.keepalive.append(
            subprocess.Popen(
                [
                    "pacat",
                    "--playback",
                    f"--device={sink}",
                    "--latency-msec=10",
                    "--rate=48000",
                    "--channels=1",
                    "--format=s16le",
                    "/dev/zero",
                ],
                env=sound.client_env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    try:
        _wait_until_flowing(sound)
    except DeviceSetupError:
        sound.stop()
        raise
    return sound


def _wait_until_flowing(sound: VirtualSound) -> None:
    """Wait until sound flows: a new server delivers nothing for about two seconds after it starts."""
    recorder = subprocess.Popen(
        ["parec", "--device=vmic", "--rate=48000", "--channels=1", "--format=s16le", "--latency-msec=10"],
        env=sound.client_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert recorder.stdout is not None
    os.set_blocking(recorder.stdout.fileno(), False)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        received = 0
        while received < 960 and time.monotonic() < deadline and recorder.poll() is None:
            chunk = recorder.stdout.read(4096)
            received += len(chunk or b"")
            time.sleep(0.01)
        if received < 960:
            raise DeviceSetupError(f"pulseaudio delivered no sound within {START_TIMEOUT:g} s")
    finally:
        stop_process(recorder)
        recorder.stdout.close()


@contextlib.contextmanager
def recording(sound: VirtualSound, device: str, path: Path) -> Iterator[Path]:
    """Record ``device`` (``vsink.monitor`` hears the speaker) as 48 kHz mono s16 into ``path`` meanwhile.

    Into a file, not a pipe: a pipe nobody reads fills after 64 KiB (0.7 s) and parec stalls.
    """
    with path.open("wb") as sink:
        recorder = subprocess.Popen(
            [
                "parec",
                f"--device={device}",
                "--rate=48000",
                "--channels=1",
                "--format=s16le",
                "--latency-msec=20",
            ],
            stdout=sink,
            stderr=subprocess.DEVNULL,
            env=sound.client_env(),
        )
    try:
        yield path
    finally:
        stop_process(recorder)


@contextlib.contextmanager
def virtual_sound(directory: Path | None = None) -> Iterator[VirtualSound]:
    """A virtual sound server for the duration of a ``with`` block, stopped by PID at the end."""
    sound = start_sound(directory)
    try:
        yield sound
    finally:
        sound.stop()
