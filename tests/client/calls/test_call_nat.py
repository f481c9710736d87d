"""Calls between two clients, each behind its own NAT (network namespaces): direct, or relayed when the
NATs cannot reach each other; and the call flow (decline, busy, timeout) on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from conf_cli.client.calls.session import EXIT_UNANSWERED
from conf_cli.testing.netns import NatPicture, NetLab, call_across_nats, netns_unavailable, two_nats
from conf_cli.testing.processes import ClientPool, ConfProcess, spawn, start_server

SMALL = ("--width", "320", "--height", "240", "--fps", "15")
needs_netns = pytest.mark.skipif(netns_unavailable() is not None, reason=str(netns_unavailable()))


def has_frames(event: dict[str, Any]) -> bool:
    return int(event["frames"]) > 0


@pytest.fixture
def nats() -> Iterator[tuple[NetLab, NatPicture]]:
    with NetLab() as lab:
        yield lab, two_nats(lab)


def call_across(lab: NetLab, picture: NatPicture) -> tuple[ConfProcess, ConfProcess, ConfProcess]:
    server, ada, bob, online = call_across_nats(lab, picture, ("--share", "pattern", *SMALL))
    assert online["public_address"].startswith(f"{picture.public_ips[1]}:")  # as the server saw it
    return server, ada, bob


def call_stats(server: ConfProcess, where: Any) -> dict[str, int]:
    stats: dict[str, int] = server.expect("server_stats", lambda e: where(e["calls"]), timeout=10)["calls"]
    return stats


@needs_netns
def test_a_call_through_two_nats_goes_direct(nats: tuple[NetLab, NatPicture]) -> None:
    lab, picture = nats
    server, ada, bob = call_across(lab, picture)
    ringing = ada.expect("call_ringing", timeout=20)
    accepted = ada.expect("call_accepted", timeout=20)
    assert accepted["call"] == ringing["call"] and accepted["peer"] == "bob"
    path = ada.expect("call_path", timeout=20)
    assert path["path"] == "direct" and path["address"].startswith(f"{picture.public_ips[1]}:")
    theirs = bob.expect("call_path", timeout=20)
    assert theirs["path"] == "direct" and theirs["address"].startswith(f"{picture.public_ips[0]}:")
    assert path["sas"] == theirs["sas"] == accepted["sas"]  # the same keys at both ends
    got = ada.expect("track_stats", lambda e: e["name"] == "bob" and has_frames(e), timeout=20)
    assert got["decode_errors"] == 0
    bob.expect("track_stats", lambda e: e["name"] == "ada" and has_frames(e), timeout=20)
    later = ada.expect(
        "track_stats", lambda e: e["name"] == "bob" and e["frames"] > got["frames"] + 15, timeout=20
    )
    assert later["malformed"] == 0
    # The server introduced them and nothing more: it relayed no media at all.
    stats = call_stats(server, lambda s: s["direct"] == 1)
    assert stats["relayed_packets"] == 0 and stats["bindings"] == 0 and stats["stun_answered"] >= 2
    ada.send("/hangup")
    ended = ada.expect("call_ended")
    assert ended["reason"] == "hangup"
    assert bob.expect("call_ended")["reason"] == "hangup"
    assert ada.wait() == 0
    bob.expect("publish_stopped")  # the call is over; bob stays online for the next one
    url = next(e for e in server.seen if e["type"] == "server_started")["urls"][0]
    again = lab.conf(picture.clients[0], ["call", "bob", "--name", "ada", "--json", "--server", url])
    assert again.expect("call_path", timeout=20)["path"] == "direct"
    again.expect("track_stats", lambda e: e["name"] == "bob" and has_frames(e), timeout=20)
    again.send("/leave")
    assert again.wait() == 0


@needs_netns
def test_with_udp_between_the_nats_cut_the_call_is_relayed(nats: tuple[NetLab, NatPicture]) -> None:
    lab, picture = nats
    for one, other in (
        (picture.public_ips[0], picture.public_ips[1]),
        (picture.public_ips[1], picture.public_ips[0]),
    ):
        lab.iptables(picture.wan, "-A", "FORWARD", "-p", "udp", "-s", one, "-d", other, "-j", "DROP")
    server, ada, bob = call_across(lab, picture)
    path = ada.expect("call_path", timeout=25)
    assert path["path"] == "relayed" and path["address"].startswith(f"{picture.server_ip}:")
    assert bob.expect("call_path", timeout=20)["path"] == "relayed"
    ada.expect("track_stats", lambda e: e["name"] == "bob" and e["frames"] > 15, timeout=20)
    bob.expect("track_stats", lambda e: e["name"] == "ada" and e["frames"] > 15, timeout=20)
    stats = call_stats(server, lambda s: s["relayed_packets"] > 100)
    assert stats["relayed"] == 1 and stats["direct"] == 0 and stats["bindings"] >= 2
    ada.send("/leave")
    assert ada.wait() == 0
    bob.expect("call_ended")


# -- the call flow, on loopback -------------------------------------------------------------------------


@pytest.fixture
def url() -> Iterator[str]:
    server, address = start_server()
    try:
        yield address
    finally:
        server.stop()


def caller(url: str, peer: str, *extra: str) -> ConfProcess:
    return spawn(["call", peer, "--name", "ada", "--json", "--server", url, *extra])


def test_decline_busy_timeout_and_nobody(url: str) -> None:
    started: list[ConfProcess] = []
    try:
        bob = spawn(["call", "--listen", "--name", "bob", "--json", "--server", url])
        started.append(bob)
        bob.expect("online")
        ada = caller(url, "bob")
        started.append(ada)
        incoming = bob.expect("call_incoming")
        assert incoming["peer"] == "ada" and "key" not in incoming and "commitment" not in incoming
        bob.send("/decline")
        assert ada.expect("call_declined")["reason"] == "declined"
        assert ada.wait() == EXIT_UNANSWERED

        ada = caller(url, "bob", "--ring-timeout", "8")  # long enough for cy to start and find bob busy
        started.append(ada)
        bob.expect("call_incoming")
        cy = spawn(["call", "bob", "--name", "cy", "--json", "--server", url])
        started.append(cy)
        assert cy.expect("call_declined")["reason"] == "busy"
        assert cy.wait() == EXIT_UNANSWERED
        assert ada.expect("call_declined", timeout=20)["reason"] == "timeout"
        assert bob.expect("call_ended")["reason"] == "timeout"
        assert ada.wait() == EXIT_UNANSWERED

        nobody = caller(url, "zed")
        started.append(nobody)
        assert nobody.expect("error")["code"] == "unknown_peer"
        assert nobody.wait() == EXIT_UNANSWERED
        taken = spawn(["call", "--listen", "--name", "bob", "--json", "--server", url])
        started.append(taken)
        assert taken.wait() == 1 and "already online" in "".join(taken.stderr_lines)
    finally:
        for process in started:
            process.stop()


def test_participants_call_each_other_from_a_meeting(url: str) -> None:
    pool = ClientPool(url)
    try:
        ada, meeting = pool.create("ada")
        bob = pool.joined(meeting, "bob")
        ada.send("/call bob pattern")
        ada.expect("call_ringing")
        assert bob.expect("call_incoming")["peer"] == "ada"
        bob.send("/answer tone")
        assert ada.expect("call_path", timeout=20)["path"] == "direct"
        assert bob.expect("call_path", timeout=20)["path"] == "direct"
        ada.expect("track_stats", lambda e: e["name"] == "bob" and e["kind"] == "audio" and has_frames(e))
        bob.expect("track_stats", lambda e: e["name"] == "ada" and e["kind"] == "video" and has_frames(e))
        bob.send("/hangup")
        assert ada.expect("call_ended")["reason"] == "hangup"
        bob.send("still in the meeting")
        ada.expect("chat", lambda e: e["text"] == "still in the meeting")
        ada.send("/call zed")
        assert ada.expect("error")["code"] == "unknown_peer"
    finally:
        pool.stop_all()
