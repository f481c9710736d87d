"""Breakout rooms where the server routes: media, feedback, resends and chat stay inside each room,
over the hub with its forwarding cache; and every new request refused to a member, as sent on the wire."""

from __future__ import annotations

import pytest

from conf_cli.protocol.rtcp import Nack, Pli
from conf_cli.protocol.rtp import RtpPacket
from conf_cli.server.forwarding import Forwarder
from conf_cli.server.hub import Forward
from tests.helpers.hub import MID_A, create, join, make_hub, send, to
from tests.helpers.links import RecordingLink

pytestmark = pytest.mark.usefixtures("cheap_scrypt")

ADA, BOB, CY, DEE = 1, 2, 3, 4
BOB_VIDEO, DEE_AUDIO = 0xB0B, 0xDEE


def rtp(ssrc: int, seq: int = 1) -> bytes:
    return bytes(RtpPacket(96, seq, 1000, ssrc, b"\x65payload"))


def rooms_open():  # type: ignore[no-untyped-def]
    """Ada hosts in the main room; Bob and Cy in room 1, Dee in room 2; Bob shares video, Dee audio."""
    hub = make_hub(MID_A)
    create(hub, ADA, "Ada")
    for cid, name in ((BOB, "Bob"), (CY, "Cy"), (DEE, "Dee")):
        join(hub, cid, MID_A, name)
    send(hub, BOB, {"type": "publish", "kind": "video", "ssrc": BOB_VIDEO, "codec": "H264"})
    send(hub, DEE, {"type": "publish", "kind": "audio", "ssrc": DEE_AUDIO, "codec": "opus"})
    send(hub, ADA, {"type": "breakout_create", "rooms": 2})
    send(hub, ADA, {"type": "breakout_assign", "name": "Bob", "room": 1})
    send(hub, ADA, {"type": "breakout_assign", "name": "Cy", "room": 1})
    send(hub, ADA, {"type": "breakout_assign", "name": "Dee", "room": 2})
    actions = send(hub, ADA, {"type": "breakout_open"}, now=1.0)
    return hub, actions


def test_opening_rooms_reroutes_media_and_asks_for_keyframes() -> None:
    hub, actions = rooms_open()
    assert Forward((BOB,), bytes(Pli(0, BOB_VIDEO))) in actions
    assert hub.route_media(BOB, rtp(BOB_VIDEO), 2.0) == (CY,)
    assert hub.route_media(DEE, rtp(DEE_AUDIO), 2.0) == ()
    # Feedback from another room about Bob's video is dropped; from his room it reaches him.
    refused = hub.stats.feedback_refused
    assert hub.route_media(DEE, bytes(Pli(0x44, BOB_VIDEO)), 2.0) == ()
    assert hub.route_media(ADA, bytes(Nack(0x11, BOB_VIDEO, [1])), 2.0) == ()
    assert hub.stats.feedback_refused == refused + 2
    assert hub.route_media(CY, bytes(Pli(0x33, BOB_VIDEO)), 2.0) == (BOB,)


def test_the_forwarders_cached_routes_follow_the_rooms() -> None:
    hub, _ = rooms_open()
    links = {cid: RecordingLink(cid) for cid in (ADA, BOB, CY, DEE)}
    forwarder = Forwarder(hub, links)  # type: ignore[arg-type]
    for seq in range(1, 4):
        forwarder.media(links[BOB], rtp(BOB_VIDEO, seq), 2.0)  # type: ignore[arg-type]
    assert [len(links[cid].got) for cid in (ADA, BOB, CY, DEE)] == [0, 0, 3, 0]
    send(hub, ADA, {"type": "breakout_close"}, now=3.0)
    forwarder.media(links[BOB], rtp(BOB_VIDEO, 4), 3.0)  # type: ignore[arg-type]
    assert [len(links[cid].got) for cid in (ADA, BOB, CY, DEE)] == [1, 0, 4, 1]


def test_a_resend_goes_only_to_whoever_asked_in_the_room() -> None:
    hub, _ = rooms_open()
    assert hub.route_media(BOB, rtp(BOB_VIDEO, 7), 2.0) == (CY,)
    assert hub.route_media(CY, bytes(Nack(0x33, BOB_VIDEO, [7])), 2.1) == (BOB,)
    assert hub.route_media(BOB, rtp(BOB_VIDEO, 7), 2.2) == (CY,)


def test_chat_stays_in_the_room() -> None:
    hub, _ = rooms_open()
    actions = send(hub, CY, {"type": "chat", "text": "room one here"}, now=2.0)
    assert [cid for cid in (ADA, BOB, CY, DEE) if to(actions, cid)] == [BOB, CY]
    refused = send(hub, CY, {"type": "chat", "text": "psst", "to": "Dee"}, now=2.0)
    assert [m["code"] for m in to(refused, CY)] == ["not_in_room"] and not to(refused, DEE)


def test_time_up_closes_the_rooms_from_the_hubs_tick() -> None:
    hub = make_hub(MID_A)
    create(hub, ADA, "Ada")
    join(hub, BOB, MID_A, "Bob")
    send(hub, ADA, {"type": "breakout_create", "rooms": 1})
    send(hub, ADA, {"type": "breakout_assign", "name": "Bob", "room": 1})
    send(hub, ADA, {"type": "breakout_open", "minutes": 1}, now=10.0)
    for cid in (ADA, BOB):
        hub.seen(cid, 69.0)
    assert not [a for a in hub.tick(69.0) if getattr(a, "message", {}).get("type") == "breakout_closed"]
    for cid in (ADA, BOB):
        hub.seen(cid, 70.5)
    closed = [a for a in hub.tick(70.5) if getattr(a, "message", {}).get("type") == "breakout_closed"]
    assert closed and closed[0].message == {"type": "breakout_closed", "reason": "timeout"}


HOST_ONLY = [
    {"type": "poll_start", "question": "Q?", "options": ["a", "b"]},
    {"type": "poll_close"},
    {"type": "breakout_create", "rooms": 2},
    {"type": "breakout_assign", "name": "Bob", "room": 1},
    {"type": "breakout_shuffle"},
    {"type": "breakout_open"},
    {"type": "breakout_visit", "room": 1},
    {"type": "breakout_broadcast", "text": "hi"},
    {"type": "breakout_close"},
    {"type": "spotlight", "name": "Bob"},
    {"type": "rename", "name": "Ada", "new_name": "Mallory"},
    {"type": "ask_unmute", "name": "Ada"},
    {"type": "lower_hand", "name": "Ada"},
    {"type": "lower_hand", "all": True},
]


@pytest.mark.parametrize("request_", HOST_ONLY, ids=lambda r: r["type"] + ("_all" if r.get("all") else ""))
def test_a_member_cannot_do_what_only_the_host_may(request_: dict) -> None:
    hub = make_hub(MID_A)
    create(hub, ADA, "Ada")
    join(hub, BOB, MID_A, "Bob")
    join(hub, CY, MID_A, "Cy")
    send(hub, ADA, {"type": "hand", "raised": True})
    actions = send(hub, BOB, request_, now=1.0)
    assert [m["type"] for m in to(actions, BOB)] == ["error"], actions
    assert to(actions, BOB)[0]["code"] == "not_allowed"
    assert not to(actions, ADA) and not to(actions, CY)
    meeting = hub.meetings[MID_A]
    assert meeting.find("Ada").name == "Ada" and not meeting.breakout.rooms
    assert meeting.activities.hands == [ADA] and meeting.activities.spotlight is None


@pytest.mark.parametrize(
    "request_",
    [
        {"type": "react", "emoji": "\x1b]52;c;AAAA\x07"},
        {"type": "react", "emoji": "x" * 5000},
        {"type": "poll_start", "question": "Q?", "options": ["only one"]},
        {"type": "poll_start", "question": "Q?", "options": [f"o{n}" for n in range(11)]},
        {"type": "poll_start", "question": "Q" * 201, "options": ["a", "b"]},
        {"type": "poll_start", "question": "Q?", "options": ["a", "b" * 81]},
        {"type": "poll_start", "question": "Q?\x1b[2J", "options": ["a", "b"]},
        {"type": "poll_start", "question": "Q?", "options": ["a", "A"]},
        {"type": "poll_start", "question": "Q?", "options": ["a", 7]},
        {"type": "vote", "choice": 0},
        {"type": "vote", "choice": 11},
        {"type": "breakout_create", "rooms": 21},
        {"type": "breakout_create", "rooms": 0},
        {"type": "breakout_open", "minutes": 241},
        {"type": "breakout_assign", "name": "Bob", "room": -1},
        {"type": "rename", "name": "Bob", "new_name": "/kick"},
    ],
)
def test_out_of_bounds_requests_are_refused_as_bad_requests(request_: dict) -> None:
    hub = make_hub(MID_A)
    create(hub, ADA, "Ada")
    join(hub, BOB, MID_A, "Bob")
    actions = send(hub, ADA, request_, now=1.0)
    assert [(m["type"], m["code"]) for m in to(actions, ADA)] == [("error", "bad_request")]
    assert not to(actions, BOB)
