"""``conf record``: the composite of a meeting encoded at a steady frame rate into a file, HLS or RTMP.

Each :class:`Output` is one PyAV container with one H.264 video stream (x264, ``ultrafast``,
``zerolatency``, a keyframe every :data:`KEYFRAME_SECONDS`) and one AAC audio stream (48 kHz mono):

* ``file``: an MP4 (or whatever container the file's suffix names: ``.mkv``, ``.mov``);
* ``hls``: ``DIR/index.m3u8`` and ``DIR/segment00000.ts`` ... of about :data:`KEYFRAME_SECONDS` each; the
  playlist grows with every segment (every segment stays listed) and ends with ``#EXT-X-ENDLIST`` when
  the recording stops;
* ``rtmp``: FLV pushed to an RTMP server (``rtmp://HOST[:PORT]/APP/STREAM``).

:class:`CompositeRecorder` runs in its own thread: at each tick (``1/fps`` apart on the monotonic clock) it
takes the composite's canvas and the mix of the same span and encodes them into every output. When the
thread falls behind it still writes every frame it owes (a late tick is caught up at once), so the number
of frames always matches the time recorded: ``frames == round(seconds * fps)``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from conf_cli.client.media.composite import SAMPLE_RATE, Composite
from conf_cli.errors import ConfError

log = logging.getLogger(__name__)

KEYFRAME_SECONDS = 2
AUDIO_BITRATE = 96_000
VIDEO_BITRATE = 2_500_000
HLS_PLAYLIST = "index.m3u8"
MAX_CATCH_UP = 90  # frames written at once at most after a stall; beyond, the timeline restarts later


@dataclass(frozen=True)
class Target:
    """Where a composite goes: ``kind`` is file, hls or rtmp; ``where`` a path, a folder or a URL."""

    kind: str
    where: str

    def describe(self) -> str:
        return f"{self.kind} {self.where}"


class Output:
    """One container with one H.264 and one AAC stream."""

    def __init__(self, target: Target, width: int, height: int, fps: int) -> None:
        self.target = target
        options: dict[str, str] = {}
        container_format: str | None = None
        where = target.where
        if target.kind == "hls":
            folder = Path(where)
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfError(f"cannot write HLS into {folder}: {exc.strerror or exc}") from None
            where = str(folder / HLS_PLAYLIST)
            container_format = "hls"
            options = {
                "hls_time": str(KEYFRAME_SECONDS),
                "hls_list_size": "0",
                "hls_segment_filename": str(folder / "segment%05d.ts"),
                "hls_flags": "independent_segments",
            }
        elif target.kind == "rtmp":
            container_format = "flv"
        elif target.kind == "file":
            if not Path(where).parent.is_dir():
                raise ConfError(f"cannot record to {where}: no such directory {Path(where).parent}")
        else:
            raise ConfError(f"unknown recording target {target.kind}")
        try:
            self.container: Any = av.open(where, "w", format=container_format, options=options)
        except (av.FFmpegError, OSError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise ConfError(f"cannot open {target.describe()}: {reason}") from None
        try:
            video: Any = self.container.add_stream("libx264", rate=fps)
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
            video.bit_rate = VIDEO_BITRATE
            video.time_base = Fraction(1, fps)
            video.codec_context.gop_size = fps * KEYFRAME_SECONDS
            video.codec_context.options = {
                "preset": "ultrafast",
                "tune": "zerolatency",
                "x264-params": f"keyint={fps * KEYFRAME_SECONDS}:min-keyint={fps * KEYFRAME_SECONDS}"
                ":scenecut=0",
            }
            audio: Any = self.container.add_stream("aac", rate=SAMPLE_RATE)
            audio.layout = "mono"
            audio.bit_rate = AUDIO_BITRATE
            audio.time_base = Fraction(1, SAMPLE_RATE)
        except (av.FFmpegError, ValueError) as exc:
            self.container.close()
            raise ConfError(f"cannot encode for {target.describe()}: {exc}") from None
        try:  # the header now: an RTMP server that does not answer fails here, not at the first picture
            self.container.start_encoding()
        except (av.FFmpegError, OSError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            with contextlib.suppress(av.FFmpegError, OSError):
                self.container.close()
            raise ConfError(f"cannot open {target.describe()}: {reason}") from None
        self.video, self.audio = video, audio
        self.failed: str | None = None

    def write(self, picture: av.VideoFrame, sound: av.AudioFrame | None) -> None:
        """Encode and mux one picture and the audio of its span; a failure ends this output only."""
        if self.failed is not None:
            return
        try:
            for packet in self.video.encode(picture):
                self.container.mux(packet)
            if sound is not None:
                for packet in self.audio.encode(sound):
                    self.container.mux(packet)
        except (av.FFmpegError, OSError, ValueError) as exc:
            self.failed = str(exc)
            log.warning("recording to %s stopped: %s", self.target.describe(), exc)

    def close(self) -> None:
        """Flush both encoders and write the trailer."""
        try:
            if self.failed is None:
                for stream in (self.video, self.audio):
                    for packet in stream.encode(None):
                        self.container.mux(packet)
        except (av.FFmpegError, OSError, ValueError) as exc:
            self.failed = self.failed or str(exc)
        finally:
            try:
                self.container.close()
            except (av.FFmpegError, OSError) as exc:
                self.failed = self.failed or str(exc)


def open_outputs(targets: list[Target], width: int, height: int, fps: int) -> list[Output]:
    """Open every target now (so that a wrong path or an unreachable server fails before joining)."""
    outputs: list[Output] = []
    try:
        for target in targets:
            outputs.append(Output(target, width, height, fps))
    except BaseException:
        for output in outputs:
            output.close()
        raise
    return outputs


class CompositeRecorder:
    """Encodes ``composite`` into ``outputs`` at ``fps`` frames a second, in a thread of its own."""

    def __init__(self, composite: Composite, outputs: list[Output], fps: int) -> None:
        self.composite = composite
        self.outputs = outputs
        self.fps = fps
        self.frames = 0
        self.samples = 0
        self.busy = 0.0
        """Seconds of thread CPU time spent composing and encoding."""
        self.started: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="composite-recorder", daemon=True)
            self._thread.start()

    def _samples_until(self, frame: int) -> int:
        return frame * SAMPLE_RATE // self.fps

    def tick(self, now: float) -> None:
        """Compose and encode the next frame and its audio (``now``: seconds, for the speaker)."""
        picture = self.composite.picture()
        picture.pts = self.frames
        picture.time_base = Fraction(1, self.fps)
        count = self._samples_until(self.frames + 1) - self.samples
        mono: npt.NDArray[np.float32] = self.composite.audio(count, now)
        sound = av.AudioFrame.from_ndarray(mono.reshape(1, -1), format="fltp", layout="mono")
        sound.sample_rate = SAMPLE_RATE
        sound.pts = self.samples
        sound.time_base = Fraction(1, SAMPLE_RATE)
        for output in self.outputs:
            output.write(picture, sound)
        self.frames += 1
        self.samples += count

    def _run(self) -> None:
        started = self.started = time.monotonic()
        cpu = time.thread_time()
        offset = 0  # frames skipped after a stall too long to catch up
        while not self._stop.is_set():
            now = time.monotonic()
            owed = int((now - started) * self.fps) + 1 - offset - self.frames
            if owed > MAX_CATCH_UP:
                offset += owed - 1
                owed = 1
            for _ in range(max(0, owed)):
                self.tick(now)
            self.busy = time.thread_time() - cpu
            next_at = started + (self.frames + offset) / self.fps
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> list[str]:
        """Stop the clock and close every output (writing its trailer); safe to call twice. What failed,
        as ``"TARGET: why"``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        outputs, self.outputs = self.outputs, []
        for output in outputs:
            output.close()
        return [f"{o.target.describe()}: {o.failed}" for o in outputs if o.failed is not None]

    @property
    def seconds(self) -> float:
        return self.frames / self.fps

    def summary(self) -> dict[str, Any]:
        """What was written: frames, seconds, and any output that failed."""
        return {
            "frames": self.frames,
            "fps": self.fps,
            "seconds": round(self.seconds, 3),
        }
