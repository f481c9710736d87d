"""Meeting IDs, passcodes and their scrypt hashes."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import FrozenInstanceError

import pytest

from conf_cli.server import passcode as passcode_module
from conf_cli.server.passcode import PasscodeHash, new_meeting_id, new_passcode, normalise_meeting_id

ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
ID_FORMAT = re.compile(rf"[{ALPHABET}]{{3}}-[{ALPHABET}]{{4}}-[{ALPHABET}]{{3}}")


@pytest.fixture
def cheap_scrypt() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(passcode_module, "_SCRYPT", {"n": 2, "r": 1, "p": 1})
        yield


def test_meeting_ids_have_the_documented_shape():
    for _ in range(200):
        assert ID_FORMAT.fullmatch(new_meeting_id())


def test_meeting_ids_avoid_characters_that_are_misread():
    seen = set("".join(new_meeting_id() for _ in range(500)).replace("-", ""))
    assert seen.isdisjoint("01ilo")
    assert seen <= set(ALPHABET)
    # 5,000 draws from 31 symbols: every symbol turns up.
    assert seen == set(ALPHABET)


def test_meeting_ids_do_not_repeat():
    ids = {new_meeting_id() for _ in range(2_000)}
    assert len(ids) == 2_000


@pytest.mark.parametrize(
    "typed",
    ["k7m-q2xw-9fd", "K7M-Q2XW-9FD", "k7mq2xw9fd", "k7m q2xw 9fd", "  K7M Q2XW 9FD  ", "k7m.q2xw.9fd"],
)
def test_normalise_meeting_id_accepts_what_people_type(typed):
    assert normalise_meeting_id(typed) == "k7m-q2xw-9fd"


@pytest.mark.parametrize(
    ("typed", "expected"),
    [(" Nope ", "nope"), ("k7m-q2xw-9f", "k7m-q2xw-9f"), ("", ""), ("ABCDEFGHIJK", "abcdefghijk")],
)
def test_normalise_meeting_id_leaves_other_text_lowered_and_stripped(typed, expected):
    assert normalise_meeting_id(typed) == expected


def test_normalised_ids_round_trip():
    for _ in range(50):
        meeting_id = new_meeting_id()
        assert normalise_meeting_id(meeting_id.upper().replace("-", " ")) == meeting_id


def test_passcodes_are_six_readable_characters():
    codes = [new_passcode() for _ in range(300)]
    assert all(len(code) == 6 and set(code) <= set(ALPHABET) for code in codes)
    assert len(set(codes)) == 300


def test_hash_uses_real_scrypt_and_matches_only_its_passcode():
    digest = PasscodeHash.of("open sesame")
    assert len(digest.salt) == 16
    assert digest.digest == hashlib.scrypt(b"open sesame", salt=digest.salt, n=2**14, r=8, p=1)
    assert digest.matches("open sesame")
    assert not digest.matches("open sesame ")


@pytest.mark.usefixtures("cheap_scrypt")
@pytest.mark.parametrize("wrong", ["", "Open sesame", "open sesam", "open sesame!", "öpen sesame"])
def test_hash_refuses_near_misses(wrong):
    assert not PasscodeHash.of("open sesame").matches(wrong)


@pytest.mark.usefixtures("cheap_scrypt")
@pytest.mark.parametrize("code", ["", "x", "pässwörd", "密码", "🔑" * 32, "a" * 128])
def test_hash_matches_any_passcode(code):
    assert PasscodeHash.of(code).matches(code)


@pytest.mark.usefixtures("cheap_scrypt")
def test_hashes_are_salted_and_keep_no_passcode():
    first, second = PasscodeHash.of("sesame"), PasscodeHash.of("sesame")
    assert first.salt != second.salt
    assert first.digest != second.digest
    assert first.matches("sesame") and second.matches("sesame")
    assert b"sesame" not in first.salt + first.digest
    assert "sesame" not in repr(first)


@pytest.mark.usefixtures("cheap_scrypt")
def test_hash_is_immutable():
    digest = PasscodeHash.of("sesame")
    with pytest.raises(FrozenInstanceError):
        digest.digest = b""  # type: ignore[misc]
