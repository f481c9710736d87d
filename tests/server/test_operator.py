"""The operator (the admin API's actor) goes through the meeting's own rules: the same events as a host's
command, the same checks; and the admin key counts in the attempt limiter. Sans-I/O, through the hub."""

from __future__ import annotations

import pytest

from conf_cli.errors import RequestRefused
from conf_cli.server.directory import ClaimMeeting, ClusterView
from conf_cli.server.hub import CLAIM_ATTEMPTS, Ask
from conf_cli.server.limiter import AttemptLimiter, Limits
from conf_cli.server.meeting import Meeting
from conf_cli.server.operator import Operator
from conf_cli.server.passcode import PasscodeHash
from tests.helpers.hub import MID_A, create, greet, join, make_hub, send, to

pytestmark = pytest.mark.usefixtures("cheap_scrypt")

ADA, BOB, CY = 1, 2, 3


def meeting_of_three():
    hub = make_hub(MID_A)
    create(hub, ADA, "ada")
    join(hub, BOB, MID_A, "bob")
    join(hub, CY, MID_A, "cy")
    return hub, Operator(hub)


def test_a_kick_by_the_operator_sends_what_the_hosts_kick_sends() -> None:
    hub, operator = meeting_of_three()
    by_host = send(hub, ADA, {"type": "kick", "name": "cy"})
    by_operator = operator.kick(MID_A, "bob")
    assert to(by_host, CY) == [{"type": "kicked", "by": "ada"}]
    assert to(by_operator, BOB) == [{"type": "kicked", "by": "server admin"}]
    assert to(by_operator, ADA) == [{"type": "participant_left", "name": "bob", "reason": "kicked"}]
    # and the same ban: bob stays out
    with pytest.raises(RequestRefused) as refused:
        hub.meetings[MID_A].join(9, "BOB", passcode_ok=True)
    assert refused.value.code == "banned"
    unbanned = operator.unban(MID_A, "bob")
    assert to(unbanned, ADA) == [{"type": "unbanned", "name": "bob", "by": "server admin"}]
    assert to(hub.meetings[MID_A].join(9, "BOB", passcode_ok=True), 9)[0]["type"] == "joined"


def test_the_operator_may_remove_the_host_whose_role_passes_on() -> None:
    _hub, operator = meeting_of_three()
    actions = operator.kick(MID_A, "ada")
    assert to(actions, ADA) == [{"type": "kicked", "by": "server admin"}]
    assert {"type": "role_changed", "name": "bob", "role": "host"} in to(actions, CY)


def test_mute_is_the_hosts_forbid_and_nobody_forbids_the_host() -> None:
    _hub, operator = meeting_of_three()
    actions = operator.mute(MID_A, "bob", True)
    assert to(actions, CY) == [
        {"type": "permission_changed", "what": "audio", "allowed": False, "by": "server admin", "name": "bob"}
    ]
    with pytest.raises(RequestRefused) as refused:
        operator.mute(MID_A, "ada", True)
    assert refused.value.code == "not_allowed"


def test_lock_end_and_unknown_meetings() -> None:
    _hub, operator = meeting_of_three()
    assert to(operator.lock(MID_A, True), BOB) == [
        {"type": "meeting_locked", "locked": True, "by": "server admin"}
    ]
    assert operator.lock(MID_A, True) == []  # already locked: nothing to tell
    ended = operator.end(MID_A)
    assert to(ended, CY) == [{"type": "meeting_closed", "by": "server admin", "reason": "ended"}]
    assert operator.meetings() == []
    with pytest.raises(RequestRefused) as refused:
        operator.participants(MID_A)
    assert refused.value.code == "unknown_meeting"


def test_a_meeting_opened_by_the_operator_is_hosted_by_its_first_joiner() -> None:
    hub = make_hub(MID_A)
    operator = Operator(hub)
    meeting = operator.open(PasscodeHash.of("pw-123"), waiting_room=True)
    assert operator.meetings()[0]["participants"] == 0
    joined = join(hub, BOB, meeting.id, "bob")
    assert to(joined, BOB)[0]["role"] == "host"


def test_the_waiting_room_through_the_operator() -> None:
    hub = make_hub(MID_A)
    operator = Operator(hub)
    meeting = operator.open(PasscodeHash.of("pw-123"), waiting_room=True)
    join(hub, ADA, meeting.id, "ada")  # the first one in is the host, and waits for nobody
    for cid, name in ((BOB, "bob"), (CY, "cy")):
        greet(hub, cid)
        waiting = send(hub, cid, {"type": "join", "meeting": meeting.id, "name": name, "passcode": "pw-123"})
        assert to(waiting, cid)[0]["type"] == "waiting"
    assert operator.waiting(meeting.id)["waiting"] == ["bob", "cy"]
    assert operator.participants(meeting.id)["waiting"] == ["bob", "cy"]  # the operator sees who waits
    admitted = operator.admit(meeting.id, "bob")
    assert to(admitted, BOB)[0]["type"] == "joined"
    assert {"type": "waiting_left", "name": "bob", "reason": "admitted", "by": "server admin"} in to(
        admitted, ADA
    )
    denied = operator.deny(meeting.id, "cy")
    assert to(denied, CY) == [{"type": "denied", "meeting": meeting.id, "by": "server admin"}]
    assert operator.waiting(meeting.id)["waiting"] == []


def test_wrong_keys_count_as_failed_attempts_and_lock_the_address_out() -> None:
    hub = make_hub(limiter=AttemptLimiter(Limits(per_address=3, per_target=20, window=60)))
    operator = Operator(hub)
    for _ in range(3):
        check = operator.check_key("192.0.2.7", False, 0.0)
        assert not check.allowed and check.retry_after == 0
    locked = operator.check_key("192.0.2.7", True, 1.0)  # the right key, too late
    assert not locked.allowed and locked.retry_after == pytest.approx(59.0)
    assert operator.check_key("192.0.2.8", True, 1.0).allowed  # another address is not locked out
    assert operator.check_key("192.0.2.7", True, 61.0).allowed  # the window has passed


def test_in_a_cluster_a_meeting_the_operator_opens_is_claimed_in_the_directory_first() -> None:
    hub = make_hub("m-claimed", "m-taken-1", "m-taken-2", "m-taken-3")
    hub.cluster = ClusterView("worker-1", "local://", nodes={}, reachable=True)
    operator = Operator(hub)
    opened: list[Meeting | None] = []
    passcode = PasscodeHash.of("sesame-1")

    asked = operator.open_claimed(passcode, waiting_room=False, then=opened.append)
    # nothing is opened until the directory says the ID is this node's
    assert opened == [] and "m-claimed" not in hub.meetings
    [ask] = asked
    assert isinstance(ask, Ask) and ask.question == ClaimMeeting("m-claimed")
    assert ask.resume(True, 0.0) == []
    [meeting] = opened
    assert meeting is not None and meeting.id == "m-claimed" and hub.meetings["m-claimed"] is meeting

    # an ID another node holds is not taken: another is tried, up to CLAIM_ATTEMPTS; then None
    opened.clear()
    actions = operator.open_claimed(passcode, waiting_room=False, then=opened.append)
    for attempt in range(CLAIM_ATTEMPTS):
        [ask] = actions
        assert isinstance(ask, Ask) and ask.question == ClaimMeeting(f"m-taken-{attempt + 1}")
        actions = ask.resume(False, 0.0)
    assert actions == [] and opened == [None]
    assert not any(key.startswith("m-taken") for key in hub.meetings)

    # without a cluster it opens at once
    hub.cluster = None
    alone: list[Meeting | None] = []
    assert operator.open_claimed(passcode, waiting_room=True, then=alone.append) == []
    assert alone[0] is not None and alone[0].waiting_room
