"""Access tokens, sans-I/O: what a token says, the signature, and what admits whom when."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import jwt
import pytest

from conf_cli.errors import ConfError
from conf_cli.server.people import Grant, Role
from conf_cli.server.tokens import (
    LEEWAY,
    AccessToken,
    TokenKey,
    TokenRefused,
    issue,
    parse_ttl,
    peek,
    read,
)

NOW = 1_800_000_000.0
MEETING = "k7m-q2xw-9fd"


def token(key: TokenKey, **given: object) -> str:
    settings: dict[str, object] = {
        "name": "ada",
        "meeting": MEETING,
        "role": Role.MEMBER,
        "can_publish": ("audio", "video", "screen"),
        "ttl": 3600.0,
        "now": NOW,
    }
    settings.update(given)
    return issue(key, **settings)  # type: ignore[arg-type]


def edit_payload(text: str, **changes: object) -> str:
    """The token with its payload changed and its signature kept, as an attacker would."""
    header, payload, signature = text.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    edited = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{edited}.{signature}"


def test_a_token_says_who_where_as_what_until_when() -> None:
    key = TokenKey.generate()
    claims = read(token(key, role=Role.HOST, can_publish=("audio",)), key)
    assert claims == AccessToken(
        "ada", MEETING, Role.HOST, frozenset({"audio"}), NOW, NOW + 3600, claims.token_id
    )
    assert claims.grant == Grant(Role.HOST, frozenset({"audio"}))
    claims.admits(MEETING, "ADA", NOW + 10)  # names compare as names do
    assert read(token(key, meeting=None), key).meeting is None  # --any
    assert len(claims.token_id) == 16


def test_expiry_has_a_small_leeway_and_no_more() -> None:
    key = TokenKey.generate()
    claims = read(token(key, ttl=60), key)
    claims.admits(MEETING, "ada", NOW + 60 + LEEWAY)
    with pytest.raises(TokenRefused, match="expired at"):
        claims.admits(MEETING, "ada", NOW + 60 + LEEWAY + 1)
    with pytest.raises(TokenRefused, match="issued in the future"):
        claims.admits(MEETING, "ada", NOW - LEEWAY - 1)


def test_a_token_opens_its_meeting_only_and_for_its_name_only() -> None:
    key = TokenKey.generate()
    claims = read(token(key), key)
    with pytest.raises(TokenRefused, match=f"for meeting {MEETING}, not zzz-zzzz-zzz"):
        claims.admits("zzz-zzzz-zzz", "ada", NOW)
    with pytest.raises(TokenRefused, match="is for 'ada', not 'eve'"):
        claims.admits(MEETING, "eve", NOW)
    read(token(key, meeting=None), key).admits("zzz-zzzz-zzz", "ada", NOW)


def test_another_keys_token_an_edited_one_and_alg_none_are_refused() -> None:
    key, other = TokenKey.generate(), TokenKey.generate()
    with pytest.raises(TokenRefused, match="signed with another key"):
        read(token(other), key)
    with pytest.raises(TokenRefused, match="altered: its signature does not match"):
        read(edit_payload(token(key), role="host"), key)
    with pytest.raises(TokenRefused, match="altered"):
        read(edit_payload(token(key), meeting="*"), key)
    unsigned = jwt.encode(
        {"iss": "conf", "sub": "ada", "meeting": "*", "role": "host", "iat": 1, "exp": 2**40},
        None,
        algorithm="none",
    )
    with pytest.raises(TokenRefused, match="signed with 'none'; conf takes only HS256"):
        read(unsigned, key)
    with pytest.raises(TokenRefused, match="signed with 'HS512'"):
        read(jwt.encode({"sub": "ada"}, key.secret * 2, algorithm="HS512"), key)


def test_garbage_and_missing_claims_are_one_clear_refusal() -> None:
    key = TokenKey.generate()
    with pytest.raises(TokenRefused, match="not an access token"):
        read("not-a-token", key)
    with pytest.raises(TokenRefused, match="at most 2048 characters"):
        read("a" * 2049, key)
    bare = jwt.encode(
        {"iss": "conf", "sub": "ada", "iat": 1}, key.secret, algorithm="HS256", headers={"kid": key.kid}
    )
    with pytest.raises(TokenRefused, match="no 'exp' claim"):
        read(bare, key)
    bad_role = jwt.encode(
        {"iss": "conf", "sub": "ada", "meeting": "*", "role": "god", "iat": 1, "exp": 2},
        key.secret,
        algorithm="HS256",
    )
    with pytest.raises(TokenRefused, match="role is not one of host, admin, member"):
        read(bad_role, key)
    stranger = jwt.encode({"iss": "x", "sub": "ada", "iat": 1, "exp": 2}, key.secret, algorithm="HS256")
    with pytest.raises(TokenRefused, match="not issued by conf"):
        read(stranger, key)


def test_bad_requests_for_a_token_are_refused_before_signing() -> None:
    key = TokenKey.generate()
    with pytest.raises(ConfError, match="unknown kind 'smell'"):
        token(key, can_publish=("smell",))
    with pytest.raises(ConfError, match="--name"):
        token(key, name="/ada")
    assert parse_ttl("1h") == 3600 and parse_ttl("30m") == 1800 and parse_ttl("90") == 90
    assert parse_ttl("2d") == 2 * 86400
    for bad in ("soon", "0", "-5m", "400d"):
        with pytest.raises(ConfError, match="ttl"):
            parse_ttl(bad)
    assert peek(token(key))["sub"] == "ada"


def test_the_key_file_is_made_once_private_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "server" / "token.key"
    made = TokenKey.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert TokenKey.load_or_create(path) == made
    path.write_text("short\n")
    with pytest.raises(ConfError, match="is not 32 bytes in base64"):
        TokenKey.load_or_create(path)


def test_a_token_lets_its_holders_whip_publisher_and_whep_player_in_by_their_tagged_names() -> None:
    key = TokenKey.generate()
    claims = read(token(key), key)
    assert claims.name_for("ADA") == "ada"
    assert claims.name_for("Ada (WHIP)") == "ada (WHIP)"
    assert claims.name_for("ada (whep)") == "ada (WHEP)"
    claims.admits(MEETING, "ada (WHIP)", NOW)
    for other in ("ada (RTSP)", "ada(WHIP)", "eve (WHIP)", "ada (WHIP) (WHIP)"):
        with pytest.raises(TokenRefused, match="is for 'ada'"):
            claims.admits(MEETING, other, NOW)
