"""Many servers as one, end to end: real `conf server --cluster` nodes on a real Redis or NATS
(conf_cli.testing.directories), real clients. The nodes share the tests' CONF_HOME, hence one identity
key, as a cluster's nodes do (docs/cluster.md)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conf_cli.server.directory import CLAIM_TTL, NODE_TTL, REFRESH_INTERVAL
from conf_cli.testing.directories import start_directory, start_redis
from conf_cli.testing.netns import NetLab, netns_unavailable
from conf_cli.testing.processes import (
    ConfProcess,
    chat_from,
    has_packets,
    run_conf,
    start_server,
)
from tests.helpers.cluster import PASSCODE, SETTLE, SMALL, Cluster, node_names


@pytest.fixture(params=["redis", "nats"])
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    made = Cluster(start_directory(request.param))
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(params=[("redis", "tcp"), ("nats", "tcp"), ("redis", "zmq")], ids=lambda p: "-".join(p))
def any_cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A directory of either kind, and nodes listening on one transport."""
    kind, transport = request.param
    made = Cluster(start_directory(kind), transport)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def redis_cluster() -> Iterator[Cluster]:
    made = Cluster(start_directory("redis"))
    try:
        yield made
    finally:
        made.close()


def test_meeting_created_via_a_and_joined_via_b_and_c_carries_media_and_chat_among_everyone(
    any_cluster: Cluster,
) -> None:
    cluster = any_cluster
    cluster.start("a", "b", "c")
    cluster.wait_status(lambda s: node_names(s) == {"a", "b", "c"}, timeout=15)
    ada = cluster.client("a", "Ada")
    meeting = ada.expect("meeting_created")["meeting"]
    ada.expect("joined")

    # Bob shares a tone through node b, Cy a picture through node c: each is sent on to node a.
    bob = cluster.share("b", meeting, "Bob", "tone")
    redirect = bob.expect("redirect")
    assert redirect["re"] == "join" and redirect["node"] == "a" and redirect["meeting"] == meeting
    assert redirect["url"] == cluster.url("a")
    assert redirect["fingerprint"].startswith("SHA256:")
    bob.expect("joined")
    cy = cluster.share("c", meeting, "Cy", "pattern", *SMALL)
    assert cy.expect("redirect")["node"] == "a"
    cy.expect("joined")

    # Media among everyone: each hears or sees the others' tracks.
    ada.expect("track_stats", has_packets("audio"), timeout=20)
    ada.expect("track_stats", has_packets("video"), timeout=20)
    bob.expect("track_stats", has_packets("video"), timeout=20)
    cy.expect("track_stats", has_packets("audio"), timeout=20)

    # Chat among everyone.
    bob.send("hello from b")
    ada.expect("chat", chat_from("Bob", "hello from b"))
    cy.expect("chat", chat_from("Bob", "hello from b"))
    cy.send("hello from c")
    ada.expect("chat", chat_from("Cy", "hello from c"))
    bob.expect("chat", chat_from("Cy", "hello from c"))
    ada.send("hello from a")
    bob.expect("chat", chat_from("Ada", "hello from a"))
    cy.expect("chat", chat_from("Ada", "hello from a"))

    # The meeting's one holder, and server_stats names each node.
    status = cluster.status()
    assert status["meetings"] == {meeting: "a"}


def test_cluster_status_shows_the_nodes_their_urls_and_the_meeting(cluster: Cluster) -> None:
    cluster.start("a", "b")
    url_a, url_b = cluster.url("a"), cluster.url("b")
    cluster.wait_status(lambda s: node_names(s) == {"a", "b"}, timeout=15)
    ada = cluster.client("b", "Ada")
    meeting = ada.expect("meeting_created")["meeting"]  # node b has room: the meeting stays on b
    assert not [e for e in ada.seen if e.get("type") == "redirect"]
    ada.expect("joined")
    status = cluster.wait_status(lambda s: s["meetings"] == {meeting: "b"}, timeout=10)
    by_name = {node["name"]: node for node in status["nodes"]}
    assert by_name["a"]["urls"] == [url_a] and by_name["b"]["urls"] == [url_b]
    assert by_name["b"]["meetings"] == [meeting] and by_name["a"]["meetings"] == []
    assert by_name["a"]["fingerprint"] == by_name["b"]["fingerprint"]  # one identity for the cluster
    status = cluster.wait_status(lambda s: any(n["participants"] == 1 for n in s["nodes"]), timeout=10)
    assert {n["name"]: n["participants"] for n in status["nodes"]} == {"a": 0, "b": 1}

    text = run_conf("cluster", "status", "--cluster", cluster.directory.url)
    assert text.returncode == 0, text.stderr
    assert "2 node(s), 1 meeting(s)" in text.stdout
    assert f"urls: {url_a}" in text.stdout and f"meetings: {meeting}" in text.stdout


def test_server_stats_names_the_node(redis_cluster: Cluster) -> None:
    process, _ = start_server(
        "--cluster", redis_cluster.directory.url, "--node", "n1", "--stats-interval", "0.5"
    )
    redis_cluster.nodes["n1"] = (process, "")
    stats = process.expect("server_stats", lambda e: e.get("cluster", {}).get("refreshes", 0) > 0)
    assert stats["node"] == "n1"
    assert stats["cluster"]["directory"] == redis_cluster.directory.url
    assert stats["cluster"]["reachable"] is True and stats["cluster"]["nodes"] == ["n1"]


def test_a_meeting_of_a_full_node_is_placed_on_the_least_loaded_one(redis_cluster: Cluster) -> None:
    """Node a takes one participant: the second create through a goes to b, the least-loaded node."""
    redis_cluster.node("a", "--capacity", "1")
    redis_cluster.node("b")
    redis_cluster.node("c", "--capacity", "2")
    redis_cluster.wait_status(lambda s: len(s["nodes"]) == 3, timeout=15)
    first = redis_cluster.client("a", "Ada")
    first.expect("joined")
    redis_cluster.wait_status(lambda s: any(n["participants"] == 1 for n in s["nodes"]), timeout=10)
    # b and c are both idle; c is made half full (one of two) so that b is the least loaded.
    busy = redis_cluster.client("c", "Cy")
    busy.expect("joined")
    redis_cluster.wait_status(lambda s: sum(n["participants"] for n in s["nodes"]) == 2, timeout=10)
    # a places by its own view of the others' records, read every REFRESH_INTERVAL: until it has read c's
    # new one, c looks idle too, and the two idle nodes' CPU readings (hundredths) would decide
    time.sleep(2 * REFRESH_INTERVAL + 0.5)
    second = redis_cluster.client("a", "Bob")
    redirect = second.expect("redirect")
    assert redirect["re"] == "create" and redirect["node"] == "b" and "meeting" not in redirect
    meeting = second.expect("meeting_created")["meeting"]
    second.expect("joined")
    assert redis_cluster.status()["meetings"][meeting] == "b"


def test_a_killed_node_disappears_within_its_ttl_and_its_meeting_is_taken_over_by_another(
    redis_cluster: Cluster,
) -> None:
    """SIGKILL of a node: its record lapses by its TTL, and its meeting, whose claim lapsed too, is taken
    over by the other node when its participant comes back (tests/integration/test_failover.py has the
    whole of failover)."""
    ada, meeting = redis_cluster.two_nodes_and_a_meeting(read=True)  # a's welcome names b
    redis_cluster.wait_status(lambda s: s["meetings"] == {meeting: "a"}, timeout=10)

    os.kill(redis_cluster.nodes["a"][0].pid, signal.SIGKILL)
    killed = time.monotonic()
    redis_cluster.wait_status(lambda s: node_names(s) == {"b"}, timeout=30)
    gone = time.monotonic() - killed
    # Its record lapses by its TTL (generous margin: the machine is loaded).
    assert gone <= NODE_TTL + 6.0, gone
    assert redis_cluster.wait_status(lambda s: s["meetings"] == {meeting: "b"}, timeout=30)
    assert ada.expect("joined", lambda e: e.get("resumed") is True, timeout=30)["role"] == "host"
    assert time.monotonic() - killed <= CLAIM_TTL + 10.0


def test_the_directory_restarted_under_a_running_meeting_the_meeting_goes_on_and_fills_again(
    cluster: Cluster,
) -> None:
    """Redis (or NATS) restarted empty on the same port: the meeting goes on, and within a refresh the
    nodes register again and claim their meetings again."""
    redis_cluster = cluster
    ada, meeting = redis_cluster.two_nodes_and_a_meeting()
    bob = redis_cluster.client("b", "Bob", meeting)
    bob.expect("redirect")
    bob.expect("joined")

    redis_cluster.directory.restart(pause=REFRESH_INTERVAL + 1.0)  # empty, on the same port
    bob.send("still here")
    ada.expect("chat", chat_from("Bob", "still here"))
    status = redis_cluster.wait_status(
        lambda s: node_names(s) == {"a", "b"} and s["meetings"] == {meeting: "a"}, timeout=20
    )
    assert {n["name"]: n["meetings"] for n in status["nodes"]} == {"a": [meeting], "b": []}
    # A join through b works again: the directory knows the meeting's holder again.
    cy = redis_cluster.client("b", "Cy", meeting)
    cy.expect("joined")
    ada.expect("participant_joined", lambda e: e["name"] == "Cy")


def test_while_the_directory_is_down_creates_are_refused_clearly_and_running_meetings_go_on(
    cluster: Cluster,
) -> None:
    redis_cluster = cluster
    ada, meeting = redis_cluster.two_nodes_and_a_meeting()
    redis_cluster.directory.stop()

    refused = run_conf("create", "--json", "--server", redis_cluster.url("a"), "--name", "Eve", timeout=30)
    assert refused.returncode != 0
    assert "cluster's directory" in refused.stderr and "cannot be reached" in refused.stderr, refused.stderr
    # A join through a node that does not hold the meeting needs the directory too ...
    lost = run_conf(
        "join",
        meeting,
        "--json",
        "--server",
        redis_cluster.url("b"),
        "--name",
        "Bo",
        "--passcode",
        PASSCODE,
        timeout=30,
    )
    assert lost.returncode != 0 and "cannot be reached" in lost.stderr, lost.stderr
    # ... but the node holding it takes joins, and the meeting goes on.
    bob = redis_cluster.client("a", "Bob", meeting)
    bob.expect("joined")
    bob.send("no directory needed")
    ada.expect("chat", chat_from("Bob", "no directory needed"))


def test_a_redirect_to_a_node_presenting_another_key_is_refused(
    redis_cluster: Cluster, tmp_path: Path
) -> None:
    """A man in the middle: the directory sends clients of a meeting to an address where a server with
    a key of its own answers. The redirect came over the authenticated link and names the cluster's key,
    so the client refuses the impostor and never sends it the passcode."""
    redis_cluster.node("b")
    impostor, impostor_url = start_server(
        "--identity", str(tmp_path / "other.key"), "--stats-interval", "0.5"
    )
    redis_cluster.nodes["impostor"] = (impostor, impostor_url)
    real = redis_cluster.wait_status(lambda s: node_names(s) == {"b"}, timeout=15)["nodes"][0]
    # A node record and a claim pointing at the impostor, under the real key.
    redis_cluster.plant("z", [impostor_url], real["fingerprint"], "abc-defg-hij")
    redis_cluster.reads("b", "z")
    victim = redis_cluster.client("b", "Vic", "abc-defg-hij")
    assert victim.wait(30) != 0
    stderr = "\n".join(victim.stderr_lines)
    assert f"the server at {impostor_url} presented key" in stderr, stderr
    assert f"not {real['fingerprint']} that the redirect to node z named: refusing" in stderr, stderr
    impostor.expect("server_stats")
    time.sleep(1.0)
    stats = impostor.latest("server_stats")
    assert stats["hub"]["passcode_checks"] == 0 and stats["hub"]["meetings"] == 0


def test_a_redirect_loop_is_a_clear_error(redis_cluster: Cluster) -> None:
    """A directory that names, as a meeting's holder, a node whose URL is the node asked: the client is
    sent back to where it was, sees the loop, and stops with an error instead of going round."""
    url_b = redis_cluster.node("b")
    real = redis_cluster.wait_status(lambda s: node_names(s) == {"b"}, timeout=15)["nodes"][0]
    redis_cluster.plant("y", [url_b], real["fingerprint"], "lup-lupl-upl")
    redis_cluster.reads("b", "y")
    looping = redis_cluster.client("b", "Lou", "lup-lupl-upl")
    assert looping.wait(30) != 0
    stderr = "\n".join(looping.stderr_lines)
    assert "a loop between its nodes" in stderr, stderr


@pytest.mark.skipif(netns_unavailable() is not None, reason=str(netns_unavailable()))
def test_nodes_each_in_its_own_network_namespace_and_address() -> None:
    """Nodes a, b and c each in a namespace of its own (10.77.N.2, the same port on each), Redis and the
    clients in others, routed through one router: the redirects name each node's own address."""
    with NetLab() as lab:
        router = lab.ns("r")
        lab.forward(router)
        spaces: dict[str, str] = {}
        for n, name in enumerate(("a", "b", "c", "cl", "dir"), start=1):
            spaces[name] = lab.ns(name)
            lab.link(router, f"r{n}", f"10.77.{n}.1/24", spaces[name], "eth0", f"10.77.{n}.2/24")
            lab.route(spaces[name], "default", "via", f"10.77.{n}.1")
        redis = start_redis("10.77.5.2", prefix=lab.inside(spaces["dir"]), port=6379)
        try:
            urls = {}
            for n, name in enumerate("abc", start=1):
                server = lab.conf(
                    spaces[name],
                    [
                        "server",
                        "--json",
                        "--host",
                        f"10.77.{n}.2",
                        "--port",
                        "7450",
                        "--transport",
                        "tcp",
                        "--cluster",
                        redis.url,
                        "--node",
                        name,
                    ],
                )
                urls[name] = server.expect("server_started")["urls"][0]
            assert urls == {name: f"tcp://10.77.{n}.2:7450" for n, name in enumerate("abc", start=1)}
            time.sleep(SETTLE)

            def client(node: str, name: str, *args: str) -> ConfProcess:
                return lab.conf(
                    spaces["cl"],
                    [*args, "--json", "--server", urls[node], "--name", name, "--passcode", PASSCODE],
                )

            ada = client("a", "Ada", "create")
            meeting = ada.expect("meeting_created")["meeting"]
            ada.expect("joined")
            bob = client("b", "Bob", "share", "tone", "--meeting", meeting)
            assert bob.expect("redirect")["url"] == urls["a"]
            bob.expect("joined")
            cy = client("c", "Cy", "join", meeting)
            assert cy.expect("redirect")["url"] == urls["a"]
            cy.expect("joined")
            ada.expect("track_stats", has_packets("audio"), timeout=20)
            cy.expect("track_stats", has_packets("audio"), timeout=20)
            cy.send("across namespaces")
            ada.expect("chat", chat_from("Cy", "across namespaces"))
            bob.expect("chat", chat_from("Cy", "across namespaces"))
        finally:
            redis.close()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--cluster", "redis://127.0.0.1:1/0"], "--cluster needs --node NAME"),
        (["--node", "a"], "--node and --advertise go with --cluster URL"),
        (["--cluster", "etcd://127.0.0.1:1", "--node", "a"], "no cluster backend for 'etcd://127.0.0.1:1'"),
        (["--cluster", "redis://127.0.0.1:1/0", "--node", "eu.1"], "bad --node 'eu.1'"),
        (["--cluster", "redis://127.0.0.1:1/0", "--node", "a", "--advertise", "host:1"], "bad --advertise"),
    ],
)
def test_bad_cluster_options_are_one_clear_line(args: list[str], words: str) -> None:
    done = run_conf("server", "--port", "0", *args, timeout=30)
    assert done.returncode != 0
    assert words in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_cluster_status_of_a_directory_that_is_not_there_is_one_clear_line() -> None:
    from conf_cli.testing.directories import free_port

    done = run_conf("cluster", "status", "--cluster", f"redis://127.0.0.1:{free_port()}/0", timeout=30)
    assert done.returncode == 1
    assert "cannot be reached" in done.stderr and "Traceback" not in done.stderr, done.stderr
