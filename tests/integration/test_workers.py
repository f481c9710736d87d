"""`conf server --workers 2`: two worker processes, nodes of one local cluster whose directory the parent
keeps. Meetings are placed on both, a join reaching a worker that does not hold the meeting is
redirected, media and chat flow, a killed worker is restarted, and the parent relays nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conf_cli.testing.directories import start_redis
from conf_cli.testing.processes import (
    ClientPool,
    chat_from,
    conf_command,
    has_packets,
    run_conf,
    spawn,
    start_server,
    start_thread_loop,
)
from conf_cli.testing.processes import test_home as conf_home
from conf_cli.testing.webhooks import Receiver, wait_for

PASSCODE = "workers-pass-1"
SMALL = ("--width", "320", "--height", "240", "--fps", "10")


class Workers(ClientPool):
    """`conf server --workers 2` and the clients started against it (at its public URL unless a call names
    a worker's), all stopped by process ID."""

    def __init__(self, transport: str, *extra: str, env: dict[str, str] | None = None) -> None:
        self.transport = transport
        self.server, url = start_server(
            "--workers", "2", "--stats-interval", "0.5", *extra, transport=transport, env=env, timeout=60
        )
        super().__init__(url, PASSCODE, env=env)
        started = self.server.latest("server_started")
        self.pids: list[int] = started["workers"]
        self.nodes: list[str] = started["nodes"]

    def stats(
        self, ok: Callable[[dict[str, Any]], bool] = lambda e: True, timeout: float = 20
    ) -> dict[str, Any]:
        return self.server.expect("server_stats", ok, timeout=timeout)

    def worker_urls(self) -> dict[str, str]:
        stats = self.stats(lambda e: all(w["urls"] for w in e["workers"]))
        return {w["node"]: w["urls"][0] for w in stats["workers"]}

    def close(self) -> None:
        self.stop_all()
        self.server.stop()


@pytest.fixture(params=["tcp", "zmq", "rtp"])
def workers(request: pytest.FixtureRequest) -> Iterator[Workers]:
    made = Workers(request.param)
    try:
        yield made
    finally:
        made.close()


def test_meetings_land_on_both_workers_and_a_join_through_the_other_is_redirected_and_works(
    workers: Workers,
) -> None:
    assert workers.nodes == ["worker-1", "worker-2"]
    urls = workers.worker_urls()
    assert set(urls) == {"worker-1", "worker-2"}
    assert all(url.startswith(f"{workers.transport}://") for url in urls.values())
    assert workers.url not in urls.values()  # each worker listens on ports of its own

    # Two meetings created through the public URL: the parent places one on each worker.
    ada = workers.client("Ada")
    bob = workers.client("Bob")
    placed: dict[str, str] = {}
    created: list[str] = []
    for client in (ada, bob):
        redirect = client.expect("redirect")
        assert redirect["re"] == "create" and redirect["url"] == urls[redirect["node"]]
        assert redirect["fingerprint"].startswith("SHA256:")
        created.append(client.expect("meeting_created")["meeting"])
        placed[created[-1]] = redirect["node"]
        client.expect("joined")
    assert set(placed.values()) == {"worker-1", "worker-2"}

    # server_stats names each worker node and the meeting it holds.
    def both_held(event: dict[str, Any]) -> bool:
        return {w["node"]: w["meetings"] for w in event["workers"]} == {
            node: [meeting] for meeting, node in placed.items()
        }

    stats = workers.stats(both_held)
    assert [w["pid"] for w in stats["workers"]] == workers.pids and workers.server.pid not in workers.pids

    # Joins through the worker that does not hold Ada's meeting, and through the public URL.
    first = created[0]
    holder = placed[first]
    other = next(node for node in urls if node != holder)
    cy = workers.share(first, "Cy", "tone", url=urls[other])
    redirect = cy.expect("redirect")
    assert redirect == {**redirect, "re": "join", "node": holder, "meeting": first, "url": urls[holder]}
    cy.expect("joined")
    dee = workers.share(first, "Dee", "pattern", *SMALL)
    assert dee.expect("redirect")["node"] == holder
    dee.expect("joined")

    ada.expect("track_stats", has_packets("audio"), timeout=30)
    ada.expect("track_stats", has_packets("video"), timeout=30)
    cy.expect("track_stats", has_packets("video"), timeout=30)
    cy.send("hello from the other worker")
    ada.expect("chat", chat_from("Cy", "hello from the other worker"))
    dee.expect("chat", chat_from("Cy", "hello from the other worker"))
    ada.send("hello back")
    cy.expect("chat", chat_from("Ada", "hello back"))

    # The parent only answered hellos and sent redirects: no media reached it, and the few bytes it
    # saw are handshakes and requests (media has flowed through the worker meanwhile).
    stats = workers.stats(lambda e: e["hub"]["redirects"] >= 3)
    assert stats["hub"]["redirects"] == 3 and stats["hub"]["meetings"] == 0
    traffic = stats["front"]["traffic"][workers.transport]
    assert traffic["media_in"] == 0 and traffic["media_out"] == 0
    assert traffic["bytes_in"] < 40_000, traffic


@pytest.mark.parametrize("transport", ["tcp", "zmq", "rtp"])
def test_a_killed_worker_is_restarted_and_takes_meetings_again(transport: str) -> None:
    workers = Workers(transport)
    try:
        stats = workers.stats(lambda e: all(w["urls"] for w in e["workers"]))
        victim = stats["workers"][0]
        os.kill(victim["pid"], signal.SIGKILL)  # by process ID: the worker the server reported

        def restarted(event: dict[str, Any]) -> bool:
            worker = event["workers"][0]
            return worker["restarts"] == 1 and worker["pid"] != victim["pid"] and bool(worker["urls"])

        after = workers.stats(restarted, timeout=60)
        assert after["workers"][0]["node"] == victim["node"]
        assert after["workers"][1]["pid"] == stats["workers"][1]["pid"]  # the other one ran on
        assert after["workers"][0]["pid"] not in workers.pids
        warned = [line for line in workers.server.stderr_lines if "restarting it" in line]
        assert warned and victim["node"] in warned[0] and "resume" in warned[0]

        # Both workers take meetings again (the restarted one on its new port, once the parent has read
        # its new record).
        def listed(event: dict[str, Any]) -> bool:
            return event["workers"][0]["listed"] == after["workers"][0]["urls"]

        workers.stats(listed, timeout=20)
        nodes = set()
        for name in ("Ada", "Bob"):
            client = workers.client(name)
            nodes.add(client.expect("redirect")["node"])
            client.expect("joined")
        assert nodes == {"worker-1", "worker-2"}
    finally:
        workers.close()


def test_a_killed_workers_meeting_goes_on_its_people_resume_as_themselves() -> None:
    """SIGKILL of the worker holding a meeting: its record is in the parent's directory, so the host and a
    member come back into it on their own (to the other worker or the restarted one), with their roles,
    within 10 s, and chat flows again."""
    workers = Workers("tcp")
    try:
        # A welcome lists the other live nodes a worker knows; a worker reads the others' records every
        # second, so the clients come once both are listed and a second has passed.
        workers.stats(lambda e: all(w["listed"] for w in e["workers"]))
        time.sleep(2.0)
        host = workers.client("Ada")
        holder = host.expect("redirect")["node"]
        meeting = host.expect("meeting_created")["meeting"]
        host.expect("joined")
        member = workers.client("Bob", meeting)
        member.expect("joined")
        stats = workers.stats(lambda e: all(w["urls"] for w in e["workers"]))
        victim = next(w for w in stats["workers"] if w["node"] == holder)
        os.kill(victim["pid"], signal.SIGKILL)  # by process ID: the worker the server reported
        back = {}
        for name, client in (("Ada", host), ("Bob", member)):
            back[name] = client.expect("joined", lambda e: e.get("resumed") is True, timeout=10)
            assert back[name]["meeting"] == meeting and back[name]["name"] == name
        assert back["Ada"]["role"] == "host" and back["Bob"]["role"] == "member"
        member.send("back again")
        host.expect("chat", chat_from("Bob", "back again"), timeout=10)
    finally:
        workers.close()


def test_a_join_for_a_meeting_no_worker_holds_is_refused_with_the_usual_error() -> None:
    workers = Workers("tcp")
    try:
        refused = run_conf(
            "join", "abc-defg-hij", "--json", "--server", workers.url, "--name", "eve", "--passcode", "x"
        )
        assert refused.returncode == 1 and "no meeting" in refused.stderr
    finally:
        workers.close()


def test_the_parents_admin_api_acts_on_each_workers_meetings(tmp_path: Path) -> None:
    """--workers 2 --admin-port: `conf admin` reaches the parent, which routes each meeting's request to
    the worker holding it; lists every worker's meetings; creates on a worker; records on it, at most
    --max-recordings meetings at once over all the workers (not that many on each)."""
    workers = Workers("tcp", "--admin-port", "0", "--max-recordings", "1")
    try:
        admin = workers.server.latest("server_started")["admin"]
        home = Path(os.environ.get("CONF_HOME") or conf_home()) / "server"
        assert (home / "admin.url").read_text().strip() == admin  # the parent's, not a worker's

        def conf_admin(*args: str, ok: bool = True) -> Any:
            done = run_conf("admin", "--json", *args, timeout=90)
            assert (done.returncode == 0) == ok, done.stderr
            return json.loads(done.stdout) if ok else done.stderr

        ada = workers.client("Ada")
        bob = workers.client("Bob")
        nodes, meetings = set(), {}
        for client, name in ((ada, "Ada"), (bob, "Bob")):
            nodes.add(client.expect("redirect")["node"])
            meetings[name] = client.expect("meeting_created")["meeting"]
            client.expect("joined")
        assert nodes == {"worker-1", "worker-2"}  # one meeting on each worker
        cy = workers.client("Cy", meetings["Bob"])
        cy.expect("joined")

        listed = conf_admin("meetings")["meetings"]
        assert {(m["meeting"], m["host"], m["participants"]) for m in listed} == {
            (meetings["Ada"], "Ada", 1),
            (meetings["Bob"], "Bob", 2),
        }
        # a kick in Bob's meeting: Cy gets what a host's kick sends, by the server admin
        after = conf_admin("kick", meetings["Bob"], "Cy")
        assert [p["name"] for p in after["participants"]] == ["Bob"]
        assert cy.expect("kicked")["by"] == "server admin" and cy.wait() == 3
        conf_admin("lock", meetings["Ada"])
        ada.expect("meeting_locked")
        assert "no meeting 'zzz-zzzz-zzz'" in conf_admin("participants", "zzz-zzzz-zzz", ok=False)

        # a meeting created over the API is on a worker; whoever joins it through the parent is its host
        created = conf_admin("create", "--passcode", PASSCODE)
        dee = workers.client("Dee", created["meeting"])
        assert dee.expect("joined")["role"] == "host"

        # recording runs on the worker holding the meeting, into the one server folder
        started = conf_admin("record", "start", meetings["Bob"])
        bob.expect("recording_started")
        listed = conf_admin("meetings")["meetings"]
        assert {m["meeting"]: m["recording"] for m in listed if m["meeting"] in meetings.values()} == {
            meetings["Ada"]: False,
            meetings["Bob"]: True,
        }
        lines = run_conf("admin", "meetings").stdout.splitlines()  # as a person reads them
        assert [line.endswith("recording") for line in lines if meetings["Bob"] in line] == [True]
        assert [line.endswith("recording") for line in lines if meetings["Ada"] in line] == [False]
        # the one recording the server may run is taken, though Ada's meeting is on the other worker
        refused = conf_admin("record", "start", meetings["Ada"], ok=False)
        assert "(HTTP 503)" in refused and "at most 1 meetings at once (over all its workers)" in refused
        done = conf_admin("record", "stop", meetings["Bob"])
        assert done["file"] == started["file"] and done["reason"] == "stopped"
        assert (home / done["file"]).stat().st_size == done["bytes"] > 0
        conf_admin("unlock", meetings["Ada"])  # (locked above: the recorder joins like anyone)
        conf_admin("record", "start", meetings["Ada"])  # the place is free again
        ada.expect("recording_started")
        assert conf_admin("record", "stop", meetings["Ada"])["reason"] == "stopped"

        # the parent's guard: a wrong key is refused there; a meeting ID that is a path reaches no worker
        guess = tmp_path / "guess.key"
        guess.write_text("x" * 43)
        wrong = run_conf("admin", "--url", admin, "--key-file", str(guess), "meetings")
        assert wrong.returncode == 1 and "(HTTP 401)" in wrong.stderr
        for meeting in ("..", "..%2F..%2Fmeetings", "%2e%2e"):
            assert "(HTTP 404)" in conf_admin("participants", meeting, ok=False)
    finally:
        workers.close()


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (("--advertise", "tcp://127.0.0.1:1"), "--advertise goes with one node"),
        (("--node", "n"), "--node goes with --cluster URL"),
        (("--cluster", "redis://127.0.0.1:1/0"), "--cluster with --workers needs --node NAME"),
    ],
)
def test_what_workers_cannot_serve_is_one_clear_line(options: tuple[str, ...], said: str) -> None:
    done = run_conf("server", "--port", "0", "--workers", "2", *options)
    assert done.returncode == 1 and said in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_with_required_login_each_worker_checks_the_same_accounts(tmp_path: Path) -> None:
    env = {"CONF_HOME": str(tmp_path / "home")}
    added = subprocess.run(
        [*conf_command(), "user", "add", "ada", "--password-stdin"],
        input="pw\n",
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    workers = Workers("tcp", "--require-login", env=env)
    try:
        ada = spawn(
            ["create", "--json", "--server", workers.url, "--user", "ada", "--passcode", PASSCODE],
            {**env, "CONF_PASSWORD": "pw"},
        )
        workers.adopt(ada)
        assert ada.expect("redirect")["re"] == "create"  # logged in at the public port, then again
        assert ada.expect("joined")["name"] == "ada"
        guest = workers.client("eve")
        assert guest.wait(30) != 0
        assert "log in" in " ".join(guest.stderr_lines)
    finally:
        workers.close()


def test_workers_with_a_cluster_are_its_nodes_name_1_to_n() -> None:
    redis = start_redis()
    try:
        workers = Workers("tcp", "--cluster", redis.url, "--node", "eu")
        try:
            assert workers.nodes == ["eu-1", "eu-2"]
            done = run_conf("cluster", "status", "--cluster", redis.url, "--json")
            assert done.returncode == 0, done.stderr
            status = json.loads(done.stdout)
            assert sorted(node["name"] for node in status["nodes"]) == ["eu-1", "eu-2"]  # not the front
            ada = workers.client("Ada")
            node = ada.expect("redirect")["node"]
            meeting = ada.expect("meeting_created")["meeting"]
            done = run_conf("cluster", "status", "--cluster", redis.url, "--json")
            assert json.loads(done.stdout)["meetings"] == {meeting: node}
        finally:
            workers.close()
    finally:
        redis.close()


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    receiver = Receiver()
    loop = start_thread_loop(receiver.up(), "webhook receiver")
    try:
        yield receiver
    finally:
        loop.stop(receiver.down())


def test_each_worker_posts_its_meetings_events_to_the_webhook_signed_with_one_key(hooks: Receiver) -> None:
    workers = Workers("tcp", "--webhook", f"http://127.0.0.1:{hooks.port}/hook")
    try:
        placed = {}
        for name in ("Ada", "Bob"):
            client = workers.client(name)
            node = client.expect("redirect")["node"]
            placed[client.expect("meeting_created")["meeting"]] = node
            client.expect("joined")
        assert set(placed.values()) == {"worker-1", "worker-2"}

        def started() -> set[str]:
            with hooks.lock:
                return {e["meeting"] for e in hooks.events if e["type"] == "meeting_started"}

        wait_for(lambda: started() == set(placed))  # from both workers
        assert hooks.refused == []  # every post verified with the one webhook.key
    finally:
        workers.close()


def test_workers_on_all_addresses_are_reached_at_the_address_the_client_used() -> None:
    workers = Workers("tcp", "--host", "0.0.0.0", "--no-announce")
    try:
        port = workers.url.rsplit(":", 1)[1]
        ada = workers.client("Ada", url=f"tcp://127.0.0.1:{port}")
        redirect = ada.expect("redirect")
        assert redirect["url"].startswith("tcp://0.0.0.0:")  # what the worker listens on
        ada.expect("joined")  # reached at 127.0.0.1, the host the client used (tests/client)
    finally:
        workers.close()
