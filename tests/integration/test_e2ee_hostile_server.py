"""A server that lies about end-to-end encryption (the security review, "E2EE downgrade").

A real ``conf server`` behind a tap that rewrites control messages is the lying server; real ``conf``
clients talk to it. A client that asked for an end-to-end encrypted meeting must refuse a plain one,
and a server that swaps whose key is whose must change the security code on the screen it fooled.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from conf_cli.testing.processes import ClientPool, spawn
from conf_cli.testing.tap import start_tap

Message = dict[str, Any]
PLAIN = ("--encryption", "none")  # the tap reads the wire; a server holds its link keys anyway
WAIT = 20.0


def make_plain(conn: int, message: Message) -> Message | None:
    """Upstream: the server is never asked for encryption, and honestly makes a plain meeting."""
    if message.get("type") == "create":
        return {k: v for k, v in message.items() if k not in ("e2ee", "e2ee_key")}
    return message


def claim_plain(conn: int, message: Message) -> Message | None:
    """Downstream: the server made an encrypted meeting but tells the client it is plain."""
    if message.get("type") in ("meeting_created", "joined"):
        return {**message, "e2ee": False}
    return message


@pytest.mark.parametrize(
    ("upstream", "downstream"),
    [(make_plain, None), (None, claim_plain)],
    ids=["server-ignores-e2ee", "server-says-plain"],
)
def test_create_e2ee_refuses_a_meeting_that_is_not(plain_server: str, upstream: Any, downstream: Any) -> None:
    rewrites = {k: v for k, v in (("upstream", upstream), ("downstream", downstream)) if v is not None}
    with start_tap(plain_server, **rewrites) as tap:
        args = ["create", "--e2ee", "--json", "--server", tap.url, "--name", "ada", "--passcode", "pass-123"]
        ada = spawn([*args, *PLAIN])
        try:
            code = ada.wait(WAIT)
        except subprocess.TimeoutExpired:
            code = None  # it stayed, in a meeting whose media the server reads
        finally:
            ada.stop()
    assert code == 1
    assert any("without end-to-end encryption" in line for line in ada.stderr_lines), ada.stderr_lines
    assert not [e for e in ada.drain(0.5) if e.get("type") == "joined"]  # it never says it is in


def test_a_server_that_swaps_whose_key_is_whose_changes_the_code_it_shows(plain_server: str) -> None:
    def swap_ada_and_bob(conn: int, message: Message) -> Message | None:
        """To cy only (the one client behind the tap): ada's key is bob's, and bob's ada's."""
        if message.get("type") != "joined":
            return message
        people = {p["name"]: p for p in message.get("participants", [])}
        if "ada" in people and "bob" in people:
            people["ada"]["key"], people["bob"]["key"] = people["bob"]["key"], people["ada"]["key"]
        return message

    pool = ClientPool(plain_server, extra=PLAIN)
    try:
        ada, meeting = pool.create("ada", "--e2ee")
        pool.joined(meeting, "bob")
        with start_tap(plain_server, downstream=swap_ada_and_bob) as tap:
            fooled = ClientPool(tap.url, extra=PLAIN)
            try:
                cy = fooled.joined(meeting, "cy")
                names = ["ada", "bob", "cy"]
                cy_code = cy.latest("security_code", lambda e: e["participants"] == names, timeout=WAIT)
                ada_code = ada.latest("security_code", lambda e: e["participants"] == names, timeout=WAIT)
                assert cy_code["code"] != ada_code["code"]
            finally:
                fooled.stop_all()
    finally:
        pool.stop_all()


@pytest.mark.parametrize("waiting_room", [False, True], ids=["joined-at-once", "admitted-from-waiting-room"])
def test_join_e2ee_refuses_a_meeting_the_server_says_is_plain(plain_server: str, waiting_room: bool) -> None:
    pool = ClientPool(plain_server, extra=PLAIN)
    try:
        host, meeting = pool.create("ada", "--e2ee", *(["--waiting-room"] if waiting_room else []))
        honest = pool.join(meeting, "bob", "--e2ee")  # the same meeting, told the truth: in
        if waiting_room:
            honest.expect("waiting", timeout=WAIT)
            host.send("/admit bob")
        assert honest.expect("joined", timeout=WAIT)["e2ee"] is True
        with start_tap(plain_server, downstream=claim_plain) as tap:
            fooled = ClientPool(tap.url, extra=PLAIN)
            try:
                cy = fooled.join(meeting, "cy", "--e2ee")
                if waiting_room:
                    cy.expect("waiting", timeout=WAIT)
                    host.send("/admit cy")
                try:
                    code = cy.wait(WAIT)
                except subprocess.TimeoutExpired:
                    code = None  # it stayed, and would send its media in clear
            finally:
                fooled.stop_all()
        assert code == 1
        assert any("is not end-to-end encrypted" in line for line in cy.stderr_lines), cy.stderr_lines
        assert not [e for e in cy.seen if e.get("type") == "joined"]
    finally:
        pool.stop_all()
