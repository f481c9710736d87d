"""The camera source, through FFmpeg's lavfi test input on the same code path as v4l2/avfoundation/dshow."""

from __future__ import annotations

import sys
import time

import av
import pytest
from conf_capture.camera import CameraSourceFactory, platform_input

from conf_cli.errors import ConfError

TESTSRC = {"format": "lavfi", "input": "testsrc=size=320x240:rate=15"}


def test_lavfi_frames_come_at_the_input_rate() -> None:
    with CameraSourceFactory().open(TESTSRC) as camera:
        assert (camera.width, camera.height) == (320, 240)
        start = time.monotonic()
        frames = [camera.read() for _ in range(16)]
        elapsed = time.monotonic() - start
    assert all(f is not None and not f.is_audio for f in frames)
    pictures = [f.frame for f in frames if f is not None and isinstance(f.frame, av.VideoFrame)]
    assert {(p.width, p.height) for p in pictures} == {(320, 240)}
    assert 0.85 <= elapsed <= 1.5  # 15 intervals at 15 fps
    assert camera.read() is None  # closed


def test_close_from_another_thread_ends_reading() -> None:
    import threading

    camera = CameraSourceFactory().open({"format": "lavfi", "input": "testsrc=size=160x120:rate=5"})
    assert camera.read() is not None
    threading.Timer(0.05, camera.close).start()
    start = time.monotonic()
    while camera.read() is not None:
        assert time.monotonic() - start < 2
    assert time.monotonic() - start < 1


def test_missing_device_is_one_clear_line() -> None:
    if platform_input()[0] != "v4l2":
        pytest.skip("device paths are a Linux matter")
    with pytest.raises(ConfError) as caught:
        CameraSourceFactory().open({"device": "/dev/video99"})
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("no camera at /dev/video99: ")
    assert "conf devices" in message and "pattern" in message


def test_unopenable_input_names_it() -> None:
    with pytest.raises(ConfError, match=r"^no camera at nosuchfilter=1: .*conf devices"):
        CameraSourceFactory().open({"format": "lavfi", "input": "nosuchfilter=1"})


def test_list_devices_reports_what_dev_has(tmp_path: object) -> None:
    devices = CameraSourceFactory().list_devices()
    if sys.platform.startswith("linux"):
        import glob

        assert [d.id for d in devices] == sorted(glob.glob("/dev/video*"), key=lambda p: (len(p), p))
