"""The meeting lines the server logs (what ``--log-format json`` carries): created, joined, left, ended,
with their structured fields, from the messages the server sends and the links that close."""

from __future__ import annotations

import logging

import pytest

from conf_cli.server.meeting_log import MeetingLog


def _lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, dict[str, object]]]:
    fields = ("meeting", "participant", "role", "reason", "peer")
    return [
        (r.getMessage(), {f: getattr(r, f) for f in fields if hasattr(r, f)})
        for r in caplog.records
        if r.name == "conf.meeting"
    ]


def test_a_meeting_from_creation_to_its_end(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "conf.meeting")
    open_meetings = {"m-1"}
    log = MeetingLog(open_meetings, lambda cid: f"10.0.0.{cid}:5000")
    log.sent({"type": "meeting_created", "meeting": "m-1", "passcode": "secret"}, (1,))
    log.sent({"type": "joined", "meeting": "m-1", "name": "ada", "role": "host"}, (1,))
    log.sent({"type": "joined", "meeting": "m-1", "name": "bob", "role": "member"}, (2,))
    log.sent({"type": "joined", "meeting": "m-1", "name": "cy", "role": "member"}, (3,))
    log.sent({"type": "kicked", "by": "ada"}, (3,))
    log.gone(2, "disconnected")
    log.gone(2, "disconnected")  # already gone: nothing more
    open_meetings.clear()  # ada ends it
    log.sent({"type": "meeting_closed", "by": "ada", "reason": "ended"}, (1,))
    assert _lines(caplog) == [
        ("meeting m-1 created", {"meeting": "m-1", "peer": "10.0.0.1:5000"}),
        (
            "ada joined meeting m-1",
            {"meeting": "m-1", "participant": "ada", "role": "host", "peer": "10.0.0.1:5000"},
        ),
        (
            "bob joined meeting m-1",
            {"meeting": "m-1", "participant": "bob", "role": "member", "peer": "10.0.0.2:5000"},
        ),
        (
            "cy joined meeting m-1",
            {"meeting": "m-1", "participant": "cy", "role": "member", "peer": "10.0.0.3:5000"},
        ),
        ("cy left meeting m-1 (kicked)", {"meeting": "m-1", "participant": "cy", "reason": "kicked"}),
        (
            "bob left meeting m-1 (disconnected)",
            {"meeting": "m-1", "participant": "bob", "reason": "disconnected"},
        ),
        ("ada left meeting m-1 (ended)", {"meeting": "m-1", "participant": "ada", "reason": "ended"}),
        ("meeting m-1 ended", {"meeting": "m-1"}),
    ]
    assert log.present == {} and not log.sizes
    assert all("secret" not in str(record.__dict__) for record in caplog.records)  # no passcode logged


def test_chat_and_other_messages_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "conf.meeting")
    log = MeetingLog(set(), lambda cid: "")
    log.sent({"type": "chat", "from": "ada", "text": "private words"}, (1, 2))
    log.sent({"type": "participant_joined", "name": "bob"}, (1,))
    assert _lines(caplog) == []
