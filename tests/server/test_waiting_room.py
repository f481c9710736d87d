"""The waiting room rules: who waits, who is told, admit, deny, leaving, and that nothing leaks."""

from __future__ import annotations

import pytest

from conf_cli.errors import RequestRefused
from conf_cli.server.meeting import MAX_PARTICIPANTS, MAX_WAITING, Meeting, Send
from conf_cli.server.passcode import PasscodeHash

PASSCODE = PasscodeHash(salt=b"s" * 16, digest=b"d" * 64)
MID = "abc-defg-hjk"
ADA, BOB, CY, DEE, EVE = 1, 2, 3, 4, 5


def refused(code: str, call, *args, **kwargs) -> RequestRefused:
    with pytest.raises(RequestRefused) as info:
        call(*args, **kwargs)
    assert info.value.code == code
    return info.value


def room() -> Meeting:
    """Ada hosts a meeting with a waiting room; Bob is in (admitted), Cy is admin."""
    meeting = Meeting(MID, PASSCODE, waiting_room=True)
    meeting.join(ADA, "Ada", passcode_ok=True)
    meeting.join(BOB, "Bob", passcode_ok=True)
    meeting.admit(ADA, "Bob")
    meeting.join(CY, "Cy", passcode_ok=True)
    meeting.admit(ADA, "Cy")
    meeting.set_role(ADA, "Cy", "admin")
    return meeting


def recipients(sends: list[Send]) -> set[int]:
    return {pid for send in sends for pid in send.to}


def test_the_creator_goes_straight_in_and_everyone_else_waits():
    meeting = Meeting(MID, PASSCODE, waiting_room=True)
    first = meeting.join(ADA, "Ada", passcode_ok=True)
    assert first[0].message["type"] == "joined"
    assert first[0].message["waiting_room"] is True and first[0].message["waiting"] == []
    sends = meeting.join(BOB, "Bob", passcode_ok=True)
    assert sends == [
        Send((BOB,), {"type": "waiting", "meeting": MID, "name": "Bob"}),
        Send((ADA,), {"type": "waiting_joined", "name": "Bob"}),
    ]
    assert BOB not in meeting.participants and meeting.waiting == {BOB: "Bob"}


def test_only_the_host_and_admins_hear_of_waiting_people():
    meeting = room()
    sends = meeting.join(DEE, "Dee", passcode_ok=True)
    assert sends[1] == Send((ADA, CY), {"type": "waiting_joined", "name": "Dee"})
    assert "waiting" not in meeting.who(BOB)[0].message  # a member does not see the list
    assert meeting.who(BOB)[0].message["waiting_room"] is True
    assert meeting.who(CY)[0].message["waiting"] == ["Dee"]


def test_nothing_reaches_a_waiting_person():
    meeting = room()
    meeting.join(DEE, "Dee", passcode_ok=True)
    sends = meeting.chat(BOB, "secret plans", now=0.0)
    sends += meeting.publish(BOB, "video", 0x1234, "H264")
    sends += meeting.set_permission(ADA, "screen", False)
    sends += meeting.set_locked(ADA, True)
    sends += meeting.set_role(ADA, "Bob", "admin")
    sends += meeting.join(EVE, "Eve", passcode_ok=True) if not meeting.locked else []
    sends += meeting.leave(BOB)
    assert DEE not in recipients(sends)
    assert DEE not in meeting.audience(ADA) and DEE not in meeting.audience(CY)


def test_admit_lets_them_in_with_the_whole_state_and_tells_everyone():
    meeting = room()
    meeting.publish(BOB, "audio", 7, "opus")
    meeting.join(DEE, "Dee", passcode_ok=True)
    sends = meeting.admit(CY, "dee")  # names match case-insensitively
    assert sends[0] == Send(
        (ADA, CY), {"type": "waiting_left", "name": "Dee", "reason": "admitted", "by": "Cy"}
    )
    joined = sends[1]
    assert joined.to == (DEE,) and joined.message["type"] == "joined" and joined.message["role"] == "member"
    assert joined.message["tracks"] == [{"name": "Bob", "kind": "audio", "ssrc": 7, "codec": "opus"}]
    assert "waiting" not in joined.message  # a member
    assert sends[2] == Send((ADA, BOB, CY), {"type": "participant_joined", "name": "Dee", "role": "member"})
    assert DEE in meeting.audience(BOB) and not meeting.waiting


def test_deny_turns_them_away_with_a_message_of_their_own():
    meeting = room()
    meeting.join(DEE, "Dee", passcode_ok=True)
    sends = meeting.deny(ADA, "Dee")
    assert sends == [
        Send((DEE,), {"type": "denied", "meeting": MID, "by": "Ada"}),
        Send((ADA, CY), {"type": "waiting_left", "name": "Dee", "reason": "denied", "by": "Ada"}),
    ]
    assert not meeting.waiting and DEE not in meeting.participants


def test_admit_all_and_turning_the_room_off_let_everyone_in():
    meeting = room()
    meeting.join(DEE, "Dee", passcode_ok=True)
    meeting.join(EVE, "Eve", passcode_ok=True)
    sends = meeting.admit(ADA, None)
    assert [s.message["name"] for s in sends if s.message["type"] == "joined"] == ["Dee", "Eve"]
    refused("unknown_participant", meeting.admit, ADA, None)  # nobody waits any more
    meeting.leave(EVE)
    meeting.join(EVE, "Eve", passcode_ok=True)
    sends = meeting.set_waiting_room(CY, False)
    assert sends[0] == Send(
        (ADA, BOB, CY, DEE), {"type": "waiting_room_changed", "enabled": False, "by": "Cy"}
    )
    assert EVE in meeting.participants
    assert meeting.join(6, "Fay", passcode_ok=True)[0].message["type"] == "joined"  # straight in now
    assert meeting.set_waiting_room(ADA, False) == []


def test_members_cannot_admit_deny_or_change_the_room():
    meeting = room()
    meeting.join(DEE, "Dee", passcode_ok=True)
    refused("not_allowed", meeting.admit, BOB, "Dee")
    refused("not_allowed", meeting.deny, BOB, "Dee")
    refused("not_allowed", meeting.set_waiting_room, BOB, False)
    refused("unknown_participant", meeting.admit, ADA, "Nobody")
    refused("unknown_participant", meeting.deny, ADA, "Bob")  # Bob is in, not waiting
    assert meeting.waiting == {DEE: "Dee"}


def test_a_waiting_person_who_leaves_disappears_from_the_list():
    meeting = room()
    meeting.join(DEE, "Dee", passcode_ok=True)
    assert meeting.leave(DEE, "disconnected") == [
        Send((ADA, CY), {"type": "waiting_left", "name": "Dee", "reason": "disconnected"})
    ]
    assert meeting.who(ADA)[0].message["waiting"] == []
    refused("unknown_participant", meeting.admit, ADA, "Dee")


def test_names_are_unique_across_the_meeting_and_its_waiting_room():
    meeting = room()
    meeting.join(DEE, "Dee", passcode_ok=True)
    refused("name_taken", meeting.join, EVE, "DEE", passcode_ok=True)
    refused("name_taken", meeting.join, EVE, "bob", passcode_ok=True)


def test_the_waiting_room_is_bounded_and_admission_respects_the_meeting_size():
    meeting = Meeting(MID, PASSCODE, waiting_room=True)
    meeting.join(ADA, "Ada", passcode_ok=True)
    for n in range(MAX_WAITING):
        meeting.join(100 + n, f"w{n}", passcode_ok=True)
    refused("waiting_room_full", meeting.join, 99, "late", passcode_ok=True)
    meeting.set_waiting_room(ADA, False)
    assert len(meeting.participants) == MAX_WAITING + 1
    for n in range(MAX_PARTICIPANTS - 1 - len(meeting.participants)):
        meeting.join(1000 + n, f"x{n}", passcode_ok=True)
    meeting.set_waiting_room(ADA, True)
    meeting.join(5000, "last", passcode_ok=True)
    meeting.join(5001, "one too many", passcode_ok=True)
    meeting.admit(ADA, None)
    assert len(meeting.participants) == MAX_PARTICIPANTS and 5000 in meeting.participants
    refused("meeting_full", meeting.admit, ADA, "one too many")
    assert meeting.admit(ADA, None) == []  # no room: they go on waiting
    assert 5001 in meeting.waiting
    refused("meeting_full", meeting.join, 5002, "later", passcode_ok=True)


def test_a_new_admin_or_host_learns_who_waits():
    meeting = room()
    meeting.join(DEE, "Dee", passcode_ok=True)
    sends = meeting.set_role(ADA, "Bob", "admin")
    assert Send((BOB,), {"type": "waiting_room", "enabled": True, "waiting": ["Dee"]}) in sends
    # Cy (admin) is already told; when the host leaves, the longest-present admin takes over
    sends = meeting.leave(ADA)
    assert not [s for s in sends if s.message["type"] == "waiting_room"]
    sends = meeting.set_role(BOB, "Cy", "host")
    assert not [s for s in sends if s.message["type"] == "waiting_room"]


def test_a_member_who_inherits_the_host_role_learns_who_waits():
    meeting = Meeting(MID, PASSCODE, waiting_room=True)
    meeting.join(ADA, "Ada", passcode_ok=True)
    meeting.join(BOB, "Bob", passcode_ok=True)
    meeting.admit(ADA, "Bob")
    meeting.join(CY, "Cy", passcode_ok=True)
    sends = meeting.leave(ADA)
    assert Send((BOB,), {"type": "waiting_room", "enabled": True, "waiting": ["Cy"]}) in sends


def test_when_the_meeting_ends_the_waiting_are_told():
    meeting = room()
    meeting.join(DEE, "Dee", passcode_ok=True)
    sends = meeting.end(ADA)
    assert Send((DEE,), {"type": "meeting_closed", "reason": "ended", "by": "Ada"}) in sends
    meeting = Meeting(MID, PASSCODE, waiting_room=True)
    meeting.join(ADA, "Ada", passcode_ok=True)
    meeting.join(BOB, "Bob", passcode_ok=True)
    assert meeting.leave(ADA) == [Send((BOB,), {"type": "meeting_closed", "reason": "ended"})]
    assert meeting.closed and not meeting.waiting


def test_meetings_without_a_waiting_room_look_as_before():
    meeting = Meeting(MID, PASSCODE)
    joined = meeting.join(ADA, "Ada", passcode_ok=True)[0].message
    assert "waiting_room" not in joined and "waiting" not in joined
    assert meeting.join(BOB, "Bob", passcode_ok=True)[0].message["type"] == "joined"
    meeting.set_waiting_room(ADA, True)
    assert meeting.join(CY, "Cy", passcode_ok=True)[0].message["type"] == "waiting"


def test_an_e2ee_key_waits_with_its_owner_and_comes_in_on_admission():
    meeting = Meeting(MID, PASSCODE, e2ee=True, waiting_room=True)
    meeting.join(ADA, "Ada", passcode_ok=True, key="A" * 43 + "=")
    held = meeting.join(BOB, "Bob", passcode_ok=True, key="B" * 43 + "=")
    assert all("key" not in send.message for send in held)  # nobody inside learns of a waiting key
    sends = meeting.admit(ADA, "Bob")
    arrived = next(s.message for s in sends if s.message["type"] == "participant_joined")
    assert arrived["key"] == "B" * 43 + "="
    joined = next(s.message for s in sends if s.message["type"] == "joined")
    assert [p.get("key") for p in joined["participants"]] == ["A" * 43 + "=", "B" * 43 + "="]
    refused("e2ee_required", meeting.join, CY, "Cy", passcode_ok=True)
    meeting.join(DEE, "Dee", passcode_ok=True, key="D" * 43 + "=")
    meeting.deny(ADA, "Dee")
    meeting.join(EVE, "Eve", passcode_ok=True, key="E" * 43 + "=")
    meeting.leave(EVE)
    assert meeting._waiting_keys == {}  # keys of those denied or gone are forgotten
