"""Capture sources and sinks for conf: the worked example of a capture plugin.

A capture plugin is an ordinary package registered in the ``conf`` entry-point group (this one is
``capture = "conf_capture"`` in conf's pyproject.toml; a third party declares its own the same way). Its
module implements two hooks from :mod:`conf_cli.plugin.hookspecs`, each handed a ``register`` callable:

* ``conf_register_sources(register)``: register one :class:`~conf_cli.media.source.SourceFactory` per
  word the user can type after ``conf share`` (or ``/share`` in a meeting). A factory lists its devices
  and opens a blocking :class:`~conf_cli.media.source.Source` that yields timestamped frames in real time;
  conf runs it in a thread, encodes and publishes what it yields.
* ``conf_register_sinks(register)``: register :class:`~conf_cli.media.source.SinkFactory` objects that
  consume decoded frames (``preview``, ``speaker``, ``window``) or encoded units as received (``recorder``).
* ``conf_register_injectors(register)``: register input injectors, which replay a remote controller's
  pointer and keys on this desktop (:mod:`conf_cli.client.desktop_control` says what one implements).

What this package provides:

=========== ====== ==============================================================================
name        kind   module
=========== ====== ==============================================================================
pattern     video  :mod:`.pattern` synthetic picture stamped with a frame counter and capture time
tone        audio  :mod:`.tone` sine wave, 48 kHz mono
file        video  :mod:`.file` a media file's video and audio (PyAV), looped
camera      video  :mod:`.camera` a webcam through PyAV (v4l2, avfoundation, dshow)
screen      screen :mod:`.screen` the desktop (mss)
audio       audio  :mod:`.microphone` a microphone (sounddevice)
recorder    sink   :mod:`.recorder` received H.264/Opus to Matroska, not re-encoded
preview     sink   :mod:`.preview` received video as half-block characters in the terminal
speaker     sink   :mod:`.speaker` received audio played out (sounddevice)
window      sink   :mod:`.window` received video in a desktop window (pygame; :mod:`.video_window`)
control     sink   :mod:`.control_viewer` remote-control viewer: a controlled desktop, taking input
pynput      input  :mod:`.injector` replays a controller's pointer and keys here (pynput)
=========== ====== ==============================================================================

Rules worth copying: importing the plugin must stay cheap and must work on a machine without the
devices, so heavy or device-bound libraries (mss, sounddevice, pynput, pygame) are imported inside the methods
that need them, never at module level; a device that cannot be opened raises one
:class:`~conf_cli.errors.ConfError` line that says what to try; and a part whose module cannot be imported
at all is left out (with a warning in the log) rather than taking the whole plugin down.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from conf_cli import LazyFactory, hookimpl

if TYPE_CHECKING:  # not at run time: conf_cli.media.source imports PyAV
    from conf_cli import InjectorFactory, SinkFactory, SourceFactory

log = logging.getLogger("conf.capture")

# Every part is a LazyFactory: its module (PyAV, numpy, device libraries) is imported when the part is
# first used, not when the plugin loads, so that `conf server` never imports them.
SOURCES = (
    LazyFactory(
        f"{__name__}.pattern",
        "PatternSourceFactory",
        name="pattern",
        kind="video",
        description="moving test picture stamped with frame counter and capture time (size, fps)",
    ),
    LazyFactory(
        f"{__name__}.tone",
        "ToneSourceFactory",
        name="tone",
        kind="audio",
        description=(
            "sine wave, 48 kHz mono (frequency, default 440 Hz; volume 0-1; tremolo Hz; "
            "on/off/offset s; sync)"
        ),
    ),
    LazyFactory(
        f"{__name__}.file",
        "FileSourceFactory",
        name="file",
        kind="video",
        description="a media file's video and audio, at their own pace, looped (path; video, audio, loop)",
    ),
    LazyFactory(
        f"{__name__}.camera",
        "CameraSourceFactory",
        name="camera",
        kind="video",
        description="a webcam through FFmpeg (device, width, height, fps; format/input: any FFmpeg input)",
    ),
)
SINKS = (
    LazyFactory(
        f"{__name__}.recorder",
        "RecorderSinkFactory",
        name="recorder",
        kind="any",
        description="records a received track to a .mkv file as it arrived, without re-encoding (path)",
    ),
    LazyFactory(
        f"{__name__}.preview",
        "PreviewSinkFactory",
        name="preview",
        kind="video",
        description="received video drawn in the terminal with half blocks (width, height in pixels)",
    ),
    LazyFactory(
        f"{__name__}.window",
        "WindowSinkFactory",
        name="window",
        kind="video",
        description="received video in a desktop window (pygame; needs DISPLAY or WAYLAND_DISPLAY)",
    ),
    LazyFactory(
        f"{__name__}.control_viewer",
        "ControlViewerFactory",
        name="control",
        kind="video",
        description="a controlled desktop in a window that takes your pointer and keys (remote control)",
    ),
)
# Parts backed by device libraries; their modules import those libraries lazily, when a device is opened.
DEVICE_SOURCES = (
    LazyFactory(
        f"{__name__}.screen",
        "ScreenSourceFactory",
        name="screen",
        kind="screen",
        description="the desktop: a monitor (monitor=N) or a region (region=x,y,w,h), fps (default 15)",
    ),
    LazyFactory(
        f"{__name__}.microphone",
        "MicrophoneSourceFactory",
        name="audio",
        kind="audio",
        description="a microphone, 48 kHz mono (device=index or part of its name; see `conf devices`)",
    ),
)
DEVICE_SINKS = (
    LazyFactory(
        f"{__name__}.speaker",
        "SpeakerSinkFactory",
        name="speaker",
        kind="audio",
        description="plays received audio (device=index or part of its name; see `conf devices`)",
    ),
)

INJECTORS = (
    LazyFactory(
        f"{__name__}.injector",
        "PynputInjectorFactory",
        name="pynput",
        kind="input",
        description="replays a remote controller's pointer and keys on this desktop (pynput)",
    ),
)


def _optional(parts: tuple[LazyFactory, ...]) -> list[LazyFactory]:
    """The parts whose modules are present (found, not imported); a missing one is skipped with a warning."""
    factories = []
    for factory in parts:
        if importlib.util.find_spec(factory.module) is None:
            log.warning("capture: %s is not available; skipping it", factory.module.rpartition(".")[2])
        else:
            factories.append(factory)
    return factories


@hookimpl
def conf_register_sources(register: Callable[[SourceFactory | LazyFactory], None]) -> None:
    """Register pattern, tone, file, camera, screen and audio (microphone)."""
    for factory in (*SOURCES, *_optional(DEVICE_SOURCES)):
        register(factory)


@hookimpl
def conf_register_sinks(register: Callable[[SinkFactory | LazyFactory], None]) -> None:
    """Register recorder, preview, window and speaker."""
    for factory in (*SINKS, *_optional(DEVICE_SINKS)):
        register(factory)


@hookimpl
def conf_register_injectors(register: Callable[[InjectorFactory | LazyFactory], None]) -> None:
    """Register the pynput input injector (for remote control of this desktop)."""
    for factory in _optional(INJECTORS):
        register(factory)
