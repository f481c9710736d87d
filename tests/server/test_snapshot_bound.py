"""The meeting's snapshot (``joined``, ``participants``) fits one control frame by construction.

Its size is bounded by the bounds on what clients may put in it: MAX_PARTICIPANTS participants, one
track of each kind each, a codec from CODECS, names of at most MAX_NAME_BYTES, MAX_WAITING waiting. The
test builds the largest meeting those bounds allow and encodes every message that carries the snapshot.
"""

from __future__ import annotations

from conf_cli.protocol.control import (
    CODECS,
    MAX_CONTROL_BYTES,
    MAX_NAME_BYTES,
    MEDIA_KINDS,
    PERMISSIONS,
    check_name,
    encode,
    json_bytes,
)
from conf_cli.server.meeting import MAX_PARTICIPANTS, MAX_WAITING, Meeting, Send
from conf_cli.server.passcode import PasscodeHash, new_meeting_id

PASSCODE = PasscodeHash(salt=b"s" * 16, digest=b"d" * 64)
KEY = "A" * 43 + "="
WAITING_BASE = 10_000


def longest_name(n: int) -> str:
    """A valid name of MAX_NAME_BYTES bytes in JSON, unique for ``n``: 4-byte characters."""
    name = chr(0x1F600 + n % 64) + chr(0x1F300 + n // 64) + "\U0001f98a" * (MAX_NAME_BYTES // 4 - 2)
    check_name(name)
    assert json_bytes(name) == MAX_NAME_BYTES
    return name


def largest_meeting() -> tuple[Meeting, list[Send]]:
    """A full E2EE meeting with a full waiting room, everyone sharing everything with the largest SSRCs;
    and the ``joined`` the last participant admitted was sent."""
    meeting = Meeting(new_meeting_id(), PASSCODE, e2ee=True, waiting_room=True)
    host = 0
    meeting.join(host, longest_name(host), passcode_ok=True, key=KEY)
    joined: list[Send] = []
    for pid in range(1, MAX_PARTICIPANTS):
        meeting.join(pid, longest_name(pid), passcode_ok=True, key=KEY)
        joined = meeting.admit(host, longest_name(pid))
    for pid in range(MAX_PARTICIPANTS):
        for index, kind in enumerate(MEDIA_KINDS):
            meeting.publish(pid, kind, 0xFFFFFFFF - 3 * pid - index, CODECS[kind])
    # More than the rules let happen at once, for an upper bound: nobody may wait to enter a full meeting,
    # and a forbidden kind is not shared.
    for pid in range(WAITING_BASE, WAITING_BASE + MAX_WAITING):
        meeting.waiting[pid] = longest_name(pid)
    for participant in meeting.participants.values():
        participant.forbidden = set(PERMISSIONS) - {"record"}  # a forbid of record per name is not kept
    meeting.forbidden = set(PERMISSIONS)
    meeting.locked = True
    return meeting, joined


def test_the_largest_snapshot_fits_one_control_frame() -> None:
    meeting, joined = largest_meeting()
    assert len(meeting.participants) == MAX_PARTICIPANTS and len(meeting.waiting) == MAX_WAITING
    assert len(meeting.tracks) == MAX_PARTICIPANTS * len(MEDIA_KINDS)
    host = min(meeting.participants)
    staff_view = meeting.who(host)[0].message
    assert len(staff_view["waiting"]) == MAX_WAITING and len(staff_view["tracks"]) == len(meeting.tracks)
    arrival = next(s.message for s in joined if s.message["type"] == "joined")
    sizes = {
        "participants (host)": len(encode(staff_view)),
        "joined (member)": len(encode({**arrival, **meeting.snapshot(MAX_PARTICIPANTS - 1)})),
        "joined (as if staff)": len(encode({**arrival, **meeting.snapshot(host)})),
    }
    print(f"largest snapshots: {sizes} bytes of {MAX_CONTROL_BYTES}")
    assert max(sizes.values()) <= MAX_CONTROL_BYTES


def test_a_snapshot_at_its_bound_still_answers_join_and_who_through_the_hub() -> None:
    """A request's answer is the snapshot as the hub sends it: a participant's /who is answered."""
    meeting, _ = largest_meeting()
    for pid in (min(meeting.participants), max(meeting.participants)):
        (answer,) = meeting.who(pid)
        assert answer.to == (pid,) and len(encode(answer.message)) <= MAX_CONTROL_BYTES
