"""The call keys' hash commitment (security review, Medium 13): a server in the middle gets one guess at
the six-digit code instead of trying keys until both ends show the same one."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from conf_cli.client.calls.crypto import KeyPair, check_reveal, commitment
from conf_cli.client.calls.session import CallSession
from conf_cli.client.state import receive
from conf_cli.errors import ProtocolError
from conf_cli.plugin.registry import registry
from conf_cli.testing.processes import ConfProcess, spawn

RELAY = "00" * 16


def test_a_revealed_key_must_match_its_commitment() -> None:
    caller, other = KeyPair(), KeyPair()
    assert caller.commitment == commitment(caller.public) != caller.public
    check_reveal(caller.commitment, caller.public)
    with pytest.raises(ProtocolError, match="does not match the commitment"):
        check_reveal(caller.commitment, other.public)
    with pytest.raises(ProtocolError):
        check_reveal(caller.commitment, "not a key")


class _Client:
    """What a CallSession needs of its server connection: it records what would be sent."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.registry = registry()
        self.name = "me"

    def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


class _Ui:
    def __init__(self) -> None:
        self.shown: list[dict[str, Any]] = []

    def show(self, event: dict[str, Any]) -> None:
        self.shown.append(event)


def _session() -> tuple[CallSession, _Client, _Ui]:
    client, ui = _Client(), _Ui()
    session = CallSession(
        client, ui, ("127.0.0.1", 9), share=None, auto_accept=False, ring_timeout=None, once=False
    )  # type: ignore[arg-type]
    session.candidates, session._gathered = [], asyncio.get_running_loop().time()  # no STUN here
    return session, client, ui


async def test_the_caller_commits_first_and_reveals_its_key_only_after_the_callees_arrived() -> None:
    """Before the fix the caller's public key went out in `call`, so the server knew it before it chose
    the key to hand the caller, and could try keys until the codes matched."""
    session, client, _ = _session()
    try:
        await session.place("bob")
        (call,) = client.sent
        assert session.keys is not None
        assert session.keys.public not in json.dumps(call) and "key" not in call
        assert call["commitment"] == commitment(session.keys.public)
        session.handle(receive({"type": "call_ringing", "call": "c1", "peer": "bob", "timeout": 30}))
        callee = KeyPair()
        session.handle(
            receive(
                {
                    "type": "call_accepted",
                    "call": "c1",
                    "stun_port": 3478,
                    "peer": "bob",
                    "key": callee.public,
                    "candidates": [],
                    "relay": RELAY,
                }
            )
        )
        assert client.sent[-1] == {"type": "call_reveal", "call": "c1", "key": session.keys.public}
        assert session.derived is not None
        assert session.derived.sas == callee.derive("c1", session.keys.public, caller=False).sas
    finally:
        await session.close()


async def test_a_callee_refuses_a_revealed_key_that_does_not_match_the_commitment() -> None:
    for honest in (False, True):
        session, client, ui = _session()
        caller, mallory = KeyPair(), KeyPair()
        try:
            incoming = {"type": "call_incoming", "call": "c1", "peer": "ada", "commitment": caller.commitment}
            session.handle(receive({**incoming, "candidates": [], "timeout": 30, "stun_port": 3478}))
            await session.accept()
            accepted = {
                "type": "call_accepted",
                "call": "c1",
                "peer": "ada",
                "candidates": [],
                "relay": RELAY,
            }
            session.handle(receive({**accepted, "stun_port": 3478}))
            assert session.derived is None  # no key to use yet
            revealed = caller if honest else mallory
            session.handle(receive({"type": "call_reveal", "call": "c1", "key": revealed.public}))
            if honest:
                assert session.derived is not None and session.checks is not None
                assert any(e["type"] == "call_accepted" and "sas" in e for e in ui.shown)
            else:
                assert session.derived is None and session.checks is None
                (refused,) = [e for e in ui.shown if e.get("code") == "call_refused"]
                assert "does not match the commitment" in refused["message"]
                assert client.sent[-1] == {"type": "call_hangup", "call": "c1"}
        finally:
            await session.close()


# -- end to end, through a server that substitutes keys ------------------------------------------------


def _hostile_server(mode: str) -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "conf_cli.testing.calls", mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    server = ConfProcess(process)
    try:
        yield server.expect("server_started")["urls"][0]
    finally:
        server.stop()


@pytest.fixture
def swapping() -> Iterator[str]:
    yield from _hostile_server("swap")


@pytest.fixture
def revealing() -> Iterator[str]:
    yield from _hostile_server("reveal")


def _call(url: str) -> tuple[ConfProcess, ConfProcess]:
    bob = spawn(["call", "--listen", "--accept", "--name", "bob", "--json", "--server", url])
    bob.expect("online", timeout=20)
    ada = spawn(["call", "bob", "--name", "ada", "--json", "--server", url])
    return ada, bob


def test_a_server_that_swaps_keys_gets_different_codes_at_the_two_ends(swapping: str) -> None:
    ada, bob = _call(swapping)
    try:
        ours = ada.expect("call_accepted", timeout=20)["sas"]
        theirs = bob.expect("call_accepted", timeout=20)["sas"]
        assert ours != theirs  # read aloud, they give the man in the middle away
    finally:
        ada.stop()
        bob.stop()


def test_a_server_that_changes_the_revealed_key_is_refused(revealing: str) -> None:
    ada, bob = _call(revealing)
    try:
        refused = bob.expect("error", lambda e: e.get("code") == "call_refused", timeout=20)
        assert "does not match the commitment" in refused["message"]
        assert not [e for e in bob.seen if e["type"] == "call_accepted"]  # no code shown, no media
        ada.expect("call_ended", timeout=20)
    finally:
        ada.stop()
        bob.stop()
