"""Cascading, end to end: one meeting over several real `conf server --cluster` nodes on a real Redis.
The meeting's holder decides everything; the other nodes carry their participants to it over one node
link each (conf_cli.server.cascade, docs/cluster.md "Cascading"). Nodes are told to cascade every join
of a meeting held elsewhere (``--cascade always``), as a full holder would make them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any

import pytest

from conf_cli.bench.links import client_options
from conf_cli.bench.packets import PacketMaker
from conf_cli.client.link import Client
from conf_cli.plugin.registry import registry
from conf_cli.protocol.control import PROTOCOL_VERSION
from conf_cli.protocol.framing import FrameDecoder, frame
from conf_cli.protocol.rtp import is_rtcp
from conf_cli.testing.directories import start_directory
from conf_cli.testing.processes import chat_from, has_packets
from conf_cli.urls import parse_server_url
from tests.helpers.cluster import PASSCODE, SETTLE, SMALL, Cluster, node_names


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    made = Cluster(start_directory("redis"))
    try:
        yield made
    finally:
        made.close()


def three_nodes(cluster: Cluster) -> None:
    cluster.start("a", "b", "c", extra=("--cascade", "always"))
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
    cluster.node("a", "--cascade", "always")
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
    # A participant who said hello cannot turn its link into a node link either.
    with socket.create_connection((host, int(port)), timeout=10) as raw, context.wrap_socket(raw) as sock:
        sock.sendall(frame(json.dumps({"type": "hello", "protocol": PROTOCOL_VERSION}).encode()))
        sock.sendall(frame(json.dumps({"node": "hello", "name": "b"}).encode()))
        sock.settimeout(10)
        assert _drained(sock), "a participant that said hello then claimed to be a node was not disconnected"
    stats = node_stats(cluster, "a", lambda e: e.get("cascade", {}).get("refused", 0) >= 2)
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


PER_NODE = 10
PACKETS = 300
"""Packets each of the three publishers sends (one per node), at :data:`RATE` a second."""
RATE = 100.0


class _Participant:
    """A light participant: an in-process client over a real TLS link, counting what it receives."""

    def __init__(self, url: str, fingerprint: str, name: str) -> None:
        self.client = Client(registry(), parse_server_url(url), client_options(url, "on", fingerprint, 15.0))
        self.name = name
        self.received: dict[int, int] = {}
        self.client.media_handler = self._count

    def _count(self, packet: bytes) -> None:
        if len(packet) >= 12 and not is_rtcp(packet):
            ssrc = int.from_bytes(packet[8:12], "big")
            self.received[ssrc] = self.received.get(ssrc, 0) + 1


def test_thirty_participants_over_three_nodes_get_each_track_once_per_node_pair(cluster: Cluster) -> None:
    three_nodes(cluster)
    fingerprint = cluster.status()["nodes"][0]["fingerprint"]
    publishers = {"a": 0x1000A, "b": 0x1000B, "c": 0x1000C}

    async def scenario() -> tuple[dict[str, list[_Participant]], dict[str, Any]]:
        people: dict[str, list[_Participant]] = {}
        host = _Participant(cluster.url("a"), fingerprint, "host")
        await host.client.connect()
        meeting = (await host.client.create("host", PASSCODE))[0]["meeting"]
        people["a"] = [host]
        for node in "abc":
            for n in range(PER_NODE - (node == "a")):
                person = _Participant(cluster.url(node), fingerprint, f"{node}{n}")
                await person.client.connect()
                await person.client.join(meeting, person.name, PASSCODE)
                people.setdefault(node, []).append(person)
        for node, ssrc in publishers.items():
            client = people[node][-1].client
            client.send({"type": "publish", "kind": "video", "ssrc": ssrc, "codec": "H264"})
        await asyncio.sleep(2.0)  # every share_started is out
        makers = {node: PacketMaker(ssrc, 200) for node, ssrc in publishers.items()}
        for _ in range(PACKETS):
            for node, maker in makers.items():
                link = people[node][-1].client.link
                assert link is not None
                link.send_media(maker.make(time.monotonic_ns()))
            await asyncio.sleep(1 / RATE)
        await asyncio.sleep(2.0)  # the last packets arrive
        loop = asyncio.get_running_loop()
        stats = await loop.run_in_executor(None, lambda: node_stats(cluster, "a", all_up))
        for group in people.values():
            for person in group:
                await person.client.close()
        return people, stats

    def all_up(event: dict[str, Any]) -> bool:
        """Stats taken after both other nodes' tracks went up to a."""
        links = event.get("cascade", {}).get("links_in", {})
        return all(links.get(node, {}).get("packets_in", 0) >= PACKETS for node in "bc")

    people, stats = asyncio.run(scenario())
    assert sum(len(group) for group in people.values()) == 3 * PER_NODE
    # Everyone received (nearly) every packet of every track but their own.
    for node, group in people.items():
        for person in group:
            for other, ssrc in publishers.items():
                if person is not people[other][-1]:
                    assert person.received.get(ssrc, 0) >= PACKETS * 0.9, (node, person.name, other)
    # Node a (the holder) sent each packet of each track at most once down each node link, though it
    # was for up to ten participants behind it; it got each of b's and c's tracks up once.
    links = stats["cascade"]["links_in"]
    for node in "bc":
        link = links[node]
        assert link["participants"] == PER_NODE
        tracks_packets = PACKETS * len(publishers)
        assert link["packets_out"] <= tracks_packets + 50, link  # + the server's own keyframe requests
        assert link["deliveries_out"] >= (PER_NODE - 1) * PACKETS * len(publishers) * 0.95, link
        assert PACKETS <= link["packets_in"] <= PACKETS + 50, link  # its publisher's track, up once


def test_an_e2ee_meeting_with_a_waiting_room_behaves_across_nodes_as_on_one(cluster: Cluster) -> None:
    three_nodes(cluster)
    ada = cluster.client("a", "Ada", None, "--e2ee", "--waiting-room")
    meeting = ada.expect("meeting_created")["meeting"]
    assert ada.expect("joined")["e2ee"] is True

    # Bob, through node b, waits until the host on a lets him in; only then is he in the meeting.
    bob = cluster.share("b", meeting, "Bob", "pattern", *SMALL)
    assert bob.expect("waiting")["meeting"] == meeting
    ada.expect("waiting_joined", lambda e: e["name"] == "Bob")
    ada.send("/admit Bob")
    assert bob.expect("joined")["e2ee"] is True
    video = bob.expect("publish_started", timeout=20)["ssrc"]
    cy = cluster.share("c", meeting, "Cy", "tone")
    cy.expect("waiting")
    ada.expect("waiting_joined", lambda e: e["name"] == "Cy")
    ada.send("/admit Cy")
    assert cy.expect("joined")["e2ee"] is True
    audio = cy.expect("publish_started", timeout=20)["ssrc"]

    # Everyone agrees on one security code, and the media sealed end to end opens for every member,
    # though it crossed node links (the nodes only carry it).
    everyone = ["Ada", "Bob", "Cy"]
    codes = {
        str(c.latest("security_code", lambda e: e["participants"] == everyone, timeout=20)["code"])
        for c in (ada, bob, cy)
    }
    assert len(codes) == 1
    assert not [e for c in (bob, cy) for e in c.seen if e.get("type") == "redirect"]  # carried, not sent on
    for client, ssrc in ((ada, video), (ada, audio), (cy, video), (bob, audio)):
        stats = client.expect("track_stats", lambda e, s=ssrc: e["ssrc"] == s and e["frames"] > 0, timeout=20)
        assert stats["undecryptable"] == 0 and stats["decode_errors"] == 0


def test_a_join_is_redirected_while_the_holder_has_room_and_carried_once_it_is_full(cluster: Cluster) -> None:
    cluster.node("a", "--capacity", "2")  # full (80 % of its capacity) with two participants
    cluster.node("b")  # --cascade full, the default
    cluster.wait_status(lambda s: node_names(s) == {"a", "b"}, timeout=15)
    ada = cluster.client("a", "Ada")
    meeting = ada.expect("meeting_created")["meeting"]
    ada.expect("joined")
    bob = cluster.client("b", "Bob", meeting)
    assert bob.expect("redirect")["node"] == "a"  # a has room: Bob is sent there
    bob.expect("joined")
    cluster.wait_status(lambda s: {n["name"]: n["participants"] for n in s["nodes"]}["a"] == 2, timeout=10)
    time.sleep(SETTLE)  # node b has read a's record since (it reads the records every 2 s)

    cy = cluster.client("b", "Cy", meeting)  # a is full now: Cy stays on b, carried to a
    cy.expect("joined")
    assert not [e for e in cy.seen if e.get("type") == "redirect"]
    cy.send("hello from b")
    ada.expect("chat", chat_from("Cy", "hello from b"))
    bob.expect("chat", chat_from("Cy", "hello from b"))
    stats = node_stats(cluster, "a", lambda e: "b" in e.get("cascade", {}).get("links_in", {}))
    assert stats["cascade"]["links_in"]["b"]["participants"] == 1
    assert stats["hub"]["redirects"] == 0  # the holder itself sent nobody anywhere
    # Cy counts in b's load (b carries her) as in a's (a's meeting has her).
    status = cluster.wait_status(
        lambda s: {n["name"]: n["participants"] for n in s["nodes"]} == {"a": 3, "b": 1}, timeout=10
    )
    assert status["meetings"] == {meeting: "a"}

    # Node b dies: its node link drops, and Cy's client takes her seat back on its own (with her resume
    # token, at a node its welcome listed), quietly: the others see no leave, and she chats on.
    os.kill(cluster.nodes["b"][0].pid, signal.SIGKILL)
    back = cy.expect("joined", lambda e: e.get("resumed") is True, timeout=15)
    assert back["meeting"] == meeting and back["role"] == "member"
    cy.send("back again")
    ada.expect("chat", chat_from("Cy", "back again"))
    bob.expect("chat", chat_from("Cy", "back again"))
    assert not [e for e in ada.seen if e.get("type") == "participant_left" and e.get("name") == "Cy"]


def test_a_holder_that_stops_answering_has_its_meeting_taken_over_and_everyone_resumes(
    cluster: Cluster,
) -> None:
    """Node a, holding the meeting, hangs (SIGSTOP: its sockets stay open, it answers nothing). Its claim
    lapses, and the meeting is taken over from its record: Cy (carried by b) and Ada (on a) come back into
    it on their own, with their roles, and chat flows again."""
    cluster.start("a", "b", extra=("--cascade", "always"))
    cluster.wait_status(lambda s: node_names(s) == {"a", "b"}, timeout=15)
    cluster.reads("a", "b")  # so that Ada's welcome lists b, where she goes once a hangs
    ada = cluster.client("a", "Ada")
    meeting = ada.expect("meeting_created")["meeting"]
    cy = cluster.client("b", "Cy", meeting)
    cy.expect("joined")
    holder = cluster.nodes["a"][0].pid
    os.kill(holder, signal.SIGSTOP)  # a hangs: its sockets stay open, it answers nothing
    try:
        for client, name, role in ((cy, "Cy", "member"), (ada, "Ada", "host")):
            back = client.expect("joined", lambda e: e.get("resumed") is True, timeout=30)
            assert (back["meeting"], back["name"], back["role"]) == (meeting, name, role)
        cy.send("after the hang")
        ada.expect("chat", chat_from("Cy", "after the hang"), timeout=15)
        cluster.wait_status(lambda s: s["meetings"].get(meeting) == "b", timeout=15)
    finally:
        os.kill(holder, signal.SIGCONT)
