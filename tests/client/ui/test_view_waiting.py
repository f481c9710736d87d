"""The view of a waiting room: the waiting person's own state, and the host's list of who waits."""

from __future__ import annotations

from conf_cli.client.prompt import parse_line
from conf_cli.client.state import receive
from conf_cli.client.ui.view import MeetingView

MID = "abc-defg-hjk"


def host_view() -> MeetingView:
    view = MeetingView(me="Ada")
    view.apply(
        receive(
            {
                "type": "joined",
                "name": "Ada",
                "role": "host",
                "meeting": MID,
                "participants": [{"name": "Ada", "role": "host", "sharing": [], "forbidden": []}],
                "locked": False,
                "forbidden": [],
                "waiting_room": True,
                "waiting": ["Bob"],
            }
        )
    )
    return view


def test_the_host_sees_who_waits_and_the_list_follows_events():
    view = host_view()
    assert view.waiting_room and view.waiting == ["Bob"]
    view.apply(receive({"type": "waiting_joined", "name": "Cy"}))
    assert view.waiting == ["Bob", "Cy"]
    assert "Cy is waiting to be admitted" in view.log[-1][1]
    view.apply(receive({"type": "waiting_left", "name": "Bob", "reason": "left"}))
    view.apply(receive({"type": "waiting_left", "name": "Cy", "reason": "admitted", "by": "Ada"}))
    assert view.waiting == []
    assert view.log[-1][1] == "Cy was admitted by Ada"
    view.apply(receive({"type": "waiting_room_changed", "enabled": False, "by": "Ada"}))
    assert not view.waiting_room


def test_a_new_admin_is_told_who_waits():
    view = MeetingView(me="Bob")
    view.apply(receive({"type": "waiting_room", "enabled": True, "waiting": ["Cy", "Dee"]}))
    assert view.waiting == ["Cy", "Dee"]
    assert "Cy, Dee" in view.log[-1][1]


def test_the_waiting_person_sees_they_wait_then_are_in_or_denied():
    view = MeetingView(me="Bob")
    view.apply(receive({"type": "waiting", "meeting": MID, "name": "Bob"}))
    assert view.held and view.meeting == MID
    view.apply(receive({"type": "denied", "meeting": MID, "by": "Ada"}))
    assert view.ended == "Ada did not admit you to the meeting"
    view = MeetingView(me="Bob")
    view.apply(receive({"type": "waiting", "meeting": MID, "name": "Bob"}))
    view.apply(
        receive({"type": "joined", "name": "Bob", "role": "member", "meeting": MID, "participants": []})
    )
    assert not view.held


def test_waiting_room_commands():
    assert parse_line("/admit Ada Lovelace") == {"type": "admit", "name": "Ada Lovelace"}
    assert parse_line("/admit all") == {"type": "admit", "all": True}
    assert parse_line('/admit "all"') == {"type": "admit", "name": "all"}
    assert parse_line("/deny Bob") == {"type": "deny", "name": "Bob"}
    assert parse_line("/waiting on") == {"type": "set_waiting_room", "enabled": True}
    assert parse_line("/waiting OFF") == {"type": "set_waiting_room", "enabled": False}
