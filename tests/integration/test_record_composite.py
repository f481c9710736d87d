"""`conf record`: a recorder joins, everyone is told, the composite is one H.264 and one AAC stream whose
tiles carry each sharer's own pattern; /forbid record keeps recorders out. Real processes and codecs."""

from __future__ import annotations

import time
from pathlib import Path

import av
from conf_capture.pattern import read_pattern_stamp

from conf_cli.client.media.composite import fit, layout
from conf_cli.testing.media import streams
from conf_cli.testing.processes import ClientPool
from tests.helpers.recording import FPS, start_recorder

SIZE = (1280, 720)
TILE = ("--width", "640", "--height", "360", "--fps", "15")


def pictures(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        return list(container.decode(video=0))


def test_a_recorder_is_announced_and_its_composite_shows_each_sharer_in_a_tile(
    clients: ClientPool, tmp_path: Path
) -> None:
    host, meeting = clients.create("host")
    ada = clients.share(meeting, "ada", "pattern", *TILE)
    ada.expect("publish_started")
    bob = clients.share(meeting, "bob", "pattern", *TILE)
    bob.expect("publish_started")
    tone = clients.share(meeting, "cy", "tone")
    tone.expect("publish_started")

    out = tmp_path / "meeting.mp4"
    recorder = start_recorder(clients, meeting, "rec", "--out", str(out))
    joined = recorder.expect("joined")
    assert joined["name"] == "rec (recorder)"
    # Everyone is told, by name, and the participant list says who records.
    for process in (host, ada, bob):
        assert process.expect("recording_started")["by"] == "rec (recorder)"
    who = host.latest("participant_joined", lambda e: e["name"] == "rec (recorder)")
    assert who.get("recorder") is True
    recorder.expect("track_stats", lambda e: e["name"] == "bob" and int(e["frames"]) > 0, timeout=10)
    begun = time.monotonic()
    time.sleep(4)
    recorder.send("/leave")
    written = recorder.expect("recording_written", timeout=20)
    elapsed = time.monotonic() - begun
    assert recorder.wait(20) == 0
    assert host.expect("recording_stopped")["by"] == "rec (recorder)"
    assert not written["failed"]

    probe = streams(out)
    assert sorted(s["codec_type"] for s in probe) == ["audio", "video"]
    video = next(s for s in probe if s["codec_type"] == "video")
    audio = next(s for s in probe if s["codec_type"] == "audio")
    assert video["codec_name"] == "h264" and (video["width"], video["height"]) == SIZE
    assert audio["codec_name"] == "aac"
    frames = int(str(video["nb_read_frames"]))
    # A steady rate: every frame the recorder said it wrote is there, and as many as the time it recorded.
    assert frames == written["frames"]
    assert frames >= elapsed * FPS * 0.9
    assert abs(float(str(video["duration"])) - frames / FPS) < 0.1

    # Pictures from the middle and the very end (tiles stay as the recorder leaves): ada's and bob's
    # patterns each in a tile of a two-tile grid, each stamp read back from its own tile.
    decoded = pictures(out)
    for frame in (decoded[len(decoded) // 2], decoded[-1]):
        picture = frame.to_ndarray(format="gray")
        stamps = []
        for cell in layout(2, *SIZE):
            place = fit(640, 360, cell)
            tile = picture[place.y : place.y + place.height, place.x : place.x + place.width]
            stamps.append(read_pattern_stamp(tile))
        assert all(stamp is not None for stamp in stamps), stamps
        assert stamps[0] != stamps[1]


def test_forbid_record_refuses_a_recorder_and_stops_one_that_records(
    clients: ClientPool, tmp_path: Path
) -> None:
    host, meeting = clients.create("host")
    first = start_recorder(clients, meeting, "early", "--out", str(tmp_path / "early.mp4"))
    first.expect("joined")
    host.expect("recording_started")

    host.send("/forbid record")
    # The recorder in the meeting is told why and stops; its file is finished and readable.
    error = first.expect("error", lambda e: e.get("code") == "forbidden")
    assert "forbidden" in error["message"]
    first.expect("recording_written", timeout=20)
    assert first.wait(20) == 0
    stopped = host.expect("recording_stopped")
    assert stopped == {"type": "recording_stopped", "by": "early (recorder)", "reason": "recording_forbidden"}
    assert {s["codec_type"] for s in streams(tmp_path / "early.mp4")} == {"video", "audio"}

    # A new recorder is refused at the door, with a clear error, and leaves no file.
    late = start_recorder(clients, meeting, "late", "--out", str(tmp_path / "late.mp4"))
    assert late.wait(20) != 0
    assert any("recording is forbidden" in line for line in late.stderr_lines), late.stderr_lines
    assert not (tmp_path / "late.mp4").exists()

    # Nobody may pass for a recorder, nor hide one.
    impostor = clients.join(meeting, "eve (recorder)")
    assert impostor.wait(20) != 0
