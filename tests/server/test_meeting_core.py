"""The rules of one meeting: joins, leaves, roles, permissions, kicks, lock, end, chat and who."""

from __future__ import annotations

import pytest

from conf_cli.errors import RequestRefused
from conf_cli.server.meeting import Meeting, Role, Send
from tests.helpers.meeting import ADA, BOB, CY, DEE, MID, NAMES, PASSCODE, meeting_with, refused


def entry(name: str, role: str, sharing: tuple[str, ...] = (), forbidden: tuple[str, ...] = ()) -> dict:
    return {"name": name, "role": role, "sharing": list(sharing), "forbidden": list(forbidden)}


def roles(meeting: Meeting) -> dict[str, str]:
    return {p.name: str(p.role) for p in meeting.participants.values()}


# -- join ---------------------------------------------------------------------------------------------


def test_first_to_join_is_host_and_gets_the_whole_state():
    meeting = Meeting(MID, PASSCODE)
    sends = meeting.join(ADA, "Ada", passcode_ok=True)
    assert sends == [
        Send(
            (ADA,),
            {
                "type": "joined",
                "name": "Ada",
                "role": "host",
                "meeting": MID,
                "participants": [entry("Ada", "host")],
                "tracks": [],
                "locked": False,
                "forbidden": [],
            },
        )
    ]
    assert meeting.host is not None and meeting.host.pid == ADA


def test_later_joiners_are_members_and_everyone_else_hears_of_them():
    meeting = meeting_with(ADA)
    sends = meeting.join(BOB, "Bob", passcode_ok=True)
    assert sends == [
        Send(
            (BOB,),
            {
                "type": "joined",
                "name": "Bob",
                "role": "member",
                "meeting": MID,
                "participants": [entry("Ada", "host"), entry("Bob", "member")],
                "tracks": [],
                "locked": False,
                "forbidden": [],
            },
        ),
        Send((ADA,), {"type": "participant_joined", "name": "Bob", "role": "member"}),
    ]
    sends = meeting.join(CY, "Cy", passcode_ok=True)
    assert sends[1] == Send((ADA, BOB), {"type": "participant_joined", "name": "Cy", "role": "member"})
    assert roles(meeting) == {"Ada": "host", "Bob": "member", "Cy": "member"}


def test_joined_snapshot_carries_lock_forbids_and_shares():
    meeting = meeting_with(ADA, BOB)
    meeting.set_permission(ADA, "video", False)
    meeting.set_permission(ADA, "chat", False, "Bob")
    meeting.participants[BOB].sharing = {"screen", "audio"}
    sends = meeting.join(CY, "Cy", passcode_ok=True)
    joined = sends[0].message
    assert joined["forbidden"] == ["video"]
    assert joined["participants"] == [
        entry("Ada", "host"),
        entry("Bob", "member", sharing=("audio", "screen"), forbidden=("chat",)),
        entry("Cy", "member"),
    ]


def test_wrong_passcode_is_refused_and_changes_nothing():
    meeting = meeting_with(ADA)
    error = refused("wrong_passcode", meeting.join, BOB, "Bob", passcode_ok=False)
    assert str(error) == f"wrong passcode for meeting {MID}"
    assert list(meeting.participants) == [ADA]


def test_locked_meeting_refuses_joins_but_checks_the_passcode_first():
    meeting = meeting_with(ADA)
    meeting.set_locked(ADA, True)
    error = refused("meeting_locked", meeting.join, BOB, "Bob", passcode_ok=True)
    assert "/unlock" in str(error)
    # Someone without the passcode does not learn that the meeting is locked.
    refused("wrong_passcode", meeting.join, BOB, "Bob", passcode_ok=False)
    meeting.set_locked(ADA, False)
    assert meeting.join(BOB, "Bob", passcode_ok=True)[0].message["type"] == "joined"


@pytest.mark.parametrize("name", ["Ada", "ada", "ADA", "aDa"])
def test_names_are_unique_ignoring_case(name):
    meeting = meeting_with(ADA)
    error = refused("name_taken", meeting.join, BOB, name, passcode_ok=True)
    assert repr(name) in str(error)
    assert list(meeting.participants) == [ADA]


def test_name_comparison_uses_full_case_folding():
    meeting = Meeting(MID, PASSCODE)
    meeting.join(ADA, "Straße", passcode_ok=True)
    refused("name_taken", meeting.join, BOB, "STRASSE", passcode_ok=True)


def test_closed_meeting_refuses_joins():
    meeting = meeting_with(ADA)
    meeting.leave(ADA)
    assert meeting.closed
    refused("unknown_meeting", meeting.join, BOB, "Bob", passcode_ok=True)
    assert meeting.participants == {}


def test_a_name_is_free_again_after_its_owner_leaves():
    meeting = meeting_with(ADA, BOB)
    meeting.leave(BOB)
    sends = meeting.join(CY, "bob", passcode_ok=True)
    assert sends[0].message["name"] == "bob"


# -- leave --------------------------------------------------------------------------------------------


def test_member_leaving_is_announced_to_the_others_only():
    meeting = meeting_with(ADA, BOB, CY)
    assert meeting.leave(BOB) == [
        Send((ADA, CY), {"type": "participant_left", "name": "Bob", "reason": "left"})
    ]
    assert list(meeting.participants) == [ADA, CY]
    assert roles(meeting) == {"Ada": "host", "Cy": "member"}


@pytest.mark.parametrize("reason", ["timeout", "disconnected", "kicked"])
def test_leave_carries_the_reason(reason):
    meeting = meeting_with(ADA, BOB)
    assert meeting.leave(BOB, reason) == [
        Send((ADA,), {"type": "participant_left", "name": "Bob", "reason": reason})
    ]


def test_leaving_twice_or_unknown_pid_does_nothing():
    meeting = meeting_with(ADA, BOB)
    meeting.leave(BOB)
    assert meeting.leave(BOB) == []
    assert meeting.leave(99) == []
    assert not meeting.closed


def test_host_leaving_hands_the_role_to_an_admin_before_any_senior_member():
    meeting = meeting_with(ADA, BOB, CY, DEE, admins=(DEE,))
    sends = meeting.leave(ADA)
    assert sends == [
        Send((BOB, CY, DEE), {"type": "participant_left", "name": "Ada", "reason": "left"}),
        Send((BOB, CY, DEE), {"type": "role_changed", "name": "Dee", "role": "host"}),
    ]
    assert roles(meeting) == {"Bob": "member", "Cy": "member", "Dee": "host"}


def test_host_leaving_picks_the_longest_present_admin():
    meeting = meeting_with(ADA, BOB, CY, DEE, admins=(DEE, CY))
    sends = meeting.leave(ADA, "timeout")
    assert sends[1].message == {"type": "role_changed", "name": "Cy", "role": "host"}
    assert roles(meeting) == {"Bob": "member", "Cy": "host", "Dee": "admin"}


def test_host_leaving_without_admins_picks_the_longest_present_member():
    meeting = meeting_with(ADA, BOB, CY)
    sends = meeting.leave(ADA)
    assert sends[1] == Send((BOB, CY), {"type": "role_changed", "name": "Bob", "role": "host"})
    assert roles(meeting) == {"Bob": "host", "Cy": "member"}
    # The chain goes on: the next host is again the longest present.
    meeting.join(DEE, "Dee", passcode_ok=True)
    assert meeting.leave(BOB)[1].message["name"] == "Cy"


def test_longest_present_means_join_order_not_pid():
    meeting = Meeting(MID, PASSCODE)
    for pid, name in [(9, "Ada"), (5, "Bob"), (1, "Cy")]:
        meeting.join(pid, name, passcode_ok=True)
    assert meeting.leave(9)[1].message["name"] == "Bob"


def test_last_one_out_closes_the_meeting_silently():
    meeting = meeting_with(ADA, BOB)
    meeting.leave(ADA)
    assert not meeting.closed
    assert meeting.leave(BOB) == []
    assert meeting.closed
    assert meeting.participants == {}


# -- roles --------------------------------------------------------------------------------------------


def test_host_makes_an_admin_and_everyone_hears():
    meeting = meeting_with(ADA, BOB, CY)
    assert meeting.set_role(ADA, "bob", "admin") == [
        Send((ADA, BOB, CY), {"type": "role_changed", "name": "Bob", "role": "admin", "by": "Ada"})
    ]
    assert meeting.participants[BOB].role is Role.ADMIN


def test_host_demotes_an_admin():
    meeting = meeting_with(ADA, BOB, admins=(BOB,))
    assert meeting.set_role(ADA, "Bob", "member") == [
        Send((ADA, BOB), {"type": "role_changed", "name": "Bob", "role": "member", "by": "Ada"})
    ]
    assert meeting.participants[BOB].role is Role.MEMBER


def test_setting_the_same_role_sends_nothing():
    meeting = meeting_with(ADA, BOB, admins=(BOB,))
    assert meeting.set_role(ADA, "Bob", "admin") == []
    assert meeting.set_role(ADA, "Bob", "member") != []
    assert meeting.set_role(ADA, "Bob", "member") == []


@pytest.mark.parametrize("actor", [BOB, CY], ids=["admin", "member"])
def test_only_the_host_sets_roles(actor):
    meeting = meeting_with(ADA, BOB, CY, DEE, admins=(BOB,))
    error = refused("not_allowed", meeting.set_role, actor, "Dee", "admin")
    assert str(error) == "only the host can change roles"
    refused("not_allowed", meeting.set_role, actor, NAMES[actor], "host")
    assert roles(meeting) == {"Ada": "host", "Bob": "admin", "Cy": "member", "Dee": "member"}


def test_host_transfer_makes_the_old_host_admin():
    meeting = meeting_with(ADA, BOB, CY)
    assert meeting.set_role(ADA, "Cy", "host") == [
        Send((ADA, BOB, CY), {"type": "role_changed", "name": "Cy", "role": "host", "by": "Ada"}),
        Send((ADA, BOB, CY), {"type": "role_changed", "name": "Ada", "role": "admin", "by": "Ada"}),
    ]
    assert roles(meeting) == {"Ada": "admin", "Bob": "member", "Cy": "host"}
    assert [p.name for p in meeting.participants.values() if p.role is Role.HOST] == ["Cy"]
    # The old host has lost the power to set roles; the new one has it.
    refused("not_allowed", meeting.set_role, ADA, "Bob", "admin")
    assert meeting.set_role(CY, "Bob", "admin")[0].message["by"] == "Cy"


def test_host_transfer_to_an_admin():
    meeting = meeting_with(ADA, BOB, admins=(BOB,))
    meeting.set_role(ADA, "Bob", "host")
    assert roles(meeting) == {"Ada": "admin", "Bob": "host"}


@pytest.mark.parametrize("role", ["host", "admin", "member"])
def test_nobody_changes_their_own_role(role):
    meeting = meeting_with(ADA, BOB)
    error = refused("bad_request", meeting.set_role, ADA, "ada", role)
    assert "own role" in str(error)
    assert roles(meeting) == {"Ada": "host", "Bob": "member"}


def test_set_role_for_an_unknown_name():
    meeting = meeting_with(ADA, BOB)
    error = refused("unknown_participant", meeting.set_role, ADA, "Zed", "admin")
    assert str(error) == "no participant named 'Zed' in this meeting"


def test_demoting_an_admin_stops_shares_that_members_may_not_make():
    meeting = meeting_with(ADA, BOB, CY, admins=(BOB,))
    meeting.set_permission(ADA, "screen", False)
    meeting.participants[BOB].sharing = {"screen", "audio"}
    assert meeting.set_role(ADA, "Bob", "member") == [
        Send((ADA, BOB, CY), {"type": "role_changed", "name": "Bob", "role": "member", "by": "Ada"}),
        Send(
            (ADA, BOB, CY),
            {"type": "share_stopped", "name": "Bob", "kind": "screen", "reason": "forbidden"},
        ),
    ]
    assert meeting.participants[BOB].sharing == {"audio"}


def test_becoming_host_by_transfer_lifts_personal_forbids():
    meeting = meeting_with(ADA, BOB)
    meeting.set_permission(ADA, "chat", False, "Bob")
    meeting.set_role(ADA, "Bob", "host")
    assert meeting.participants[BOB].forbidden == set()
    assert meeting.chat(BOB, "free at last", now=0.0) == [
        Send((ADA, BOB), {"type": "chat", "from": "Bob", "text": "free at last", "private": False})
    ]


def test_becoming_host_by_succession_lifts_personal_forbids():
    meeting = meeting_with(ADA, BOB, CY)
    meeting.set_permission(ADA, "chat", False, "Bob")
    meeting.leave(ADA)
    assert meeting.participants[BOB].role is Role.HOST
    assert meeting.participants[BOB].forbidden == set()
    assert meeting.allowed(meeting.participants[BOB], "chat")


# -- forbid and permit --------------------------------------------------------------------------------


def test_meeting_wide_forbid_applies_to_members_only():
    meeting = meeting_with(ADA, BOB, CY, admins=(BOB,))
    assert meeting.set_permission(ADA, "chat", False) == [
        Send((ADA, BOB, CY), {"type": "permission_changed", "what": "chat", "allowed": False, "by": "Ada"})
    ]
    assert meeting.forbidden == {"chat"}
    ada, bob, cy = (meeting.participants[pid] for pid in (ADA, BOB, CY))
    assert meeting.allowed(ada, "chat")
    assert meeting.allowed(bob, "chat")
    assert not meeting.allowed(cy, "chat")
    assert meeting.allowed(cy, "audio")
    # The forbid is per meeting: it does not show on any participant's own list.
    assert all(p.forbidden == set() for p in meeting.participants.values())


def test_meeting_wide_permit_lifts_the_forbid():
    meeting = meeting_with(ADA, BOB)
    meeting.set_permission(ADA, "video", False)
    meeting.set_permission(ADA, "audio", False)
    assert meeting.set_permission(ADA, "video", True) == [
        Send((ADA, BOB), {"type": "permission_changed", "what": "video", "allowed": True, "by": "Ada"})
    ]
    assert meeting.forbidden == {"audio"}
    assert meeting.allowed(meeting.participants[BOB], "video")
    assert meeting.who(BOB)[0].message["forbidden"] == ["audio"]


def test_admin_may_forbid_meeting_wide():
    meeting = meeting_with(ADA, BOB, CY, admins=(BOB,))
    assert meeting.set_permission(BOB, "screen", False)[0].message["by"] == "Bob"
    assert meeting.forbidden == {"screen"}


def test_member_may_not_forbid_or_permit():
    meeting = meeting_with(ADA, BOB, CY)
    error = refused("not_allowed", meeting.set_permission, BOB, "chat", False)
    assert str(error) == "only the host and admins can forbid or permit"
    refused("not_allowed", meeting.set_permission, BOB, "chat", True, "Cy")
    assert meeting.forbidden == set()


def test_forbid_for_one_named_participant():
    meeting = meeting_with(ADA, BOB, CY)
    assert meeting.set_permission(ADA, "audio", False, "cy") == [
        Send(
            (ADA, BOB, CY),
            {"type": "permission_changed", "what": "audio", "allowed": False, "by": "Ada", "name": "Cy"},
        )
    ]
    assert meeting.participants[CY].forbidden == {"audio"}
    assert meeting.forbidden == set()
    assert not meeting.allowed(meeting.participants[CY], "audio")
    assert meeting.allowed(meeting.participants[BOB], "audio")
    assert meeting.set_permission(ADA, "audio", True, "Cy")[0].message["allowed"] is True
    assert meeting.participants[CY].forbidden == set()


def test_per_name_permit_does_not_override_a_meeting_wide_forbid():
    meeting = meeting_with(ADA, BOB)
    meeting.set_permission(ADA, "chat", False)
    meeting.set_permission(ADA, "chat", True, "Bob")
    assert not meeting.allowed(meeting.participants[BOB], "chat")


def test_host_may_forbid_an_admin_by_name_and_it_binds_the_admin():
    meeting = meeting_with(ADA, BOB, admins=(BOB,))
    meeting.set_permission(ADA, "chat", False, "Bob")
    assert not meeting.allowed(meeting.participants[BOB], "chat")
    refused("forbidden", meeting.chat, BOB, "hello?", now=0.0)


def test_admin_may_forbid_a_member_by_name():
    meeting = meeting_with(ADA, BOB, CY, admins=(BOB,))
    assert meeting.set_permission(BOB, "video", False, "Cy")[0].message["by"] == "Bob"
    assert meeting.participants[CY].forbidden == {"video"}


def test_admin_may_not_forbid_the_host():
    meeting = meeting_with(ADA, BOB, admins=(BOB,))
    error = refused("not_allowed", meeting.set_permission, BOB, "chat", False, "Ada")
    assert str(error) == "you cannot forbid or permit for Ada"
    assert meeting.participants[ADA].forbidden == set()


def test_admin_may_not_forbid_another_admin_or_themself():
    meeting = meeting_with(ADA, BOB, CY, admins=(BOB, CY))
    refused("not_allowed", meeting.set_permission, BOB, "chat", False, "Cy")
    refused("not_allowed", meeting.set_permission, BOB, "chat", False, "Bob")
    assert meeting.participants[CY].forbidden == set()
    assert meeting.participants[BOB].forbidden == set()


def test_host_may_not_forbid_themself():
    meeting = meeting_with(ADA, BOB)
    refused("not_allowed", meeting.set_permission, ADA, "chat", False, "Ada")


def test_forbid_for_an_unknown_name():
    meeting = meeting_with(ADA, BOB)
    refused("unknown_participant", meeting.set_permission, ADA, "chat", False, "Zed")
    assert meeting.forbidden == set()


def test_meeting_wide_forbid_stops_the_shares_of_members():
    meeting = meeting_with(ADA, BOB, CY, DEE, admins=(BOB,))
    for pid in (ADA, BOB, CY, DEE):
        meeting.participants[pid].sharing = {"screen", "video"}
    everyone = (ADA, BOB, CY, DEE)
    assert meeting.set_permission(ADA, "screen", False) == [
        Send(everyone, {"type": "permission_changed", "what": "screen", "allowed": False, "by": "Ada"}),
        Send(everyone, {"type": "share_stopped", "name": "Cy", "kind": "screen", "reason": "forbidden"}),
        Send(everyone, {"type": "share_stopped", "name": "Dee", "kind": "screen", "reason": "forbidden"}),
    ]
    assert {p.name: p.sharing for p in meeting.participants.values()} == {
        "Ada": {"screen", "video"},
        "Bob": {"screen", "video"},
        "Cy": {"video"},
        "Dee": {"video"},
    }


def test_per_name_forbid_stops_that_participants_share_only():
    meeting = meeting_with(ADA, BOB, CY)
    meeting.participants[BOB].sharing = {"audio"}
    meeting.participants[CY].sharing = {"audio"}
    sends = meeting.set_permission(ADA, "audio", False, "Bob")
    assert sends[1:] == [
        Send((ADA, BOB, CY), {"type": "share_stopped", "name": "Bob", "kind": "audio", "reason": "forbidden"})
    ]
    assert meeting.participants[BOB].sharing == set()
    assert meeting.participants[CY].sharing == {"audio"}


def test_host_forbidding_an_admin_stops_the_admins_share():
    meeting = meeting_with(ADA, BOB, admins=(BOB,))
    meeting.participants[BOB].sharing = {"control"}
    sends = meeting.set_permission(ADA, "control", False, "Bob")
    assert [s.message["type"] for s in sends] == ["permission_changed", "share_stopped"]
    assert meeting.participants[BOB].sharing == set()


def test_forbidding_another_kind_or_permitting_stops_nothing():
    meeting = meeting_with(ADA, BOB)
    meeting.participants[BOB].sharing = {"screen"}
    assert len(meeting.set_permission(ADA, "video", False)) == 1
    assert len(meeting.set_permission(ADA, "screen", True)) == 1
    assert len(meeting.set_permission(ADA, "screen", True, "Bob")) == 1
    assert meeting.participants[BOB].sharing == {"screen"}


# -- kick ---------------------------------------------------------------------------------------------


def test_host_kicks_a_member():
    meeting = meeting_with(ADA, BOB, CY)
    assert meeting.kick(ADA, "cy") == [
        Send((CY,), {"type": "kicked", "by": "Ada"}),
        Send((ADA, BOB), {"type": "participant_left", "name": "Cy", "reason": "kicked"}),
    ]
    assert list(meeting.participants) == [ADA, BOB]


def test_host_kicks_an_admin():
    meeting = meeting_with(ADA, BOB, admins=(BOB,))
    assert meeting.kick(ADA, "Bob")[0] == Send((BOB,), {"type": "kicked", "by": "Ada"})
    assert list(meeting.participants) == [ADA]


def test_admin_kicks_a_member():
    meeting = meeting_with(ADA, BOB, CY, admins=(BOB,))
    assert meeting.kick(BOB, "Cy") == [
        Send((CY,), {"type": "kicked", "by": "Bob"}),
        Send((ADA, BOB), {"type": "participant_left", "name": "Cy", "reason": "kicked"}),
    ]


def test_member_may_not_kick():
    meeting = meeting_with(ADA, BOB, CY)
    error = refused("not_allowed", meeting.kick, BOB, "Cy")
    assert str(error) == "only the host and admins can remove participants"
    # Refused before the name is even looked up.
    refused("not_allowed", meeting.kick, BOB, "Zed")
    assert list(meeting.participants) == [ADA, BOB, CY]


@pytest.mark.parametrize("target", ["Ada", "Cy"], ids=["host", "admin"])
def test_admin_may_not_kick_the_host_or_an_admin(target):
    meeting = meeting_with(ADA, BOB, CY, admins=(BOB, CY))
    error = refused("not_allowed", meeting.kick, BOB, target)
    assert str(error) == f"you cannot remove {target}"
    assert list(meeting.participants) == [ADA, BOB, CY]


def test_nobody_kicks_themself():
    meeting = meeting_with(ADA, BOB)
    error = refused("bad_request", meeting.kick, ADA, "Ada")
    assert "/leave" in str(error)


def test_kick_an_unknown_name():
    meeting = meeting_with(ADA, BOB)
    refused("unknown_participant", meeting.kick, ADA, "Zed")


def test_kicked_participant_may_come_back_once_unbanned():
    meeting = meeting_with(ADA, BOB)
    meeting.kick(ADA, "Bob")
    with pytest.raises(RequestRefused) as refused:
        meeting.join(BOB, "Bob", passcode_ok=True)
    assert refused.value.code == "banned"
    meeting.unban(ADA, "bob")
    assert meeting.join(BOB, "Bob", passcode_ok=True)[0].message["role"] == "member"


# -- lock and unlock ----------------------------------------------------------------------------------


def test_host_locks_and_unlocks():
    meeting = meeting_with(ADA, BOB)
    assert meeting.set_locked(ADA, True) == [
        Send((ADA, BOB), {"type": "meeting_locked", "locked": True, "by": "Ada"})
    ]
    assert meeting.locked
    assert meeting.who(BOB)[0].message["locked"] is True
    assert meeting.set_locked(ADA, False) == [
        Send((ADA, BOB), {"type": "meeting_locked", "locked": False, "by": "Ada"})
    ]
    assert not meeting.locked


def test_admin_locks():
    meeting = meeting_with(ADA, BOB, admins=(BOB,))
    assert meeting.set_locked(BOB, True)[0].message["by"] == "Bob"


def test_member_may_not_lock():
    meeting = meeting_with(ADA, BOB)
    error = refused("not_allowed", meeting.set_locked, BOB, True)
    assert str(error) == "only the host and admins can lock or unlock the meeting"
    assert not meeting.locked


def test_locking_a_locked_meeting_sends_nothing():
    meeting = meeting_with(ADA, BOB)
    assert meeting.set_locked(ADA, False) == []
    meeting.set_locked(ADA, True)
    assert meeting.set_locked(ADA, True) == []
    assert meeting.locked


# -- end ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("actor", [ADA, BOB], ids=["host", "admin"])
def test_host_or_admin_ends_the_meeting_for_everyone(actor):
    meeting = meeting_with(ADA, BOB, CY, admins=(BOB,))
    assert meeting.end(actor) == [
        Send((ADA, BOB, CY), {"type": "meeting_closed", "by": NAMES[actor], "reason": "ended"})
    ]
    assert meeting.closed
    assert meeting.participants == {}
    refused("unknown_meeting", meeting.join, DEE, "Dee", passcode_ok=True)


def test_member_may_not_end_the_meeting():
    meeting = meeting_with(ADA, BOB)
    error = refused("not_allowed", meeting.end, BOB)
    assert str(error) == "only the host and admins can end the meeting for everyone"
    assert not meeting.closed
    assert list(meeting.participants) == [ADA, BOB]


# -- chat ---------------------------------------------------------------------------------------------


def test_public_chat_goes_to_everyone_including_the_sender():
    meeting = meeting_with(ADA, BOB, CY)
    assert meeting.chat(BOB, "hello all", now=0.0) == [
        Send((ADA, BOB, CY), {"type": "chat", "from": "Bob", "text": "hello all", "private": False})
    ]


def test_private_chat_goes_to_the_target_and_the_sender_only():
    meeting = meeting_with(ADA, BOB, CY)
    assert meeting.chat(ADA, "psst", to="cy", now=0.0) == [
        Send((CY, ADA), {"type": "chat", "from": "Ada", "text": "psst", "private": True, "to": "Cy"})
    ]


def test_private_chat_to_oneself_is_delivered_once():
    meeting = meeting_with(ADA, BOB)
    assert meeting.chat(BOB, "note to self", to="Bob", now=0.0) == [
        Send((BOB,), {"type": "chat", "from": "Bob", "text": "note to self", "private": True, "to": "Bob"})
    ]


def test_private_chat_to_an_unknown_name():
    meeting = meeting_with(ADA, BOB)
    error = refused("unknown_participant", meeting.chat, ADA, "hi", to="Zed", now=0.0)
    assert str(error) == "no participant named 'Zed' in this meeting"


def test_forbidden_chat_is_refused_for_members_but_not_host_or_admins():
    meeting = meeting_with(ADA, BOB, CY, admins=(BOB,))
    meeting.set_permission(ADA, "chat", False)
    error = refused("forbidden", meeting.chat, CY, "let me speak", now=0.0)
    assert str(error) == "chat is forbidden for you in this meeting"
    refused("forbidden", meeting.chat, CY, "psst", to="Ada", now=0.0)
    assert meeting.chat(ADA, "quiet please", now=0.0)[0].to == (ADA, BOB, CY)
    assert meeting.chat(BOB, "indeed", now=0.0)[0].to == (ADA, BOB, CY)
    meeting.set_permission(ADA, "chat", True)
    assert meeting.chat(CY, "thanks", now=0.0)[0].message["from"] == "Cy"


def test_chat_forbidden_by_name():
    meeting = meeting_with(ADA, BOB, CY)
    meeting.set_permission(ADA, "chat", False, "Bob")
    refused("forbidden", meeting.chat, BOB, "hi", now=0.0)
    assert meeting.chat(CY, "hi", now=0.0)[0].message["from"] == "Cy"


# -- who and the snapshot -----------------------------------------------------------------------------


def test_who_answers_only_the_asker_with_the_whole_state():
    meeting = meeting_with(ADA, BOB, CY, admins=(CY,))
    meeting.set_locked(ADA, True)
    meeting.set_permission(ADA, "video", False)
    meeting.set_permission(ADA, "audio", False)
    meeting.set_permission(ADA, "screen", False, "Bob")
    meeting.participants[CY].sharing = {"video", "audio"}
    assert meeting.who(BOB) == [
        Send(
            (BOB,),
            {
                "type": "participants",
                "meeting": MID,
                "participants": [
                    entry("Ada", "host"),
                    entry("Bob", "member", forbidden=("screen",)),
                    entry("Cy", "admin", sharing=("audio", "video")),
                ],
                "tracks": [],
                "locked": True,
                "forbidden": ["audio", "video"],
            },
        )
    ]


def test_who_lists_by_seniority_whatever_the_order_held():
    meeting = meeting_with(ADA, BOB, CY, DEE)
    meeting.set_role(ADA, "Dee", "host")
    meeting.participants = dict(reversed(meeting.participants.items()))
    listed = [p["name"] for p in meeting.who(ADA)[0].message["participants"]]
    assert listed == ["Ada", "Bob", "Cy", "Dee"]


def test_who_lists_a_rejoiner_as_the_newest():
    meeting = meeting_with(ADA, BOB, CY)
    meeting.leave(BOB)
    meeting.join(BOB, "Bob", passcode_ok=True)
    assert [p["name"] for p in meeting.who(ADA)[0].message["participants"]] == ["Ada", "Cy", "Bob"]
