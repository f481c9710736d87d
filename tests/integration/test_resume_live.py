"""Resuming a seat end to end, real processes on real sockets: when the link drops, a client reconnects
on its own and takes its seat back with its resume token (docs/protocol.md, "Resuming")."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conf_cli.testing import processes
from conf_cli.testing.capture import free_port_pair
from conf_cli.testing.processes import ClientPool, ConfProcess, spawn, start_server
from conf_cli.testing.relay import RelayHandle, start_relay

SMALL = ("--width", "320", "--height", "240", "--fps", "15")


def frames_of(process: ConfProcess, name: str, timeout: float = 10.0) -> int:
    """The frames decoded so far of ``name``'s video, from ``process``'s next report that has some."""
    stats = process.expect(
        "track_stats", lambda e: e["name"] == name and e["kind"] == "video" and e["frames"] > 0, timeout
    )
    return int(stats["frames"])


def back(process: ConfProcess, timeout: float = 10.0) -> dict[str, object]:
    """Wait until ``process`` says it reconnected, and return the ``joined`` that put it back."""
    process.expect("reconnecting", timeout=timeout)
    process.expect("reconnected", timeout=timeout)
    return process.expect("joined", lambda e: e.get("resumed") is True, timeout=timeout)


@pytest.fixture
def relayed() -> Iterator[tuple[ClientPool, RelayHandle]]:
    """A server behind the impairment relay, and clients that reach it through the relay."""
    server, url = start_server()
    port = int(url.rsplit(":", 1)[1])
    with start_relay("127.0.0.1", port) as relay:
        pool = ClientPool(f"tcp://127.0.0.1:{relay.port}")
        try:
            yield pool, relay
        finally:
            pool.stop_all()
            server.stop()


def test_a_network_blip_keeps_every_seat_quietly_and_media_and_chat_go_on(
    relayed: tuple[ClientPool, RelayHandle],
) -> None:
    clients, relay = relayed
    host, meeting = clients.create("ada")
    member = clients.joined(meeting, "bob")
    sharer = clients.share(meeting, "cy", "pattern", *SMALL)
    sharer.expect("joined")
    before = frames_of(member, "cy")
    frames_of(host, "cy")

    dropped = time.time()
    relay.drop_connections()  # every link through the relay drops at once
    started = time.monotonic()
    roles = {}
    for process, name in ((host, "ada"), (member, "bob"), (sharer, "cy")):
        joined = back(process)
        assert joined["name"] == name and joined["meeting"] == meeting
        roles[name] = joined["role"]
    assert time.monotonic() - started < 10
    assert roles == {"ada": "host", "bob": "member", "cy": "member"}

    # Media flows again: the sharer's tracks are the same ones, and more of them is decoded.
    assert frames_of(member, "cy") > before
    member.send("still here?")
    assert host.expect("chat", lambda e: e["text"] == "still here?")["from"] == "bob"
    # Nobody saw anybody leave or come in: the seats were kept for the moment the links were down.
    for process in (host, member, sharer):
        since = {event["type"] for at, event in process.timeline if at >= dropped}
        assert not since & {"participant_left", "participant_joined", "share_stopped", "disconnected"}, since
        assert not any(event["type"] == "resume_token" for _, event in process.timeline)  # a secret


def test_a_killed_server_restarted_takes_every_participant_back_with_its_role_and_media() -> None:
    """SIGKILL of ``conf server``, then the same server (identity, ports, folder) again: every client, on
    tcp:// and rtp://, is back in the same meeting under the same name and role within 10 s; the meeting,
    recreated from its record, carries media and chat again."""
    tcp, rtp = free_port_pair(), free_port_pair()
    args = [
        "server",
        "--json",
        "--host",
        "127.0.0.1",
        "--transport",
        f"tcp:{tcp}",
        "--transport",
        f"rtp:{rtp}",
    ]
    server = spawn(args)
    pool = ClientPool(f"tcp://127.0.0.1:{tcp}")
    try:
        server.expect("server_started")
        host, meeting = pool.create("ada")
        member = pool.joined(meeting, "bob", "--server", f"rtp://127.0.0.1:{rtp}")
        sharer = pool.share(meeting, "cy", "pattern", *SMALL)
        sharer.expect("joined")
        pool.joined(meeting, "dee")  # a member who stays through it all, on tcp://
        host.send("/lock")
        host.expect("meeting_locked")
        frames_of(member, "cy")
        record = Path(processes.test_home()) / "server" / "meetings" / f"{meeting}.meeting"
        deadline = time.monotonic() + 10
        while b'"locked":true' not in (record.read_bytes() if record.exists() else b""):  # written beside
            assert time.monotonic() < deadline, "the meeting's record never said it was locked"
            time.sleep(0.05)

        os.kill(server.pid, signal.SIGKILL)
        killed = time.monotonic()
        server.wait()
        server = spawn(args)
        server.expect("server_started")
        roles = {}
        for process, name in ((host, "ada"), (member, "bob"), (sharer, "cy")):
            joined = back(process, timeout=15)
            assert joined["name"] == name and joined["meeting"] == meeting
            roles[name] = joined["role"]
        assert time.monotonic() - killed < 10
        assert roles == {"ada": "host", "bob": "member", "cy": "member"}

        # The recreated meeting is the one it was (locked, everyone back), and media flows again.
        first = frames_of(member, "cy", timeout=15)
        assert frames_of(member, "cy", timeout=15) > first
        host.send("/who")
        who = host.expect("participants")
        assert who["locked"] is True
        assert {p["name"]: p["role"] for p in who["participants"]} == {
            "ada": "host",
            "bob": "member",
            "cy": "member",
            "dee": "member",
        }
        member.send("back again")
        assert host.expect("chat", lambda e: e["text"] == "back again")["from"] == "bob"
    finally:
        pool.stop_all()
        server.stop()
