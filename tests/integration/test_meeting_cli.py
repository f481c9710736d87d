"""Real servers and real ``conf`` clients over loopback, in machine mode."""

from __future__ import annotations

import os
import signal
import time

from conf_cli.server.resume import SEAT_GRACE
from conf_cli.testing.processes import ClientPool, run_conf


def test_create_join_and_chat(clients: ClientPool) -> None:
    alice, meeting = clients.create("alice")
    bob = clients.join(meeting, "bob")
    joined = bob.expect("joined")
    assert joined["role"] == "member"
    assert [p["name"] for p in joined["participants"]] == ["alice", "bob"]
    alice.expect("participant_joined", lambda e: e["name"] == "bob")

    alice.send("hello bob")
    chat = bob.expect("chat")
    assert chat == {"type": "chat", "from": "alice", "text": "hello bob", "private": False}

    carol = clients.joined(meeting, "carol")
    bob.send("/msg alice just for you")
    private = alice.expect("chat", lambda e: e["private"])
    assert private["from"] == "bob" and private["text"] == "just for you" and private["to"] == "alice"
    carol.send("public again")
    # carol sees her own public line but never bob's private one
    carol.expect("chat", lambda e: e["text"] == "public again")
    assert not [e for e in carol.seen if e.get("type") == "chat" and e.get("private")]


def test_admin_host_transfer_and_end(clients: ClientPool) -> None:
    alice, meeting = clients.create("alice")
    bob = clients.joined(meeting, "bob")
    carol = clients.joined(meeting, "carol")

    carol.send("/end")
    refused = carol.expect("error")
    assert refused["code"] == "not_allowed"

    alice.send("/admin bob")
    assert carol.expect("role_changed") == {
        "type": "role_changed",
        "name": "bob",
        "role": "admin",
        "by": "alice",
    }
    alice.send("/host carol")
    carol.expect("role_changed", lambda e: e["name"] == "carol" and e["role"] == "host")
    carol.expect("role_changed", lambda e: e["name"] == "alice" and e["role"] == "admin")

    bob.send("/end")  # an admin may end the meeting for all
    for client in (alice, bob, carol):
        closed = client.expect("meeting_closed")
        assert closed["by"] == "bob"
        assert client.wait() == 0


def test_forbid_kick_and_lock(clients: ClientPool) -> None:
    alice, meeting = clients.create("alice")
    bob = clients.joined(meeting, "bob")
    alice.send("/forbid chat")
    bob.expect("permission_changed", lambda e: e["what"] == "chat" and e["allowed"] is False)
    bob.send("may I speak?")
    assert bob.expect("error")["code"] == "forbidden"
    alice.send("/lock")
    bob.expect("meeting_locked")
    late = clients.join(meeting, "dave")
    assert late.wait() == 1
    assert any("locked" in line for line in late.stderr_lines)
    alice.send("/kick bob")
    assert bob.expect("kicked")["by"] == "alice"
    assert bob.wait() == 3
    alice.expect("participant_left", lambda e: e["name"] == "bob" and e["reason"] == "kicked")


def test_two_meetings_are_isolated(clients: ClientPool) -> None:
    alice, first = clients.create("alice")
    xavier, second = clients.create("xavier")
    assert first != second
    bob = clients.joined(first, "bob")
    yvonne = clients.joined(second, "yvonne")
    alice.send("meeting one only")
    bob.expect("chat", lambda e: e["text"] == "meeting one only")
    xavier.send("meeting two only")
    yvonne.expect("chat", lambda e: e["text"] == "meeting two only")
    for other in (xavier, yvonne):
        assert not [e for e in other.drain(0.5) if e.get("text") == "meeting one only"]
    # the same name may be used in another meeting
    clients.joined(second, "bob")


def test_refusals_are_one_clear_line(clients: ClientPool, server_url: str) -> None:
    _, meeting = clients.create("alice")
    wrong = run_conf(
        "join", meeting, "--server", server_url, "--name", "eve", "--passcode", "guess", "--json"
    )
    assert wrong.returncode == 1
    assert wrong.stderr.strip() == f"conf: wrong passcode for meeting {meeting}"
    unknown = run_conf("join", "abc-defg-hjk", "--server", server_url, "--name", "eve", "--json")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "conf: no meeting 'abc-defg-hjk' on this server"
    taken = run_conf("join", meeting, "--server", server_url, "--name", "ALICE", "--passcode", "pass-123")
    assert taken.returncode == 1 and "taken" in taken.stderr and "Traceback" not in taken.stderr


def test_unreachable_server_and_busy_port(server_url: str) -> None:
    port = server_url.rsplit(":", 1)[1]
    busy = run_conf("server", "--port", port)
    assert busy.returncode == 1
    assert (
        busy.stderr.strip() == f"conf: port {port} on 127.0.0.1 is already in use; pick another with --port"
    )
    # a port nobody listens on: the server's port is busy, so pick one by closing a fresh socket
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    unreachable = run_conf("create", "--server", f"tcp://127.0.0.1:{free}", "--json")
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith(
        f"conf: cannot reach server tcp://127.0.0.1:{free}: connection refused"
    )


def test_killed_client_is_noticed_and_meeting_goes_on(clients: ClientPool) -> None:
    alice, meeting = clients.create("alice")
    bob = clients.joined(meeting, "bob")
    carol = clients.joined(meeting, "carol")
    os.kill(bob.pid, signal.SIGKILL)
    started = time.monotonic()
    left = alice.expect("participant_left", lambda e: e["name"] == "bob", timeout=15)
    assert left["reason"] in ("disconnected", "timeout")
    # noticed at once, then bob's seat is kept SEAT_GRACE seconds in case he resumes it (he cannot: killed)
    assert SEAT_GRACE <= time.monotonic() - started < SEAT_GRACE + 5
    alice.send("still here")
    carol.expect("chat", lambda e: e["text"] == "still here")


def test_host_leaving_hands_over(clients: ClientPool) -> None:
    alice, meeting = clients.create("alice")
    bob = clients.joined(meeting, "bob")
    carol = clients.joined(meeting, "carol")
    alice.send("/admin carol")
    bob.expect("role_changed", lambda e: e["name"] == "carol")
    alice.send("/leave")
    assert alice.expect("left")["reason"] == "left"
    assert alice.wait() == 0
    bob.expect("participant_left", lambda e: e["name"] == "alice")
    # the admin, not the longer-present member, becomes host
    assert bob.expect("role_changed")["name"] == "carol"
    os.kill(carol.pid, signal.SIGKILL)
    assert bob.expect("role_changed", timeout=10) == {"type": "role_changed", "name": "bob", "role": "host"}
    bob.send("/leave")
    bob.expect("left")
    # the last one out ends the meeting: it can no longer be joined
    late = clients.join(meeting, "dave")
    assert late.wait() == 1
    assert "no meeting" in late.stderr_lines[-1]


def test_help_plugins_and_placeholders() -> None:
    shown = run_conf("--help")
    for command in ("server", "create", "join", "share", "control", "plugins", "demo"):
        assert f"  {command}" in shown.stdout
    listed = run_conf("plugins")
    assert listed.returncode == 0
    assert "transport_tcp" in listed.stdout and "conf_register_transports" in listed.stdout
