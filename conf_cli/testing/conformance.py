"""The transport conformance suite: every meeting feature, run over one transport plugin.

conf runs it over each registered transport (``tests/test_conformance.py``). A third-party transport
runs the same tests against itself once its plugin is installed::

    pytest -p conf_cli.testing.conformance --pyargs conf_cli.testing.conformance --conf-transport mytransport

Without ``--conf-transport`` the suite runs over every registered transport. The tests of a transport
share one real ``conf server`` (each test makes meetings of its own, which nothing in another test
reaches); each test starts real ``conf`` clients in machine mode on loopback, and everything is stopped
by PID. Links are
encrypted, as by default; ``--conf-encryption none`` runs the suite in plaintext, for a transport that
does not protect its links yet (``Transport.secure``).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from conf_cli.plugin.registry import create_registry
from conf_cli.server.resume import SEAT_GRACE
from conf_cli.testing.processes import ClientPool, ConfProcess, run_conf, start_server

SHARE = ("--width", "320", "--height", "240", "--fps", "15")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--conf-transport",
        action="append",
        default=[],
        help="transport plugin to run the conf conformance suite over (repeatable; default: all)",
    )
    parser.addoption(
        "--conf-encryption",
        choices=("on", "none"),
        default="on",
        help="run the conformance suite with link encryption on (default) or off",
    )


def transports_under_test(config: pytest.Config) -> list[str]:
    # The option exists only when this module is loaded as a plugin (``-p conf_cli.testing.conformance``).
    chosen: list[str] = config.getoption("--conf-transport", default=[]) or []
    return chosen or sorted(create_registry().transports)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Loaded both as a plugin and as the test module, this hook is called twice for each test.
    if "conf_transport" in metafunc.fixturenames and not getattr(metafunc, "_conf_parametrized", False):
        metafunc._conf_parametrized = True  # type: ignore[attr-defined]
        metafunc.parametrize("conf_transport", transports_under_test(metafunc.config), scope="module")


@pytest.fixture(scope="module")
def conf_encryption(request: pytest.FixtureRequest) -> tuple[str, ...]:
    """The client arguments that match the server's --encryption setting."""
    chosen = request.config.getoption("--conf-encryption", default="on") or "on"
    return ("--encryption", str(chosen))


SERVER_CREATES = "1000"
"""Meetings the shared server lets one address create a minute (``--max-creates``): every test's
meetings come from 127.0.0.1."""


@pytest.fixture(scope="module")
def conf_server(conf_transport: str, conf_encryption: tuple[str, ...]) -> Iterator[str]:
    """One ``conf server`` over ``conf_transport`` for all of that transport's tests."""
    server, url = start_server(*conf_encryption, "--max-creates", SERVER_CREATES, transport=conf_transport)
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
def pool(conf_server: str, conf_encryption: tuple[str, ...]) -> Iterator[ClientPool]:
    clients = ClientPool(conf_server, extra=conf_encryption)
    try:
        yield clients
    finally:
        clients.stop_all()


def test_server_url_names_the_transport(conf_server: str, conf_transport: str) -> None:
    registry = create_registry()
    assert conf_server.split("://")[0] in registry.transports[conf_transport].schemes


def test_chat_public_and_private(pool: ClientPool) -> None:
    ada, meeting = pool.create("ada")
    bob = pool.joined(meeting, "bob")
    cy = pool.joined(meeting, "cy")
    ada.expect("participant_joined", lambda e: e["name"] == "cy")
    ada.send("hello all")
    for client in (bob, cy):
        assert client.expect("chat")["text"] == "hello all"
    bob.send("/msg ada secret")
    assert ada.expect("chat", lambda e: e["private"])["text"] == "secret"
    cy.send("visible")
    cy.expect("chat", lambda e: e["text"] == "visible")
    assert not [e for e in cy.seen if e.get("type") == "chat" and e.get("private")]


def test_roles_transfer_and_end_for_all(pool: ClientPool) -> None:
    ada, meeting = pool.create("ada")
    bob = pool.joined(meeting, "bob")
    cy = pool.joined(meeting, "cy")
    cy.send("/end")
    assert cy.expect("error")["code"] == "not_allowed"
    ada.send("/admin bob")
    cy.expect("role_changed", lambda e: e["name"] == "bob" and e["role"] == "admin")
    ada.send("/host cy")
    bob.expect("role_changed", lambda e: e["name"] == "cy" and e["role"] == "host")
    cy.send("/end")
    for client in (ada, bob, cy):
        assert client.expect("meeting_closed")["by"] == "cy"
        assert client.wait() == 0


def test_forbid_kick_lock(pool: ClientPool) -> None:
    ada, meeting = pool.create("ada")
    bob = pool.joined(meeting, "bob")
    ada.send("/forbid chat")
    bob.expect("permission_changed")
    bob.send("hi?")
    assert bob.expect("error")["code"] == "forbidden"
    ada.send("/lock")
    bob.expect("meeting_locked")
    assert pool.join(meeting, "dee").wait() == 1
    ada.send("/kick bob")
    bob.expect("kicked")
    assert bob.wait() == 3


def test_refusals(pool: ClientPool, conf_server: str) -> None:
    _, meeting = pool.create("ada")
    base = ("--server", conf_server, "--name", "eve", "--json", *pool.extra)
    wrong = run_conf("join", meeting, *base, "--passcode", "nope")
    last = wrong.stderr.strip().splitlines()[-1]  # after the plaintext warning, with --encryption none
    assert (wrong.returncode, last) == (1, f"conf: wrong passcode for meeting {meeting}")
    unknown = run_conf("join", "abc-defg-hjk", *base)
    assert unknown.returncode == 1 and "no meeting" in unknown.stderr


def test_meetings_are_isolated(pool: ClientPool) -> None:
    ada, first = pool.create("ada")
    xan, second = pool.create("xan")
    bob = pool.joined(first, "bob")
    yan = pool.joined(second, "yan")
    ada.send("one")
    xan.send("two")
    bob.expect("chat", lambda e: e["text"] == "one")
    yan.expect("chat", lambda e: e["text"] == "two")
    assert not [e for e in bob.drain(0.5) + bob.seen if e.get("text") == "two"]


def test_a_killed_client_leaves_and_the_meeting_goes_on(pool: ClientPool) -> None:
    ada, meeting = pool.create("ada")
    bob = pool.joined(meeting, "bob")
    cy = pool.joined(meeting, "cy")
    os.kill(bob.pid, signal.SIGKILL)
    started = time.monotonic()
    # A transport notices the dead link within its heartbeat (at most 10 s); the server then keeps the
    # seat SEAT_GRACE seconds for a resume that never comes, and tells the others.
    ada.expect("participant_left", lambda e: e["name"] == "bob", timeout=12 + SEAT_GRACE)
    assert time.monotonic() - started < 10 + SEAT_GRACE
    ada.send("carry on")
    cy.expect("chat", lambda e: e["text"] == "carry on")


def test_host_leaving_hands_over(pool: ClientPool) -> None:
    ada, meeting = pool.create("ada")
    bob = pool.joined(meeting, "bob")
    ada.send("/leave")
    ada.expect("left")
    assert bob.expect("role_changed") == {"type": "role_changed", "name": "bob", "role": "host"}


def test_shared_video_reaches_everyone_and_late_joiners(pool: ClientPool) -> None:
    ada, meeting = pool.create("ada")
    sharer = pool.share(meeting, "pat", "pattern", *SHARE)
    sharer.expect("publish_started")
    stats = ada.expect("track_stats", lambda e: e["name"] == "pat" and e["frames"] > 0)
    assert stats["kind"] == "video" and stats["fps"] > 0
    late = pool.joined(meeting, "late")
    started = time.monotonic()
    late.expect("track_stats", lambda e: e["name"] == "pat" and e["frames"] > 0, timeout=10)
    assert time.monotonic() - started < 5


def test_forbid_stops_a_live_share(pool: ClientPool) -> None:
    ada, meeting = pool.create("ada")
    sharer = pool.share(meeting, "pat", "pattern", *SHARE)
    sharer.expect("publish_started")
    ada.expect("track_started", lambda e: e["name"] == "pat")
    ada.send("/forbid video")
    assert sharer.expect("share_stopped")["reason"] == "forbidden"
    ada.expect("track_ended", lambda e: e["name"] == "pat")


def test_e2ee_meeting_rekeys_on_join_and_leave(pool: ClientPool) -> None:
    """An end-to-end encrypted meeting: pictures decode across a late join and a leave, codes agree."""
    ada, meeting = pool.create("ada", "--e2ee")
    sharer = pool.share(meeting, "pat", "pattern", *SHARE)
    ssrc = sharer.expect("publish_started")["ssrc"]

    def decoding(client: ConfProcess, at_least: int = 1) -> dict[str, Any]:
        return client.expect(
            "track_stats", lambda e: e["ssrc"] == ssrc and e["frames"] >= at_least, timeout=20
        )

    decoding(ada)
    late = pool.joined(meeting, "late")
    stats = decoding(late)
    assert stats["undecryptable"] == 0
    names = ["ada", "late", "pat"]
    codes = {
        client.latest("security_code", lambda e: e["participants"] == names, timeout=20)["code"]
        for client in (ada, late, sharer)
    }
    assert len(codes) == 1

    late.send("/leave")
    late.expect("left")
    ada.expect("security_code", lambda e: e["participants"] == ["ada", "pat"], timeout=20)
    before = decoding(ada)["frames"]
    after = decoding(ada, before + 15)  # a second of pictures under the keys made after the leave
    assert after["undecryptable"] == 0


def test_waiting_room_holds_everything_back_until_admitted(pool: ClientPool) -> None:
    ada, meeting = pool.create("ada", "--waiting-room")
    sharer = pool.share(meeting, "pat", "pattern", *SHARE)
    sharer.expect("waiting")
    ada.send("/admit pat")
    ada.expect("track_stats", lambda e: e["name"] == "pat" and e["frames"] > 0)
    bob = pool.join(meeting, "bob")
    bob.expect("waiting")
    ada.expect("waiting_joined", lambda e: e["name"] == "bob")
    ada.send("only for those inside")
    held = bob.drain(2.0)
    assert not [e for e in held if e["type"] in ("chat", "track_started", "track_stats", "share_started")]
    ada.send("/admit bob")
    bob.expect("joined")
    bob.expect("track_stats", lambda e: e["name"] == "pat" and e["frames"] > 0, timeout=10)
    eve = pool.join(meeting, "eve")
    eve.expect("waiting")
    ada.send("/deny eve")
    eve.expect("denied")
    assert eve.wait() == 5
