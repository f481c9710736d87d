"""Media helpers for tests: make a small clip with PyAV, and ask ffprobe what a file holds."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np


def make_clip(
    path: Path | str,
    seconds: float = 2.0,
    fps: int = 15,
    size: tuple[int, int] = (320, 240),
    *,
    video: bool = True,
    audio: bool = True,
    frequency: float = 440.0,
) -> Path:
    """Write an MP4 (H.264 video whose brightness counts frames, AAC 48 kHz mono sine) of ``seconds``."""
    path = Path(path)
    width, height = size
    with av.open(str(path), "w") as out:
        picture_stream = out.add_stream("libx264", rate=fps) if video else None
        sound_stream = out.add_stream("aac", rate=48_000) if audio else None
        if sound_stream is not None:
            sound_stream.layout = "mono"
        if picture_stream is not None:
            picture_stream.width, picture_stream.height = width, height
            picture_stream.pix_fmt = "yuv420p"
            picture_stream.options = {"preset": "ultrafast"}
            for index in range(round(seconds * fps)):
                picture = np.full((height, width, 3), (index * 8) % 256, np.uint8)
                picture[:, (index * 4) % width] = 255
                frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
                frame.pts = index
                frame.time_base = Fraction(1, fps)
                out.mux(picture_stream.encode(frame))
            out.mux(picture_stream.encode(None))
        if sound_stream is not None:
            times = np.arange(round(seconds * 48_000)) / 48_000
            wave = (np.sin(2 * np.pi * frequency * times) * 8000).astype(np.int16)
            for start in range(0, len(wave), 1024):
                chunk = av.AudioFrame.from_ndarray(
                    wave[None, start : start + 1024], format="s16", layout="mono"
                )
                chunk.sample_rate = 48_000
                chunk.pts = start
                chunk.time_base = Fraction(1, 48_000)
                out.mux(sound_stream.encode(chunk))
            out.mux(sound_stream.encode(None))
    return path


@dataclass(frozen=True)
class Probe:
    """What ffprobe says of a file's first stream (frames counted by decoding it)."""

    codec: str
    frames: int
    duration: float
    width: int | None
    height: int | None
    sample_rate: int | None


def streams(path: Path | str) -> list[dict[str, Any]]:
    """Every stream ffprobe finds in ``path`` (frames counted by decoding: ``nb_read_frames``)."""
    result = subprocess.run(
        [
            shutil.which("ffprobe") or "ffprobe",
            *("-v", "error", "-count_frames", "-of", "json", "-show_streams", str(path)),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return list(json.loads(result.stdout)["streams"])


def ffprobe(path: Path | str) -> Probe:
    """Run ``ffprobe -count_frames`` on ``path``; raise if ffprobe fails."""
    result = subprocess.run(
        [
            shutil.which("ffprobe") or "ffprobe",
            *("-v", "error", "-count_frames", "-of", "json", "-show_streams", "-show_format"),
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    info = json.loads(result.stdout)
    stream = info["streams"][0]
    return Probe(
        codec=stream["codec_name"],
        frames=int(stream.get("nb_read_frames", 0)),
        duration=float(info["format"].get("duration", 0.0)),
        width=stream.get("width"),
        height=stream.get("height"),
        sample_rate=int(stream["sample_rate"]) if "sample_rate" in stream else None,
    )
