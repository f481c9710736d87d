"""The journal the meeting rules keep for webhooks: what is noted, in which order, and nothing while off."""

from __future__ import annotations

import pytest

from conf_cli.server.journal import Journal
from conf_cli.server.operator import Operator
from tests.helpers.hub import MID_A, create, join, make_hub, send


def events(journal: Journal) -> list[tuple[str, str | None, str | None]]:
    return [(h.event, h.fields.get("name"), h.fields.get("reason")) for h in journal.take()]


@pytest.mark.usefixtures("cheap_scrypt")
def test_a_meetings_life_is_noted_in_order() -> None:
    hub = make_hub(MID_A)
    hub.journal.enabled = True
    create(hub, 1, "ada")
    join(hub, 2, MID_A, "bob")
    join(hub, 3, MID_A, "cy")
    send(hub, 2, {"type": "publish", "kind": "audio", "ssrc": 7, "codec": "opus"})
    send(hub, 2, {"type": "publish", "kind": "audio", "ssrc": 8, "codec": "opus"})  # replaces the first
    send(hub, 3, {"type": "publish", "kind": "video", "ssrc": 9, "codec": "H264"})
    send(hub, 1, {"type": "kick", "name": "cy"})
    hub.disconnected(2)
    Operator(hub).end(MID_A)
    assert events(hub.journal) == [
        ("meeting_started", None, None),
        ("participant_joined", "ada", None),
        ("participant_joined", "bob", None),
        ("participant_joined", "cy", None),
        ("track_published", "bob", None),
        ("track_unpublished", "bob", "replaced"),
        ("track_published", "bob", None),
        ("track_published", "cy", None),
        ("track_unpublished", "cy", "left"),
        ("participant_left", "cy", "kicked"),
        ("track_unpublished", "bob", "left"),
        ("participant_left", "bob", "disconnected"),
        ("participant_left", "ada", "ended"),
        ("meeting_ended", None, "ended"),
    ]
    assert hub.journal.take() == []


@pytest.mark.usefixtures("cheap_scrypt")
def test_the_fields_of_each_event() -> None:
    hub = make_hub(MID_A)
    hub.journal.enabled = True
    create(hub, 1, "ada")
    send(hub, 1, {"type": "publish", "kind": "screen", "ssrc": 5, "codec": "h264"})
    send(hub, 1, {"type": "leave"})
    taken = hub.journal.take()
    assert [(h.event, h.meeting, h.fields) for h in taken] == [
        ("meeting_started", MID_A, {"by": "ada", "waiting_room": False, "e2ee": False}),
        ("participant_joined", MID_A, {"name": "ada", "role": "host"}),
        ("track_published", MID_A, {"name": "ada", "kind": "screen", "ssrc": 5, "codec": "H264"}),
        (
            "track_unpublished",
            MID_A,
            {"name": "ada", "kind": "screen", "ssrc": 5, "codec": "H264", "reason": "left"},
        ),
        ("participant_left", MID_A, {"name": "ada", "reason": "left"}),
        ("meeting_ended", MID_A, {"reason": "empty"}),
    ]


@pytest.mark.usefixtures("cheap_scrypt")
def test_a_journal_that_is_off_keeps_nothing() -> None:
    hub = make_hub(MID_A)
    create(hub, 1, "ada")
    assert hub.journal.take() == []


def test_an_undrained_journal_stays_bounded() -> None:
    journal = Journal(enabled=True, limit=3)
    for index in range(5):
        journal.note("participant_joined", "m", name=f"p{index}")
    assert [h.fields["name"] for h in journal.take()] == ["p2", "p3", "p4"] and journal.lost == 2
    with pytest.raises(ValueError):
        journal.note("no_such_event", "m")
