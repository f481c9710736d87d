"""Webhooks end to end: a real ``conf server --webhook`` POSTs to a real aiohttp receiver that checks
every signature and the order of events, and goes down for a while: retries deliver after it is back."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conf_cli.testing.processes import ClientPool, ThreadLoop, start_server, start_thread_loop
from conf_cli.testing.processes import test_home as conf_home
from conf_cli.testing.webhooks import Receiver, wait_for

Event = dict[str, Any]


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, ThreadLoop]]:
    hooks = Receiver()
    loop = start_thread_loop(hooks.up(), "webhook receiver")
    try:
        yield hooks, loop
    finally:
        loop.stop(hooks.down())


def test_events_arrive_signed_in_order_and_survive_an_outage(receiver: tuple[Receiver, ThreadLoop]) -> None:
    hooks, loop = receiver
    server, url = start_server("--webhook", f"http://127.0.0.1:{hooks.port}/hook", "--stats-interval", "1")
    pool = ClientPool(url)
    try:
        key = Path(conf_home()) / "server" / "webhook.key"
        assert key.stat().st_mode & 0o777 == 0o600
        ada, meeting = pool.create("ada")
        bob = pool.joined(meeting, "bob")
        tone = pool.share(meeting, "tone-bot", "tone")
        ada.expect("share_started", lambda e: e["name"] == "tone-bot")
        wait_for(lambda: ("track_published", "tone-bot") in hooks.seen())

        asyncio.run_coroutine_threadsafe(hooks.down(), loop.loop).result(10)  # the receiver goes away
        tone.stop()
        ada.expect("participant_left", lambda e: e["name"] == "tone-bot")
        bob.send("/leave")
        assert bob.wait() == 0
        carol = pool.joined(meeting, "carol")
        carol.send("/leave")
        assert carol.wait() == 0
        ada.expect("participant_left", lambda e: e["name"] == "carol")
        server.expect("server_stats", lambda e: e["webhooks"]["failed_attempts"] >= 2)  # refused, retried
        asyncio.run_coroutine_threadsafe(hooks.up(), loop.loop).result(10)  # ... and comes back

        wait_for(lambda: ("participant_left", "carol") in hooks.seen())
        ada.send("/end")
        wait_for(lambda: any(kind == "meeting_ended" for kind, _ in hooks.seen()))
    finally:
        pool.stop_all()
        server.stop()

    assert hooks.refused == []  # every delivery carried a good signature
    assert hooks.seen() == [
        ("meeting_started", None),
        ("participant_joined", "ada"),
        ("participant_joined", "bob"),
        ("participant_joined", "tone-bot"),
        ("track_published", "tone-bot"),
        ("track_unpublished", "tone-bot"),
        ("participant_left", "tone-bot"),
        ("participant_left", "bob"),
        ("participant_joined", "carol"),
        ("participant_left", "carol"),
        ("participant_left", "ada"),
        ("meeting_ended", None),
    ]
    events = hooks.events
    assert {e["meeting"] for e in events} == {meeting}
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    assert events[-1]["reason"] == "ended" and events[-1]["by"] == "ada"


def test_a_receiver_that_never_answers_blocks_nothing() -> None:
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(100)  # accepts connections (the kernel does) and never answers a byte
    server, url = start_server("--webhook", f"http://127.0.0.1:{hang.getsockname()[1]}/hook")
    pool = ClientPool(url)
    try:
        ada, meeting = pool.create("ada")
        for index in range(5):
            guest = pool.joined(meeting, f"guest{index}")
            ada.send(f"hello {index}")
            guest.expect("chat", lambda e, i=index: e["text"] == f"hello {i}", timeout=10)
    finally:
        pool.stop_all()
        server.stop()
        hang.close()
