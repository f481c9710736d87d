"""The ``camera`` source: a webcam through PyAV's platform input (v4l2, avfoundation or dshow).

The device is opened as FFmpeg would open it (``ffmpeg -f v4l2 -i /dev/video0``), asking for the size
and frame rate chosen. Frames are released by their timestamps: a camera delivers them when they are due
anyway, and an input that does not pace itself (a filter graph, a file) plays in real time all the same.
The explicit ``format`` and ``input`` options open anything FFmpeg can read through the same code path,
for instance its ``lavfi`` test source (``format=lavfi input=testsrc=size=320x240:rate=15``) on a
machine with no camera.
"""

from __future__ import annotations

import errno
import glob
import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import av

from conf_cli import CapturedFrame, ConfError, DeviceInfo, Pacer, Source, SourceFactory
from conf_cli.urls import redact_url

from .options import opt_float, opt_int, opt_str

HINT = "try `conf devices`, or share 'pattern'"


def platform_input() -> tuple[str, str]:
    """The FFmpeg input format and the default device of this platform."""
    if sys.platform == "darwin":
        return "avfoundation", "0"
    if sys.platform == "win32":
        return "dshow", "video=Integrated Camera"
    return "v4l2", "/dev/video0"


def _reason(exc: BaseException) -> str:
    code = getattr(exc, "errno", None)
    if code in (errno.EBUSY, -errno.EBUSY):
        return "the device is busy (another program is using it)"
    if code in (errno.EACCES, errno.EPERM, -errno.EACCES, -errno.EPERM):
        return "permission denied (are you in the 'video' group?)"
    return str(getattr(exc, "strerror", None) or exc).strip() or type(exc).__name__


class CameraSource(Source):
    """Frames from a capture device (or any FFmpeg input), as the device delivers them."""

    kind = "video"

    def __init__(self, input_format: str, url: str, options: Mapping[str, str], label: str) -> None:
        self.label = label
        try:
            self._container = av.open(url, "r", format=input_format, options=dict(options))
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise ConfError(f"no camera at {label}: {_reason(exc)}; {HINT}") from None
        if not self._container.streams.video:
            self._container.close()
            raise ConfError(f"no camera at {label}: it gives no video; {HINT}")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        self.width = stream.codec_context.width
        self.height = stream.codec_context.height
        self.frames = 0
        self._frames: Iterator[av.VideoFrame] = self._container.decode(stream)
        self._pacer = Pacer()
        self._lock = threading.Lock()
        self._closed = False

    def read(self) -> CapturedFrame | None:
        """The next frame the device delivers; ``None`` once closed or if the input ends."""
        with self._lock:
            if self._closed:
                return None
            try:
                frame = next(self._frames, None)
            except (av.FFmpegError, OSError) as exc:
                raise ConfError(f"camera {self.label} stopped: {_reason(exc)}") from None
            if frame is None:
                return None
        pts, time_base = frame.pts, frame.time_base
        if pts is not None and time_base is not None and not self._pacer.wait_until(float(pts * time_base)):
            return None
        self.frames += 1
        return CapturedFrame(frame, time.time())

    def close(self) -> None:
        """Release the device (waits for a frame being read: at most one frame interval)."""
        self._pacer.stop()
        with self._lock:
            if not self._closed:
                self._closed = True
                self._container.close()


class CameraSourceFactory(SourceFactory):
    """``camera``: a webcam (v4l2 on Linux, avfoundation on macOS, dshow on Windows)."""

    name = "camera"
    kind = "video"
    description = "a webcam through FFmpeg (device, width, height, fps; format/input: any FFmpeg input)"

    def list_devices(self) -> list[DeviceInfo]:
        """The ``/dev/video*`` capture devices on Linux (other platforms: the default device)."""
        input_format, default = platform_input()
        if input_format != "v4l2":
            return [DeviceInfo(default, f"default {input_format} camera")]
        devices = []
        for path in sorted(glob.glob("/dev/video*"), key=lambda p: (len(p), p)):
            name_file = f"/sys/class/video4linux/{os.path.basename(path)}/name"
            try:
                with open(name_file, encoding="utf-8", errors="replace") as handle:
                    description = handle.read().strip()
            except OSError:
                description = ""
            if os.access(path, os.R_OK | os.W_OK):
                devices.append(DeviceInfo(path, description))
            else:
                devices.append(DeviceInfo(path, description, False, "permission denied"))
        return devices

    def open(self, options: Mapping[str, Any]) -> CameraSource:
        """Options: ``device``, ``width``/``height`` (or ``size``), ``fps``; ``format`` and ``input``."""
        platform_format, default_device = platform_input()
        input_format = opt_str(options, "format", platform_format) or platform_format
        url = opt_str(options, "input") or opt_str(options, "device", default_device) or default_device
        av_options: dict[str, str] = {}
        if input_format != "lavfi":
            size = opt_str(options, "size")
            if size is None and (options.get("width") or options.get("height")):
                size = f"{opt_int(options, 'width', 1280, 16)}x{opt_int(options, 'height', 720, 16)}"
            if size is not None:
                av_options["video_size"] = size
            if options.get("fps"):
                av_options["framerate"] = f"{opt_float(options, 'fps', 30.0):g}"
        if input_format == "v4l2" and not os.path.exists(url):
            raise ConfError(f"no camera at {redact_url(url)}: no such device; {HINT}")
        return CameraSource(input_format, url, av_options, redact_url(url))
