"""The client-side model of the meeting: each typed event's effect on MeetingState, and how the link hands
server messages on (parsed once, with the client profile)."""

from __future__ import annotations

from typing import Any

import pytest

from conf_cli.client.link import Client
from conf_cli.client.state import (
    ControlSession,
    MeetingState,
    Participant,
    ServerMessage,
    event_of,
    receive,
    with_fields,
)
from conf_cli.errors import ProtocolError
from conf_cli.plugin.registry import create_registry
from conf_cli.protocol.control import encode
from conf_cli.protocol.events import Joined, ShareStarted, TrackEntry, parse_event
from conf_cli.urls import parse_server_url

MID = "abc-defg-hjk"
KEY = "A" * 43 + "="


def joined(**overrides: Any) -> dict[str, Any]:
    message = {
        "type": "joined",
        "name": "Cy",
        "role": "member",
        "meeting": MID,
        "participants": [
            {"name": "Ada", "role": "host", "sharing": ["audio"], "forbidden": []},
            {"name": "Bob", "role": "admin", "sharing": ["screen"], "forbidden": ["chat"], "key": KEY},
            {"name": "Cy", "role": "member", "sharing": [], "forbidden": []},
        ],
        "tracks": [
            {"name": "Ada", "kind": "audio", "ssrc": 10, "codec": "opus"},
            {"name": "Bob", "kind": "screen", "ssrc": 20, "codec": "H264"},
        ],
        "locked": False,
        "forbidden": ["video"],
    }
    return {**message, **overrides}


def state_after(*messages: dict[str, Any]) -> MeetingState:
    state = MeetingState()
    for message in messages:
        state.apply(parse_event(message))
    return state


def in_meeting(*messages: dict[str, Any]) -> MeetingState:
    return state_after(joined(), *messages)


# -- getting in ------------------------------------------------------------------------------------------


def test_a_fresh_state_knows_nothing() -> None:
    state = MeetingState()
    assert (state.me, state.meeting, state.role, state.participants, state.tracks) == (
        "",
        "",
        "member",
        {},
        {},
    )
    assert state.control is None and state.ended is None and not state.e2ee


def test_meeting_created_gives_the_meeting_its_passcode_and_e2ee() -> None:
    state = state_after({"type": "meeting_created", "meeting": MID, "passcode": "sesame", "e2ee": True})
    assert (state.meeting, state.passcode, state.e2ee) == (MID, "sesame", True)


def test_joined_loads_everyone_their_tracks_and_the_rules() -> None:
    state = in_meeting()
    assert state.me == "Cy" and state.role == "member" and state.meeting == MID
    assert list(state.participants) == ["Ada", "Bob", "Cy"]
    assert state.participants["Bob"] == Participant("Bob", "admin", {"screen"}, {"chat"}, KEY)
    assert state.tracks == {
        10: TrackEntry(name="Ada", kind="audio", ssrc=10, codec="opus"),
        20: TrackEntry(name="Bob", kind="screen", ssrc=20, codec="H264"),
    }
    assert state.tracks_of("Bob") == [state.tracks[20]]
    assert state.forbidden == {"video"} and not state.locked and not state.e2ee
    assert not state.waiting_room and state.waiting == []


def test_participants_replaces_the_whole_picture() -> None:
    state = in_meeting({"type": "participant_joined", "name": "Ghost", "role": "member"})
    snapshot = {
        k: v for k, v in joined(locked=True, forbidden=[], tracks=[]).items() if k not in ("name", "role")
    }
    state.apply(parse_event({**snapshot, "type": "participants"}))
    assert "Ghost" not in state.participants and state.locked and state.forbidden == set()
    assert state.tracks == {} and state.me == "Cy"


def test_an_e2ee_snapshot_and_the_waiting_room_it_shows_the_host() -> None:
    state = in_meeting({"type": "participants", **joined(e2ee=True, waiting_room=True, waiting=["Dee"])})
    assert state.e2ee and state.waiting_room and state.waiting == ["Dee"]


def test_waiting_then_admitted() -> None:
    state = state_after({"type": "waiting", "meeting": MID, "name": "Cy"})
    assert state.held and state.me == "Cy" and state.meeting == MID and state.participants == {}
    state.apply(parse_event(joined()))
    assert not state.held and "Cy" in state.participants


def test_waiting_then_denied() -> None:
    state = state_after(
        {"type": "waiting", "meeting": MID, "name": "Cy"}, {"type": "denied", "meeting": MID, "by": "Ada"}
    )
    assert state.ended == "denied"


# -- comings and goings ----------------------------------------------------------------------------------


def test_participant_joined_with_their_key() -> None:
    state = in_meeting({"type": "participant_joined", "name": "Dee", "role": "member", "key": KEY})
    assert state.participants["Dee"] == Participant("Dee", "member", key=KEY)
    assert list(state.participants)[-1] == "Dee"


def test_participant_left_takes_their_tracks_and_any_control_session_with_them() -> None:
    state = in_meeting(
        {"type": "control_requested", "controller": "Bob", "controlled": "Cy", "request": 1, "timeout": 30},
        {"type": "participant_left", "name": "Bob", "reason": "timeout"},
    )
    assert "Bob" not in state.participants and state.tracks_of("Bob") == [] and 10 in state.tracks
    assert state.control is None


def test_someone_unknown_leaving_changes_nothing() -> None:
    state = in_meeting({"type": "participant_left", "name": "Zed", "reason": "left"})
    assert state == in_meeting()


# -- roles and permissions -------------------------------------------------------------------------------


def test_role_changed_and_our_role() -> None:
    state = in_meeting({"type": "role_changed", "name": "Cy", "role": "admin", "by": "Ada"})
    assert state.role == "admin" and state.participants["Cy"].role == "admin"


def test_becoming_host_lifts_personal_forbids() -> None:
    state = in_meeting({"type": "role_changed", "name": "Bob", "role": "host"})
    assert state.participants["Bob"].role == "host" and state.participants["Bob"].forbidden == set()


def test_role_changed_for_someone_unknown_changes_nothing() -> None:
    assert in_meeting({"type": "role_changed", "name": "Zed", "role": "admin", "by": "Ada"}) == in_meeting()


def test_meeting_wide_and_named_permissions() -> None:
    state = in_meeting(
        {"type": "permission_changed", "what": "chat", "allowed": False, "by": "Ada"},
        {"type": "permission_changed", "what": "video", "allowed": True, "by": "Ada"},
        {"type": "permission_changed", "what": "audio", "allowed": False, "by": "Ada", "name": "Cy"},
        {"type": "permission_changed", "what": "chat", "allowed": True, "by": "Ada", "name": "Bob"},
        {"type": "permission_changed", "what": "audio", "allowed": False, "by": "Ada", "name": "Zed"},
    )
    assert state.forbidden == {"chat"}
    assert state.participants["Cy"].forbidden == {"audio"} and state.participants["Bob"].forbidden == set()
    assert "Zed" not in state.participants


def test_meeting_locked_and_unlocked() -> None:
    state = in_meeting({"type": "meeting_locked", "locked": True, "by": "Ada"})
    assert state.locked
    state.apply(parse_event({"type": "meeting_locked", "locked": False, "by": "Bob"}))
    assert not state.locked


# -- tracks ----------------------------------------------------------------------------------------------


def test_share_started_adds_the_track_by_ssrc() -> None:
    state = in_meeting({"type": "share_started", "name": "Cy", "kind": "video", "ssrc": 30, "codec": "H264"})
    assert state.tracks[30] == TrackEntry(name="Cy", kind="video", ssrc=30, codec="H264")
    assert state.participants["Cy"].sharing == {"video"}


def test_share_stopped_ends_that_track_only() -> None:
    state = in_meeting(
        {
            "type": "share_stopped",
            "name": "Bob",
            "kind": "screen",
            "ssrc": 20,
            "codec": "H264",
            "reason": "stopped",
        }
    )
    assert 20 not in state.tracks and 10 in state.tracks and state.participants["Bob"].sharing == set()


def test_share_stopped_without_ssrc_ends_every_track_of_that_kind() -> None:
    state = in_meeting({"type": "share_stopped", "name": "Ada", "kind": "audio", "reason": "forbidden"})
    assert state.tracks_of("Ada") == [] and state.participants["Ada"].sharing == set()


def test_a_late_share_stopped_does_not_end_the_track_that_replaced_it() -> None:
    state = in_meeting(
        {"type": "share_started", "name": "Bob", "kind": "screen", "ssrc": 21, "codec": "H264"},
        {"type": "share_stopped", "name": "Bob", "kind": "screen", "ssrc": 20, "reason": "replaced"},
    )
    assert [track.ssrc for track in state.tracks_of("Bob")] == [21]


# -- the waiting room ------------------------------------------------------------------------------------


def test_the_waiting_list_follows_events() -> None:
    state = in_meeting(
        {"type": "waiting_room", "enabled": True, "waiting": ["Dee"]},
        {"type": "waiting_joined", "name": "Eve"},
        {"type": "waiting_joined", "name": "Eve"},
    )
    assert state.waiting_room and state.waiting == ["Dee", "Eve"]
    state.apply(parse_event({"type": "waiting_left", "name": "Dee", "reason": "admitted", "by": "Ada"}))
    state.apply(parse_event({"type": "waiting_room_changed", "enabled": False, "by": "Ada"}))
    assert state.waiting == ["Eve"] and not state.waiting_room


# -- remote control --------------------------------------------------------------------------------------


def control(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "controller": "Bob", "controlled": "Cy", **fields}


def test_a_control_session_is_asked_for_granted_and_revoked() -> None:
    state = in_meeting(control("control_requested", request=3, timeout=30))
    assert state.control == ControlSession("Bob", "Cy", 3)
    state.apply(parse_event(control("control_granted", request=3)))
    assert state.control == ControlSession("Bob", "Cy", 3, granted=True)
    state.apply(parse_event(control("control_revoked", request=3, reason="revoked", by="Cy")))
    assert state.control is None


def test_a_denied_request_ends_the_session() -> None:
    state = in_meeting(
        control("control_requested", request=4, timeout=30),
        control("control_denied", request=4, reason="timeout"),
    )
    assert state.control is None


# -- the end ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "ended"),
    [
        ({"type": "left", "meeting": MID, "reason": "left"}, "left"),
        ({"type": "kicked", "by": "Ada"}, "kicked"),
        ({"type": "meeting_closed", "by": "Ada", "reason": "ended"}, "meeting_closed"),
    ],
)
def test_the_events_that_end_the_meeting_for_us(message: dict[str, Any], ended: str) -> None:
    state = in_meeting(control("control_requested", request=1, timeout=30), message)
    assert state.ended == ended and state.control is None


@pytest.mark.parametrize(
    "message",
    [
        {"type": "chat", "from": "Ada", "text": "hi", "private": False},
        {"type": "e2ee_key", "from": "Ada", "box": "AAAA"},
        {"type": "pong"},
        {"type": "error", "code": "not_allowed", "message": "no"},
        {"type": "unbanned", "name": "Dee", "by": "Ada"},
    ],
)
def test_events_about_nothing_the_model_holds_change_nothing(message: dict[str, Any]) -> None:
    assert in_meeting(message) == in_meeting()


# -- how the link hands server messages on ---------------------------------------------------------------


def link() -> Client:
    return Client(create_registry(), parse_server_url("tcp://127.0.0.1:1"))


def test_the_link_parses_each_message_once_and_hands_on_the_message_with_its_event() -> None:
    client = link()
    message = {**joined(), "future_field": 1}
    client.control_received(encode(message))
    received = client.events.get_nowait()
    assert isinstance(received, ServerMessage) and received == message  # shown as it came
    assert isinstance(event_of(received), Joined) and event_of(received) == parse_event(joined())


def test_the_link_drops_a_wrong_message_and_says_which_field_is_wrong() -> None:
    client = link()
    client.control_received(
        encode({"type": "share_started", "name": "Ada", "kind": "video", "ssrc": -5, "codec": "H264"})
    )
    client.control_received(encode({"type": "participant_joined", "name": "Ada"}))
    errors = [client.events.get_nowait() for _ in range(2)]
    assert errors == [
        {
            "type": "error",
            "code": "bad_server_message",
            "message": "share_started.ssrc must be an integer from 0 to 4294967295",
        },
        {
            "type": "error",
            "code": "bad_server_message",
            "message": "participant_joined: missing field 'role'",
        },
    ]
    assert all(event_of(error) is None for error in errors) and client.events.empty()


def test_the_link_passes_on_a_type_it_does_not_know_as_it_came() -> None:
    client = link()
    client.control_received(encode({"type": "hand_raised_in_2030", "name": "Ada"}))
    received = client.events.get_nowait()
    assert received == {"type": "hand_raised_in_2030", "name": "Ada"} and event_of(received) is None


def test_receive_is_the_links_parse() -> None:
    assert event_of(receive(joined())) == parse_event(joined())
    assert receive({"type": "track_started", "name": "Ada"}) == {"type": "track_started", "name": "Ada"}
    with pytest.raises(ProtocolError, match="participant_joined: missing field 'role'"):
        receive({"type": "participant_joined", "name": "Ada"})


def test_what_the_client_adds_keeps_the_typed_event() -> None:
    created = receive({"type": "meeting_created", "meeting": MID, "passcode": "sesame"})
    shown = with_fields(created, invite="http://127.0.0.1:8080/")
    assert shown["invite"] == "http://127.0.0.1:8080/" and event_of(shown) == event_of(created)
    assert with_fields({"type": "online"}, candidates=[]) == {"type": "online", "candidates": []}


def test_a_message_made_for_an_event_stands_for_it() -> None:
    event = ShareStarted(name="Bob", kind="video", ssrc=5, codec="H264")
    message = ServerMessage.of(event)
    assert message == event.to_message() and event_of(message) is event
