"""The file source: a clip made here with PyAV, decoded in real time, both kinds in order, looped."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import av
import pytest
from conf_capture.file import FileSource, FileSourceFactory

from conf_cli.errors import ConfError
from conf_cli.testing.media import make_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=1.0, fps=15)


def read_for(source: FileSource, seconds: float) -> tuple[list[float], list[float], list[int]]:
    """Capture times of video and audio frames, and the brightness of each picture, for ``seconds``."""
    video, audio, levels = [], [], []
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        captured = source.read()
        assert captured is not None
        if captured.is_audio:
            audio.append(captured.capture_time)
        else:
            assert isinstance(captured.frame, av.VideoFrame)
            video.append(captured.capture_time)
            levels.append(int(captured.frame.to_ndarray(format="gray")[:, :100].mean()))
    return video, audio, levels


def test_video_and_audio_at_their_own_pace_and_looped(clip: Path) -> None:
    source = FileSourceFactory().open({"path": str(clip)})
    assert source.kind == "video"
    video, audio, levels = read_for(source, 2.5)
    source.close()
    assert source.passes == 3  # a one-second clip, looped
    assert 35 <= len(video) <= 40  # 15 fps
    assert 110 <= len(audio) <= 120  # AAC: 1024 samples a frame at 48 kHz, 46.9 a second
    # Pictures follow the clip frame by frame, and start again at its first frame.
    assert levels[:15] == sorted(levels[:15]) and levels[15] < levels[14]
    assert abs(levels[15] - levels[0]) <= 2
    # Real time: no burst at the loop, and both kinds span the same time.
    steps = [b - a for a, b in itertools.pairwise(video)]
    assert max(steps) < 0.15 and min(steps) > 0.02
    assert abs((video[-1] - video[0]) - (audio[-1] - audio[0])) < 0.15


def test_audio_only_and_no_loop(tmp_path: Path) -> None:
    path = make_clip(tmp_path / "tone.m4a", seconds=0.5, video=False)
    source = FileSourceFactory().open({"path": str(path), "loop": "no"})
    assert source.kind == "audio"
    frames = []
    while (captured := source.read()) is not None:
        frames.append(captured)
    assert all(f.is_audio for f in frames) and 22 <= len(frames) <= 26
    assert source.read() is None


def test_choosing_a_kind(clip: Path) -> None:
    source = FileSourceFactory().open({"path": str(clip), "audio": "no"})
    frames = [source.read() for _ in range(5)]
    source.close()
    assert all(f is not None and not f.is_audio for f in frames)
    with pytest.raises(ConfError, match="has no video stream"):
        FileSourceFactory().open(
            {"path": str(make_clip(clip.parent / "a.m4a", 0.2, video=False)), "audio": "0"}
        )


def test_close_from_another_thread_wakes_a_paced_read(clip: Path) -> None:
    import threading

    source = FileSourceFactory().open({"path": str(clip)})
    source.read()
    threading.Timer(0.05, source.close).start()
    start = time.monotonic()
    while source.read() is not None:
        assert time.monotonic() - start < 2
    assert time.monotonic() - start < 0.5


def test_missing_and_unreadable_files_fail_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfError, match=r"^no such file: .*absent\.mp4$"):
        FileSourceFactory().open({"path": str(tmp_path / "absent.mp4")})
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(ConfError) as caught:
        FileSourceFactory().open({"path": str(junk)})
    assert str(caught.value).startswith(f"cannot read {junk}: ") and "\n" not in str(caught.value)
    with pytest.raises(ConfError, match="needs a path"):
        FileSourceFactory().open({})
