"""Breakout rooms in the meeting's rules: plans, moves, and media and chat kept inside each room."""

from __future__ import annotations

import random

from conf_cli.server.meeting import Meeting, Send
from tests.helpers.meeting import ADA, BOB, CY, DEE, MID, NAMES, PASSCODE, refused

EVE = 5
NAMES_ALL = {**NAMES, EVE: "Eve"}


def five() -> Meeting:
    """Ada hosts; Bob, Cy, Dee and Eve; Bob shares video, Cy audio, Dee video."""
    meeting = Meeting(MID, PASSCODE, rng=random.Random(7))
    for pid in (ADA, BOB, CY, DEE, EVE):
        meeting.join(pid, NAMES_ALL[pid], passcode_ok=True)
    meeting.publish(BOB, "video", 0xB0B, "H264")
    meeting.publish(CY, "audio", 0xC1, "opus")
    meeting.publish(DEE, "video", 0xDEE, "H264")
    return meeting


def to(sends: list[Send], pid: int, kind: str | None = None) -> list[dict]:
    return [s.message for s in sends if pid in s.to and (kind is None or s.message["type"] == kind)]


def opened_two_rooms(meeting: Meeting) -> list[Send]:
    """Bob and Cy in room 1, Dee in room 2, Eve and Ada in the main room."""
    meeting.breakout_create(ADA, 2, now=0)
    meeting.breakout_assign(ADA, "Bob", 1, now=0)
    meeting.breakout_assign(ADA, "cy", 1, now=0)
    meeting.breakout_assign(ADA, "Dee", 2, now=0)
    return meeting.breakout_open(ADA, 10, now=100)


def test_the_plan_goes_to_the_host_and_admins_only():
    meeting = five()
    meeting.set_role(ADA, "Eve", "admin")
    (plan,) = meeting.breakout_create(ADA, 3, now=0)
    assert plan == Send((ADA, EVE), {"type": "breakout_rooms", "rooms": 3, "open": False, "assignments": []})
    sends = meeting.breakout_assign(ADA, "Bob", 2, now=0)
    assert sends == [
        Send(
            (ADA, EVE),
            {
                "type": "breakout_rooms",
                "rooms": 3,
                "open": False,
                "assignments": [{"name": "Bob", "room": 2}],
            },
        )
    ]
    refused("bad_request", meeting.breakout_assign, ADA, "Bob", 4, now=0)
    refused("unknown_participant", meeting.breakout_assign, ADA, "Zed", 1, now=0)


def test_opening_moves_people_and_each_sees_only_its_rooms_tracks():
    meeting = five()
    sends = opened_two_rooms(meeting)
    assert to(sends, EVE)[:4] == [
        {"type": "breakout_opened", "rooms": 2, "by": "Ada", "ends_in": 600.0},
        {"type": "breakout_moved", "name": "Bob", "room": 1, "by": "Ada"},
        {"type": "breakout_moved", "name": "Cy", "room": 1, "by": "Ada"},
        {"type": "breakout_moved", "name": "Dee", "room": 2, "by": "Ada"},
    ]
    # Eve, in the main room, no longer receives anyone's track; Bob keeps Cy's audio, loses Dee's video.
    assert [(m["name"], m["reason"]) for m in to(sends, EVE, "share_stopped")] == [
        ("Cy", "moved"),
        ("Bob", "moved"),
        ("Dee", "moved"),
    ]
    assert [m["name"] for m in to(sends, BOB, "share_stopped")] == ["Dee"]
    assert to(sends, BOB, "share_started") == []
    assert [m["name"] for m in to(sends, DEE, "share_stopped")] == ["Cy", "Bob"]
    # Media: each track reaches its room only.
    assert meeting.audience(BOB) == (CY,)
    assert meeting.audience(CY) == (BOB,)
    assert meeting.audience(DEE) == ()
    assert set(meeting.audience(EVE)) == {ADA}
    # Snapshots list the room's tracks only, and everyone in the meeting.
    snapshot = meeting.who(BOB)[0].message
    assert [t["name"] for t in snapshot["tracks"]] == ["Bob", "Cy"]
    assert len(snapshot["participants"]) == 5


def test_chat_and_reactions_stay_in_the_room_and_private_chat_cannot_cross():
    meeting = five()
    opened_two_rooms(meeting)
    (chat,) = meeting.chat(BOB, "hello room 1", now=200)
    assert set(chat.to) == {BOB, CY}
    (reaction,) = meeting.activities.react(DEE, "👋", now=200)
    assert reaction.to == (DEE,)
    refused("not_in_room", meeting.chat, BOB, "psst", "Dee", now=200)
    assert meeting.chat(BOB, "psst", "Cy", now=200)[0].to == (CY, BOB)
    (broadcast,) = meeting.breakout_broadcast(ADA, "five minutes left", now=200)
    assert set(broadcast.to) == {ADA, BOB, CY, DEE, EVE}
    assert broadcast.message == {"type": "breakout_broadcast", "from": "Ada", "text": "five minutes left"}


def test_a_track_started_in_a_room_is_announced_in_that_room_only():
    meeting = five()
    opened_two_rooms(meeting)
    (started,) = meeting.publish(DEE, "audio", 0xD1, "opus")
    assert started.to == (DEE,)
    (started,) = meeting.publish(EVE, "audio", 0xE1, "opus")
    assert set(started.to) == {ADA, EVE}
    (stopped,) = meeting.unpublish(BOB, "video")
    assert set(stopped.to) == {BOB, CY}


def test_the_host_visits_a_room_and_closing_brings_everyone_back():
    meeting = five()
    opened_two_rooms(meeting)
    sends = meeting.breakout_visit(ADA, 2, now=200)
    assert to(sends, EVE, "breakout_moved") == [
        {"type": "breakout_moved", "name": "Ada", "room": 2, "by": "Ada"}
    ]
    assert [m["name"] for m in to(sends, ADA, "share_started")] == ["Dee"]
    assert meeting.audience(DEE) == (ADA,)
    sends = meeting.breakout_close(ADA, now=300)
    moved_back = to(sends, EVE, "breakout_moved")
    assert {m["name"] for m in moved_back} == {"Ada", "Bob", "Cy", "Dee"} and {
        m["room"] for m in moved_back
    } == {0}
    assert to(sends, EVE, "breakout_closed") == [{"type": "breakout_closed", "reason": "closed", "by": "Ada"}]
    assert {m["name"] for m in to(sends, EVE, "share_started")} == {"Bob", "Cy", "Dee"}
    assert set(meeting.audience(BOB)) == {ADA, CY, DEE, EVE}
    refused("bad_request", meeting.breakout_close, ADA, now=300)


def test_rooms_close_by_themselves_when_their_time_is_up():
    meeting = five()
    opened_two_rooms(meeting)  # opened at 100 for 10 minutes
    assert meeting.expire(699.0) == []
    sends = meeting.expire(700.0)
    assert to(sends, BOB, "breakout_closed") == [{"type": "breakout_closed", "reason": "timeout"}]
    assert set(meeting.audience(DEE)) == {ADA, BOB, CY, EVE}


def test_a_newcomer_arrives_in_the_main_room_and_learns_who_is_where():
    meeting = five()
    opened_two_rooms(meeting)
    meeting.expire(400.0)
    sends = meeting.join(6, "Fay", passcode_ok=True)
    mine = to(sends, 6)
    assert mine[0]["type"] == "joined" and mine[0]["tracks"] == []
    assert mine[1:] == [
        {"type": "breakout_opened", "rooms": 2, "by": "Ada", "ends_in": 300.0},
        {"type": "breakout_moved", "name": "Bob", "room": 1},
        {"type": "breakout_moved", "name": "Cy", "room": 1},
        {"type": "breakout_moved", "name": "Dee", "room": 2},
    ]
    assert 6 in meeting.audience(EVE) and 6 not in meeting.audience(BOB)


def test_shuffle_spreads_everyone_but_the_host_evenly():
    meeting = five()
    meeting.breakout_create(ADA, 3, now=0)
    (plan,) = meeting.breakout_shuffle(ADA, now=0)
    rooms = [a["room"] for a in plan.message["assignments"]]
    assert len(rooms) == 4 and "Ada" not in {a["name"] for a in plan.message["assignments"]}
    assert sorted(rooms.count(r) for r in (1, 2, 3)) == [1, 1, 2]


def test_assigning_while_open_moves_at_once_and_leaving_forgets_the_room():
    meeting = five()
    opened_two_rooms(meeting)
    sends = meeting.breakout_assign(ADA, "Eve", 2, now=200)
    assert to(sends, BOB, "breakout_moved") == [
        {"type": "breakout_moved", "name": "Eve", "room": 2, "by": "Ada"}
    ]
    assert meeting.audience(DEE) == (EVE,)
    meeting.leave(EVE)
    assert meeting.audience(DEE) == ()


def test_members_cannot_run_breakout_rooms():
    meeting = five()
    meeting.set_role(ADA, "Bob", "admin")
    for call, args in (
        (meeting.breakout_create, (2,)),
        (meeting.breakout_shuffle, ()),
        (meeting.breakout_open, (None,)),
        (meeting.breakout_close, ()),
    ):
        refused("not_allowed", call, BOB, *args, now=0)
        refused("not_allowed", call, CY, *args, now=0)
    meeting.breakout_create(ADA, 2, now=0)
    refused("not_allowed", meeting.breakout_assign, CY, "Cy", 1, now=0)
    refused("not_allowed", meeting.breakout_broadcast, CY, "hi", now=0)
    refused("not_allowed", meeting.breakout_visit, CY, 1, now=0)


def test_remote_control_does_not_cross_rooms():
    meeting = five()
    meeting.control.request(BOB, "Dee", now=0)
    meeting.control.answer(DEE, True)
    sends = opened_two_rooms(meeting)
    revoked = to(sends, BOB, "control_revoked")
    assert revoked and revoked[0]["reason"] == "moved"
    refused("not_in_room", meeting.control.request, BOB, "Dee", 1)
