"""Who gets in, at the hub: the waiting room's routing (control and media), logins and rate limits."""

from __future__ import annotations

from typing import Any

import pytest

from conf_cli.protocol.control import PROTOCOL_VERSION, encode
from conf_cli.protocol.rtcp import Pli, ReceiverReport, build_compound
from conf_cli.protocol.rtp import RtpPacket
from conf_cli.server.hub import Deferred, Forward, Hub, peer_host
from conf_cli.server.limiter import AttemptLimiter, Limits
from conf_cli.server.meeting import Send
from conf_cli.server.passcode import PasscodeCache
from tests.helpers.hub import WELCOME, make_hub, send, to

MID = "aaa-bbbb-ccc"
VIDEO, AUDIO = 0x1111, 0x2222


pytestmark = pytest.mark.usefixtures("cheap_scrypt")


def hello(hub: Hub, cid: int, address: str, now: float = 0.0) -> None:
    hub.connected(cid, now, f"{address}:{40000 + cid}")
    assert send(hub, cid, {"type": "hello", "protocol": PROTOCOL_VERSION}, now) == [Send((cid,), WELCOME)]


def types(actions: list[Any], cid: int) -> list[str]:
    return [m["type"] for m in to(actions, cid)]


def rtp(ssrc: int) -> bytes:
    return bytes(RtpPacket(96, 1, 1000, ssrc, b"\x65payload"))


def waiting_room_meeting() -> Hub:
    """Ada (1) hosts MID with a waiting room and shares video; Bob (2) is admitted and shares audio;
    Cy (3) waits."""
    hub = make_hub(MID)
    hello(hub, 1, "10.0.0.1")
    send(hub, 1, {"type": "create", "name": "Ada", "passcode": "pw-123", "waiting_room": True})
    hello(hub, 2, "10.0.0.2")
    assert types(send(hub, 2, {"type": "join", "meeting": MID, "name": "Bob", "passcode": "pw-123"}), 2) == [
        "waiting"
    ]
    send(hub, 1, {"type": "admit", "name": "Bob"})
    send(hub, 1, {"type": "publish", "kind": "video", "ssrc": VIDEO, "codec": "H264"})
    send(hub, 2, {"type": "publish", "kind": "audio", "ssrc": AUDIO, "codec": "opus"})
    hello(hub, 3, "10.0.0.3")
    actions = send(hub, 3, {"type": "join", "meeting": MID, "name": "Cy", "passcode": "pw-123"})
    assert to(actions, 3) == [{"type": "waiting", "meeting": MID, "name": "Cy"}]
    assert to(actions, 1) == [{"type": "waiting_joined", "name": "Cy"}]
    assert to(actions, 2) == []
    return hub


# -- the waiting room ---------------------------------------------------------------------------------


def test_no_media_reaches_or_leaves_a_waiting_connection():
    hub = waiting_room_meeting()
    assert hub.route_media(1, rtp(VIDEO), 1.0) == (2,)
    assert hub.route_media(2, rtp(AUDIO), 1.0) == (1,)
    refused = hub.stats.media_refused
    assert hub.route_media(3, rtp(0x3333), 1.0) == ()  # nothing of theirs goes anywhere ...
    assert hub.route_media(3, bytes(Pli(5, VIDEO)), 1.0) == ()  # ... not even a keyframe request
    report = build_compound([ReceiverReport(5, ())])
    assert hub.route_media(3, report, 1.0) == ()
    assert hub.stats.media_refused == refused + 3
    assert hub.meeting_of(3) is None


def test_a_waiting_connection_gets_no_chat_and_may_only_leave():
    hub = waiting_room_meeting()
    assert 3 not in {c for a in send(hub, 2, {"type": "chat", "text": "hi"}) for c in a.to}
    for request in (
        {"type": "chat", "text": "let me in"},
        {"type": "who"},
        {"type": "publish", "kind": "audio", "ssrc": 9, "codec": "opus"},
    ):
        (refusal,) = send(hub, 3, request)
        assert refusal.message["code"] == "waiting", request
    actions = send(hub, 3, {"type": "leave"})
    assert to(actions, 3) == [{"type": "left", "meeting": MID, "reason": "left"}]
    assert to(actions, 1) == [{"type": "waiting_left", "name": "Cy", "reason": "left"}]
    assert hub.meetings[MID].waiting == {}


def test_a_waiting_connection_that_drops_disappears_from_the_list():
    hub = waiting_room_meeting()
    actions = hub.disconnected(3)
    assert to(actions, 1) == [{"type": "waiting_left", "name": "Cy", "reason": "disconnected"}]
    assert to(send(hub, 1, {"type": "who"}), 1)[0]["waiting"] == []


def test_admitted_they_receive_media_and_publishers_are_asked_for_a_keyframe():
    hub = waiting_room_meeting()
    actions = send(hub, 1, {"type": "admit", "name": "Cy"})
    assert types(actions, 3) == ["joined"]
    assert Forward((1,), bytes(Pli(0, VIDEO))) in actions
    assert hub.route_media(1, rtp(VIDEO), 2.0) == (2, 3)
    assert hub.meeting_of(3) is hub.meetings[MID]


def test_denied_they_are_detached_and_told():
    hub = waiting_room_meeting()
    actions = send(hub, 1, {"type": "deny", "name": "Cy"})
    assert to(actions, 3) == [{"type": "denied", "meeting": MID, "by": "Ada"}]
    (refusal,) = send(hub, 3, {"type": "chat", "text": "hello?"})
    assert refusal.message["code"] == "not_in_meeting"
    assert hub.route_media(1, rtp(VIDEO), 2.0) == (2,)


def test_admit_all_and_waiting_room_off_go_through_the_hub():
    hub = waiting_room_meeting()
    (refusal,) = send(hub, 1, {"type": "admit"})
    assert refusal.message["code"] == "bad_request"
    actions = send(hub, 1, {"type": "set_waiting_room", "enabled": False})
    assert types(actions, 3) == ["joined"]
    assert hub.meeting_of(3) is hub.meetings[MID]


def test_ending_the_meeting_releases_the_waiting():
    hub = waiting_room_meeting()
    actions = send(hub, 1, {"type": "end"})
    assert to(actions, 3) == [{"type": "meeting_closed", "reason": "ended", "by": "Ada"}]
    assert MID not in hub.meetings
    assert send(hub, 3, {"type": "leave"})[0].message["code"] == "not_in_meeting"


# -- rate limits on passcodes -------------------------------------------------------------------------


def limited_hub(per_address: int = 2, per_target: int = 3, window: float = 10.0, **kwargs: Any) -> Hub:
    return make_hub(MID, limiter=AttemptLimiter(Limits(per_address, per_target, window)), **kwargs)


def attempt(hub: Hub, cid: int, passcode: str, now: float) -> dict[str, Any]:
    actions = send(
        hub, cid, {"type": "join", "meeting": MID, "name": f"p{cid}", "passcode": passcode, "id": 4}, now
    )
    return to(actions, cid)[0]


def test_wrong_passcodes_are_refused_for_a_while_without_hashing_then_allowed():
    hub = limited_hub()
    hello(hub, 1, "10.0.0.1")
    send(hub, 1, {"type": "create", "name": "Ada", "passcode": "pw-123"})
    hello(hub, 2, "10.6.6.6")
    assert attempt(hub, 2, "guess1", 0.0)["code"] == "wrong_passcode"
    assert attempt(hub, 2, "guess2", 1.0)["code"] == "wrong_passcode"
    request = {"type": "join", "meeting": MID, "name": "p2", "passcode": "pw-123"}
    raw = hub.received(2, encode(request), 2.0)
    assert not any(isinstance(a, Deferred) for a in raw)  # refused before any scrypt work
    refusal = raw[0].message
    assert refusal == {
        "type": "error",
        "code": "rate_limited",
        "message": "too many failed attempts; try again in 8 s",
        "re": "join",
        "retry_after": 8.0,
    }
    assert hub.stats.attempts_refused == 1
    assert attempt(hub, 2, "pw-123", 9.9)["code"] == "rate_limited"  # even the right passcode, for now
    assert attempt(hub, 2, "pw-123", 10.0)["type"] == "joined"


def test_guessing_meeting_ids_counts_too():
    hub = limited_hub()
    hello(hub, 2, "10.6.6.6")
    for now in (0.0, 1.0):
        (refusal,) = send(hub, 2, {"type": "join", "meeting": "zzz-zzzz-zzz", "name": "x"}, now)
        assert refusal.message["code"] == "unknown_meeting"
    (refusal,) = send(hub, 2, {"type": "join", "meeting": "zzz-zzzz-yyy", "name": "x"}, 2.0)
    assert refusal.message["code"] == "rate_limited"


def test_an_attack_from_many_addresses_cannot_keep_the_host_out():
    """Strangers exhaust the meeting's window; those who got in before (the host from where they created
    the meeting, Bob from where he joined) still get back in."""
    hub = limited_hub(per_address=2, per_target=3)
    hello(hub, 1, "10.0.0.1")
    send(hub, 1, {"type": "create", "name": "Ada", "passcode": "pw-123"})
    hello(hub, 2, "10.0.0.2")
    assert attempt(hub, 2, "pw-123", 0.5)["type"] == "joined"
    for n in range(3):
        hello(hub, 10 + n, f"10.6.6.{n}")
        assert attempt(hub, 10 + n, "guess", 1.0)["code"] == "wrong_passcode"
    hello(hub, 20, "10.6.7.7")
    assert (
        attempt(hub, 20, "pw-123", 2.0)["code"] == "rate_limited"
    )  # a stranger: the meeting is shut for now
    send(hub, 1, {"type": "leave"}, 2.0)  # the host steps out; Bob keeps the meeting going
    assert attempt(hub, 1, "pw-123", 2.5)["type"] == "joined"
    hub.disconnected(2)
    hello(hub, 3, "10.0.0.2", 3.0)  # Bob's connection dropped: he comes back on a new one
    assert attempt(hub, 3, "pw-123", 3.0)["type"] == "joined"
    assert attempt(hub, 20, "pw-123", 11.0)["type"] == "joined"  # and the window does end for the others


# -- logins -------------------------------------------------------------------------------------------


class FakeAccounts:
    def __init__(self, **passwords: str) -> None:
        self.passwords = passwords
        self.calls = 0

    def verify(self, name: str, password: str) -> tuple[str, str]:
        self.calls += 1
        for stored, secret in self.passwords.items():
            if stored.casefold() == name.casefold():
                return ("ok", stored) if secret == password else ("wrong", name)
        return "unknown", name

    def exists(self, name: str) -> bool:
        return any(stored.casefold() == name.casefold() for stored in self.passwords)


def test_login_is_required_before_create_or_join():
    hub = limited_hub(accounts=FakeAccounts(Ada="hunter2"), require_login=True)
    hello(hub, 1, "10.0.0.1")
    (refusal,) = send(hub, 1, {"type": "create", "name": "Ada"})
    assert refusal.message["code"] == "login_required"
    (refusal,) = send(hub, 1, {"type": "join", "meeting": MID, "name": "Ada"})
    assert refusal.message["code"] == "login_required"


def test_wrong_password_and_unknown_user_have_their_own_codes():
    hub = limited_hub(per_address=5, accounts=FakeAccounts(Ada="hunter2"), require_login=True)
    hello(hub, 1, "10.0.0.1")
    assert (
        to(send(hub, 1, {"type": "login", "user": "Ada", "password": "nope"}), 1)[0]["code"]
        == "wrong_password"
    )
    assert to(send(hub, 1, {"type": "login", "user": "Zed", "password": "x"}), 1)[0]["code"] == "unknown_user"


def test_logged_in_the_account_name_is_the_display_name():
    hub = limited_hub(accounts=FakeAccounts(Ada="hunter2"), require_login=True)
    hello(hub, 1, "10.0.0.1")
    assert to(send(hub, 1, {"type": "login", "user": "ada", "password": "hunter2"}), 1) == [
        {"type": "logged_in", "user": "Ada"}
    ]
    (refusal,) = send(hub, 1, {"type": "login", "user": "ada", "password": "hunter2"})
    assert refusal.message["code"] == "bad_request"  # once per connection
    actions = send(hub, 1, {"type": "create", "name": "The Boss", "passcode": "pw-123"})
    joined = to(actions, 1)[1]
    assert joined["type"] == "joined" and joined["name"] == "Ada"


def test_failed_logins_are_rate_limited_per_account_and_address():
    accounts = FakeAccounts(Ada="hunter2")
    hub = limited_hub(per_address=2, per_target=3, accounts=accounts, require_login=True)
    hello(hub, 1, "10.6.6.6")
    for now in (0.0, 1.0):
        send(hub, 1, {"type": "login", "user": "Ada", "password": "guess"}, now)
    (refusal,) = send(hub, 1, {"type": "login", "user": "Ada", "password": "hunter2"}, 2.0)
    assert refusal.message["code"] == "rate_limited" and refusal.message["retry_after"] == 8.0
    assert accounts.calls == 2
    assert (
        to(send(hub, 1, {"type": "login", "user": "Ada", "password": "hunter2"}, 10.0), 1)[0]["type"]
        == "logged_in"
    )


def test_without_required_login_guests_cannot_take_an_account_name():
    hub = limited_hub(accounts=FakeAccounts(Ada="hunter2"))
    hello(hub, 1, "10.0.0.1")
    (refusal,) = send(hub, 1, {"type": "create", "name": "ADA", "passcode": "pw-123"})
    assert refusal.message["code"] == "name_taken"
    assert refusal.message["message"] == (
        "the name 'ADA' belongs to an account on this server; log in with --user ADA"
    )
    created = to(send(hub, 1, {"type": "create", "name": "Bea", "passcode": "pw-123"}), 1)
    assert created[1]["name"] == "Bea"  # guests are welcome under other names
    hello(hub, 2, "10.0.0.2")
    (refusal,) = send(hub, 2, {"type": "join", "meeting": MID, "name": "ada", "passcode": "pw-123"})
    assert refusal.message["code"] == "name_taken"
    send(hub, 2, {"type": "login", "user": "ada", "password": "hunter2"})
    assert (
        to(send(hub, 2, {"type": "join", "meeting": MID, "name": "x", "passcode": "pw-123"}), 2)[0]["name"]
        == "Ada"
    )


def test_login_on_a_server_without_accounts_is_a_bad_request():
    hub = make_hub(MID)
    hello(hub, 1, "10.0.0.1")
    (refusal,) = send(hub, 1, {"type": "login", "user": "Ada", "password": "x"})
    assert refusal.message["code"] == "bad_request"


@pytest.mark.parametrize(
    ("peer", "host"),
    [
        ("127.0.0.1:5000", "127.0.0.1"),
        ("::1:5000", "::1"),
        ("[::1]:5000", "::1"),
        ("10.0.0.7 (zmq id 0123abcd)", "10.0.0.7"),
        ("::1 (zmq id 0123abcd)", "::1"),
        ("", ""),
    ],
)
def test_the_address_is_the_peer_host_without_port(peer: str, host: str):
    assert peer_host(peer) == host


def test_with_login_required_one_is_online_for_calls_under_ones_account_name_only():
    hub = limited_hub(accounts=FakeAccounts(Ada="hunter2"), require_login=True)
    hello(hub, 1, "10.0.0.1")
    hub.calls.stun_port = 3478  # the server offers calls
    (refusal,) = send(hub, 1, {"type": "online", "name": "Ada"})
    assert refusal.message["code"] == "login_required"
    send(hub, 1, {"type": "login", "user": "ada", "password": "hunter2"})
    (online,) = to(send(hub, 1, {"type": "online", "name": "Someone Else"}), 1)
    assert online["type"] == "online" and online["name"] == "Ada"


def test_without_required_login_guests_cannot_go_online_for_calls_under_an_account_name():
    """Security review (Low): a guest went online as an account's name and took its calls."""
    hub = limited_hub(accounts=FakeAccounts(Ada="hunter2"))
    hello(hub, 1, "10.0.0.1")
    hello(hub, 2, "10.0.0.2")
    hello(hub, 3, "10.0.0.3")
    hub.calls.stun_port = 3478  # the server offers calls
    (refusal,) = send(hub, 1, {"type": "online", "name": "ADA", "id": 3})
    assert refusal.message["code"] == "name_taken" and refusal.message["id"] == 3
    assert "belongs to an account" in refusal.message["message"]
    assert hub.calls.name_of(1) is None
    (online,) = to(send(hub, 1, {"type": "online", "name": "Bea"}), 1)
    assert online["name"] == "Bea"  # guests are welcome under other names
    send(hub, 2, {"type": "login", "user": "ada", "password": "hunter2"})
    (online,) = to(send(hub, 2, {"type": "online", "name": "whatever"}), 2)
    assert online["name"] == "Ada" and hub.calls.name_of(2) == "Ada"
    (refusal,) = send(hub, 3, {"type": "online", "name": "Bea"})
    assert refusal.message["code"] == "name_taken"  # the board's own refusal, after the account check


# -- attempts counted while they are checked (the security review: simultaneous guesses) -------------


# These hubs keep no meeting key, so every check is a scrypt hash that runs while others arrive; with the
# key, checks are answered at once (tests/server/test_passcode_cache.py) and cannot overlap at all.


def started(hub: Hub, cid: int, request: dict[str, Any], now: float = 0.0) -> list[Any]:
    """What the hub answers at once, before any hashing is carried out: the edge has not run a single
    Deferred yet, as when many requests arrive together."""
    return hub.received(cid, encode(request), now)


def test_simultaneous_wrong_passcodes_from_one_address_get_at_most_the_limit_of_checks():
    hub = limited_hub(per_address=3, per_target=20, passcodes=PasscodeCache(limit=0))
    hello(hub, 1, "10.0.0.1")
    send(hub, 1, {"type": "create", "name": "Ada", "passcode": "pw-123"})
    pending: list[Deferred] = []
    refused: list[dict[str, Any]] = []
    for cid in range(10, 40):  # 30 connections from one address, each with one guess, all at once
        hello(hub, cid, "10.6.6.6")
        request = {"type": "join", "meeting": MID, "name": f"m{cid}", "passcode": f"guess{cid}"}
        for action in started(hub, cid, request, 1.0):
            if isinstance(action, Deferred):
                pending.append(action)
            else:
                refused.append(action.message)
    assert len(pending) == 3 and hub.stats.passcode_checks == 3
    assert len(refused) == 27 and {r["code"] for r in refused} == {"rate_limited"}
    for deferred in pending:  # the checks finish: wrong, and counted once each
        assert to(deferred.resume(deferred.work(), 2.0), 0) == []
    assert attempt(hub, 10, "pw-123", 3.0)["code"] == "rate_limited"  # the window is full until 61 s
    assert hub.stats.passcode_checks == 3
    assert attempt(hub, 10, "pw-123", 61.0)["type"] == "joined"


def test_a_right_passcode_being_checked_counts_until_it_succeeds_then_not():
    hub = limited_hub(per_address=1, passcodes=PasscodeCache(limit=0))
    hello(hub, 1, "10.0.0.1")
    send(hub, 1, {"type": "create", "name": "Ada", "passcode": "pw-123"})
    hello(hub, 2, "10.0.0.2")
    hello(hub, 3, "10.0.0.2")
    (check,) = started(hub, 2, {"type": "join", "meeting": MID, "name": "Bob", "passcode": "pw-123"})
    assert isinstance(check, Deferred)
    (refusal,) = started(hub, 3, {"type": "join", "meeting": MID, "name": "Bo", "passcode": "pw-123"})
    assert refusal.message["code"] == "rate_limited"  # one check at a time for this address
    assert to(check.resume(check.work(), 0.5), 2)[0]["type"] == "joined"
    assert attempt(hub, 3, "pw-123", 0.6)["type"] == "joined"  # the success no longer counts


def test_a_guess_whose_connection_closes_before_the_answer_still_counts():
    hub = limited_hub(per_address=2, passcodes=PasscodeCache(limit=0))
    hello(hub, 1, "10.0.0.1")
    send(hub, 1, {"type": "create", "name": "Ada", "passcode": "pw-123"})
    for cid in (2, 3):
        hello(hub, cid, "10.6.6.6")
        (check,) = started(hub, cid, {"type": "join", "meeting": MID, "name": "m", "passcode": "nope"})
        hub.disconnected(cid)
        assert check.resume(check.work(), 0.5) == []
    hello(hub, 4, "10.6.6.6")
    assert attempt(hub, 4, "pw-123", 1.0)["code"] == "rate_limited"


def test_simultaneous_logins_get_at_most_the_limit_of_checks():
    accounts = FakeAccounts(Ada="hunter2")
    hub = limited_hub(per_address=2, accounts=accounts, require_login=True)
    checks = []
    for cid in range(10, 20):
        hello(hub, cid, "10.6.6.6")
        checks += [
            a
            for a in started(hub, cid, {"type": "login", "user": "Ada", "password": f"guess{cid}"})
            if isinstance(a, Deferred)
        ]
    assert len(checks) == 2 and hub.stats.login_checks == 2
    for check in checks:
        check.resume(check.work(), 0.5)
    assert accounts.calls == 2


# -- creates ------------------------------------------------------------------------------------------


def test_creates_are_limited_per_address_even_all_at_once():
    hub = Hub(limiter=AttemptLimiter(Limits(5, 20, 60.0, creates_per_address=3)))
    hashing = 0
    refused = []
    for cid in range(1, 11):
        hello(hub, cid, "10.6.6.6")
        for action in started(hub, cid, {"type": "create", "name": "m", "passcode": "pw-123"}):
            if isinstance(action, Deferred):
                hashing += 1
            else:
                refused.append(action.message)
    assert hashing == 3 and hub.stats.creates_hashed == 3
    assert len(refused) == 7
    assert refused[0] == {
        "type": "error",
        "code": "rate_limited",
        "message": "too many meetings created from your address; try again in 60 s",
        "re": "create",
        "retry_after": 60.0,
    }
    hello(hub, 50, "10.0.0.1")  # another address is not affected
    assert types(send(hub, 50, {"type": "create", "name": "Ada"}), 50)[0] == "meeting_created"
    hello(hub, 51, "10.6.6.6", 60.0)  # and the window ends
    assert types(send(hub, 51, {"type": "create", "name": "m"}, 60.0), 51)[0] == "meeting_created"


@pytest.mark.parametrize("passcode", ["1", "pw", "12345", "ab cd"])
def test_a_chosen_passcode_shorter_than_six_characters_is_refused(passcode: str):
    hub = limited_hub()
    hello(hub, 1, "10.0.0.1")
    (refusal,) = send(hub, 1, {"type": "create", "name": "Ada", "passcode": passcode})
    assert refusal.message == {
        "type": "error",
        "code": "passcode_too_short",
        "message": "a passcode needs at least 6 characters; choose a longer one, or give none and the "
        "server draws one",
        "re": "create",
    }
    assert hub.meetings == {} and hub.stats.creates_hashed == 0
    assert to(send(hub, 1, {"type": "create", "name": "Ada", "passcode": "123456"}), 1)[0]["passcode"] == (
        "123456"
    )


# -- a kick keeps them out ----------------------------------------------------------------------------


def kicked_bob() -> Hub:
    """Ada (1, 10.0.0.1) hosts MID; Bob (2, 10.0.0.2) joined and was kicked."""
    hub = limited_hub(per_address=20, per_target=50)
    hello(hub, 1, "10.0.0.1")
    send(hub, 1, {"type": "create", "name": "Ada", "passcode": "pw-123"})
    hello(hub, 2, "10.0.0.2")
    assert attempt_as(hub, 2, "Bob")["type"] == "joined"
    assert types(send(hub, 1, {"type": "kick", "name": "Bob"}), 2) == ["kicked"]
    return hub


def attempt_as(hub: Hub, cid: int, name: str, now: float = 0.0) -> dict[str, Any]:
    actions = send(hub, cid, {"type": "join", "meeting": MID, "name": name, "passcode": "pw-123"}, now)
    return to(actions, cid)[0]


@pytest.mark.parametrize("name", ["Bob", "bob", "BOB", "\uff22\uff4f\uff42", "Robert"])
def test_a_kicked_person_cannot_rejoin_by_name_or_from_their_address(name: str):
    hub = kicked_bob()
    refusal = attempt_as(hub, 2, name)
    assert refusal["code"] == "banned"
    assert refusal["message"] == (
        f"you were removed from meeting {MID} and cannot rejoin until the host lets you back in (/unban Bob)"
    )
    hello(hub, 3, "10.0.0.3")  # Bob from elsewhere, under any form of his name, is out too
    if name != "Robert":
        assert attempt_as(hub, 3, name)["code"] == "banned"
    else:
        assert attempt_as(hub, 3, name)["type"] == "joined"  # someone else from elsewhere is welcome


def test_the_host_unbans_and_they_may_join_again():
    hub = kicked_bob()
    (refusal,) = send(hub, 2, {"type": "unban", "name": "Bob"})
    assert refusal.message["code"] == "not_in_meeting"
    hello(hub, 3, "10.0.0.3")
    assert attempt_as(hub, 3, "Cy")["type"] == "joined"
    (refusal,) = send(hub, 3, {"type": "unban", "name": "Bob"})
    assert refusal.message["code"] == "not_allowed"  # members cannot
    assert to(send(hub, 1, {"type": "unban", "name": "\uff42\uff4f\uff42"}), 1) == [
        {"type": "unbanned", "name": "Bob", "by": "Ada"}
    ]
    assert attempt_as(hub, 2, "Bob")["type"] == "joined"
    (refusal,) = send(hub, 1, {"type": "unban", "name": "Bob"})
    assert refusal.message["code"] == "unknown_participant"


def test_a_kick_does_not_ban_an_address_someone_still_in_shares():
    """Cy connects from the host's own address (the same NAT): his name is banned, the address is not,
    or the host could not come back after a dropped connection."""
    hub = limited_hub(per_address=20, per_target=50)
    hello(hub, 1, "10.0.0.1")
    send(hub, 1, {"type": "create", "name": "Ada", "passcode": "pw-123"})
    hello(hub, 2, "10.0.0.1")
    assert attempt_as(hub, 2, "Cy")["type"] == "joined"
    send(hub, 1, {"type": "kick", "name": "Cy"})
    assert attempt_as(hub, 2, "cy")["code"] == "banned"
    assert attempt_as(hub, 2, "Dee")["type"] == "joined"
    hub.disconnected(1)  # the host's connection drops; they come back from the same address
    hello(hub, 3, "10.0.0.1")
    assert attempt_as(hub, 3, "Ada")["type"] == "joined"


# -- look-alike names ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ada", "ADA", "\uff21\uff44\uff41", "\uff41\uff24\uff41"])
def test_names_that_differ_only_in_case_or_width_are_one_name(name: str):
    hub = limited_hub()
    hello(hub, 1, "10.0.0.1")
    send(hub, 1, {"type": "create", "name": "Ada", "passcode": "pw-123"})
    hello(hub, 2, "10.0.0.2")
    refusal = attempt_as(hub, 2, name)
    assert refusal["code"] == "name_taken"
    assert attempt_as(hub, 2, "Bob")["type"] == "joined"
    chat = to(send(hub, 2, {"type": "chat", "text": "hi", "to": name}), 1)  # and one person to talk to
    assert chat == [{"type": "chat", "from": "Bob", "text": "hi", "private": True, "to": "Ada"}]


# -- IPv6: one /64 is one address ---------------------------------------------------------------------


def test_ipv6_failures_are_counted_per_64():
    hub = limited_hub(per_address=2, per_target=50)
    hello(hub, 1, "10.0.0.1")
    send(hub, 1, {"type": "create", "name": "Ada", "passcode": "pw-123"})
    for n, cid in enumerate((10, 11)):
        hub.connected(cid, 0.0, f"[2001:db8:1:2::{n + 1}]:5000")
        send(hub, cid, {"type": "hello", "protocol": PROTOCOL_VERSION})
        assert attempt(hub, cid, "nope", 0.0)["code"] == "wrong_passcode"
    hub.connected(12, 0.0, "[2001:db8:1:2:ffff:1:2:3]:5000")  # a new address in the same /64
    send(hub, 12, {"type": "hello", "protocol": PROTOCOL_VERSION})
    assert attempt(hub, 12, "pw-123", 1.0)["code"] == "rate_limited"
    hub.connected(13, 0.0, "[2001:db8:1:3::1]:5000")  # the next /64 is someone else
    send(hub, 13, {"type": "hello", "protocol": PROTOCOL_VERSION})
    assert attempt(hub, 13, "pw-123", 1.0)["type"] == "joined"
