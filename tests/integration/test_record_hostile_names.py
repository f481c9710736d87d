"""`--record` and a server that announces names and kinds made to escape the folder (the security review).

A real ``conf server`` behind a tap that rewrites every track's ``kind`` (and its owner's ``name``) on
the way to a recording client: the files must land in the record folder, with safe names, and nothing
may be written anywhere else, even where a folder the attack needs happens to exist.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conf_cli.client.media.receiver import MAX_FILE_PART, recording_path
from conf_cli.testing.processes import ClientPool
from conf_cli.testing.tap import start_tap

Message = dict[str, Any]
PLAIN = ("--encryption", "none")
SMALL = ("--width", "320", "--height", "240", "--fps", "15")
ESCAPE = "/../../escaped"  # after "<name>-": up out of the record folder, and out of its parent


def hostile_kind(conn: int, message: Message) -> Message | None:
    if message.get("type") == "share_started":
        return {**message, "kind": ESCAPE}
    return message


def test_a_track_kind_cannot_place_a_recording_outside_the_folder(plain_server: str, tmp_path: Path) -> None:
    record = tmp_path / "box" / "rec"
    (record / "pat-").mkdir(parents=True)  # a folder the path needs to climb out: it exists
    pool = ClientPool(plain_server, extra=PLAIN)
    try:
        with start_tap(plain_server, downstream=hostile_kind) as tap:
            recorder = ClientPool(tap.url, extra=PLAIN)
            try:
                viewer, meeting = recorder.create("viewer", "--record", str(record))
                sharer = pool.share(meeting, "pat", "pattern", *SMALL)
                sharer.expect("publish_started")
                started = viewer.expect("track_started", timeout=20)
                assert started["kind"] == ESCAPE  # the client did get the hostile kind
                viewer.expect("track_stats", lambda e: e["frames"] > 0, timeout=20)
                viewer.send("/leave")
                assert viewer.wait(20) == 0
            finally:
                recorder.stop_all()
    finally:
        pool.stop_all()
    outside = [p for p in tmp_path.rglob("*") if p.is_file() and record not in p.parents]
    assert outside == []
    [recording] = [p for p in record.rglob("*") if p.is_file()]
    assert recording.parent == record and recording.name.startswith("pat-escaped-")
    assert recording.stat().st_size > 0


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("pat", "../../x"),
        ("pat", "/etc/passwd"),
        ("..", ".."),
        ("../..", "video"),
        ("a/../../b", "c\\..\\d"),
        ("pat", "x" * 10_000),
        ("", ""),
        (".", "."),
        ("pat", "video\x00.mkv"),
    ],
)
def test_recording_paths_stay_in_the_folder(tmp_path: Path, name: str, kind: str) -> None:
    path = recording_path(tmp_path, name, kind, 1234, "mkv")
    assert path.parent == tmp_path and path.resolve().parent == tmp_path.resolve()
    assert "/" not in path.name and ".." not in path.name.split("-")
    assert len(path.name) <= 2 * MAX_FILE_PART + len("--1234.mkv")


def test_a_recording_never_overwrites_one_already_there(tmp_path: Path) -> None:
    first = recording_path(tmp_path, "pat", "video", 7, "mkv")
    first.write_bytes(b"kept")
    second = recording_path(tmp_path, "pat", "video", 7, "mkv")
    assert second != first and second.parent == tmp_path
    assert first.read_bytes() == b"kept"
