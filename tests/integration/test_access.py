"""Who gets in, end to end with real processes: waiting room, rate limits and accounts, over tcp and rtp."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conf_cli.client.link import Client
from conf_cli.client.meeting_loop import (
    EXIT_DENIED,
    EXIT_LOGIN_REQUIRED,
    EXIT_RATE_LIMITED,
    EXIT_UNKNOWN_USER,
    EXIT_WRONG_PASSWORD,
)
from conf_cli.plugin.registry import registry
from conf_cli.testing.processes import (
    ClientPool,
    ConfProcess,
    Event,
    conf_command,
    start_server,
    start_thread_loop,
)
from conf_cli.urls import parse_server_url

SMALL = ("--width", "320", "--height", "240", "--fps", "15")
TRANSPORTS = ["tcp", "rtp"]
# Never expected by a waiting person: anything about the meeting's people, chat or media.
LEAKS = {
    "chat",
    "participant_joined",
    "participant_left",
    "share_started",
    "share_stopped",
    "track_started",
    "track_stats",
    "participants",
    "role_changed",
}


@pytest.fixture(scope="module", params=TRANSPORTS)
def waiting_room_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """One server per transport for the module's waiting-room tests (each makes its own meeting)."""
    server, url = start_server(transport=request.param)
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
def pool(waiting_room_server: str) -> Iterator[ClientPool]:
    clients = ClientPool(waiting_room_server)
    try:
        yield clients
    finally:
        clients.stop_all()


def has_frames(event: Event) -> bool:
    return int(event["frames"]) > 0


def _said(stderr: str) -> str:
    """What a client said on stderr besides the one-time notice that it pinned a new server's key."""
    return "".join(
        line for line in stderr.splitlines(keepends=True) if not line.startswith("conf: first connection to ")
    )


def test_waiting_room_admit_deny_and_not_one_packet_or_event_before_admission(pool: ClientPool) -> None:
    """While a meeting runs (chat, video), two wait: ``conf join`` (cy) gets none of the meeting's events,
    and, at the wire, a client of our own (probe) that counts every media packet its link delivers gets
    not one packet and no event; once admitted, both get the meeting. Then giving up and being denied."""
    host, meeting = pool.create("host", "--waiting-room")

    # A sharer waits too: its track is announced only once it is in.
    sharer = pool.share(meeting, "bob", "pattern", *SMALL)
    assert sharer.expect("waiting")["meeting"] == meeting
    host.expect("waiting_joined", lambda e: e["name"] == "bob")
    host.send("/admit bob")
    sharer.expect("joined")
    published = sharer.expect("publish_started", timeout=20)
    host.expect("track_stats", has_frames, timeout=20)  # media flows in the meeting

    probe = Client(registry(), parse_server_url(pool.url))
    packets: list[bytes] = []
    probe.media_handler = packets.append
    answers: list[Event] = []

    async def probe_waits() -> None:
        await probe.connect()
        answers.append(await probe.join(meeting, "probe", pool.passcode))

    probing = start_thread_loop(probe_waits(), "probe")
    try:
        assert answers[0]["type"] == "waiting"
        host.expect("waiting_joined", lambda e: e["name"] == "probe")
        cy = pool.join(meeting, "cy")
        assert cy.expect("waiting") == {"type": "waiting", "meeting": meeting, "name": "cy"}
        host.expect("waiting_joined", lambda e: e["name"] == "cy")
        host.send("secret plans")
        host.expect("chat", lambda e: e["text"] == "secret plans")
        sharer.send("/who")
        sharer.expect("participants")
        held = cy.drain(3.0)  # video keeps flowing all this while
        assert not [e for e in held if e["type"] in LEAKS], held

        async def probe_held() -> list[Event]:
            return [probe.events.get_nowait() for _ in range(probe.events.qsize())]

        assert packets == []
        assert asyncio.run_coroutine_threadsafe(probe_held(), probing.loop).result(10) == []
        cy.send("let me in")  # a waiting person's chat goes nowhere
        assert cy.expect("error")["code"] == "waiting"

        host.send("/admit cy")
        joined = cy.expect("joined")
        assert joined["name"] == "cy" and [t["ssrc"] for t in joined["tracks"]] == [published["ssrc"]]
        cy.expect("track_stats", has_frames, timeout=20)
        host.send("welcome")
        cy.expect("chat", lambda e: e["text"] == "welcome")
        host.expect("waiting_left", lambda e: e["name"] == "cy" and e["reason"] == "admitted")

        async def probe_admitted() -> None:
            async with asyncio.timeout(20):
                while (event := await probe.events.get())["type"] != "joined":
                    assert event["type"] not in LEAKS
                while not packets:  # the server forwards to whoever is in, subscribed or not
                    await asyncio.sleep(0.05)

        host.send("/admit probe")
        asyncio.run_coroutine_threadsafe(probe_admitted(), probing.loop).result(30)
    finally:
        probing.stop(probe.close())

    # Someone who gives up waiting disappears from the list.
    dee = pool.join(meeting, "dee")
    dee.expect("waiting")
    host.expect("waiting_joined", lambda e: e["name"] == "dee")
    dee.stop()
    host.expect("waiting_left", lambda e: e["name"] == "dee" and e["reason"] == "disconnected")

    # Denied: told so, one line on stderr, an exit code of its own.
    eve = pool.join(meeting, "eve")
    eve.expect("waiting")
    host.expect("waiting_joined", lambda e: e["name"] == "eve")
    host.send("/deny eve")
    assert eve.expect("denied") == {"type": "denied", "meeting": meeting, "by": "host"}
    assert eve.wait() == EXIT_DENIED
    assert eve.stderr_lines == [f"conf: you were not admitted to meeting {meeting}"]
    host.send("/who")
    assert host.expect("participants")["waiting"] == []


def test_admins_learn_who_waits_and_the_waiting_hear_when_it_ends(pool: ClientPool) -> None:
    host, meeting = pool.create("host", "--waiting-room")
    bob = pool.join(meeting, "bob")
    bob.expect("waiting")
    host.send("/admit bob")
    bob.expect("joined")
    fay = pool.join(meeting, "fay")
    fay.expect("waiting")
    host.expect("waiting_joined", lambda e: e["name"] == "fay")
    host.send("/admin bob")
    assert bob.expect("waiting_room") == {"type": "waiting_room", "enabled": True, "waiting": ["fay"]}
    bob.send("/leave")
    assert bob.wait() == 0
    host.send("/leave")  # nobody else is in: the meeting ends, and the waiting are told
    assert fay.expect("meeting_closed")["reason"] == "ended"
    assert fay.wait() == 0


def run(
    args: list[str], env: dict[str, str], stdin: str = "", timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*conf_command(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
        check=False,
    )


def test_failed_passcodes_are_rate_limited_then_allowed_again() -> None:
    # A window long enough that a loaded machine starting three clients stays inside it; the refusal
    # says how long to wait, and the test waits exactly that.
    server, url = start_server("--max-failures", "2", "--failure-window", "20")
    clients = ClientPool(url)
    try:
        _, meeting = clients.create("host")
        join = ["join", meeting, "--json", "--server", url, "--name", "mallory", "--passcode"]
        for guess in ("guess1", "guess2"):
            wrong = run([*join, guess], {})
            assert (
                wrong.returncode == 1
                and _said(wrong.stderr) == f"conf: wrong passcode for meeting {meeting}\n"
            )
        limited = run([*join, clients.passcode], {})
        refused_at = time.monotonic()
        assert limited.returncode == EXIT_RATE_LIMITED, limited.stderr
        prefix = "conf: too many failed attempts; try again in "
        said = _said(limited.stderr)
        assert said.startswith(prefix) and said.endswith(" s\n")
        wait = int(said[len(prefix) : -3])
        assert 1 <= wait <= 20
        assert limited.stdout == ""  # the refusal is the one line on stderr
        time.sleep(max(0.0, wait + 0.2 - (time.monotonic() - refused_at)))
        allowed = run([*join, clients.passcode], {})  # stdin ends: it joins, then leaves
        assert allowed.returncode == 0, allowed.stderr
        assert '"type":"joined"' in allowed.stdout.replace(" ", "")
    finally:
        clients.stop_all()
        server.stop()


@pytest.fixture(scope="module")
def accounts(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], str]:
    """An accounts file made with ``conf user``: ada (password ``correct horse``) alone, bob having been
    added and removed; and the environment (a CONF_HOME of its own) the module's login tests share."""
    folder = tmp_path_factory.mktemp("accounts")
    env = {"CONF_HOME": str(folder / "home")}
    accounts = str(folder / "accounts.db")
    added = run(["user", "add", "ada", "--password-stdin", "--accounts", accounts], env, "correct horse\n")
    assert added.returncode == 0, added.stderr
    assert (
        run(["user", "add", "bob", "--accounts", accounts], {**env, "CONF_PASSWORD": "pw2"}).returncode == 0
    )
    again = run(["user", "add", "ADA", "--password-stdin", "--accounts", accounts], env, "x\n")
    assert again.returncode == 1 and again.stderr == "conf: an account named 'ADA' exists already\n"
    assert run(["user", "list", "--accounts", accounts], env).stdout == "ada\nbob\n"
    assert run(["user", "remove", "bob", "--accounts", accounts], env).returncode == 0
    return env, accounts


def test_user_add_list_and_remove_keep_the_accounts_file_without_passwords(
    accounts: tuple[dict[str, str], str],
) -> None:
    """What the ``accounts`` fixture did with ``conf user`` (add, a refused second ADA, list, remove) left
    ada alone in the file, and no password in it."""
    env, path = accounts
    assert run(["user", "list", "--accounts", path], env).stdout == "ada\n"
    assert b"correct horse" not in Path(path).read_bytes()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_accounts_and_required_login(accounts: tuple[dict[str, str], str], transport: str) -> None:
    """The accounts made by ``conf user`` (the ``accounts`` fixture, checked by the test above) at a
    server that requires login, over each transport."""
    env, accounts_file = accounts
    server, url = start_server("--require-login", "--accounts", accounts_file, transport=transport, env=env)
    try:
        create = ["create", "--json", "--server", url, "--name", "Mallory", "--passcode", "pw-123"]
        cases = [
            (
                [],
                {},
                "",
                EXIT_LOGIN_REQUIRED,
                "conf: this server requires you to log in first (--user NAME)\n",
            ),
            (
                ["--user", "zed"],
                {"CONF_PASSWORD": "x"},
                "",
                EXIT_UNKNOWN_USER,
                "conf: no account named 'zed' on this server\n",
            ),
            (
                ["--user", "ada", "--password-stdin"],
                {},
                "wrong\n",
                EXIT_WRONG_PASSWORD,
                "conf: wrong password for 'ada'\n",
            ),
        ]
        for extra, more_env, stdin, code, line in cases:
            result = run([*create, *extra], {**env, **more_env}, stdin)
            assert (result.returncode, _said(result.stderr)) == (code, line), extra
        no_password = run([*create, "--user", "ada"], env)  # stdin is not a terminal: no prompt
        assert no_password.returncode == 1
        assert (
            _said(no_password.stderr)
            == "conf: no password for 'ada': set $CONF_PASSWORD or use --password-stdin\n"
        )

        # Logged in, the account name is the display name, whatever --name says.
        process = subprocess.Popen(
            [*conf_command(), *create, "--user", "ADA", "--password-stdin"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
        )
        host = ConfProcess(process)
        try:
            host.send("correct horse")
            meeting = host.expect("meeting_created", timeout=30)["meeting"]
            assert host.expect("joined")["name"] == "ada"
            guest = run(
                [
                    "join",
                    meeting,
                    "--json",
                    "--server",
                    url,
                    "--name",
                    "ada2",
                    "--passcode",
                    "pw-123",
                    "--user",
                    "ada",
                ],
                {**env, "CONF_PASSWORD": "correct horse"},
                "hello from the guest\n",
            )
            assert guest.returncode == 1 and "the name 'ada' is taken" in guest.stderr
            host.send("/who")
            assert [p["name"] for p in host.expect("participants")["participants"]] == ["ada"]
        finally:
            host.stop()
    finally:
        server.stop()


def test_workers_apply_the_same_limits() -> None:
    server, url = start_server("--workers", "2", "--max-failures", "1", "--failure-window", "30")
    clients = ClientPool(url)
    try:
        _, meeting = clients.create("host")
        join = ["join", meeting, "--json", "--server", url, "--name", "mallory", "--passcode"]
        assert run([*join, "guess"], {}).returncode == 1
        limited = run([*join, clients.passcode], {})
        assert limited.returncode == EXIT_RATE_LIMITED, limited.stderr
    finally:
        clients.stop_all()
        server.stop()


def test_with_optional_accounts_a_guest_cannot_use_an_account_name(tmp_path: Path) -> None:
    env = {"CONF_HOME": str(tmp_path / "home")}
    assert run(["user", "add", "ada", "--password-stdin"], env, "pw\n").returncode == 0
    server, url = start_server("--accounts", str(tmp_path / "home" / "server" / "accounts.db"), env=env)
    try:
        create = ["create", "--json", "--server", url, "--passcode", "pw-123"]
        guest = run([*create, "--name", "Ada"], env)
        assert guest.returncode == 1
        assert (
            _said(guest.stderr)
            == "conf: the name 'Ada' belongs to an account on this server; log in with --user Ada\n"
        )
        member = run([*create, "--user", "ada"], {**env, "CONF_PASSWORD": "pw"})  # stdin ends: in, then out
        assert member.returncode == 0 and '"name":"ada"' in member.stdout.replace(" ", "")
        other = run([*create, "--name", "grace"], env)
        assert other.returncode == 0, other.stderr
    finally:
        server.stop()


def test_a_guest_cannot_go_online_for_calls_under_an_account_name(tmp_path: Path) -> None:
    """Security review (Low): on a server with accounts (login optional), `conf call --listen --name ada`
    by a guest took ada's calls. Now it is refused as a meeting name would be; other names still work."""
    env = {"CONF_HOME": str(tmp_path / "home")}
    accounts = str(tmp_path / "accounts.db")
    assert (
        run(["user", "add", "ada", "--password-stdin", "--accounts", accounts], env, "pw\n").returncode == 0
    )
    server, url = start_server("--accounts", accounts, env=env)
    try:
        guest = run(["call", "--listen", "--name", "ADA", "--json", "--server", url], env, timeout=30)
        assert guest.returncode != 0
        assert "the name 'ADA' belongs to an account on this server" in guest.stderr + guest.stdout
        assert '"type": "online"' not in guest.stdout and '"type":"online"' not in guest.stdout
        other = run(["call", "--listen", "--name", "bea", "--json", "--server", url], env, timeout=30)
        assert '"name": "bea"' in other.stdout or '"name":"bea"' in other.stdout, other.stderr
    finally:
        server.stop()
