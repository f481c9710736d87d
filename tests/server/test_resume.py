"""Resume tokens, meeting records and their store: the sans-I/O rules, checked alone."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from conf_cli.errors import ConfError
from conf_cli.server.record import (
    MAX_RECORD_BYTES,
    MeetingRecord,
    Person,
    RecordError,
    decode,
)
from conf_cli.server.record_store import FileMeetingStore
from conf_cli.server.resume import (
    LEEWAY_SECONDS,
    MAX_TOKEN_CHARS,
    TTL_SECONDS,
    ResumeKey,
    ResumeRefused,
    new_seat,
    seat_for,
)

NOW = 1_800_000_000.0
KEY = ResumeKey.from_identity(bytes(range(32)))
MID = "k7m-q2xw-9fd"


def token(**changes: object) -> str:
    seat = seat_for(MID, "0123456789abcdef", "Ada", "member", NOW)
    return KEY.issue(seat) if not changes else _forged(KEY.issue(seat), changes)


def _forged(good: str, changes: dict[str, object]) -> str:
    """``good`` with its payload changed and its tag kept: what a participant editing its token gets."""
    text, tag = good.split(".")
    payload = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    payload.update(changes)
    edited = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    return f"{edited}.{tag}"


def test_a_token_gives_back_its_seat_name_role_and_meeting() -> None:
    seat = KEY.read(token(), NOW + 60)
    assert (seat.meeting, seat.seat, seat.name, seat.role) == (MID, "0123456789abcdef", "Ada", "member")
    assert seat.expires == NOW + TTL_SECONDS and seat.can_publish is None and not seat.recorder
    limited = seat_for(MID, new_seat(), "Bo", "admin", NOW, can_publish=frozenset({"audio"}), recorder=True)
    back = KEY.read(KEY.issue(limited), NOW)
    assert back.can_publish == frozenset({"audio"}) and back.recorder and back.role == "admin"


def test_the_key_is_the_identity_s_own_and_the_same_on_every_node_holding_it() -> None:
    assert ResumeKey.from_identity(bytes(range(32))) == KEY  # nodes sharing --identity check each other's
    other = ResumeKey.from_identity(bytes(32))
    with pytest.raises(ResumeRefused, match="not issued by this server's identity"):
        other.read(token(), NOW)
    assert KEY.secret != bytes(range(32))  # derived (HKDF), not the identity's seed itself


@pytest.mark.parametrize(
    "changes",
    [{"r": "host"}, {"m": "zzz-zzzz-zzz"}, {"n": "Eve"}, {"e": NOW + 10 * TTL_SECONDS}, {"s": "f" * 16}],
    ids=["role raised", "other meeting", "other name", "longer life", "other seat"],
)
def test_any_change_to_a_token_is_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ResumeRefused, match="altered"):
        KEY.read(token(**changes), NOW)


def test_an_expired_token_or_one_from_the_future_is_refused() -> None:
    KEY.read(token(), NOW + TTL_SECONDS + LEEWAY_SECONDS)  # the leeway still takes it
    with pytest.raises(ResumeRefused, match="expired"):
        KEY.read(token(), NOW + TTL_SECONDS + LEEWAY_SECONDS + 1)
    with pytest.raises(ResumeRefused, match="future"):
        KEY.read(token(), NOW - LEEWAY_SECONDS - 1)


@pytest.mark.parametrize(
    "text",
    ["", "no-dot", "a.b.c", "é.x", "x" * (MAX_TOKEN_CHARS + 1) + ".y", "e30.AAAA"],
)
def test_what_is_no_token_is_refused(text: str) -> None:
    with pytest.raises(ResumeRefused):
        KEY.read(text, NOW)


def test_a_signed_payload_of_another_version_or_shape_is_refused() -> None:
    for payload in ({"v": 2}, [], {"v": 1, "m": MID, "s": "x", "n": "Ada", "r": "member", "i": 1, "e": 2}):
        text = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
        tag = base64.urlsafe_b64encode(KEY._tag(text)).decode().rstrip("=")
        with pytest.raises(ResumeRefused):
            KEY.read(f"{text}.{tag}", NOW)


def test_a_token_fits_its_bound_with_the_longest_name() -> None:
    longest = seat_for(MID, new_seat(), '"\\' * 16 + "é" * 16, "host", NOW, can_publish=frozenset({"audio"}))
    assert len(KEY.issue(longest)) <= MAX_TOKEN_CHARS


# -- records ------------------------------------------------------------------------------------------


def record(**changes: object) -> MeetingRecord:
    fields: dict[str, object] = {
        "meeting": MID,
        "salt": bytes(16),
        "digest": bytes(64),
        "locked": True,
        "waiting_room": True,
        "forbidden": ("video",),
        "people": (Person("Ada", "host"), Person("Bo", "member", ("chat",))),
        "bans": ("Eve",),
    }
    fields.update(changes)
    return MeetingRecord(**fields)  # type: ignore[arg-type]


def test_a_record_round_trips() -> None:
    assert decode(record().encode()) == record()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff",
        b"[]",
        json.dumps({"v": 2}).encode(),
        record().encode().replace(b'"locked":true', b'"locked":"yes"'),
        record().encode().replace(b'"role":"host"', b'"role":"owner"'),
        record().encode().replace(b'"forbidden":["video"]', b'"forbidden":["teleport"]'),
        record(salt=bytes(3)).encode(),
        record(bans=("\x1b[2J",)).encode(),
        record(bans=("x",) * 1001).encode(),
        b" " * (MAX_RECORD_BYTES + 1),
    ],
    ids=[
        "empty",
        "not utf-8",
        "not an object",
        "other version",
        "a flag not boolean",
        "an unknown role",
        "an unknown forbid",
        "not a scrypt hash",
        "a control character in a name",
        "too many bans",
        "too large",
    ],
)
def test_a_record_that_is_not_sound_is_refused(data: bytes) -> None:
    with pytest.raises(RecordError):
        decode(data)


def test_the_file_store_keeps_records_private_atomic_and_bounded(tmp_path: Path) -> None:
    store = FileMeetingStore(tmp_path / "meetings")
    assert store.load(MID) is None
    store.save(MID, b"one")
    store.save(MID, b"two")  # replaced
    path = tmp_path / "meetings" / f"{MID}.meeting"
    assert store.load(MID) == b"two"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "meetings").stat().st_mode) == 0o700
    assert [p.name for p in (tmp_path / "meetings").iterdir()] == [path.name]  # no temporary file left
    with pytest.raises(ConfError):
        store.save(MID, b"x" * (MAX_RECORD_BYTES + 1))
    with pytest.raises(ConfError):
        store.save("../../etc/passwd", b"x")  # a meeting ID names no other place
    assert store.load("../x") is None
    path.write_bytes(b"x" * (MAX_RECORD_BYTES + 1))
    with pytest.raises(ConfError):
        store.load(MID)
    store.delete(MID)
    store.delete(MID)  # nothing left: nothing happens
    assert store.load(MID) is None


def test_the_file_store_prunes_records_no_token_can_reach(tmp_path: Path) -> None:
    store = FileMeetingStore(tmp_path)
    store.save(MID, b"old")
    store.save("abc-defg-hjk", b"new")
    old = tmp_path / f"{MID}.meeting"
    os.utime(old, (NOW - 3600, NOW - 3600))
    os.utime(tmp_path / "abc-defg-hjk.meeting", (NOW, NOW))
    assert store.prune(1800, now=NOW) == 1
    assert store.load(MID) is None and store.load("abc-defg-hjk") == b"new"
