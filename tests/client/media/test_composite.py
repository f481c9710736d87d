"""The composite `conf record` draws and the clock it writes at: layouts, tiles that come and go, a stalled
source repeated, names and the speaker's frame, the mix, and a frame count that matches the time."""

from __future__ import annotations

import time
from pathlib import Path

import av
import numpy as np
import pytest
from conf_capture.pattern import PatternGenerator, read_pattern_stamp

from conf_cli.client.media.composite import (
    BORDER,
    SPEAKER_COLOUR,
    SPEAKER_HOLD,
    Composite,
    Rect,
    SpeakerTracker,
    fit,
    layout,
)
from conf_cli.client.media.recording import CompositeRecorder, Target, open_outputs
from conf_cli.errors import ConfError


def test_grid_cells_cover_the_canvas_and_speaker_puts_the_speaker_on_top() -> None:
    assert layout(1, 1280, 720) == [Rect(0, 0, 1280, 720)]
    assert layout(2, 1280, 720) == [Rect(0, 0, 640, 720), Rect(640, 0, 640, 720)]
    four = layout(4, 1280, 720)
    assert {(c.x, c.y) for c in four} == {(0, 0), (640, 0), (0, 360), (640, 360)}
    assert all((c.width, c.height) == (640, 360) for c in four)
    speaker = layout(3, 1280, 720, "speaker", speaker=2)
    assert speaker[2] == Rect(0, 0, 1280, 540)
    assert [c.y for c in speaker[:2]] == [540, 540] and speaker[0].x != speaker[1].x
    # A picture keeps its shape in its cell, centred, on even pixels.
    assert fit(640, 360, Rect(0, 0, 640, 720)) == Rect(0, 180, 640, 360)
    assert fit(320, 240, Rect(640, 0, 640, 720)) == Rect(640, 120, 640, 480)


def video(composite: Composite, name: str, ssrc: int):  # type: ignore[no-untyped-def]
    return composite.sinks_for({"name": name, "kind": "video", "ssrc": ssrc, "codec": "H264"})[0]


def tile_of(picture: av.VideoFrame, count: int, index: int, size: tuple[int, int] = (640, 360)) -> np.ndarray:
    grey = picture.to_ndarray(format="gray")
    place = fit(*size, layout(count, picture.width, picture.height)[index])
    return grey[place.y : place.y + place.height, place.x : place.x + place.width]


def test_tiles_come_and_go_and_a_stalled_source_shows_its_last_picture() -> None:
    composite = Composite(1280, 720)
    patterns = PatternGenerator(640, 360)
    ada, bob = video(composite, "ada", 1), video(composite, "bob", 2)
    assert (composite.picture().to_ndarray(format="gray") <= 20).all()  # nothing yet: a black canvas
    ada.write(patterns.render(7, 1.0))
    one = composite.picture()
    assert read_pattern_stamp(tile_of(one, 1, 0)).counter == 7  # alone: the only tile (scaled up)
    bob.write(patterns.render(9, 2.0))
    two = composite.picture()
    assert read_pattern_stamp(tile_of(two, 2, 0)).counter == 7  # ada stalls: her last picture again
    assert read_pattern_stamp(tile_of(two, 2, 1)).counter == 9
    ada.close()  # her track ended: her tile goes
    assert read_pattern_stamp(tile_of(composite.picture(), 1, 0)).counter == 9
    composite.hold()  # leaving: what is on the canvas stays
    bob.close()
    assert read_pattern_stamp(tile_of(composite.picture(), 1, 0)).counter == 9


def test_names_are_written_on_tiles_and_the_speaker_is_framed() -> None:
    composite = Composite(1280, 720)
    patterns = PatternGenerator(640, 360)
    video(composite, "ada", 1).write(patterns.render(1, 1.0))
    video(composite, "bob", 2).write(patterns.render(1, 1.0))
    voice = composite.sinks_for({"name": "bob", "kind": "audio", "ssrc": 3, "codec": "opus"})[0]
    tone = (0.5 * np.sin(np.arange(960) * 2 * np.pi * 440 / 48_000)).astype(np.float32)
    for _ in range(20):
        frame = av.AudioFrame.from_ndarray(tone.reshape(1, -1), format="fltp", layout="mono")
        frame.sample_rate = 48_000
        voice.write(frame)
    mix = composite.audio(4800, now=0.0)
    assert 0.2 < float(np.abs(mix).max()) <= 0.5001  # bob's tone in the mix
    assert composite.speaker == "bob"
    picture = composite.picture()
    planes = picture.to_ndarray()  # yuv420p stacked: Y rows first
    bob_place = fit(640, 360, layout(2, 1280, 720)[1])
    ada_place = fit(640, 360, layout(2, 1280, 720)[0])
    assert planes[bob_place.y + 1, bob_place.x + 200] == SPEAKER_COLOUR[0]
    assert planes[ada_place.y + 1, ada_place.x + 200] != SPEAKER_COLOUR[0]
    # A label at the bottom-left: bright letters on a dark box.
    label = planes[
        ada_place.y + ada_place.height - 2 * BORDER - 18 : ada_place.y + ada_place.height - 2 * BORDER,
        ada_place.x + 2 * BORDER : ada_place.x + 2 * BORDER + 30,
    ]
    assert label.min() <= 30 and label.max() >= 180


def test_the_speaker_mark_holds_and_silence_clears_it() -> None:
    speakers = SpeakerTracker()
    assert speakers.update({"ada": 0.0, "bob": 0.0}, 0.0) is None
    for step in range(10):
        speakers.update({"ada": 0.3, "bob": 0.0}, step * 0.1)
    assert speakers.speaker == "ada"
    speakers.update({"ada": 0.0, "bob": 0.9}, 1.0)
    assert speakers.speaker == "ada"  # held: no flicker
    for step in range(10):
        speakers.update({"ada": 0.0, "bob": 0.9}, 1.0 + SPEAKER_HOLD + step * 0.1)
    assert speakers.speaker == "bob"
    for step in range(40):
        speakers.update({"ada": 0.0, "bob": 0.0}, 3.0 + SPEAKER_HOLD + step * 0.1)
    assert speakers.speaker is None


def test_frames_match_the_time_recorded_at_a_steady_rate(tmp_path: Path) -> None:
    composite = Composite(320, 240)
    outputs = open_outputs([Target("file", str(tmp_path / "out.mp4"))], 320, 240, 25)
    recorder = CompositeRecorder(composite, outputs, 25)
    recorder.start()
    time.sleep(1.0)
    recorder.stop()
    assert 20 <= recorder.frames <= 40
    assert recorder.samples == recorder.frames * 48_000 // 25
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == recorder.frames


def test_a_target_that_cannot_be_opened_fails_before_joining(tmp_path: Path) -> None:
    with pytest.raises(ConfError, match="no such directory"):
        open_outputs([Target("file", str(tmp_path / "missing" / "x.mp4"))], 320, 240, 25)
    with pytest.raises(ConfError, match="cannot open rtmp"):
        open_outputs([Target("rtmp", "rtmp://127.0.0.1:9/live/x")], 320, 240, 25)
