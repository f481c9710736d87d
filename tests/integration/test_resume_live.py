"""Resuming a seat end to end, real processes on real sockets: when the link drops, a client reconnects
on its own and takes its seat back with its resume token (docs/protocol.md, "Resuming")."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conf_cli.client.link import Client
from conf_cli.errors import RequestRefused
from conf_cli.identity import Identity
from conf_cli.plugin.registry import registry
from conf_cli.protocol.control import Message
from conf_cli.server.resume import ResumeKey, seat_for
from conf_cli.testing import processes
from conf_cli.testing.capture import free_port_pair
from conf_cli.testing.processes import ClientPool, spawn, start_server
from conf_cli.testing.relay import RelayHandle, start_relay
from conf_cli.urls import parse_server_url
from tests.helpers.resume import back, frames_of

SMALL = ("--width", "320", "--height", "240", "--fps", "15")


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


def _forge(token: str, **changes: object) -> str:
    """``token`` with its claims changed and its tag kept: what a participant editing its own gets."""
    text, tag = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    claims.update(changes)
    return base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=") + "." + tag


async def _resume_with(url: str, token: str) -> tuple[Client, Message | RequestRefused]:
    """A fresh connection presenting ``token``: the answer, or the refusal."""
    attacker = Client(registry(), parse_server_url(url))
    await attacker.connect()
    attacker.send({"type": "resume", "token": token})
    try:
        return attacker, await attacker._expect({"joined"}, "resume")
    except RequestRefused as refusal:
        return attacker, refusal


async def test_altered_tokens_are_refused_and_a_stolen_one_moves_the_seat_without_cloning_it(
    server_url: str, clients: ClientPool
) -> None:
    """Over real sockets, as an attacker would: a token whose role was raised, or that names another
    meeting, an expired one and one signed by another server's key are refused, and the connection that
    presented them hears nothing of the meeting; a good token presented while its owner is connected
    takes the seat over (its owner is told ``left``, reason ``resumed``) and never makes a second one."""
    host, meeting = clients.create("ada")
    owner = Client(registry(), parse_server_url(server_url))
    await owner.connect()
    await owner.join(meeting, "bob", clients.passcode)
    async with asyncio.timeout(10):
        while owner.resume_token is None:
            await asyncio.sleep(0.05)
    good = owner.resume_token
    seat = json.loads(base64.urlsafe_b64decode(good.split(".")[0] + "=="))
    identity = Identity.load_or_create(Path(processes.test_home()) / "server" / "identity.key")
    ours = ResumeKey.from_identity(identity.seed())
    theirs = ResumeKey.from_identity(bytes(32))
    expired = seat_for(meeting, seat["s"], "bob", "member", time.time() - 3600)
    forged = {
        "role raised to host": _forge(good, r="host"),
        "another meeting": _forge(good, m="zzz-zzzz-zzz"),
        "expired": ours.issue(expired),
        "another server's key": theirs.issue(seat_for(meeting, seat["s"], "bob", "host", time.time())),
    }
    for why, token in forged.items():
        attacker, answer = await _resume_with(server_url, token)
        try:
            assert isinstance(answer, RequestRefused) and answer.code == "resume_refused", why
            await asyncio.sleep(0.3)
            leaked = [attacker.events.get_nowait()["type"] for _ in range(attacker.events.qsize())]
            assert leaked == [], (why, leaked)  # not one event of the meeting
        finally:
            await attacker.close()
    host.send("/who")
    assert [p["name"] for p in host.expect("participants")["participants"]] == ["ada", "bob"]

    thief, answer = await _resume_with(server_url, good)
    try:
        assert isinstance(answer, dict) and answer["resumed"] is True and answer["name"] == "bob"
        async with asyncio.timeout(10):
            while (event := await owner.events.get())["type"] != "left":
                pass
        assert event["reason"] == "resumed"
        host.send("/who")
        assert [p["name"] for p in host.expect("participants")["participants"]] == ["ada", "bob"]
        joins = [e["name"] for e in host.seen if e["type"] in ("participant_joined", "participant_left")]
        assert joins == ["bob"]  # bob came in once, at the start; the takeover was not seen
    finally:
        await thief.close()
        await owner.close()
