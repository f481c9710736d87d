"""Recording from the admin API end to end: a real ``conf server --admin-port --webhook`` starts a real
recorder process (``conf record``) that joins its meeting over loopback with a token the server signs;
``conf admin record stop`` ends it, and the ``recording_finished`` webhook (checked by a real receiver)
names an MP4 that ffprobe reads as H.264 and AAC. Also what an attacker might send, and the ways a
recording ends without an operator: its recorder dies, the meeting ends, the host forbids recording,
the server stops."""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from conf_cli.testing.media import streams
from conf_cli.testing.processes import ClientPool, run_conf, start_server, start_thread_loop
from conf_cli.testing.processes import test_home as conf_home
from conf_cli.testing.webhooks import Receiver, wait_for

RECORDER = "server admin (recorder)"
MARK = f"escape-{secrets.token_hex(4)}"
"""What the paths an attacker sends are named: found nowhere afterwards."""
TILE = ("--width", "320", "--height", "240", "--fps", "15")


class Served:
    """A server with its admin API and a webhook receiver; clients of its meetings."""

    def __init__(self, *extra: str) -> None:
        self.hooks = Receiver()
        self.loop = start_thread_loop(self.hooks.up(), "webhook receiver")
        self.server, url = start_server(
            "--admin-port", "0", "--webhook", f"http://127.0.0.1:{self.hooks.port}/hook", *extra
        )
        self.admin = str(self.server.latest("server_started")["admin"])
        self.clients = ClientPool(url)

    def stop(self) -> None:
        self.clients.stop_all()
        self.server.stop()
        self.loop.stop(self.hooks.down())

    def finished(self, meeting: str, timeout: float = 60.0) -> dict[str, Any]:
        """The ``recording_finished`` webhook of ``meeting`` (waits for it)."""
        wait_for(lambda: self.finished_events(meeting) != [], timeout)
        return self.finished_events(meeting)[0]

    def finished_events(self, meeting: str) -> list[dict[str, Any]]:
        with self.hooks.lock:
            events = list(self.hooks.events)
        return [e for e in events if e["type"] == "recording_finished" and e["meeting"] == meeting]


@pytest.fixture
def served() -> Iterator[Served]:
    here = Served("--max-recordings", "1")
    try:
        yield here
    finally:
        here.stop()


def folder() -> Path:
    return Path(conf_home()) / "server"


def recordings() -> set[Path]:
    where = folder() / "recordings"
    return set(where.iterdir()) if where.exists() else set()


def key() -> str:
    return (folder() / "admin.key").read_text().strip()


def conf_admin(*args: str) -> dict[str, Any]:
    done = run_conf("admin", "--json", *args, timeout=120)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def raw(
    admin_url: str, method: str, path: str, body: Any = None, *, key_: str | None = None
) -> tuple[int, Any]:
    """One request on a fresh socket, as anyone on the machine could send it."""
    parts = urlsplit(admin_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=90)
    headers = {"Authorization": f"Bearer {key_ or key()}", "Content-Type": "application/json"}
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    try:
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        text = response.read()
        return response.status, json.loads(text) if text else {}
    finally:
        connection.close()


def recorders_in(meeting: str) -> list[dict[str, Any]]:
    state = conf_admin("participants", meeting)
    return [p for p in state["participants"] if p.get("recorder")]


def test_the_admin_api_records_a_meeting_into_an_mp4_and_says_so_by_webhook(served: Served) -> None:
    host, meeting = served.clients.create("host")
    ada = served.clients.share(meeting, "ada", "pattern", *TILE)
    ada.expect("publish_started")
    tone = served.clients.share(meeting, "cy", "tone")
    tone.expect("publish_started")

    started = conf_admin("record", "start", meeting)
    begun = time.monotonic()
    assert started["state"] == "recording" and started["format"] == "mp4"
    assert started["file"].startswith(f"recordings/{meeting}-") and started["file"].endswith("Z.mp4")
    # the recorder is a participant like any: everyone is told, the admin API lists it
    assert host.expect("recording_started")["by"] == RECORDER
    assert [p["name"] for p in recorders_in(meeting)] == [RECORDER]
    time.sleep(5)

    done = conf_admin("record", "stop", meeting)
    elapsed = time.monotonic() - begun
    assert host.expect("recording_stopped")["by"] == RECORDER
    assert recorders_in(meeting) == []
    path = folder() / done["file"]
    assert done["meeting"] == meeting and done["file"] == started["file"] and done["reason"] == "stopped"
    assert done["bytes"] == path.stat().st_size > 10_000
    assert 3.0 <= done["duration_s"] <= elapsed + 1.0

    hook = served.finished(meeting)
    assert {k: hook[k] for k in done} == done  # the webhook says what the answer said
    assert served.hooks.refused == []  # signed, as every webhook

    probe = streams(path)
    video = next(s for s in probe if s["codec_type"] == "video")
    audio = next(s for s in probe if s["codec_type"] == "audio")
    assert video["codec_name"] == "h264" and audio["codec_name"] == "aac"
    assert abs(float(str(video["duration"])) - done["duration_s"]) < 1.0
    assert float(str(audio["duration"])) > 2.0
    # stopped, the slot is free again
    again = conf_admin("record", "start", meeting, "--format", "hls", "--file", "second")
    assert again["file"] == "recordings/second" and again["format"] == "hls"
    assert conf_admin("record", "stop", meeting)["bytes"] > 0
    assert (folder() / "recordings" / "second" / "index.m3u8").exists()


def test_an_attacker_gets_no_path_no_second_recorder_and_no_more_than_the_limit(served: Served) -> None:
    admin = served.admin
    host, meeting = served.clients.create("host")
    _, other = served.clients.create("olga")
    start = f"/meetings/{meeting}/recording/start"
    before = recordings()

    # no key, wrong key: refused before anything is started
    assert raw(admin, "POST", start, key_="x" * 43)[0] == 401
    for body in (
        {"file": f"../{MARK}"},
        {"file": f"../../../../tmp/{MARK}.mp4"},
        {"file": f"/tmp/{MARK}.mp4"},
        {"file": "sub/dir"},
        {"file": ".."},
        {"file": f"..\\..\\{MARK}"},
        {"file": f"%2e%2e%2f{MARK}"},
        {"file": 7},
        {"format": f"../../tmp/{MARK}"},
        {"format": "mkv"},
        {"layout": "/etc/passwd"},
        {"path": f"/tmp/{MARK}.mp4"},  # no such field: a path is never taken
        {"out": f"/tmp/{MARK}.mp4"},
    ):
        status, answer = raw(admin, "POST", start, body)
        assert status == 400 and answer["error"] == "bad_request", (body, status, answer)
    assert raw(admin, "POST", start, b"[1, 2]")[0] == 400
    # a meeting ID that is a path reaches no meeting
    for name in ("..", "../../etc", "%2e%2e%2f%2e%2e", quote("../recordings", safe="")):
        status, _ = raw(admin, "POST", f"/meetings/{name}/recording/start", {})
        assert status == 404, name
    assert recorders_in(meeting) == []
    # nothing was written anywhere: not beside the server's folder, not where the paths pointed
    assert list(Path(conf_home()).rglob(f"{MARK}*")) == [] and list(Path("/tmp").glob(f"{MARK}*")) == []
    assert recordings() == before  # ... nor in the recordings folder

    status, first = raw(admin, "POST", start, {})
    assert status == 201, first
    status, answer = raw(admin, "POST", start, {})
    assert status == 409 and answer["error"] == "already_recording"
    status, answer = raw(admin, "POST", f"/meetings/{other}/recording/start", {})  # --max-recordings 1
    assert status == 503 and answer["error"] == "recording_limit" and "at most 1" in answer["message"]
    status, answer = raw(admin, "POST", f"/meetings/{other}/recording/stop")
    assert status == 409 and answer["error"] == "not_recording"
    assert len(recorders_in(meeting)) == 1 and recorders_in(other) == []

    # the host's /forbid record removes the server's recorder too, and refuses the next one clearly
    host.send("/forbid record")
    hook = served.finished(meeting)
    assert hook["reason"] == "recording_forbidden" and hook["file"] == first["file"]
    status, answer = raw(admin, "POST", start, {})
    assert status == 409 and answer["error"] == "forbidden" and "/permit record" in answer["message"]
    # the slot is free for another meeting
    status, answer = raw(admin, "POST", f"/meetings/{other}/recording/start", {"layout": "speaker"})
    assert status == 201, answer


def test_a_recorder_that_dies_or_whose_meeting_ends_is_reported(served: Served) -> None:
    host, meeting = served.clients.create("host")
    ada = served.clients.share(meeting, "ada", "pattern", *TILE)
    ada.expect("publish_started")
    first = conf_admin("record", "start", meeting)
    host.expect("recording_started")
    time.sleep(2)
    os.kill(first["pid"], signal.SIGKILL)  # by its PID, as the answer gave it
    hook = served.finished(meeting)
    assert hook["reason"] == "recorder_killed" and hook["file"] == first["file"]
    host.expect("participant_left", lambda e: e["name"] == RECORDER)

    conf_admin("record", "start", meeting)  # the slot is free again
    host.expect("recording_started")
    time.sleep(2)
    host.send("/end")
    wait_for(lambda: len(served.finished_events(meeting)) == 2, 60)
    ended = served.finished_events(meeting)[1]
    assert ended["reason"] == "meeting_ended" and ended["duration_s"] > 1.0
    assert {s["codec_type"] for s in streams(folder() / ended["file"])} == {"video", "audio"}


def test_stopping_the_server_stops_its_recorders_and_finishes_their_files() -> None:
    here = Served()
    try:
        host, meeting = here.clients.create("host")
        started = conf_admin("record", "start", meeting)
        host.expect("recording_started")
        time.sleep(2)
        here.server.process.send_signal(signal.SIGTERM)
        assert here.server.wait(40) == 0
        with pytest.raises(ProcessLookupError):  # the recorder has gone with the server
            os.kill(started["pid"], 0)
        assert {s["codec_type"] for s in streams(folder() / started["file"])} >= {"video"}
    finally:
        here.stop()


def test_an_e2ee_meeting_s_recorder_waits_for_the_host_to_admit_it(served: Served) -> None:
    host, meeting = served.clients.create("host", "--e2ee")
    status, answer = raw(served.admin, "POST", f"/meetings/{meeting}/recording/start", {})
    assert status == 202 and answer["state"] == "waiting" and "/admit" in answer["message"]
    host.expect("waiting_joined", lambda e: e["name"] == RECORDER)
    host.send(f"/admit {RECORDER}")
    host.expect("recording_started")
    assert len(recorders_in(meeting)) == 1
    done = conf_admin("record", "stop", meeting)
    assert done["reason"] == "stopped"
    assert served.finished(meeting)["file"] == done["file"]
