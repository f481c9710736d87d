"""Remote control with consent: request, answer, timeout, revoke, one session each, leave and forbid."""

from __future__ import annotations

from unittest.mock import ANY

import pytest

from conf_cli.server.meeting import Meeting, Send
from conf_cli.server.remote_control import CONSENT_TIMEOUT
from tests.helpers.meeting import ADA, BOB, CY, DEE, meeting_with, refused


def requested(controller: int, controlled: int, names: dict[int, str]) -> Send:
    message = {
        "type": "control_requested",
        "controller": names[controller],
        "controlled": names[controlled],
        "request": ANY,  # its number: see test_an_answer_names_the_request_it_was_typed_for
        "timeout": CONSENT_TIMEOUT,
    }
    return Send((controller, controlled), message)


NAMES = {ADA: "Ada", BOB: "Bob", CY: "Cy", DEE: "Dee"}


def pair(kind: str, controller: int, controlled: int, **fields: object) -> Send:
    message = {
        "type": kind,
        "controller": NAMES[controller],
        "controlled": NAMES[controlled],
        "request": ANY,
        **fields,
    }
    return Send((controller, controlled), message)


def granted(meeting: Meeting, controller: int, controlled: int) -> None:
    meeting.control.request(controller, NAMES[controlled], 0.0)
    assert meeting.control.answer(controlled, True) == [pair("control_granted", controller, controlled)]


def test_request_then_accept_grants_control_to_the_asker_only():
    meeting = meeting_with(ADA, BOB, CY)
    assert meeting.control.request(BOB, "ada", 10.0) == [requested(BOB, ADA, NAMES)]
    assert meeting.control.target_of(BOB) is None  # no input before the answer
    assert meeting.control.answer(ADA, True, "Bob") == [pair("control_granted", BOB, ADA)]
    assert meeting.control.target_of(BOB) == ADA
    assert meeting.control.target_of(ADA) is None
    assert meeting.control.target_of(CY) is None


def test_reject_denies_and_leaves_nothing_behind():
    meeting = meeting_with(ADA, BOB)
    meeting.control.request(BOB, "Ada", 0.0)
    assert meeting.control.answer(ADA, False) == [pair("control_denied", BOB, ADA, reason="rejected")]
    assert meeting.control.target_of(BOB) is None
    assert meeting.control.sessions == []
    refused("no_request", meeting.control.answer, ADA, True)


def test_no_answer_within_the_timeout_is_a_denial():
    meeting = meeting_with(ADA, BOB)
    meeting.control.request(BOB, "Ada", 100.0)
    assert meeting.control.expire(100.0 + CONSENT_TIMEOUT - 0.1) == []
    assert meeting.control.expire(100.0 + CONSENT_TIMEOUT) == [
        pair("control_denied", BOB, ADA, reason="timeout")
    ]
    refused("no_request", meeting.control.answer, ADA, True)
    assert meeting.control.target_of(BOB) is None


def test_a_granted_session_does_not_expire():
    meeting = meeting_with(ADA, BOB)
    granted(meeting, BOB, ADA)
    assert meeting.control.expire(1e9) == []
    assert meeting.control.target_of(BOB) == ADA


def test_only_the_asked_person_answers():
    meeting = meeting_with(ADA, BOB, CY)
    meeting.control.request(BOB, "Ada", 0.0)
    refused("no_request", meeting.control.answer, BOB, True)  # the asker cannot grant themself
    refused("no_request", meeting.control.answer, CY, True)
    refused("no_request", meeting.control.answer, ADA, True, "Cy")  # answering someone who did not ask
    refused("unknown_participant", meeting.control.answer, ADA, True, "Zed")
    assert meeting.control.target_of(BOB) is None


def test_either_party_ends_control():
    meeting = meeting_with(ADA, BOB)
    granted(meeting, BOB, ADA)
    assert meeting.control.revoke(ADA) == [pair("control_revoked", BOB, ADA, reason="revoked", by="Ada")]
    assert meeting.control.target_of(BOB) is None
    granted(meeting, BOB, ADA)
    assert meeting.control.revoke(BOB) == [pair("control_revoked", BOB, ADA, reason="released", by="Bob")]
    assert meeting.control.target_of(BOB) is None
    refused("no_control", meeting.control.revoke, BOB)


def test_the_asker_withdraws_a_waiting_request():
    meeting = meeting_with(ADA, BOB)
    meeting.control.request(BOB, "Ada", 0.0)
    assert meeting.control.revoke(BOB) == [pair("control_denied", BOB, ADA, reason="withdrawn", by="Bob")]
    refused("no_request", meeting.control.answer, ADA, True)


def test_one_session_per_person_at_a_time():
    meeting = meeting_with(ADA, BOB, CY, DEE)
    meeting.control.request(BOB, "Ada", 0.0)
    refused("busy", meeting.control.request, CY, "Ada", 0.0)  # Ada already has someone asking
    refused("busy", meeting.control.request, BOB, "Cy", 0.0)  # Bob already asks Ada
    refused("busy", meeting.control.request, CY, "Bob", 0.0)
    meeting.control.answer(ADA, True)
    refused("busy", meeting.control.request, CY, "Ada", 0.0)  # Ada has a controller
    refused("busy", meeting.control.request, ADA, "Cy", 0.0)
    assert meeting.control.request(DEE, "Cy", 0.0) == [requested(DEE, CY, NAMES)]  # others are free


def test_nobody_asks_themself_or_a_stranger():
    meeting = meeting_with(ADA, BOB)
    refused("bad_request", meeting.control.request, ADA, "ada", 0.0)
    refused("unknown_participant", meeting.control.request, ADA, "Zed", 0.0)
    assert meeting.control.sessions == []


def test_leaving_ends_control_and_tells_the_other_party():
    meeting = meeting_with(ADA, BOB, CY)
    granted(meeting, BOB, CY)
    sends = meeting.leave(CY)
    assert sends[0] == Send((BOB,), pair("control_revoked", BOB, CY, reason="left").message)
    assert meeting.control.target_of(BOB) is None
    meeting.control.request(BOB, "Ada", 0.0)
    sends = meeting.leave(BOB)
    assert sends[0] == Send((ADA,), pair("control_denied", BOB, ADA, reason="left").message)
    assert meeting.control.sessions == []


def test_the_controller_leaving_stops_the_relay():
    meeting = meeting_with(ADA, BOB)
    granted(meeting, BOB, ADA)
    assert meeting.leave(BOB)[0] == Send((ADA,), pair("control_revoked", BOB, ADA, reason="left").message)
    assert meeting.control.target_of(BOB) is None


def test_forbidding_control_ends_member_sessions_and_refuses_new_ones():
    meeting = meeting_with(ADA, BOB, CY, DEE)
    granted(meeting, BOB, CY)
    meeting.control.request(DEE, "Ada", 0.0)
    sends = meeting.set_permission(ADA, "control", False)
    assert pair("control_revoked", BOB, CY, reason="forbidden") in sends
    assert pair("control_denied", DEE, ADA, reason="forbidden") in sends
    assert meeting.control.target_of(BOB) is None
    refused("forbidden", meeting.control.request, BOB, "Cy", 0.0)
    refused("forbidden", meeting.control.request, ADA, "Bob", 0.0)  # the host may not drive a member either
    meeting.set_permission(ADA, "control", True)
    assert meeting.control.request(BOB, "Cy", 0.0) == [requested(BOB, CY, NAMES)]


def test_forbidding_control_for_one_person_ends_only_their_session():
    meeting = meeting_with(ADA, BOB, CY, DEE)
    granted(meeting, BOB, CY)
    granted(meeting, DEE, ADA)
    sends = meeting.set_permission(ADA, "control", False, "Cy")
    assert pair("control_revoked", BOB, CY, reason="forbidden") in sends
    assert meeting.control.target_of(DEE) == ADA


def test_the_host_and_admins_keep_control_under_a_meeting_wide_forbid():
    meeting = meeting_with(ADA, BOB, CY, admins=(BOB,))
    meeting.set_permission(ADA, "control", False)
    granted(meeting, ADA, BOB)
    assert meeting.control.target_of(ADA) == BOB
    sends = meeting.set_role(ADA, "Bob", "member")  # now the forbid applies to Bob
    assert pair("control_revoked", ADA, BOB, reason="forbidden") in sends
    assert meeting.control.target_of(ADA) is None


def test_ending_the_meeting_ends_control():
    meeting = meeting_with(ADA, BOB)
    granted(meeting, BOB, ADA)
    meeting.end(ADA)
    assert meeting.control.target_of(BOB) is None
    assert meeting.control.sessions == []


def test_an_answer_names_the_request_it_was_typed_for():
    # The security review: an answer typed for one request must not land on the next one. Every event
    # about a session carries its request number; an answer naming another number answers nothing.
    meeting = meeting_with(ADA, BOB, CY)
    [first] = meeting.control.request(BOB, "Ada", 0.0)
    number = first.message["request"]
    assert meeting.control.revoke(BOB)[0].message == {
        "type": "control_denied",
        "controller": "Bob",
        "controlled": "Ada",
        "request": number,
        "reason": "withdrawn",
        "by": "Bob",
    }
    [second] = meeting.control.request(CY, "Ada", 1.0)
    assert second.message["request"] != number
    refused("no_request", meeting.control.answer, ADA, True, None, number)  # Ada's yes was for Bob
    assert meeting.control.target_of(CY) is None
    assert meeting.control.answer(ADA, True, "Cy", second.message["request"]) == [
        pair("control_granted", CY, ADA, request=second.message["request"])
    ]


@pytest.mark.parametrize("number", [1, None])
def test_an_answer_may_leave_the_number_out(number: int | None):
    meeting = meeting_with(ADA, BOB)
    meeting.control.request(BOB, "Ada", 0.0)
    assert meeting.control.answer(ADA, False, None, number)[0].message["reason"] == "rejected"
