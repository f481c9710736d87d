"""Hostile input to a live server's port: the server survives and the meeting notices nothing."""

from __future__ import annotations

import json
import random
import socket
import time

from conf_cli.protocol.framing import FrameDecoder, frame
from conf_cli.server.resume import SEAT_GRACE
from conf_cli.testing.hostile import closed_within, open_raw_socket
from conf_cli.testing.processes import ClientPool


def _raw_join(url: str, meeting: str, name: str) -> tuple[socket.socket, FrameDecoder]:
    sock = open_raw_socket(url, tls=True)
    sock.sendall(frame(json.dumps({"type": "hello", "protocol": 1}).encode()))
    sock.sendall(
        frame(json.dumps({"type": "join", "meeting": meeting, "name": name, "passcode": "pass-123"}).encode())
    )
    decoder = FrameDecoder()
    kinds: list[str] = []
    deadline = time.monotonic() + 10
    while "joined" not in kinds and time.monotonic() < deadline:
        for payload in decoder.feed(sock.recv(65536)):
            kinds.append(json.loads(payload)["type"])
    assert "joined" in kinds, kinds
    return sock, decoder


def test_hostile_connections_do_not_disturb_a_meeting(clients: ClientPool, server_url: str) -> None:
    alice, meeting = clients.create("alice")
    bob = clients.joined(meeting, "bob")

    noise = random.Random(1234)
    random_bytes = open_raw_socket(server_url, tls=True)
    random_bytes.sendall(b"\x00\x10" + noise.randbytes(4016))
    fake_rtp = open_raw_socket(server_url, tls=True)
    fake_rtp.sendall(frame(b"\x80\x60" + noise.randbytes(30)))
    huge = open_raw_socket(server_url, tls=True)
    huge.sendall(b"\xff\xff\xff\xff" + noise.randbytes(100))
    http = open_raw_socket(server_url, tls=True)
    http.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    empties = open_raw_socket(server_url, tls=True)
    empties.sendall(b"\x00\x00" * 5000)
    half = open_raw_socket(server_url, tls=True)
    half.sendall(frame(json.dumps({"type": "hello", "protocol": 1}).encode())[:7])
    not_json = open_raw_socket(server_url, tls=True)
    not_json.sendall(frame(b"{not json at all"))
    wrong_version = open_raw_socket(server_url, tls=True)
    wrong_version.sendall(frame(json.dumps({"type": "hello", "protocol": 99}).encode()))

    # The meeting carries on meanwhile.
    alice.send("through the storm")
    bob.expect("chat", lambda e: e["text"] == "through the storm")

    # Garbage is refused at once; stalled or never-greeting connections are closed within seconds.
    assert closed_within(random_bytes, 3)
    assert closed_within(fake_rtp, 3)
    assert closed_within(not_json, 3)
    assert closed_within(wrong_version, 3)
    for sock in (huge, http, empties, half):
        assert closed_within(sock, 10)
    for sock in (random_bytes, fake_rtp, huge, http, empties, half, not_json, wrong_version):
        sock.close()

    bob.send("still fine")
    alice.expect("chat", lambda e: e["text"] == "still fine")
    assert not [e for e in alice.seen + bob.seen if e.get("type") in ("participant_left", "error")]


def test_garbage_after_joining_is_answered_not_fatal(clients: ClientPool, server_url: str) -> None:
    alice, meeting = clients.create("alice")
    sock, decoder = _raw_join(server_url, meeting, "mallory")
    alice.expect("participant_joined", lambda e: e["name"] == "mallory")
    sock.sendall(frame(b'{"type": "chat", "text": 5}') + frame(b'{"type": "nonsense"}') + frame(b"[1,2]"))
    errors: list[dict] = []
    deadline = time.monotonic() + 5
    while len(errors) < 3 and time.monotonic() < deadline:
        for payload in decoder.feed(sock.recv(65536)):
            message = json.loads(payload)
            if message["type"] == "error":
                errors.append(message)
    assert [e["code"] for e in errors] == ["bad_request"] * 3
    assert errors[0]["message"] == "chat.text must be a string"
    sock.sendall(frame(json.dumps({"type": "chat", "text": "sorry"}).encode()))
    alice.expect("chat", lambda e: e["from"] == "mallory" and e["text"] == "sorry")
    sock.close()


def test_silent_participant_is_dropped_by_heartbeat(clients: ClientPool, server_url: str) -> None:
    """A client that loses its network sends nothing more and never closes: heartbeats catch it."""
    alice, meeting = clients.create("alice")
    sock, _ = _raw_join(server_url, meeting, "ghost")
    alice.expect("participant_joined", lambda e: e["name"] == "ghost")
    started = time.monotonic()
    left = alice.expect("participant_left", lambda e: e["name"] == "ghost", timeout=20)
    assert left["reason"] == "timeout"
    # dropped after 6 s of silence; its seat is then kept SEAT_GRACE seconds for a resume that never comes
    assert 4 + SEAT_GRACE < time.monotonic() - started < 10 + SEAT_GRACE
    sock.close()
