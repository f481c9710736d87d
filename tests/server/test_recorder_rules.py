"""Recorders (`conf record`) in the meeting rules: announced to everyone, named as such, forbidden by the
host, held for admission in an end-to-end encrypted meeting, never host."""

from __future__ import annotations

import pytest

from conf_cli.errors import RequestRefused
from conf_cli.server.meeting import Meeting
from conf_cli.server.passcode import PasscodeHash

PASSCODE = PasscodeHash(salt=b"s" * 16, digest=b"d" * 64)
MID = "abc-defg-hjk"
KEY = "A" * 43 + "="
ADA, BOB, REC = 1, 2, 3


def messages(sends, kind):
    return [(s.to, s.message) for s in sends if s.message.get("type") == kind]


def test_a_recorder_is_announced_to_everyone_and_its_leaving_too() -> None:
    meeting = Meeting(MID, PASSCODE)
    meeting.join(ADA, "Ada", passcode_ok=True)
    meeting.join(BOB, "Bob", passcode_ok=True)
    sends = meeting.join(REC, "Ada (recorder)", passcode_ok=True, recorder=True)
    assert messages(sends, "recording_started") == [
        ((ADA, BOB, REC), {"type": "recording_started", "by": "Ada (recorder)"})
    ]
    assert meeting.snapshot()["participants"][-1]["recorder"] is True
    with pytest.raises(RequestRefused):
        meeting.publish(REC, "video", 5, "H264")  # a recorder publishes nothing
    stopped = messages(meeting.leave(REC), "recording_stopped")
    assert stopped == [((ADA, BOB), {"type": "recording_stopped", "by": "Ada (recorder)", "reason": "left"})]


def test_names_say_who_records() -> None:
    meeting = Meeting(MID, PASSCODE)
    meeting.join(ADA, "Ada", passcode_ok=True)
    with pytest.raises(RequestRefused, match="recorder"):
        meeting.join(BOB, "Bob (Recorder)", passcode_ok=True)  # nobody passes for a recorder
    with pytest.raises(RequestRefused, match="NAME"):
        meeting.join(REC, "Rec", passcode_ok=True, recorder=True)  # nor hides one


def test_forbid_record_removes_recorders_and_refuses_new_ones() -> None:
    meeting = Meeting(MID, PASSCODE)
    meeting.join(ADA, "Ada", passcode_ok=True)
    meeting.join(REC, "R (recorder)", passcode_ok=True, recorder=True)
    sends = meeting.set_permission(ADA, "record", False)
    assert REC not in meeting.participants
    assert messages(sends, "left") == [
        ((REC,), {"type": "left", "meeting": MID, "reason": "recording_forbidden"})
    ]
    with pytest.raises(RequestRefused) as refused:
        meeting.join(REC, "R (recorder)", passcode_ok=True, recorder=True)
    assert refused.value.code == "forbidden"


def test_in_an_e2ee_meeting_a_recorder_waits_for_the_host_and_only_recorders_left_end_it() -> None:
    meeting = Meeting(MID, PASSCODE, e2ee=True)
    meeting.join(ADA, "Ada", passcode_ok=True, key=KEY)
    sends = meeting.join(REC, "R (recorder)", passcode_ok=True, key=KEY, recorder=True)
    assert REC in meeting.waiting and messages(sends, "waiting_joined")
    admitted = meeting.admit(ADA, "R (recorder)")
    assert messages(admitted, "recording_started")
    assert meeting.participants[REC].key == KEY  # it holds keys like anyone
    closing = meeting.leave(ADA)
    assert meeting.closed and messages(closing, "meeting_closed")


def test_a_forbid_of_record_for_one_name_stops_that_recorder_only() -> None:
    meeting = Meeting(MID, PASSCODE)
    meeting.join(ADA, "Ada", passcode_ok=True)
    meeting.join(BOB, "Bob", passcode_ok=True)
    meeting.join(REC, "R (recorder)", passcode_ok=True, recorder=True)
    with pytest.raises(RequestRefused, match="not a recorder"):
        meeting.set_permission(ADA, "record", False, "Bob")
    with pytest.raises(RequestRefused, match="always a member"):
        meeting.set_role(ADA, "R (recorder)", "admin")
    meeting.set_permission(ADA, "record", False, "R (recorder)")
    assert REC not in meeting.participants and "record" not in meeting.forbidden
    meeting.join(REC, "S (recorder)", passcode_ok=True, recorder=True)  # others may still record
    assert meeting.participants[REC].recorder
