"""`conf server --workers 2`: meetings spread over worker processes; chat and media work in each."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conf_cli.server.passcode import ID_ALPHABET
from conf_cli.testing.processes import ClientPool, ConfProcess, run_conf, spawn


@pytest.fixture
def front() -> Iterator[tuple[ConfProcess, str, list[int]]]:
    server = spawn(
        ["server", "--json", "--port", "0", "--workers", "2", "--stats-interval", "0.3", "--transport", "tcp"]
    )
    try:
        started = server.expect("server_started")
        yield server, started["urls"][0], started["workers"]
    finally:
        server.stop()


def test_two_meetings_land_on_two_workers_and_both_work(front: tuple[ConfProcess, str, list[int]]) -> None:
    server, url, pids = front
    assert len(pids) == 2 and server.pid not in pids
    clients = ClientPool(url)
    try:
        ada, first = clients.create("ada")
        bob, second = clients.create("bob")
        # The least-loaded worker takes each new meeting; an ID's first character names its worker.
        assert {first[0], second[0]} == {ID_ALPHABET[0], ID_ALPHABET[1]}

        def both_reported(event: dict[str, object]) -> bool:
            workers = event.get("workers")
            assert isinstance(workers, list)
            return [w["meetings"] for w in workers] == [[m] for m in sorted([first, second])]

        stats = server.expect("server_stats", both_reported)
        assert [w["pid"] for w in stats["workers"]] == pids

        grace = clients.joined(first, "grace")
        hopper = clients.joined(second, "hopper")
        grace.send("hello from the first")
        hopper.send("hello from the second")
        assert ada.expect("chat")["text"] == "hello from the first"
        assert bob.expect("chat")["text"] == "hello from the second"

        for meeting, name, viewer in ((first, "tone-1", grace), (second, "tone-2", hopper)):
            sharer = clients.share(meeting, name, "tone")
            sharer.expect("publish_started")
            started = viewer.expect("track_started", lambda e, n=name: e["name"] == n)  # type: ignore[misc]
            assert started["kind"] == "audio"
            viewer.expect("track_stats", lambda e, n=name: e["name"] == n and e["packets"] > 10)  # type: ignore[misc]

        # A join for a meeting no worker holds is refused by the front, with the usual error.
        unknown = ID_ALPHABET[5] + first[1:]
        refused = run_conf("join", unknown, "--json", "--server", url, "--name", "eve", "--passcode", "x")
        assert refused.returncode == 1 and "no meeting" in refused.stderr
    finally:
        clients.stop_all()


def test_workers_need_tcp() -> None:
    result = run_conf("server", "--port", "0", "--workers", "2", "--transport", "rtp", timeout=30)
    assert result.returncode == 1
    assert "--workers needs one --transport tcp" in result.stderr
