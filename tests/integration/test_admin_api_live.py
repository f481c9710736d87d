"""The admin HTTP API end to end: a real ``conf server --admin-port``, real participants in machine mode,
``conf admin`` as an operator runs it, and an attacker guessing the key over real sockets."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from conf_cli.testing.processes import ClientPool, ConfProcess, run_conf, start_server
from conf_cli.testing.processes import test_home as conf_home


@pytest.fixture
def served() -> Iterator[tuple[ConfProcess, str, str]]:
    """A server with its admin API: the process, the meeting URL and the admin URL."""
    server, url = start_server("--admin-port", "0", "--max-failures", "3", "--failure-window", "4")
    try:
        yield server, url, server.latest("server_started")["admin"]
    finally:
        server.stop()


@pytest.fixture
def clients(served: tuple[ConfProcess, str, str]) -> Iterator[ClientPool]:
    pool = ClientPool(served[1])
    try:
        yield pool
    finally:
        pool.stop_all()


def admin_key() -> str:
    return (Path(conf_home()) / "server" / "admin.key").read_text().strip()


def conf_admin(admin_url: str, *args: str) -> dict[str, Any]:
    """Run ``conf admin --json`` against the API; its answer."""
    done = run_conf("admin", "--url", admin_url, "--json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def raw(
    admin_url: str, method: str, path: str, key: str | None, body: bytes | None = None
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """One request on a fresh socket, as anyone on the machine could send it: status, headers, body."""
    parts = urlsplit(admin_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        return response.status, dict(response.getheaders()), json.loads(data) if data else {}
    finally:
        connection.close()


def test_the_key_file_is_private_and_the_url_is_published(served: tuple[ConfProcess, str, str]) -> None:
    folder = Path(conf_home()) / "server"
    assert (folder / "admin.key").stat().st_mode & 0o777 == 0o600
    assert (folder / "admin.url").read_text().strip() == served[2]
    assert urlsplit(served[2]).hostname == "127.0.0.1"  # loopback unless --admin-host widens it


def test_kick_through_conf_admin_sends_what_a_host_kick_sends(
    served: tuple[ConfProcess, str, str], clients: ClientPool
) -> None:
    admin_url = served[2]
    ada, meeting = clients.create("ada")
    bob = clients.joined(meeting, "bob")
    carol = clients.joined(meeting, "carol")

    ada.send("/kick carol")  # the host's own kick, to compare with
    by_host = carol.expect("kicked")
    assert carol.wait() == 3

    # conf admin without --url finds the API and its key in the server's folder
    done = run_conf("admin", "kick", meeting, "bob")
    assert done.returncode == 0, done.stderr
    by_admin = bob.expect("kicked")
    assert set(by_admin) == set(by_host) and by_admin["by"] == "server admin"
    assert bob.wait() == 3  # the exit code of a participant the host removed
    ada.expect("participant_left", lambda e: e["name"] == "bob" and e["reason"] == "kicked")
    # the same rules: bob stays out, as after a host's kick
    again = clients.join(meeting, "bob")
    assert again.wait() == 1 and any("removed" in line for line in again.stderr_lines)
    left = conf_admin(admin_url, "participants", meeting)
    assert [p["name"] for p in left["participants"]] == ["ada"]
    conf_admin(admin_url, "unban", meeting, "bob")  # as /unban bob
    assert ada.expect("unbanned") == {"type": "unbanned", "name": "bob", "by": "server admin"}
    clients.joined(meeting, "bob")


def test_meetings_mute_lock_waiting_room_and_end(
    served: tuple[ConfProcess, str, str], clients: ClientPool
) -> None:
    admin_url = served[2]
    ada, meeting = clients.create("ada", "--waiting-room")
    listed = conf_admin(admin_url, "meetings")["meetings"]
    assert [(m["meeting"], m["host"], m["participants"]) for m in listed] == [(meeting, "ada", 1)]

    bob = clients.join(meeting, "bob")
    bob.expect("waiting")
    ada.expect("waiting_joined", lambda e: e["name"] == "bob")
    assert conf_admin(admin_url, "waiting", meeting)["waiting"] == ["bob"]
    conf_admin(admin_url, "admit", meeting, "bob")
    bob.expect("joined")
    ada.expect("waiting_left", lambda e: e["name"] == "bob" and e["by"] == "server admin")

    eve = clients.join(meeting, "eve")
    eve.expect("waiting")
    conf_admin(admin_url, "deny", meeting, "eve")
    assert eve.expect("denied")["by"] == "server admin"
    assert eve.wait() == 5

    state = conf_admin(admin_url, "mute", meeting, "bob")
    assert state["participants"][1]["forbidden"] == ["audio"]
    muted = bob.expect("permission_changed")
    assert muted == {
        "type": "permission_changed",
        "what": "audio",
        "allowed": False,
        "by": "server admin",
        "name": "bob",
    }
    conf_admin(admin_url, "mute", meeting, "bob", "--off")
    assert bob.expect("permission_changed")["allowed"] is True

    refused = run_conf("admin", "--url", admin_url, "mute", meeting, "ada")
    assert refused.returncode == 1 and "cannot forbid" in refused.stderr  # nobody forbids the host anything

    conf_admin(admin_url, "lock", meeting)
    assert ada.expect("meeting_locked") == {"type": "meeting_locked", "locked": True, "by": "server admin"}
    late = clients.join(meeting, "dave")
    assert late.wait() == 1 and any("locked" in line for line in late.stderr_lines)
    conf_admin(admin_url, "unlock", meeting)
    ada.expect("meeting_locked", lambda e: e["locked"] is False)

    assert conf_admin(admin_url, "end", meeting) == {"meeting": meeting, "ended": True}
    for client in (ada, bob):
        assert client.expect("meeting_closed")["by"] == "server admin"
        assert client.wait() == 0
    assert conf_admin(admin_url, "meetings")["meetings"] == []
    gone = run_conf("admin", "--url", admin_url, "end", meeting)
    assert gone.returncode == 1 and "no meeting" in gone.stderr


def test_a_meeting_created_over_the_api_is_hosted_by_its_first_joiner(
    served: tuple[ConfProcess, str, str], clients: ClientPool
) -> None:
    created = conf_admin(served[2], "create", "--passcode", clients.passcode)
    assert created["participants"] == 0 and created["passcode"] == clients.passcode
    grace = clients.join(created["meeting"], "grace")
    assert grace.expect("joined")["role"] == "host"
    drawn = conf_admin(served[2], "create")
    assert len(drawn["passcode"]) >= 6 and drawn["meeting"] != created["meeting"]


def test_bad_bodies_are_refused_clearly(served: tuple[ConfProcess, str, str], clients: ClientPool) -> None:
    _, meeting = clients.create("ada")
    key = admin_key()
    assert raw(served[2], "POST", f"/meetings/{meeting}/kick", key, b"{not json")[0] == 400
    assert raw(served[2], "POST", f"/meetings/{meeting}/kick", key, b'{"name": 5}')[0] == 400
    assert raw(served[2], "POST", f"/meetings/{meeting}/kick", key, b'{"name": "nobody"}')[0] == 404
    status, _, body = raw(served[2], "POST", f"/meetings/{meeting}/mute", key, b'{"name": "ada"}')
    assert status == 409 and body["error"] == "not_allowed"  # the meeting's rules refuse it
    status, _, body = raw(served[2], "GET", "/no/such/route", key)
    assert status == 404 and "openapi.json" in body["message"]
    assert raw(served[2], "PUT", "/meetings", key)[0] == 405
    big = json.dumps({"name": "x" * 100_000}).encode()
    assert raw(served[2], "POST", f"/meetings/{meeting}/kick", key, big)[0] == 413


def test_guessing_the_key_gets_locked_out_like_a_passcode(served: tuple[ConfProcess, str, str]) -> None:
    admin_url, key = served[2], admin_key()
    assert raw(admin_url, "GET", "/meetings", key)[0] == 200
    # the server allows 3 failures per 4 s window (--max-failures 3 --failure-window 4)
    assert raw(admin_url, "GET", "/meetings", None)[0] == 401  # no key
    status, headers, body = raw(admin_url, "GET", "/meetings", "guess-1")
    assert (
        status == 401 and body["error"] == "unauthorized" and headers["WWW-Authenticate"].startswith("Bearer")
    )
    assert raw(admin_url, "DELETE", "/meetings/abc-defg-hjk", "gu\u00e9ss-\u00ff")[0] == 401  # not UTF-8
    # locked out now: even the right key waits, as a right passcode does
    status, headers, body = raw(admin_url, "GET", "/meetings", key)
    assert status == 429 and body["error"] == "rate_limited" and int(headers["Retry-After"]) >= 1
    assert raw(admin_url, "GET", "/meetings", "guess-3")[0] == 429
    time.sleep(body["retry_after"] + 0.5)
    assert raw(admin_url, "GET", "/meetings", key)[0] == 200
    # conf admin with a wrong key says so in one line
    wrong = Path(conf_home()) / "wrong.key"
    wrong.write_text("not-the-admin-key-at-all\n")
    done = run_conf("admin", "--url", admin_url, "--key-file", str(wrong), "meetings")
    assert done.returncode == 1 and "401" in done.stderr and "Traceback" not in done.stderr


def test_conf_admin_finds_the_server_through_its_folder(served: tuple[ConfProcess, str, str]) -> None:
    folder = Path(conf_home()) / "server"
    found = run_conf("admin", "--server-dir", str(folder), "--json", "meetings")
    assert found.returncode == 0 and json.loads(found.stdout) == {"meetings": []}
    elsewhere = Path(conf_home()) / "no-server-here"
    missing = run_conf("admin", "--server-dir", str(elsewhere), "meetings")
    assert missing.returncode == 1
    assert missing.stderr.strip().startswith("conf: no running admin API found") and "--url" in missing.stderr


def test_the_openapi_document_is_served_without_a_key(served: tuple[ConfProcess, str, str]) -> None:
    status, _, document = raw(served[2], "GET", "/openapi.json", None)
    assert status == 200 and document["openapi"].startswith("3.")
    assert "/meetings/{meeting}/kick" in document["paths"]


def test_a_bad_webhook_url_is_refused_with_workers_or_without() -> None:
    hook = run_conf("server", "--port", "0", "--workers", "2", "--webhook", "ftp://127.0.0.1/hook")
    assert hook.returncode == 1 and "expected an http:// or https:// URL" in hook.stderr
    bad = run_conf("server", "--port", "0", "--webhook", "ftp://127.0.0.1/hook")
    assert bad.returncode == 1 and "expected an http:// or https:// URL" in bad.stderr
