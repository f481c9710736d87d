"""Access tokens at the hub and in the meeting rules: who a token lets in, as what, and what it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from conf_cli.protocol.control import PROTOCOL_VERSION
from conf_cli.server.hub import Hub
from conf_cli.server.limiter import AttemptLimiter, Limits
from conf_cli.server.meeting import Send
from conf_cli.server.people import Role
from conf_cli.server.tokens import TokenKey, issue
from tests.helpers.hub import make_hub, send, to

pytestmark = pytest.mark.usefixtures("cheap_scrypt")

MID = "aaa-bbbb-ccc"
OTHER = "ddd-eeee-fff"
NOW = 1_800_000_000.0
KEY = TokenKey.generate()


def token_hub(**kwargs: Any) -> Hub:
    """Ada (cid 1, at 10.0.0.1) hosts MID with the passcode pw-123; the hub's clock says NOW."""
    hub = make_hub(MID, OTHER, token_key=KEY, wall_clock=lambda: NOW, **kwargs)
    hello(hub, 1, "10.0.0.1")
    send(hub, 1, {"type": "create", "name": "Ada", "passcode": "pw-123"})
    return hub


def token(name: str = "bob", meeting: str | None = MID, role: Role = Role.MEMBER, **given: Any) -> str:
    settings: dict[str, Any] = {"can_publish": ("audio", "video", "screen"), "ttl": 600.0, "now": NOW}
    settings.update(given)
    key = settings.pop("key", KEY)
    return issue(key, name=name, meeting=meeting, role=role, **settings)


def hello(hub: Hub, cid: int, address: str = "10.0.0.9") -> None:
    hub.connected(cid, 0.0, f"{address}:{40000 + cid}")
    welcome = send(hub, cid, {"type": "hello", "protocol": PROTOCOL_VERSION})
    assert isinstance(welcome[0], Send) and welcome[0].message["time"] == NOW  # the hub tells its time


def join(hub: Hub, cid: int, text: str, name: str = "bob", meeting: str = MID, **extra: Any) -> list[Any]:
    return send(hub, cid, {"type": "join", "meeting": meeting, "name": name, "token": text, **extra})


def test_a_members_token_lets_its_name_in_without_the_passcode() -> None:
    hub = token_hub()
    hello(hub, 2)
    joined = to(join(hub, 2, token()), 2)[0]
    assert (joined["type"], joined["name"], joined["role"]) == ("joined", "bob", "member")
    assert hub.stats.passcode_checks == 0  # nothing hashed


def test_a_hosts_token_takes_the_host_role_and_the_host_becomes_an_admin() -> None:
    hub = token_hub()
    hello(hub, 2)
    actions = join(hub, 2, token("cy", role=Role.HOST), name="cy")
    joined = to(actions, 2)[0]
    assert joined["role"] == "host"
    assert {p["name"]: p["role"] for p in joined["participants"]} == {"Ada": "admin", "cy": "host"}
    assert to(actions, 1) == [
        {"type": "participant_joined", "name": "cy", "role": "host"},
        {"type": "role_changed", "name": "Ada", "role": "admin", "by": "cy"},
    ]


def test_an_admins_token_passes_a_lock_and_the_waiting_room_a_members_does_not() -> None:
    hub = token_hub()
    send(hub, 1, {"type": "lock"})
    hello(hub, 2)
    refused = to(join(hub, 2, token()), 2)[0]
    assert refused["code"] == "meeting_locked"
    hello(hub, 3)
    assert to(join(hub, 3, token("dee", role=Role.ADMIN), name="dee"), 3)[0]["role"] == "admin"
    send(hub, 1, {"type": "unlock"})
    send(hub, 1, {"type": "set_waiting_room", "enabled": True})
    assert to(join(hub, 2, token()), 2) == [{"type": "waiting", "meeting": MID, "name": "bob"}]
    hello(hub, 4)
    assert to(join(hub, 4, token("eve", role=Role.ADMIN), name="eve"), 4)[0]["type"] == "joined"
    admitted = to(send(hub, 1, {"type": "admit", "name": "bob"}), 2)[0]
    assert (admitted["type"], admitted["role"]) == ("joined", "member")
    # What bob's token grants came with him from the waiting room.
    refusal = to(send(hub, 2, {"type": "publish", "kind": "screen", "ssrc": 7, "codec": "H264"}), 2)
    assert refusal[0]["type"] == "share_started"


def test_publish_grants_hold_whatever_the_role_becomes() -> None:
    hub = token_hub()
    hello(hub, 2)
    join(hub, 2, token(can_publish=("audio",)))
    refused = to(send(hub, 2, {"type": "publish", "kind": "video", "ssrc": 5, "codec": "H264"}), 2)[0]
    assert (refused["code"], refused["message"]) == (
        "forbidden",
        "your access token does not let you publish video",
    )
    assert (
        to(send(hub, 2, {"type": "publish", "kind": "audio", "ssrc": 6, "codec": "opus"}), 1)[0]["kind"]
        == "audio"
    )
    send(hub, 1, {"type": "set_role", "name": "bob", "role": "host"})
    again = to(send(hub, 2, {"type": "publish", "kind": "video", "ssrc": 5, "codec": "H264"}), 2)[0]
    assert again["code"] == "forbidden"  # the host role lifts forbids, not the token's limit
    assert 5 not in hub.meetings[MID].tracks


def test_bad_tokens_are_refused_clearly_and_count_like_wrong_passcodes() -> None:
    hub = token_hub(limiter=AttemptLimiter(Limits(per_address=4, per_target=100, window=60)))
    hello(hub, 2)
    bad = [
        (token(meeting=OTHER), f"this access token is for meeting {OTHER}, not {MID}"),
        (token(key=TokenKey.generate()), "this access token was signed with another key"),
        (token(now=NOW - 3600), "this access token expired at"),
        (token("eve"), "this access token is for 'eve', not 'bob'"),
    ]
    for text, why in bad:
        refusal = to(join(hub, 2, text), 2)[0]
        assert refusal["code"] == "bad_token" and refusal["message"].startswith(why), refusal
    limited = to(join(hub, 2, token()), 2)[0]  # a good token, but the address used up its attempts
    assert limited["code"] == "rate_limited"
    assert MID in hub.meetings and list(hub.meetings[MID].participants) == [1]


def test_a_token_for_any_meeting_opens_each_and_the_passcode_still_works() -> None:
    hub = token_hub()
    hello(hub, 5, "10.0.0.5")
    create_other = send(hub, 5, {"type": "create", "name": "Zed", "passcode": "pw-999"})
    assert to(create_other, 5)[0]["meeting"] == OTHER
    anywhere = token(meeting=None)
    hello(hub, 2)
    assert to(join(hub, 2, anywhere), 2)[0]["meeting"] == MID
    hello(hub, 3)
    assert to(join(hub, 3, anywhere, meeting=OTHER), 3)[0]["meeting"] == OTHER
    hello(hub, 4)
    joined = to(send(hub, 4, {"type": "join", "meeting": MID, "name": "cy", "passcode": "pw-123"}), 4)[0]
    assert joined["type"] == "joined"


def test_a_hub_without_a_token_key_takes_no_token_and_a_malformed_one_is_a_bad_request() -> None:
    hub = make_hub(MID, wall_clock=lambda: NOW)
    hello(hub, 1, "10.0.0.1")
    send(hub, 1, {"type": "create", "name": "Ada", "passcode": "pw-123"})
    hello(hub, 2)
    refusal = to(join(hub, 2, token()), 2)[0]
    assert refusal["message"] == "this server takes no access tokens; join with the passcode"
    garbage = to(join(hub, 2, "<script>"), 2)[0]
    assert garbage["code"] == "bad_request" and "join.token must be an access token" in garbage["message"]


def test_a_token_join_needs_no_login_on_a_server_that_requires_one() -> None:
    hub = token_hub()
    hub.require_login = True  # from now on (Ada created her meeting before)
    hello(hub, 2)
    assert to(join(hub, 2, token()), 2)[0]["type"] == "joined"
    hello(hub, 3)
    plain = to(send(hub, 3, {"type": "join", "meeting": MID, "name": "cy", "passcode": "pw-123"}), 3)[0]
    assert plain["code"] == "login_required"
