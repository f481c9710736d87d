"""Who gets in, attacked end to end over real sockets: many guesses and creates at once from one address,
short passcodes, and a kicked person trying to come back (the security review's findings on access).

Each attack runs against a real ``conf server`` on loopback, with real TLS links; the in-process
:class:`Client` opens the many simultaneous connections, ``conf`` processes play the people.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator

import pytest

from conf_cli.client.link import Client
from conf_cli.client.meeting_loop import EXIT_KICKED
from conf_cli.errors import RequestRefused
from conf_cli.plugin.registry import registry
from conf_cli.testing.processes import ClientPool, ConfProcess, Event, conf_command, start_server
from conf_cli.urls import parse_server_url

PASSCODE = "right-passcode"


def run(args: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*conf_command(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
        check=False,
    )


def said(stderr: str) -> str:
    """What a client said on stderr besides the one-time notice that it pinned a new server's key."""
    return "".join(
        line for line in stderr.splitlines(keepends=True) if not line.startswith("conf: first connection to ")
    )


async def connected(url: str, count: int) -> list[Client]:
    clients = [Client(registry(), parse_server_url(url)) for _ in range(count)]
    await asyncio.gather(*(client.connect() for client in clients))
    return clients


async def outcome(request: Awaitable[object]) -> str:
    """``ok``, or the code of the refusal."""
    try:
        await request
    except RequestRefused as refusal:
        return refusal.code
    return "ok"


def hub_stats(server: ConfProcess, ready: Callable[[dict[str, int]], bool]) -> dict[str, int]:
    """The server's hub counters, from the first ``server_stats`` event for which ``ready`` holds."""
    event: Event = server.expect("server_stats", lambda e: ready(e["hub"]), timeout=30)
    return dict(event["hub"])


@pytest.fixture
def limited() -> Iterator[tuple[ConfProcess, str]]:
    # A window far longer than the test: nothing ages out while it runs.
    server, url = start_server(
        "--max-failures", "5", "--max-failures-per-target", "100", "--failure-window", "600",
        "--stats-interval", "0.2",
    )  # fmt: skip
    try:
        yield server, url
    finally:
        server.stop()


async def test_thirty_simultaneous_wrong_passcodes_get_at_most_max_failures_checks(
    limited: tuple[ConfProcess, str],
) -> None:
    """30 connections from one address each send a wrong passcode at the same moment. Each check is a
    scrypt hash; the server may run at most --max-failures (5) of them, and refuses the rest at once."""
    server, url = limited
    (host,) = await connected(url, 1)
    attackers = await connected(url, 30)
    try:
        created, _ = await host.create("host", PASSCODE)
        meeting = created["meeting"]
        guesses = [
            asyncio.ensure_future(attacker.join(meeting, f"mallory{n}", f"guess-{n:04}"))
            for n, attacker in enumerate(attackers)
        ]  # every request is on the wire before the first answer comes back
        codes = Counter(await asyncio.gather(*(outcome(guess) for guess in guesses)))
        assert codes["wrong_passcode"] <= 5, codes
        assert codes["wrong_passcode"] + codes["rate_limited"] == 30, codes
        # The server's own count of passcodes it hashed agrees: the refusals cost no hashing.
        stats = hub_stats(server, lambda hub: hub["attempts_refused"] == codes["rate_limited"])
        assert stats["passcode_checks"] == codes["wrong_passcode"]  # counted when each check began
        # And the right passcode from that address waits out the window too.
        with pytest.raises(RequestRefused) as refused:
            await attackers[0].join(meeting, "mallory", PASSCODE)
        assert refused.value.code == "rate_limited"
    finally:
        await asyncio.gather(*(client.close() for client in [host, *attackers]))


async def test_seventy_two_simultaneous_creates_from_one_address_are_refused_past_the_limit() -> None:
    """Each create costs a scrypt hash: one address may create --max-creates (20) meetings per window,
    however many connections it opens at once."""
    server, url = start_server("--failure-window", "600", "--stats-interval", "0.2")
    try:
        creators = await connected(url, 72)
        try:
            creates = [asyncio.ensure_future(creator.create(f"c{n}")) for n, creator in enumerate(creators)]
            codes = Counter(await asyncio.gather(*(outcome(create) for create in creates)))
            assert codes == {"ok": 20, "rate_limited": 52}, codes
            stats = hub_stats(server, lambda hub: hub["meetings"] == 20)
            assert stats["creates_hashed"] == 20 and stats["attempts_refused"] == 52
        finally:
            await asyncio.gather(*(creator.close() for creator in creators))
        refused = run(["create", "--json", "--server", url, "--name", "one-more"])
        assert refused.returncode == 9, refused.stderr  # EXIT_RATE_LIMITED
        assert said(refused.stderr).startswith(
            "conf: too many meetings created from your address; try again in "
        )
    finally:
        server.stop()


def test_a_chosen_passcode_of_fewer_than_six_characters_is_refused() -> None:
    server, url = start_server()
    try:
        short = run(["create", "--json", "--server", url, "--name", "ada", "--passcode", "12345"])
        assert short.returncode == 1
        assert said(short.stderr) == (
            "conf: a passcode needs at least 6 characters; choose a longer one, or give none and the "
            "server draws one\n"
        )
        assert short.stdout == ""
        fine = run(["create", "--json", "--server", url, "--name", "ada", "--passcode", "123456"])
        assert fine.returncode == 0, fine.stderr  # stdin ends: it creates, then leaves
    finally:
        server.stop()


@pytest.mark.parametrize("transport", ["tcp", "rtp"])
def test_a_kicked_person_stays_out_until_the_host_lets_them_back(transport: str) -> None:
    server, url = start_server(transport=transport)
    pool = ClientPool(url)
    try:
        host, meeting = pool.create("host")
        bob = pool.joined(meeting, "bob")
        host.send("/kick bob")
        assert bob.expect("kicked") == {"type": "kicked", "by": "host"}
        assert bob.wait() == EXIT_KICKED
        host.expect("participant_left", lambda e: e["name"] == "bob" and e["reason"] == "kicked")

        join = ["join", meeting, "--json", "--server", url, "--passcode", pool.passcode, "--name"]
        for name in ("bob", "BOB", "\uff42\uff4f\uff42"):  # as it was, in capitals, in full width
            back = run([*join, name])
            assert back.returncode == 1, (name, back.stderr)
            assert said(back.stderr) == (
                f"conf: you were removed from meeting {meeting} and cannot rejoin until the host lets you "
                "back in (/unban bob)\n"
            ), name

        host.send("/unban BOB")
        assert host.expect("unbanned") == {"type": "unbanned", "name": "bob", "by": "host"}
        back = run([*join, "Bob"], "hello again\n")  # stdin ends: in, then out
        assert back.returncode == 0, back.stderr
        host.expect("chat", lambda e: e["from"] == "Bob" and e["text"] == "hello again")
    finally:
        pool.stop_all()
        server.stop()
