"""Cascading, end to end: one meeting over several real `conf server --cluster` nodes on a real Redis.
The meeting's holder decides everything; the other nodes carry their participants to it over one node
link each (conf_cli.server.cascade, docs/cluster.md "Cascading"). Nodes are told to cascade every join
of a meeting held elsewhere (``--cascade always``), as a full holder would make them."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import pytest

from conf_cli.protocol.framing import FrameDecoder, frame
from conf_cli.testing.directories import start_directory
from tests.integration.test_cluster import SMALL, Cluster, chat_from, has_packets, node_names

STATS = ("--stats-interval", "0.5")


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    made = Cluster(start_directory("redis"))
    try:
        yield made
    finally:
        made.close()


def three_nodes(cluster: Cluster) -> None:
    for name in "abc":
        cluster.node(name, "--cascade", "always", *STATS)
    cluster.wait_status(lambda s: node_names(s) == {"a", "b", "c"}, timeout=15)


def node_stats(cluster: Cluster, name: str, where: Any = None, timeout: float = 20) -> dict[str, Any]:
    process = cluster.nodes[name][0]
    return process.expect("server_stats", where, timeout=timeout)


def test_a_meeting_spans_three_nodes_and_carries_media_chat_and_a_hosts_commands(cluster: Cluster) -> None:
    three_nodes(cluster)
    ada = cluster.client("a", "Ada")
    meeting = ada.expect("meeting_created")["meeting"]
    ada.expect("joined")

    # Bob shares a tone through node b, Cy a picture through node c: both stay on their nodes.
    bob = cluster.share("b", meeting, "Bob", "tone")
    bob.expect("joined")
    cy = cluster.share("c", meeting, "Cy", "pattern", *SMALL)
    cy.expect("joined")
    dan = cluster.client("c", "Dan", meeting)
    dan.expect("joined")
    for process in (bob, cy, dan):
        assert not [e for e in process.seen if e.get("type") == "redirect"]

    # Media among everyone, across node links both ways.
    ada.expect("track_stats", has_packets("audio"), timeout=20)
    ada.expect("track_stats", has_packets("video"), timeout=20)
    bob.expect("track_stats", has_packets("video"), timeout=20)
    cy.expect("track_stats", has_packets("audio"), timeout=20)
    dan.expect("track_stats", has_packets("audio"), timeout=20)
    dan.expect("track_stats", has_packets("video"), timeout=20)

    # Chat among everyone, in one order (the holder's).
    dan.send("hello from c")
    ada.expect("chat", chat_from("Dan", "hello from c"))
    bob.expect("chat", chat_from("Dan", "hello from c"))
    cy.expect("chat", chat_from("Dan", "hello from c"))
    ada.send("hello from a")
    dan.expect("chat", chat_from("Ada", "hello from a"))
    bob.expect("chat", chat_from("Ada", "hello from a"))

    # Roles: the host on a forbids Dan (on c) to chat, then removes him; the holder enforces both.
    assert next(p["role"] for p in ada.seen if p.get("type") == "joined") == "host"
    ada.send("/forbid chat Dan")
    dan.expect("permission_changed", lambda e: e.get("name") == "Dan", timeout=15)
    dan.send("may I?")
    assert dan.expect("error", timeout=15)["code"] == "forbidden"
    ada.send("/kick Dan")
    dan.expect("kicked", timeout=15)
    assert dan.wait() == 3
    ada.expect("participant_left", lambda e: e.get("name") == "Dan" and e.get("reason") == "kicked")
    bob.expect("participant_left", lambda e: e.get("name") == "Dan" and e.get("reason") == "kicked")

    # One node link each from b and c into a; the meeting is a's alone.
    stats = node_stats(cluster, "a", lambda e: set(e.get("cascade", {}).get("links_in", {})) == {"b", "c"})
    assert stats["cascade"]["links_in"]["b"]["packets_in"] > 0  # Bob's tone went up once
    assert cluster.status()["meetings"] == {meeting: "a"}


def test_a_client_that_claims_to_be_a_node_link_is_refused(cluster: Cluster) -> None:
    cluster.node("a", "--cascade", "always", *STATS)
    cluster.wait_status(lambda s: node_names(s) == {"a"}, timeout=15)
    host, port = cluster.url("a").removeprefix("tcp://").rsplit(":", 1)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, int(port)), timeout=10) as raw, context.wrap_socket(raw) as sock:
        sock.sendall(frame(json.dumps({"node": "hello", "name": "b"}).encode()))
        challenge = _read_control(sock)
        assert challenge["node"] == "challenge" and len(challenge["nonce"]) == 64
        # Without the cluster's key it can only guess the answer: refused, the link closed.
        sock.sendall(frame(json.dumps({"node": "auth", "mac": "00" * 32}).encode()))
        sock.settimeout(10)
        assert _drained(sock), "the node claiming to be a node link was not disconnected"
    stats = node_stats(cluster, "a", lambda e: e.get("cascade", {}).get("refused", 0) >= 1)
    assert stats["cascade"]["links_in"] == {}


def _read_control(sock: ssl.SSLSocket) -> dict[str, Any]:
    decoder = FrameDecoder()
    while True:
        data = sock.recv(65536)
        assert data, "closed before answering"
        for payload in decoder.feed(data):
            if payload.startswith(b"{"):
                message = json.loads(payload)
                if "node" in message:
                    return dict(message)


def _drained(sock: ssl.SSLSocket) -> bool:
    """True once the server closes the link (whatever it still sends first)."""
    try:
        while sock.recv(65536):
            pass
    except (ConnectionError, ssl.SSLError):
        return True
    except TimeoutError:
        return False
    return True
