"""Access tokens end to end: `conf token create` beside a real server, `conf join --token` over real
sockets, and an attacker's tokens (expired, for another meeting, signed by another key, edited, unsigned)
refused with a clear error, counted like wrong passcodes."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from conf_cli.client.meeting_loop import EXIT_RATE_LIMITED
from conf_cli.server.people import Role
from conf_cli.server.tokens import TokenKey, issue
from conf_cli.testing.processes import ClientPool, ConfProcess, run_conf, serving, spawn

SMALL = ("--width", "320", "--height", "240", "--fps", "15")


@pytest.fixture
def token_key(tmp_path: Path) -> Path:
    return tmp_path / "token.key"


@pytest.fixture
def pool(token_key: Path) -> Iterator[ClientPool]:
    with serving("--token-key", str(token_key), "--max-failures", "50") as clients:
        yield clients


def make_token(key_file: Path, *args: str) -> str:
    done = run_conf("token", "create", "--token-key", str(key_file), *args)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert token.count(".") == 2 and "\n" not in token
    return token


def with_token(pool: ClientPool, meeting: str, token: str, *extra: str) -> ConfProcess:
    """``conf join MEETING --token TOKEN`` in machine mode: no passcode, and no name but the token's."""
    client = spawn(["join", meeting, "--json", "--server", pool.url, "--token", token, *extra])
    pool.started.append(client)
    return client


def refused(pool: ClientPool, meeting: str, token: str) -> str:
    """Join with ``token`` as "bob" to the end; the one line it printed on stderr (it must fail)."""
    done = run_conf("join", meeting, "--json", "--server", pool.url, "--name", "bob", "--token", token)
    lines = [line for line in done.stderr.splitlines() if not line.startswith("conf: first connection")]
    assert done.returncode == 1 and len(lines) == 1, (done.returncode, done.stderr)
    return lines[0]


def edited(token: str, **changes: object) -> str:
    """``token`` with claims changed in its payload and its signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    return ".".join(
        (header, base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode(), signature)
    )


def test_a_token_lets_its_holder_in_under_its_name_and_role(pool: ClientPool, token_key: Path) -> None:
    ada, meeting = pool.create("ada")
    bob = with_token(
        pool, meeting, make_token(token_key, "--meeting", meeting, "--name", "bob", "--role", "admin")
    )
    joined = bob.expect("joined")
    assert (joined["name"], joined["role"]) == ("bob", "admin")
    assert ada.expect("participant_joined") == {"type": "participant_joined", "name": "bob", "role": "admin"}

    cy = with_token(
        pool, meeting, make_token(token_key, "--meeting", meeting, "--name", "cy", "--role", "host")
    )
    assert cy.expect("joined")["role"] == "host"
    assert ada.expect("role_changed", lambda e: e["name"] == "ada") == {
        "type": "role_changed",
        "name": "ada",
        "role": "admin",
        "by": "cy",
    }
    # A passcode still works beside tokens.
    assert pool.joined(meeting, "dee").latest("joined")["role"] == "member"


def test_a_member_may_publish_only_what_the_token_grants(pool: ClientPool, token_key: Path) -> None:
    ada, meeting = pool.create("ada")
    audio_only = make_token(token_key, "--meeting", meeting, "--name", "bob", "--can-publish", "audio")
    camera = spawn(
        [
            "share",
            "pattern",
            "--meeting",
            meeting,
            "--server",
            pool.url,
            "--json",
            "--token",
            audio_only,
            *SMALL,
        ]
    )
    pool.started.append(camera)
    camera.expect("joined")
    error = camera.expect("error")
    assert (error["code"], error["message"]) == (
        "forbidden",
        "your access token does not let you publish video",
    )
    assert camera.expect("publish_stopped")["reason"] == "refused"
    camera.stop()
    ada.expect("participant_left", lambda e: e["name"] == "bob")
    tone = spawn(
        ["share", "tone", "--meeting", meeting, "--server", pool.url, "--json", "--token", audio_only]
    )
    pool.started.append(tone)
    started = ada.expect("share_started", timeout=20)
    assert (started["name"], started["kind"]) == ("bob", "audio")
    assert not [e for e in ada.seen if e["type"] == "share_started" and e["kind"] != "audio"]


def test_an_attackers_tokens_are_each_refused_with_a_clear_error(
    pool: ClientPool, token_key: Path, tmp_path: Path
) -> None:
    ada, meeting = pool.create("ada")
    _, other_meeting = pool.create("zed")
    member = make_token(token_key, "--meeting", meeting, "--name", "bob")

    # Expired: a good token that has aged past its expiry (and the leeway).
    old = issue(
        TokenKey.load_or_create(token_key),
        name="bob",
        meeting=meeting,
        role=Role.MEMBER,
        can_publish=("audio",),
        ttl=60,
        now=time.time() - 3600,
    )
    assert refused(pool, meeting, old).startswith("conf: this access token expired at ")
    # For another meeting on the same server.
    elsewhere = make_token(token_key, "--meeting", other_meeting, "--name", "bob")
    assert (
        refused(pool, meeting, elsewhere)
        == f"conf: this access token is for meeting {other_meeting}, not {meeting}"
    )
    # Signed by another server's key.
    foreign = make_token(tmp_path / "other.key", "--meeting", meeting, "--name", "bob", "--role", "host")
    assert refused(pool, meeting, foreign) == (
        "conf: this access token was signed with another key: another server's, or this server's before its "
        "token key was replaced"
    )
    # The payload edited: a member's token made a host's, or any meeting's.
    for change in ({"role": "host"}, {"meeting": "*"}, {"sub": "ada2"}):
        assert refused(pool, meeting, edited(member, **change)) == (
            "conf: this access token was altered: its signature does not match"
        )
    # Unsigned (alg none), claiming to be a host's token for any meeting.
    claims = {
        "iss": "conf",
        "sub": "bob",
        "meeting": "*",
        "role": "host",
        "iat": int(time.time()),
        "exp": 2**40,
    }
    unsigned = jwt.encode(claims, None, algorithm="none")
    assert refused(pool, meeting, unsigned) == (
        "conf: this access token says it is signed with 'none'; conf takes only HS256 tokens signed with the "
        "server's token key"
    )
    # Someone else's name.
    assert refused(pool, meeting, make_token(token_key, "--meeting", meeting, "--name", "eve")) == (
        "conf: this access token is for 'eve', not 'bob'"
    )
    ada.send("/who")
    assert [p["name"] for p in ada.expect("participants")["participants"]] == ["ada"]  # nobody got in


def test_bad_tokens_count_like_wrong_passcodes(token_key: Path, tmp_path: Path) -> None:
    with serving("--token-key", str(token_key), "--max-failures", "3") as pool:
        _, meeting = pool.create("ada")
        foreign = make_token(tmp_path / "other.key", "--meeting", meeting, "--name", "bob")
        for _ in range(3):
            assert "signed with another key" in refused(pool, meeting, foreign)
        good = make_token(token_key, "--meeting", meeting, "--name", "bob")
        done = run_conf("join", meeting, "--json", "--server", pool.url, "--token", good)
        assert done.returncode == EXIT_RATE_LIMITED, done.stderr
        assert "too many failed attempts" in done.stderr


def test_the_workers_of_a_server_check_its_tokens(token_key: Path, tmp_path: Path) -> None:
    """`conf server --workers 2`: the worker that holds the meeting reads the same token key."""
    with serving("--token-key", str(token_key), "--workers", "2") as pool:
        _, meeting = pool.create("ada")
        bob = with_token(pool, meeting, make_token(token_key, "--meeting", meeting, "--name", "bob"))
        assert bob.expect("joined")["name"] == "bob"
        foreign = make_token(tmp_path / "other.key", "--meeting", meeting, "--name", "cy")
        assert "signed with another key" in refused(pool, meeting, foreign)


def test_a_token_for_a_name_lets_its_recorder_in_as_that_name_and_no_other(
    pool: ClientPool, token_key: Path, tmp_path: Path
) -> None:
    _host, meeting = pool.create("host")
    token = make_token(token_key, "--meeting", meeting, "--name", "bob", "--role", "host")
    args = ["record", meeting, "--json", "--server", pool.url, "--token", token, "--out"]
    recorder = spawn([*args, str(tmp_path / "bob.mp4")])
    pool.started.append(recorder)
    joined = recorder.expect("joined")
    assert (joined["name"], joined["role"]) == ("bob (recorder)", "member")  # a recorder, whatever the token
    recorder.send("/leave")
    recorder.expect("recording_written", timeout=20)
    assert recorder.wait(20) == 0
    other = run_conf(*args, str(tmp_path / "eve.mp4"), "--name", "eve")
    assert other.returncode == 1 and "this access token is for 'bob'" in other.stderr
