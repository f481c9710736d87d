"""Capture sources and sinks for conf: the worked example of a capture plugin.

A capture plugin is an ordinary package registered in the ``conf`` entry-point group (this one is
``capture = "conf_capture"`` in conf's pyproject.toml; a third party declares its own the same way). Its
module implements two hooks from :mod:`conf_cli.hookspecs`, each handed a ``register`` callable:

* ``conf_register_sources(register)``: register one :class:`~conf_cli.media.source.SourceFactory` per
  word the user can type after ``conf share`` (or ``/share`` in a meeting). A factory lists its devices
  and opens a blocking :class:`~conf_cli.media.source.Source` that yields timestamped frames in real time;
  conf runs it in a thread, encodes and publishes what it yields.
* ``conf_register_sinks(register)``: register :class:`~conf_cli.media.source.SinkFactory` objects that
  consume decoded frames (``preview``, ``speaker``) or encoded units as received (``recorder``).

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
=========== ====== ==============================================================================

Rules worth copying: importing the plugin must stay cheap and must work on a machine without the
devices, so heavy or device-bound libraries (mss, sounddevice, pynput) are imported inside the methods
that need them, never at module level; a device that cannot be opened raises one
:class:`~conf_cli.errors.ConfError` line that says what to try; and a part whose module cannot be imported
at all is left out (with a warning in the log) rather than taking the whole plugin down.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any

from conf_cli.hookspecs import hookimpl

from .camera import CameraSourceFactory
from .file import FileSourceFactory
from .pattern import PatternSourceFactory
from .preview import PreviewSinkFactory
from .recorder import RecorderSinkFactory
from .tone import ToneSourceFactory

log = logging.getLogger("conf.capture")

# Parts backed by device libraries: (module, factory class). Their modules import those libraries lazily.
DEVICE_SOURCES = (("screen", "ScreenSourceFactory"), ("microphone", "MicrophoneSourceFactory"))
DEVICE_SINKS = (("speaker", "SpeakerSinkFactory"),)


def _optional(parts: tuple[tuple[str, str], ...]) -> list[Any]:
    """Instances of the factories whose modules import; a missing one is skipped with a warning."""
    factories = []
    for module_name, class_name in parts:
        try:
            module = importlib.import_module(f"{__name__}.{module_name}")
            factories.append(getattr(module, class_name)())
        except (ImportError, AttributeError) as exc:
            log.warning("capture: %s is not available (%s); skipping it", module_name, exc)
    return factories


@hookimpl
def conf_register_sources(register: Callable[[Any], None]) -> None:
    """Register pattern, tone, file, camera, screen and audio (microphone)."""
    for factory in (PatternSourceFactory(), ToneSourceFactory(), FileSourceFactory(), CameraSourceFactory()):
        register(factory)
    for factory in _optional(DEVICE_SOURCES):
        register(factory)


@hookimpl
def conf_register_sinks(register: Callable[[Any], None]) -> None:
    """Register recorder, preview and speaker."""
    register(RecorderSinkFactory())
    register(PreviewSinkFactory())
    for factory in _optional(DEVICE_SINKS):
        register(factory)
