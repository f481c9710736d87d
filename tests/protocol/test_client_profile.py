"""The client profile of parse_event (docs/protocol.md, "The client profile"): what a client takes that the
strict profile refuses, and what it still refuses."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conf_cli.errors import ProtocolError
from conf_cli.protocol.control import CONTROL_CHARS
from conf_cli.protocol.events import (
    Chat,
    ControlGranted,
    ControlInput,
    Joined,
    MeetingCreated,
    ParticipantJoined,
    ParticipantLeft,
    ShareStarted,
    ShareStopped,
    parse_event,
)

OSC52 = "\x1b]52;c;ZXZpbA==\x07"
MID = "abc-defg-hjk"


def joined(**fields: Any) -> dict[str, Any]:
    participants = [{"name": "Ada", "role": "host", "sharing": [], "forbidden": []}]
    return {
        "type": "joined",
        "name": "Ada",
        "role": "host",
        "meeting": MID,
        "participants": participants,
        **fields,
    }


def test_text_with_control_characters_is_made_printable_and_taken() -> None:
    message = {"type": "chat", "from": f"eve{OSC52}", "text": f"copy {OSC52}\x9b2J", "private": False}
    with pytest.raises(ProtocolError):
        parse_event(message)
    chat = parse_event(message, lenient=True)
    assert chat == Chat(
        sender="eve\ufffd]52;c;ZXZpbA==\ufffd", text="copy \ufffd]52;c;ZXZpbA==\ufffd\ufffd2J", private=False
    )


def test_names_inside_a_snapshot_are_made_printable_too() -> None:
    entry = {"name": "Bob\x1b[2J", "role": "member", "sharing": [], "forbidden": []}
    event = parse_event(joined(participants=[entry], locked=False, forbidden=[], tracks=[]), lenient=True)
    assert isinstance(event, Joined) and event.participants[0].name == "Bob\ufffd[2J"


def test_lone_surrogates_are_made_printable() -> None:
    event = parse_event({"type": "participant_left", "name": "Ada\ud800", "reason": "left"}, lenient=True)
    assert event == ParticipantLeft(name="Ada\ufffd", reason="left")


def test_text_still_has_its_bounds_and_a_field_its_kind() -> None:
    with pytest.raises(ProtocolError, match=r"^participant_left.name must be 1 to 64 characters$"):
        parse_event({"type": "participant_left", "name": "x" * 65, "reason": "left"}, lenient=True)
    with pytest.raises(ProtocolError, match=r"^share_stopped.reason must be a string of 1 to 64 characters$"):
        parse_event(
            {"type": "share_stopped", "name": "Ada", "kind": "video", "reason": "x" * 65}, lenient=True
        )


def test_remote_control_input_is_never_cleaned() -> None:
    typed = {"type": "control_input", "from": "Bob", "action": "text", "text": "line\n\tend"}
    assert parse_event(typed, lenient=True) == ControlInput(sender="Bob", action="text", text="line\n\tend")
    with pytest.raises(ProtocolError, match=r"^control_input.key must be a key name"):
        parse_event(
            {"type": "control_input", "from": "Bob", "action": "key", "key": "\x1b", "pressed": True},
            lenient=True,
        )


def test_the_fields_a_client_does_without_and_their_values() -> None:
    event = parse_event(joined(), lenient=True)
    assert isinstance(event, Joined)
    assert (event.tracks, event.locked, event.forbidden) == ((), False, ())
    assert parse_event({"type": "participant_left", "name": "Bob"}, lenient=True) == ParticipantLeft(
        name="Bob", reason="left"
    )
    assert parse_event(
        {"type": "share_stopped", "name": "Bob", "kind": "video"}, lenient=True
    ) == ShareStopped(name="Bob", kind="video", reason="stopped")
    granted = {"type": "control_granted", "controller": "Bob", "controlled": "Ada"}
    assert parse_event(granted, lenient=True) == ControlGranted(
        controller="Bob", controlled="Ada", request=None
    )
    for message in (joined(), granted, {"type": "participant_left", "name": "Bob"}):
        with pytest.raises(ProtocolError, match="missing field"):
            parse_event(message)  # the strict profile: a conforming server always sends them


def test_fields_without_a_client_default_stay_required() -> None:
    with pytest.raises(ProtocolError, match=r"^joined: missing field 'name'$"):
        parse_event({k: v for k, v in joined().items() if k != "name"}, lenient=True)
    with pytest.raises(ProtocolError, match=r"^error: missing field 'message'$"):
        parse_event({"type": "error", "code": "busy"}, lenient=True)


def test_an_e2ee_key_is_left_to_the_key_ring() -> None:
    assert parse_event(
        {"type": "participant_joined", "name": "Eve", "role": "member", "key": "bad"}, lenient=True
    ) == (ParticipantJoined(name="Eve", role="member", key="bad"))
    entry = {"name": "Eve", "role": "member", "key": "bad"}
    event = parse_event(joined(participants=[entry]), lenient=True)
    assert isinstance(event, Joined) and event.participants[0].key == "bad"
    with pytest.raises(ProtocolError, match="32-byte X25519 public key"):
        parse_event(joined(participants=[entry], tracks=[], locked=False, forbidden=[]))
    with pytest.raises(
        ProtocolError, match=r"^participant_joined.key must be a string of 1 to 64 characters$"
    ):
        parse_event(
            {"type": "participant_joined", "name": "Eve", "role": "member", "key": "k" * 65}, lenient=True
        )


@given(st.text(max_size=40))
def test_the_client_profile_never_keeps_a_control_character_in_a_name(name: str) -> None:
    try:
        event = parse_event({"type": "participant_joined", "name": name, "role": "member"}, lenient=True)
    except ProtocolError:
        return
    assert isinstance(event, ParticipantJoined) and not CONTROL_CHARS.search(event.name)


def test_a_meeting_said_to_be_plain_is_taken_so_that_the_client_can_refuse_it() -> None:
    created = {"type": "meeting_created", "meeting": MID, "passcode": "sesame", "e2ee": False}
    with pytest.raises(ProtocolError, match=r"^meeting_created.e2ee is true or absent$"):
        parse_event(created)
    assert parse_event(created, lenient=True) == MeetingCreated(meeting=MID, passcode="sesame", e2ee=False)
    event = parse_event(joined(e2ee=False), lenient=True)
    assert isinstance(event, Joined) and event.e2ee is False


def test_a_track_of_a_kind_the_client_does_not_know_is_still_a_track() -> None:
    started = {"type": "share_started", "name": "Ada", "kind": "/../../hologram", "ssrc": 5, "codec": "H264"}
    with pytest.raises(ProtocolError, match=r"^share_started.kind must be one of audio, video, screen$"):
        parse_event(started)
    assert parse_event(started, lenient=True) == ShareStarted(
        name="Ada", kind="/../../hologram", ssrc=5, codec="H264"
    )
    track = {"name": "Ada", "kind": "hologram", "ssrc": 5, "codec": "H264"}
    event = parse_event(joined(tracks=[track]), lenient=True)
    assert isinstance(event, Joined) and event.tracks[0].kind == "hologram"
    with pytest.raises(ProtocolError, match=r"^share_started.kind must be a string of 1 to 64 characters$"):
        parse_event({**started, "kind": "k" * 65}, lenient=True)
