"""The server core: handshake, create/join, routing, registry cleanup, timeouts and bad input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conf_cli.protocol.control import MAX_CONTROL_BYTES, PROTOCOL_VERSION, client_message_types, encode
from conf_cli.server.hub import (
    HEARTBEAT_INTERVAL,
    HEARTBEAT_TIMEOUT,
    HELLO_TIMEOUT,
    INPUT_BURST,
    INPUT_RATE,
    MAX_BAD_MESSAGES,
    Close,
    Deferred,
    Hub,
)
from conf_cli.server.meeting import CHAT_BURST, Send
from conf_cli.server.passcode import PasscodeCache
from conf_cli.server.remote_control import CONSENT_TIMEOUT
from tests.helpers.hub import (
    MID_A,
    MID_B,
    WELCOME,
    closes,
    create,
    error,
    greet,
    join,
    make_hub,
    send,
    settle,
    three_in_a_meeting,
    to,
)

pytestmark = pytest.mark.usefixtures("cheap_scrypt")  # these tests are about the hub, not about scrypt


# -- handshake ----------------------------------------------------------------------------------------


def test_hello_gets_a_welcome():
    hub = make_hub()
    assert hub.connected(1, 0.0, "127.0.0.1:5000") == []
    actions = send(hub, 1, {"type": "hello", "protocol": PROTOCOL_VERSION, "client": "conf/test"})
    assert actions == [Send((1,), WELCOME)]
    assert WELCOME["heartbeat"] == HEARTBEAT_INTERVAL
    assert hub.stats.connections == 1


def test_the_welcome_lists_the_servers_services():
    hub = make_hub()
    hub.services["web"] = ["http://127.0.0.1:8080/"]
    hub.connected(1, 0.0)
    actions = send(hub, 1, {"type": "hello", "protocol": PROTOCOL_VERSION})
    assert actions == [Send((1,), {**WELCOME, "services": {"web": ["http://127.0.0.1:8080/"]}})]


def test_hello_with_another_protocol_version_is_refused_and_closed():
    hub = make_hub()
    hub.connected(1, 0.0)
    actions = send(hub, 1, {"type": "hello", "protocol": PROTOCOL_VERSION + 1, "id": 7})
    text = f"server speaks protocol {PROTOCOL_VERSION}, client speaks {PROTOCOL_VERSION + 1}; upgrade conf"
    assert actions == [
        Send((1,), error("protocol_version", text, "hello", id=7)),
        Close(1, "protocol version"),
    ]
    # Still not greeted: anything else is refused.
    assert closes(send(hub, 1, {"type": "ping"})) == [1]


@pytest.mark.parametrize("kind", ["ping", "create", "who", "leave"])
def test_a_message_before_hello_is_refused_and_closed(kind):
    hub = make_hub()
    hub.connected(1, 0.0)
    request: dict[str, Any] = {"type": kind, "id": "r1"}
    if kind == "create":
        request["name"] = "Ada"
    assert send(hub, 1, request) == [
        Send((1,), error("bad_request", "say hello first", kind, id="r1")),
        Close(1, "no hello"),
    ]
    assert hub.meetings == {}


def test_garbage_before_hello_is_closed_at_once():
    hub = make_hub()
    hub.connected(1, 0.0)
    actions = send(hub, 1, b"\xff\xfe")
    assert len(actions) == 2
    assert isinstance(actions[0], Send) and actions[0].to == (1,)
    assert actions[0].message["code"] == "bad_request"
    assert closes(actions) == [1]


def test_second_hello_and_pong_are_ignored_and_ping_is_answered():
    hub = make_hub()
    greet(hub, 1)
    assert send(hub, 1, {"type": "hello", "protocol": PROTOCOL_VERSION}) == []
    assert send(hub, 1, {"type": "hello", "protocol": 99}) == []
    assert send(hub, 1, {"type": "pong"}) == []
    assert send(hub, 1, {"type": "ping"}) == [Send((1,), {"type": "pong"})]


def test_messages_from_unknown_connections_are_dropped():
    hub = make_hub()
    assert send(hub, 42, {"type": "ping"}) == []
    assert hub.disconnected(42) == []


# -- bad messages -------------------------------------------------------------------------------------


def test_garbage_after_hello_is_answered_with_bad_request():
    hub = make_hub()
    greet(hub, 1)
    assert send(hub, 1, b"not json") == [
        Send((1,), {"type": "error", "code": "bad_request", "message": send_error_text(b"not json")})
    ]
    assert send(hub, 1, {"type": "teleport"}) == [
        Send((1,), {"type": "error", "code": "bad_request", "message": "unknown message type 'teleport'"})
    ]
    assert send(hub, 1, {"type": "chat"}) == [
        Send((1,), {"type": "error", "code": "bad_request", "message": "chat: missing field 'text'"})
    ]
    assert hub.stats.protocol_errors == 3


def send_error_text(data: bytes) -> str:
    from conf_cli.errors import ProtocolError
    from conf_cli.protocol.control import decode_client_message

    with pytest.raises(ProtocolError) as info:
        decode_client_message(data)
    return str(info.value)


def test_too_many_bad_messages_close_the_connection():
    hub = make_hub()
    greet(hub, 1)
    greet(hub, 2)
    for _ in range(MAX_BAD_MESSAGES):
        assert closes(send(hub, 1, b"{")) == []
    actions = send(hub, 1, b"{")
    assert closes(actions) == [1]
    assert to(actions, 1)[0]["code"] == "bad_request"
    # Only the offender is affected.
    assert closes(send(hub, 2, b"{")) == []
    assert send(hub, 2, {"type": "ping"}) == [Send((2,), {"type": "pong"})]


def test_refused_requests_do_not_count_as_bad_messages():
    hub = make_hub()
    greet(hub, 1)
    for _ in range(MAX_BAD_MESSAGES + 5):
        assert closes(send(hub, 1, {"type": "who"})) == []
    assert hub.stats.protocol_errors == 0


# -- create -------------------------------------------------------------------------------------------


def test_create_hashes_off_the_loop_then_makes_the_creator_host():
    hub = make_hub(MID_A)
    greet(hub, 1)
    actions = hub.received(1, encode({"type": "create", "name": "Ada", "passcode": "pw-123"}), 0.0)
    assert len(actions) == 1 and isinstance(actions[0], Deferred)
    assert hub.meetings == {}
    digest = actions[0].work()
    assert digest.matches("pw-123") and not digest.matches("wrong")
    result = actions[0].resume(digest, 1.0)
    assert result == [
        Send((1,), {"type": "meeting_created", "meeting": MID_A, "passcode": "pw-123"}),
        Send(
            (1,),
            {
                "type": "joined",
                "name": "Ada",
                "role": "host",
                "meeting": MID_A,
                "participants": [{"name": "Ada", "role": "host", "sharing": [], "forbidden": []}],
                "tracks": [],
                "locked": False,
                "forbidden": [],
            },
        ),
    ]
    assert list(hub.meetings) == [MID_A]
    assert hub.meeting_of(1) is hub.meetings[MID_A]
    assert hub.stats.meetings == 1


@pytest.mark.parametrize("request_passcode", [None, ""])
def test_create_without_a_passcode_gets_a_fresh_one(request_passcode):
    hub = make_hub(MID_A)
    greet(hub, 1)
    request: dict[str, Any] = {"type": "create", "name": "Ada", "passcode": request_passcode}
    created = to(send(hub, 1, request), 1)[0]
    assert created == {"type": "meeting_created", "meeting": MID_A, "passcode": "sesame"}
    join(hub, 2, MID_A, "Bob", passcode="sesame")


def test_create_never_reuses_a_live_meeting_id():
    hub = make_hub(MID_A, MID_A, MID_A, MID_B)
    assert create(hub, 1, "Ada") == MID_A
    assert create(hub, 2, "Bob") == MID_B
    assert set(hub.meetings) == {MID_A, MID_B}


def test_create_while_in_a_meeting_is_refused():
    hub = make_hub(MID_A)
    create(hub, 1, "Ada")
    actions = send(hub, 1, {"type": "create", "name": "Ada", "id": 3})
    assert actions == [
        Send((1,), error("bad_request", f"already in meeting {MID_A}; /leave first", "create", id=3))
    ]
    assert list(hub.meetings) == [MID_A]


def test_requests_while_create_is_pending_are_busy():
    hub = make_hub(MID_A)
    greet(hub, 1)
    pending = hub.received(1, encode({"type": "create", "name": "Ada"}), 0.0)
    busy = "a create or join request is still being processed"
    requests: list[dict[str, Any]] = [{"type": "create", "name": "Ada", "id": 1}, {"type": "who", "id": 2}]
    for request in requests:
        assert send(hub, 1, request) == [Send((1,), error("busy", busy, request["type"], id=request["id"]))]
    # Heartbeats still flow.
    assert send(hub, 1, {"type": "ping"}) == [Send((1,), {"type": "pong"})]
    settle(pending)
    assert list(hub.meetings) == [MID_A]
    assert to(send(hub, 1, {"type": "who"}), 1)[0]["type"] == "participants"


def test_disconnect_while_create_is_pending_creates_nothing():
    hub = make_hub(MID_A)
    greet(hub, 1)
    (deferred,) = hub.received(1, encode({"type": "create", "name": "Ada"}), 0.0)
    assert isinstance(deferred, Deferred)
    assert hub.disconnected(1) == []
    assert deferred.resume(deferred.work(), 1.0) == []
    assert hub.meetings == {}
    assert hub.stats.meetings == 0


# -- join ---------------------------------------------------------------------------------------------


def test_join_with_the_right_passcode():
    hub = make_hub(MID_A)
    create(hub, 1, "Ada")
    actions = join(hub, 2, MID_A, "Bob")
    assert to(actions, 2)[0]["participants"] == [
        {"name": "Ada", "role": "host", "sharing": [], "forbidden": []},
        {"name": "Bob", "role": "member", "sharing": [], "forbidden": []},
    ]
    assert actions[1] == Send((1,), {"type": "participant_joined", "name": "Bob", "role": "member"})
    assert len(actions) == 2
    assert hub.meeting_of(2) is hub.meeting_of(1)


@pytest.mark.parametrize("typed", ["AAA-BBBB-CCC", "aaa bbbb ccc", "aaabbbbccc", " aaa-bbbb-ccc "])
def test_join_accepts_the_id_as_people_type_it(typed):
    hub = make_hub(MID_A)
    create(hub, 1, "Ada")
    join(hub, 2, typed, "Bob")
    assert hub.meeting_of(2) is hub.meetings[MID_A]


def test_join_an_unknown_meeting_is_refused_at_once():
    hub = make_hub(MID_A)
    greet(hub, 1)
    actions = hub.received(1, encode({"type": "join", "meeting": "zzz", "name": "Bob", "id": 5}), 0.0)
    assert actions == [Send((1,), error("unknown_meeting", "no meeting 'zzz' on this server", "join", id=5))]
    # Not left busy.
    assert to(send(hub, 1, {"type": "who"}), 1)[0]["code"] == "not_in_meeting"


@pytest.mark.parametrize("passcode", ["wrong", "", None])
def test_join_with_a_wrong_or_missing_passcode_is_refused(passcode):
    hub = make_hub(MID_A)
    create(hub, 1, "Ada")
    greet(hub, 2)
    request = {"type": "join", "meeting": MID_A, "name": "Bob", "passcode": passcode, "id": "j"}
    assert send(hub, 2, request) == [
        Send((2,), error("wrong_passcode", f"wrong passcode for meeting {MID_A}", "join", id="j"))
    ]
    assert hub.meeting_of(2) is None
    assert to(send(hub, 2, {"type": "chat", "text": "hi"}), 2)[0]["code"] == "not_in_meeting"
    # The connection may try again.
    join(hub, 2, MID_A, "Bob")


def test_join_refused_by_the_meeting_rules():
    hub = make_hub(MID_A)
    create(hub, 1, "Ada")
    greet(hub, 2)
    taken = send(hub, 2, {"type": "join", "meeting": MID_A, "name": "ADA", "passcode": "pw-123"})
    assert to(taken, 2)[0]["code"] == "name_taken"
    assert to(taken, 1) == []
    send(hub, 1, {"type": "lock"})
    locked = send(hub, 2, {"type": "join", "meeting": MID_A, "name": "Bob", "passcode": "pw-123"})
    assert to(locked, 2)[0]["code"] == "meeting_locked"
    assert hub.meeting_of(2) is None


def hashing_hub() -> Hub:
    """A hub that keeps no meeting key: every join's passcode is hashed in a Deferred, the state the next
    tests are about (a meeting whose key was dropped; the key itself: tests/server/test_passcode_cache.py)."""
    return make_hub(MID_A, passcodes=PasscodeCache(limit=0))


def test_join_while_join_is_pending_is_busy():
    hub = hashing_hub()
    create(hub, 1, "Ada")
    greet(hub, 2)
    pending = hub.received(
        2, encode({"type": "join", "meeting": MID_A, "name": "Bob", "passcode": "pw-123"}), 0
    )
    again = send(hub, 2, {"type": "join", "meeting": MID_A, "name": "Bob", "passcode": "pw-123"})
    assert to(again, 2)[0]["code"] == "busy"
    assert to(settle(pending), 2)[0]["type"] == "joined"


def test_disconnect_while_join_is_pending_changes_nothing():
    hub = hashing_hub()
    create(hub, 1, "Ada")
    greet(hub, 2)
    (deferred,) = hub.received(
        2, encode({"type": "join", "meeting": MID_A, "name": "Bob", "passcode": "pw-123"}), 0
    )
    assert isinstance(deferred, Deferred)
    assert hub.disconnected(2) == []
    assert deferred.resume(deferred.work(), 1.0) == []
    assert [p.name for p in hub.meetings[MID_A].participants.values()] == ["Ada"]


def test_meeting_that_closes_while_a_join_is_pending():
    hub = hashing_hub()
    create(hub, 1, "Ada")
    greet(hub, 2)
    (deferred,) = hub.received(
        2, encode({"type": "join", "meeting": MID_A, "name": "Bob", "passcode": "pw-123"}), 0
    )
    assert isinstance(deferred, Deferred)
    send(hub, 1, {"type": "leave"})
    assert hub.meetings == {}
    assert deferred.resume(deferred.work(), 1.0) == [
        Send((2,), error("unknown_meeting", f"meeting {MID_A} has ended", "join"))
    ]
    assert hub.meeting_of(2) is None


# -- routing ------------------------------------------------------------------------------------------


def test_requests_outside_a_meeting_are_refused():
    hub = make_hub()
    greet(hub, 1)
    for kind in ("leave", "who", "lock", "unlock", "end"):
        assert send(hub, 1, {"type": kind, "id": kind}) == [
            Send((1,), error("not_in_meeting", "join or create a meeting first", kind, id=kind))
        ]


def test_chat_is_routed_to_the_meeting():
    hub = three_in_a_meeting()
    assert send(hub, 2, {"type": "chat", "text": "hello"}) == [
        Send((1, 2, 3), {"type": "chat", "from": "Bob", "text": "hello", "private": False})
    ]
    assert send(hub, 2, {"type": "chat", "text": "psst", "to": "cy"}) == [
        Send((3, 2), {"type": "chat", "from": "Bob", "text": "psst", "private": True, "to": "Cy"})
    ]
    assert send(hub, 2, {"type": "chat", "text": "psst", "to": "Zed", "id": 9}) == [
        Send((2,), error("unknown_participant", "no participant named 'Zed' in this meeting", "chat", id=9))
    ]


def test_who_roles_permissions_and_lock_are_routed_to_the_meeting():
    hub = three_in_a_meeting()
    assert [p["name"] for p in to(send(hub, 3, {"type": "who"}), 3)[0]["participants"]] == [
        "Ada",
        "Bob",
        "Cy",
    ]
    assert send(hub, 1, {"type": "set_role", "name": "Bob", "role": "admin"}) == [
        Send((1, 2, 3), {"type": "role_changed", "name": "Bob", "role": "admin", "by": "Ada"})
    ]
    assert send(hub, 2, {"type": "forbid", "what": "chat"}) == [
        Send((1, 2, 3), {"type": "permission_changed", "what": "chat", "allowed": False, "by": "Bob"})
    ]
    assert to(send(hub, 3, {"type": "chat", "text": "hi"}), 3)[0]["code"] == "forbidden"
    assert send(hub, 2, {"type": "permit", "what": "chat"}) == [
        Send((1, 2, 3), {"type": "permission_changed", "what": "chat", "allowed": True, "by": "Bob"})
    ]
    forbid_cy = send(hub, 1, {"type": "forbid", "what": "video", "name": "Cy"})
    assert to(forbid_cy, 3)[0]["name"] == "Cy"
    assert send(hub, 2, {"type": "lock"}) == [
        Send((1, 2, 3), {"type": "meeting_locked", "locked": True, "by": "Bob"})
    ]
    assert send(hub, 1, {"type": "unlock"}) == [
        Send((1, 2, 3), {"type": "meeting_locked", "locked": False, "by": "Ada"})
    ]
    assert to(send(hub, 3, {"type": "set_role", "name": "Bob", "role": "member", "id": 1}), 3) == [
        error("not_allowed", "only the host can change roles", "set_role", id=1)
    ]


def test_two_meetings_in_one_hub_are_isolated():
    hub = make_hub(MID_A, MID_B)
    create(hub, 1, "Ada")
    join(hub, 2, MID_A, "Bob")
    create(hub, 3, "Ada", passcode="other-1")
    actions = join(hub, 4, MID_B, "Bob", passcode="other-1")
    assert to(actions, 1) == [] and to(actions, 2) == []
    assert actions[1] == Send((3,), {"type": "participant_joined", "name": "Bob", "role": "member"})
    assert send(hub, 2, {"type": "chat", "text": "in A"})[0].to == (1, 2)  # type: ignore[union-attr]
    assert send(hub, 4, {"type": "chat", "text": "in B"})[0].to == (3, 4)  # type: ignore[union-attr]
    # A passcode of one meeting does not open the other.
    greet(hub, 5)
    assert (
        to(send(hub, 5, {"type": "join", "meeting": MID_B, "name": "Eve", "passcode": "pw-123"}), 5)[0][
            "code"
        ]
        == "wrong_passcode"
    )
    # Names are per meeting; kicking "Bob" in B leaves A's Bob alone.
    kicked = send(hub, 3, {"type": "kick", "name": "Bob"})
    assert to(kicked, 4) == [{"type": "kicked", "by": "Ada"}]
    assert to(kicked, 2) == [] and to(kicked, 1) == []
    assert hub.meeting_of(2) is hub.meetings[MID_A]
    # Ending B leaves A running.
    ended = send(hub, 3, {"type": "end"})
    assert ended == [Send((3,), {"type": "meeting_closed", "by": "Ada", "reason": "ended"})]
    assert list(hub.meetings) == [MID_A]
    assert [p["name"] for p in to(send(hub, 1, {"type": "who"}), 1)[0]["participants"]] == ["Ada", "Bob"]


# -- kick ---------------------------------------------------------------------------------------------


def test_kick_removes_the_connection_from_the_meeting():
    hub = three_in_a_meeting()
    actions = send(hub, 1, {"type": "kick", "name": "cy"})
    assert actions == [
        Send((3,), {"type": "kicked", "by": "Ada"}),
        Send((1, 2), {"type": "participant_left", "name": "Cy", "reason": "kicked"}),
    ]
    assert hub.meeting_of(3) is None
    assert hub.meeting_of(1) is hub.meetings[MID_A]
    assert to(send(hub, 3, {"type": "chat", "text": "hey"}), 3)[0]["code"] == "not_in_meeting"
    # The connection stays open, and may join again once the host lets Cy back in.
    assert closes(actions) == []
    rejoin = {"type": "join", "meeting": MID_A, "name": "Cy", "passcode": "pw-123"}
    assert to(send(hub, 3, rejoin), 3)[0]["code"] == "banned"
    assert to(send(hub, 1, {"type": "unban", "name": "CY"}), 1) == [
        {"type": "unbanned", "name": "Cy", "by": "Ada"}
    ]
    assert to(send(hub, 3, rejoin), 3)[0]["type"] == "joined"


def test_kick_refusals_reach_the_kicker_only():
    hub = three_in_a_meeting()
    assert send(hub, 2, {"type": "kick", "name": "Cy", "id": 1}) == [
        Send((2,), error("not_allowed", "only the host and admins can remove participants", "kick", id=1))
    ]
    # A member learns nothing about who is in the meeting by kicking.
    assert to(send(hub, 2, {"type": "kick", "name": "Zed"}), 2)[0]["code"] == "not_allowed"
    assert to(send(hub, 1, {"type": "kick", "name": "Zed"}), 1)[0]["code"] == "unknown_participant"
    assert to(send(hub, 1, {"type": "kick", "name": "Ada"}), 1)[0]["code"] == "bad_request"
    assert all(hub.meeting_of(cid) is hub.meetings[MID_A] for cid in (1, 2, 3))


# -- leave, disconnect and the registry ---------------------------------------------------------------


def test_leave_confirms_to_the_leaver_and_tells_the_others():
    hub = three_in_a_meeting()
    assert send(hub, 3, {"type": "leave"}) == [
        Send((3,), {"type": "left", "meeting": MID_A, "reason": "left"}),
        Send((1, 2), {"type": "participant_left", "name": "Cy", "reason": "left"}),
    ]
    assert hub.meeting_of(3) is None


def test_host_leaving_through_the_hub_hands_on_the_role():
    hub = three_in_a_meeting()
    send(hub, 1, {"type": "set_role", "name": "Cy", "role": "admin"})
    assert send(hub, 1, {"type": "leave"})[1:] == [
        Send((2, 3), {"type": "participant_left", "name": "Ada", "reason": "left"}),
        Send((2, 3), {"type": "role_changed", "name": "Cy", "role": "host"}),
    ]
    assert to(send(hub, 3, {"type": "lock"}), 2) == [{"type": "meeting_locked", "locked": True, "by": "Cy"}]


def test_last_one_out_closes_the_meeting_and_the_hub_forgets_it():
    hub = make_hub(MID_A)
    create(hub, 1, "Ada")
    join(hub, 2, MID_A, "Bob")
    send(hub, 1, {"type": "leave"})
    assert list(hub.meetings) == [MID_A]
    assert send(hub, 2, {"type": "leave"}) == [
        Send((2,), {"type": "left", "meeting": MID_A, "reason": "left"})
    ]
    assert hub.meetings == {}
    assert hub.stats.meetings == 0
    greet(hub, 3)
    assert (
        to(send(hub, 3, {"type": "join", "meeting": MID_A, "name": "Cy", "passcode": "pw-123"}), 3)[0]["code"]
        == "unknown_meeting"
    )


def test_disconnect_counts_as_leaving():
    hub = three_in_a_meeting()
    assert hub.disconnected(2) == [
        Send((1, 3), {"type": "participant_left", "name": "Bob", "reason": "disconnected"})
    ]
    assert hub.stats.connections == 2
    assert hub.disconnected(2) == []
    hub.disconnected(1)
    assert list(hub.meetings) == [MID_A]
    hub.disconnected(3)
    assert hub.meetings == {}
    assert hub.stats.connections == 0


def test_end_closes_the_meeting_for_everyone_and_the_hub_forgets_it():
    hub = three_in_a_meeting()
    send(hub, 1, {"type": "set_role", "name": "Bob", "role": "admin"})
    assert send(hub, 2, {"type": "end"}) == [
        Send((1, 2, 3), {"type": "meeting_closed", "by": "Bob", "reason": "ended"})
    ]
    assert hub.meetings == {}
    assert hub.stats.meetings == 0
    assert [hub.meeting_of(cid) for cid in (1, 2, 3)] == [None, None, None]
    assert to(send(hub, 3, {"type": "who"}), 3)[0]["code"] == "not_in_meeting"
    # Everyone may start afresh.
    assert to(send(hub, 3, {"type": "create", "name": "Cy"}), 3)[0]["type"] == "meeting_created"


def test_member_may_not_end_the_meeting():
    hub = three_in_a_meeting()
    assert send(hub, 3, {"type": "end", "id": "e"}) == [
        Send(
            (3,),
            error("not_allowed", "only the host and admins can end the meeting for everyone", "end", id="e"),
        )
    ]
    assert list(hub.meetings) == [MID_A]
    assert hub.meeting_of(3) is hub.meetings[MID_A]


# -- error replies ------------------------------------------------------------------------------------


@pytest.mark.parametrize("request_id", [0, 17, -3, "abc", ""])
def test_error_replies_echo_the_request_type_and_id(request_id):
    hub = make_hub()
    greet(hub, 1)
    (reply,) = send(hub, 1, {"type": "who", "id": request_id})
    assert isinstance(reply, Send)
    assert reply.message["re"] == "who"
    assert reply.message["id"] == request_id


def test_error_replies_without_an_id_have_none():
    hub = make_hub()
    greet(hub, 1)
    (reply,) = send(hub, 1, {"type": "who"})
    assert isinstance(reply, Send)
    assert "id" not in reply.message


@pytest.mark.parametrize(
    ("request_id", "why"),
    [
        ([1], "must be an integer or a string of at most 64 characters"),
        ({"a": 1}, "must be an integer or a string of at most 64 characters"),
        (1.5, "must be an integer or a string of at most 64 characters"),
        (True, "must be an integer or a string of at most 64 characters"),
        ("x" * 65, "must be an integer or a string of at most 64 characters"),
        ("\ud800", "is not valid Unicode text (it holds a lone surrogate)"),
    ],
)
def test_unusable_request_ids_are_refused(request_id, why):
    hub = make_hub()
    greet(hub, 1)
    (reply,) = send(hub, 1, json.dumps({"type": "who", "id": request_id}).encode())
    assert reply == Send((1,), {"type": "error", "code": "bad_request", "message": f"who.id {why}"})


def test_long_request_id_cannot_make_an_error_reply_too_big_to_send():
    hub = three_in_a_meeting()
    bare = encode({"type": "kick", "name": "Zed", "id": ""})
    request = encode({"type": "kick", "name": "Zed", "id": "x" * (MAX_CONTROL_BYTES - len(bare))})
    assert len(request) == MAX_CONTROL_BYTES
    (reply,) = send(hub, 1, request)
    assert isinstance(reply, Send)
    assert reply.to == (1,)
    assert reply.message["code"] == "bad_request"
    encode(reply.message)


@pytest.mark.parametrize(
    "data",
    [
        b'{"type": "chat", "text": "broken \\ud800 half"}',
        b'{"type": "chat", "text": "hi", "to": "\\udfff"}',
        b'{"type": "create", "name": "Ada", "passcode": "\\ud83d"}',
        b'{"type": "join", "meeting": "\\ud83d", "name": "Ada"}',
    ],
)
def test_text_that_cannot_be_re_encoded_is_refused(data):
    hub = make_hub(MID_A)
    create(hub, 1, "Bob")
    greet(hub, 2)
    actions = send(hub, 2, data)
    assert [a.to for a in actions] == [(2,)]  # type: ignore[union-attr]
    assert to(actions, 2)[0]["code"] == "bad_request"


def test_huge_number_is_a_bad_request_not_a_crash():
    hub = make_hub()
    greet(hub, 1)
    actions = send(hub, 1, b'{"type": "ping", "n": ' + b"9" * 5000 + b"}")
    assert to(actions, 1)[0]["code"] == "bad_request"


# -- timeouts -----------------------------------------------------------------------------------------


def test_connection_without_hello_is_closed_after_hello_timeout():
    hub = make_hub()
    hub.connected(1, 100.0)
    greet(hub, 2, 100.0)
    assert hub.tick(100.0 + HELLO_TIMEOUT) == []
    assert hub.tick(100.0 + HELLO_TIMEOUT + 0.1) == [Close(1, "no hello")]


def test_silent_connection_is_closed_and_the_others_told_timeout():
    hub = make_hub(MID_A)
    create(hub, 1, "Ada", now=0.0)
    join(hub, 2, MID_A, "Bob", now=0.0)
    join(hub, 3, MID_A, "Cy", now=0.0)
    send(hub, 1, {"type": "ping"}, now=4.0)
    hub.seen(3, 4.0)
    assert hub.tick(HEARTBEAT_TIMEOUT) == []
    actions = hub.tick(HEARTBEAT_TIMEOUT + 0.5)
    assert actions == [
        Close(2, "heartbeat timeout"),
        Send((1, 3), {"type": "participant_left", "name": "Bob", "reason": "timeout"}),
    ]
    assert hub.stats.timeouts == 1
    assert hub.meeting_of(2) is None
    assert [p.name for p in hub.meetings[MID_A].participants.values()] == ["Ada", "Cy"]
    # Already forgotten: the edge's own disconnect report changes nothing.
    assert hub.disconnected(2) == []
    assert hub.tick(HEARTBEAT_TIMEOUT + 0.6) == []


def test_silent_host_timeout_hands_on_the_role_and_last_timeout_forgets_the_meeting():
    hub = make_hub(MID_A)
    create(hub, 1, "Ada", now=0.0)
    join(hub, 2, MID_A, "Bob", now=3.0)
    actions = hub.tick(HEARTBEAT_TIMEOUT + 1)
    assert actions == [
        Close(1, "heartbeat timeout"),
        Send((2,), {"type": "participant_left", "name": "Ada", "reason": "timeout"}),
        Send((2,), {"type": "role_changed", "name": "Bob", "role": "host"}),
    ]
    assert hub.tick(HEARTBEAT_TIMEOUT + 4) == [Close(2, "heartbeat timeout")]
    assert hub.meetings == {}
    assert hub.stats.timeouts == 2


def test_silent_connection_outside_a_meeting_is_just_closed():
    hub = make_hub()
    greet(hub, 1, 0.0)
    assert hub.tick(HEARTBEAT_TIMEOUT + 1) == [Close(1, "heartbeat timeout")]
    assert hub.stats.connections == 0


def test_seen_keeps_a_greeted_connection_alive_but_not_an_unannounced_one():
    hub = make_hub()
    greet(hub, 1, 0.0)
    hub.connected(2, 0.0)
    for now in range(1, 30):
        assert hub.seen(1, float(now)) is True
        assert hub.seen(2, float(now)) is False
    assert hub.seen(99, 1.0) is False
    assert hub.tick(30.0) == [Close(2, "no hello")]


def test_timeouts_are_configurable():
    hub = make_hub(heartbeat_timeout=1.0, hello_timeout=0.5)
    hub.connected(1, 0.0)
    greet(hub, 2, 0.0)
    assert hub.tick(0.5) == []
    assert hub.tick(0.75) == [Close(1, "no hello")]
    assert closes(hub.tick(1.25)) == [1, 2]


# -- properties ---------------------------------------------------------------------------------------

# The fields each request may carry (and every request may carry an ``id``).
FIELDS: dict[str, tuple[str, ...]] = {
    "hello": ("protocol", "client"),
    "ping": (),
    "pong": (),
    "login": ("user", "password"),
    "create": ("name", "passcode", "e2ee", "e2ee_key", "waiting_room"),
    "join": ("meeting", "name", "passcode", "e2ee_key"),
    "resume": ("token", "e2ee_key"),
    "leave": (),
    "who": (),
    "chat": ("text", "to"),
    "set_role": ("name", "role"),
    "forbid": ("what", "name"),
    "permit": ("what", "name"),
    "kick": ("name",),
    "unban": ("name",),
    "lock": (),
    "unlock": (),
    "end": (),
    "publish": ("kind", "ssrc", "codec", "layers"),
    "receive": ("max_bitrate", "max_height"),
    "downlink": ("bitrate",),
    "unpublish": ("kind",),
    "e2ee_keys": ("keys",),
    "control_request": ("name",),
    "control_accept": ("name",),
    "control_reject": ("name",),
    "control_revoke": (),
    "control_input": ("action", "x", "y", "button", "pressed", "key", "text", "dx", "dy"),
    "admit": ("name", "all"),
    "deny": ("name",),
    "set_waiting_room": ("enabled",),
    "online": ("name",),
    "offline": (),
    "call": ("to", "commitment", "candidates", "timeout"),
    "call_accept": ("call", "key", "candidates"),
    "call_reveal": ("call", "key"),
    "call_decline": ("call",),
    "call_connected": ("call",),
    "call_path": ("call", "path"),
    "call_hangup": ("call",),
    "hand": ("raised",),
    "lower_hand": ("name", "all"),
    "react": ("emoji",),
    "poll_start": ("question", "options", "named"),
    "vote": ("choice", "poll"),
    "poll_close": (),
    "breakout_create": ("rooms",),
    "breakout_assign": ("name", "room"),
    "breakout_shuffle": (),
    "breakout_open": ("minutes",),
    "breakout_visit": ("room",),
    "breakout_broadcast": ("text",),
    "breakout_close": (),
    "spotlight": ("name",),
    "rename": ("name", "new_name"),
    "ask_unmute": ("name",),
}
LAYER_TOP = {"ssrc": 0xFFFFFFFF, "width": 1280, "height": 720, "bitrate": 1_200_000}
# Any text, lone surrogates included (JSON escapes can carry them).
any_text = st.lists(st.characters() | st.sampled_from("\ud800\udbff\udc00\udfff"), max_size=40).map("".join)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
field_values = (
    st.sampled_from(["Ada", "bob", "Cy", "Zed", "admin", "host", "member", "chat", "screen", "pw-123", MID_A])
    | st.sampled_from(["audio", "video", "opus", "h264", 1, 0xFFFFFFFF])
    | st.sampled_from(["move", "button", "key", "text", 0.5, True, -3])
    | st.sampled_from(["B" * 43, ["10.0.0.1:4000"], [], "direct", "relayed", "c1", 5])
    | st.sampled_from(["👍", "🎉", ["Pizza", "Soup"], ["a", "b", "c"], 2, "Lunch?", "Bob"])
    | st.sampled_from([300_000, [{"ssrc": 7, "width": 320, "height": 180, "bitrate": 120_000}, LAYER_TOP]])
    | st.sampled_from(["eyJ2IjoxfQ.AAAA", "a.b"])  # resume tokens' shape, never good ones
    | any_text
    | json_values
)
requests = st.sampled_from(sorted(FIELDS)).flatmap(
    lambda kind: st.fixed_dictionaries(
        {"type": st.just(kind)}, optional={name: field_values for name in (*FIELDS[kind], "id")}
    )
)


def test_the_property_below_knows_every_request_type():
    assert set(FIELDS) == set(client_message_types())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([1, 2, 3]), requests), max_size=12))
def test_any_request_sequence_yields_only_sendable_replies(steps):
    hub = three_in_a_meeting()
    for cid, request in steps:
        for action in send(hub, cid, json.dumps(request).encode()):
            if isinstance(action, Send):
                assert set(action.to) <= {1, 2, 3}
                encode(action.message)
    # Whatever happened, the registry agrees with the connections.
    for cid in (1, 2, 3):
        meeting = hub.meeting_of(cid)
        if meeting is not None:
            assert hub.meetings[meeting.id] is meeting
            assert cid in meeting.participants
    for meeting in hub.meetings.values():
        assert not meeting.closed
        assert sum(p.role == "host" for p in meeting.participants.values()) == 1


# -- remote control ----------------------------------------------------------------------------------

MOVE = {"type": "control_input", "action": "move", "x": 0.25, "y": 0.75}


def granted_bob_over_ada(now: float = 0.0) -> Hub:
    """Three in MID_A; Bob (2) controls Ada (1)."""
    hub = three_in_a_meeting()
    send(hub, 2, {"type": "control_request", "name": "Ada"}, now)
    assert [m["type"] for m in to(send(hub, 1, {"type": "control_accept"}, now), 2)] == ["control_granted"]
    return hub


def test_input_from_the_grant_holder_goes_to_the_controlled_only():
    hub = granted_bob_over_ada()
    generation = hub.generation
    actions = send(hub, 2, MOVE, 1.0)
    assert actions == [
        Send((1,), {"type": "control_input", "from": "Bob", "action": "move", "x": 0.25, "y": 0.75})
    ]
    assert hub.stats.input_relayed == 1
    assert hub.generation == generation  # input changes no media routes


def test_input_without_a_grant_is_dropped_and_counted():
    hub = three_in_a_meeting()
    assert send(hub, 3, MOVE) == []  # Cy forges input with no session at all
    send(hub, 2, {"type": "control_request", "name": "Ada"})
    assert send(hub, 2, MOVE) == []  # asked, not yet granted
    send(hub, 1, {"type": "control_accept"})
    assert send(hub, 3, MOVE) == []  # Cy is not the grant holder
    assert send(hub, 1, MOVE) == []  # nor is the controlled participant
    assert hub.stats.input_refused == 4
    send(hub, 1, {"type": "control_revoke"})
    assert send(hub, 2, MOVE) == []  # revoked
    assert hub.stats.input_refused == 5 and hub.stats.input_relayed == 0


def test_input_outside_a_meeting_is_dropped():
    hub = make_hub()
    greet(hub, 9)
    assert send(hub, 9, MOVE) == []
    assert hub.stats.input_refused == 1


def test_input_is_rate_limited_per_controller():
    hub = granted_bob_over_ada()
    relayed = sum(len(send(hub, 2, MOVE, 10.0)) for _ in range(int(INPUT_BURST) + 50))
    assert relayed == int(INPUT_BURST)
    assert hub.stats.input_limited == 50
    assert len(send(hub, 2, MOVE, 10.0 + 2 / INPUT_RATE)) == 1  # tokens come back with time


def test_an_unanswered_request_is_denied_by_the_ticks():
    hub = make_hub(MID_A, heartbeat_timeout=1e6)
    create(hub, 1, "Ada")
    join(hub, 2, MID_A, "Bob")
    send(hub, 2, {"type": "control_request", "name": "Ada"}, 100.0)
    assert to(hub.tick(101.0), 1) == []
    denied = [m for m in to(hub.tick(100.0 + CONSENT_TIMEOUT + 0.5), 1) if m["type"] == "control_denied"]
    assert denied == [
        {
            "type": "control_denied",
            "controller": "Bob",
            "controlled": "Ada",
            "request": 1,
            "reason": "timeout",
        }
    ]


def test_control_refusals_are_errors_to_the_asker():
    hub = three_in_a_meeting()
    assert to(send(hub, 1, {"type": "control_accept", "id": 7}), 1) == [
        error("no_request", "nobody is waiting for your answer about remote control", "control_accept", id=7)
    ]
    send(hub, 1, {"type": "forbid", "what": "control"})
    [refusal] = to(send(hub, 2, {"type": "control_request", "name": "Cy"}), 2)
    assert refusal["code"] == "forbidden"


def test_a_vanished_controller_ends_the_session():
    hub = granted_bob_over_ada()
    actions = hub.disconnected(2)
    assert {
        "type": "control_revoked",
        "controller": "Bob",
        "controlled": "Ada",
        "request": 1,
        "reason": "left",
    } in to(actions, 1)


# -- calls ---------------------------------------------------------------------------------------------

KEY = "K" * 42 + "Q"


def test_participants_call_each_other_by_their_meeting_names_and_others_go_online() -> None:
    hub = three_in_a_meeting()
    hub.calls.stun_port = 3478
    hub.connected(9, 0.0, "peer-9")
    welcome = to(send(hub, 9, {"type": "hello", "protocol": PROTOCOL_VERSION}), 9)[0]
    assert welcome["stun_port"] == 3478  # calls are offered
    call = {"type": "call", "to": "cy", "commitment": KEY, "candidates": ["10.0.0.1:4000"]}
    actions = send(hub, 2, call)
    assert to(actions, 2)[0]["type"] == "call_ringing" and to(actions, 2)[0]["peer"] == "Cy"
    incoming = to(actions, 3)[0]
    assert incoming["type"] == "call_incoming" and incoming["peer"] == "Bob" and incoming["stun_port"] == 3478
    # Someone outside the meeting reaches nobody by a meeting name, only online names.
    refused = to(send(hub, 9, {**call, "to": "Ada"}), 9)[0]
    assert refused["code"] == "not_online"
    send(hub, 9, {"type": "online", "name": "dee"})
    assert to(send(hub, 9, {**call, "to": "Ada"}), 9)[0]["code"] == "unknown_peer"
    assert to(send(hub, 1, {**call, "to": "dee"}), 9)[0]["type"] == "call_incoming"
    # A connection that goes ends its call.
    ended = hub.disconnected(3)
    assert next(a.message for a in ended if isinstance(a, Send) and 2 in a.to)["reason"] == "offline"


def test_the_hub_answers_rate_limited_chat_with_retry_after():
    hub = three_in_a_meeting()
    for n in range(int(CHAT_BURST)):
        assert to(send(hub, 2, {"type": "chat", "text": f"hi {n}"}, now=5.0), 1)
    actions = send(hub, 2, {"type": "chat", "text": "flood", "id": 7}, now=5.0)
    assert to(actions, 1) == [] and to(actions, 3) == []
    assert to(actions, 2) == [
        error(
            "rate_limited",
            "you are sending chat messages too fast; try again in 1 s",
            "chat",
            id=7,
            retry_after=1.0,
        )
    ]
