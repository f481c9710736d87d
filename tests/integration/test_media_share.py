"""Media end to end: `conf share` publishes, `conf join` receives, records and reports; real processes."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import time
from pathlib import Path

from conf_cli.testing.media import ffprobe, make_clip
from conf_cli.testing.processes import ClientPool, ConfProcess, run_conf

SMALL = ("--width", "320", "--height", "240", "--fps", "15")


def share(clients: ClientPool, meeting: str, name: str, kind: str, *extra: str) -> ConfProcess:
    process = clients.share(meeting, name, kind, *extra)
    process.expect("joined")
    return process


def has_frames(event: dict[str, object]) -> bool:
    return int(event["frames"]) > 0 and float(event["fps"]) > 0  # type: ignore[call-overload]


def test_pattern_share_is_received_recorded_and_reaches_a_late_joiner(
    clients: ClientPool, tmp_path: Path
) -> None:
    host, meeting = clients.create("host")
    record = tmp_path / "rec"
    viewer = clients.joined(meeting, "viewer", "--record", str(record))
    sharer = share(clients, meeting, "bob", "pattern", *SMALL)
    published = sharer.expect("publish_started")
    assert published["kind"] == "video" and published["codec"] == "H264"

    started = viewer.expect("track_started")
    assert started == {
        "type": "track_started",
        "name": "bob",
        "kind": "video",
        "ssrc": published["ssrc"],
        "codec": "H264",
    }
    stats = viewer.expect("track_stats", has_frames, timeout=5)
    assert stats["ssrc"] == published["ssrc"] and stats["packets_lost"] == 0 and stats["malformed"] == 0
    host.expect("track_stats", has_frames, timeout=5)

    # A late joiner learns of the track from `joined` and gets pictures quickly (keyframe on join).
    late = clients.joined(meeting, "late")
    joined_at = time.monotonic()
    assert late.expect("track_started")["ssrc"] == published["ssrc"]
    late.expect("track_stats", has_frames, timeout=5)
    assert time.monotonic() - joined_at < 2.5

    time.sleep(1.0)
    viewer.send("/leave")
    ended = viewer.expect("track_ended")
    assert ended["frames"] >= 15
    assert viewer.wait() == 0

    files = list(record.iterdir())
    assert [f.name for f in files] == [f"bob-video-{published['ssrc']}.mkv"]
    probe = subprocess.run(
        [
            shutil.which("ffprobe") or "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-of",
            "json",
            "-show_streams",
            str(files[0]),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    stream = json.loads(probe.stdout)["streams"][0]
    assert stream["codec_name"] == "h264" and (stream["width"], stream["height"]) == (320, 240)
    assert int(stream["nb_read_frames"]) >= 15
    assert abs(int(stream["nb_read_frames"]) - int(ended["frames"])) <= 1

    if importlib.util.find_spec("conf_capture.pattern") is not None:
        import av
        from conf_capture.pattern import read_pattern_stamp

        with av.open(str(files[0])) as container:
            stamps = [read_pattern_stamp(frame) for frame in container.decode(video=0)]
        counters = [s.counter for s in stamps if s is not None]
        assert len(counters) >= 0.9 * len(stamps)
        assert counters == sorted(counters) and len(set(counters)) == len(counters)


def test_forbidding_video_stops_the_share(clients: ClientPool) -> None:
    host, meeting = clients.create("host")
    viewer = clients.joined(meeting, "viewer")
    sharer = share(clients, meeting, "bob", "pattern", *SMALL)
    viewer.expect("track_stats", has_frames, timeout=5)

    host.send("/forbid video")
    for process in (host, viewer, sharer):
        stopped = process.expect("share_stopped")
        assert (stopped["name"], stopped["kind"], stopped["reason"]) == ("bob", "video", "forbidden")
    assert sharer.expect("publish_stopped")["reason"] == "forbidden"
    assert viewer.expect("track_ended")["reason"] == "forbidden"
    # The sharer stays in the meeting, and sends nothing more.
    sharer.send("still here")
    viewer.expect("chat", lambda e: e["text"] == "still here")
    assert not [e for e in viewer.drain(1.0) if e.get("type") == "track_started"]


def test_tone_share_is_received_as_audio(clients: ClientPool) -> None:
    host, meeting = clients.create("host")
    sharer = share(clients, meeting, "bob", "tone", "--frequency", "440")
    assert sharer.expect("publish_started")["codec"] == "opus"
    stats = host.expect("track_stats", lambda e: e["kind"] == "audio" and e["frames"] > 0, timeout=5)
    assert stats["codec"] == "opus" and stats["fps"] > 40


def test_shared_file_is_recorded_by_another_client(clients: ClientPool, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", seconds=2.0, fps=15)
    record = tmp_path / "rec"
    host, meeting = clients.create("host", "--record", str(record))
    sharer = share(clients, meeting, "bob", "file", str(clip))
    published = {e["kind"]: e for e in (sharer.expect("publish_started"), sharer.expect("publish_started"))}
    assert (published["video"]["codec"], published["audio"]["codec"]) == ("H264", "opus")
    started = time.monotonic()
    host.expect("track_stats", lambda e: e["kind"] == "video" and has_frames(e), timeout=5)
    time.sleep(3.0)  # past the clip's end: it loops
    shared_for = time.monotonic() - started
    sharer.send("/leave")
    assert sharer.wait() == 0
    ended = {e["kind"]: e for e in (host.expect("track_ended"), host.expect("track_ended"))}
    host.send("/leave")
    assert host.wait() == 0

    video = ffprobe(record / f"bob-video-{published['video']['ssrc']}.mkv")
    assert (video.codec, video.width, video.height) == ("h264", 320, 240)
    assert abs(video.frames - ended["video"]["frames"]) <= 1
    assert abs(video.frames / 15 - video.duration) <= 2 / 15
    assert abs(video.duration - shared_for) < 0.6
    audio = ffprobe(record / f"bob-audio-{published['audio']['ssrc']}.mkv")
    assert audio.codec == "opus" and abs(audio.frames - ended["audio"]["frames"]) <= 1
    assert abs(audio.duration - video.duration) < 0.3


def test_unknown_source_and_missing_file_fail_in_one_line(clients: ClientPool, tmp_path: Path) -> None:
    _, meeting = clients.create("host")
    base = ["--meeting", meeting, "--server", clients.url, "--passcode", clients.passcode, "--json"]
    unknown = run_conf("share", "no-such-source", *base)
    assert unknown.returncode == 1
    assert unknown.stderr.count("\n") == 1 and "no source plugin named 'no-such-source'" in unknown.stderr
    missing = run_conf("share", "file", str(tmp_path / "absent.mp4"), *base)
    assert missing.returncode == 1
    assert missing.stderr.count("\n") == 1 and "absent.mp4" in missing.stderr


def test_share_and_unshare_from_the_meeting_prompt(clients: ClientPool) -> None:
    host, meeting = clients.create("host")
    viewer = clients.joined(meeting, "viewer")
    host.send("/share pattern width=320 height=240 fps=15")
    published = host.expect("publish_started")
    assert viewer.expect("track_started")["ssrc"] == published["ssrc"]
    viewer.expect("track_stats", has_frames, timeout=5)
    host.send("/unshare video")
    assert host.expect("publish_stopped")["reason"] == "stopped"
    assert viewer.expect("track_ended")["reason"] == "stopped"
    host.send("/unshare video")
    assert "not sharing video" in host.expect("error")["message"]
