"""Hands, reactions, polls and breakout rooms between real ``conf`` processes in machine mode, over a
real (TLS) server; and a raw connection that sends what no conf client would, counting what it gets."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from conf_cli.protocol.control import PROTOCOL_VERSION
from conf_cli.protocol.rtcp import SenderReport, parse_compound
from conf_cli.protocol.rtp import is_rtcp
from conf_cli.testing.hostile import TcpRawLink
from conf_cli.testing.processes import ClientPool, ConfProcess

SMALL = ("--width", "320", "--height", "240", "--fps", "10")


def named(name: str) -> Any:
    return lambda event: event.get("name") == name


class Counting:
    """A participant on a raw TLS connection that counts every media packet it receives, by SSRC."""

    def __init__(self, url: str, meeting: str, name: str, passcode: str) -> None:
        self.link = TcpRawLink(url, tls=True)
        self.name = name
        self.messages: list[dict[str, Any]] = []
        self.packets: Counter[int] = Counter()
        self._pinged = time.monotonic()
        self._next = 0
        self.link.send_control({"type": "hello", "protocol": PROTOCOL_VERSION})
        self.expect("welcome")
        self.link.send_control({"type": "join", "meeting": meeting, "name": name, "passcode": passcode})
        self.expect("joined")

    def pump(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._read(min(left, 0.2))

    def expect(self, kind: str, where: Any = None, timeout: float = 15.0) -> dict[str, Any]:
        """The next message of ``kind`` (matching ``where``) after the last one expected."""
        deadline = time.monotonic() + timeout
        while True:
            while self._next < len(self.messages):
                message = self.messages[self._next]
                self._next += 1
                if message.get("type") == kind and (where is None or where(message)):
                    return message
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no {kind!r} within {timeout} s; got {self.messages[-8:]}")
            self._read(0.2)

    def _read(self, timeout: float) -> None:
        if time.monotonic() - self._pinged > 1.5:  # the server drops a link silent for 6 s
            self.link.send_control({"type": "ping"})
            self._pinged = time.monotonic()
        messages, packets = self.link.receive_all(timeout)
        self.messages += messages
        for packet in packets:
            if not is_rtcp(packet):
                self.packets[int.from_bytes(packet[8:12], "big")] += 1
                continue
            for part in parse_compound(packet):
                if isinstance(part, SenderReport):
                    self.packets[part.ssrc] += 1

    def close(self) -> None:
        self.link.close()


def counted(person: ConfProcess, kind: str, ssrc: int, times: int, timeout: float = 10.0) -> None:
    """Wait until ``person`` has written ``times`` events of ``kind`` about track ``ssrc``."""
    deadline = time.monotonic() + timeout
    while sum(e.get("type") == kind and e.get("ssrc") == ssrc for e in person.seen) < times:
        assert time.monotonic() < deadline, f"fewer than {times} {kind} for {ssrc}: {person.seen[-8:]}"
        person.drain(0.2)


def test_hands_queue_in_order_reactions_and_polls_with_results(clients: ClientPool) -> None:
    ada, meeting = clients.create("ada")
    bob, cy, dee = (clients.joined(meeting, name) for name in ("bob", "cy", "dee"))

    for position, (name, person) in enumerate((("bob", bob), ("cy", cy), ("dee", dee)), 1):
        person.send("/hand")
        assert ada.expect("hand_raised") == {"type": "hand_raised", "name": name, "position": position}
    assert [e["name"] for e in (bob.expect("hand_raised") for _ in range(3))] == ["bob", "cy", "dee"]

    dee.send("/lower bob")  # a member may lower only their own hand
    assert dee.expect("error")["code"] == "not_allowed"
    ada.send("/lower bob")
    assert cy.expect("hand_lowered") == {"type": "hand_lowered", "name": "bob", "by": "ada"}
    cy.send("/hand")
    assert dee.expect("hand_lowered", named("cy")) == {"type": "hand_lowered", "name": "cy"}
    eve = clients.joined(meeting, "eve")  # a newcomer learns the queue after joined
    assert eve.expect("hand_raised") == {"type": "hand_raised", "name": "dee", "position": 1}

    bob.send("/react 👍")
    cy.send("/react clap")
    assert ada.expect("reaction", named("bob")) == {"type": "reaction", "name": "bob", "emoji": "👍"}
    assert ada.latest("reaction", named("cy")) == {"type": "reaction", "name": "cy", "emoji": "👏"}
    for _ in range(6):
        bob.send("/react tada")
    limited = bob.expect("error", lambda e: e["code"] == "rate_limited")
    assert 0 < limited["retry_after"] <= 1.5 and limited["re"] == "react"
    bob.send("/react banana")
    assert "usage: /react" in bob.expect("error", lambda e: e["code"] == "bad_command")["message"]

    bob.send("/poll Lunch? | Pizza | Sushi")
    assert bob.expect("error", lambda e: e.get("re") == "poll_start")["code"] == "not_allowed"
    ada.send("/poll Lunch? | Pizza | Sushi | Soup")
    started = cy.expect("poll_started")
    assert started == {
        "type": "poll_started",
        "poll": 1,
        "question": "Lunch?",
        "options": ["Pizza", "Sushi", "Soup"],
        "named": False,
        "by": "ada",
    }
    for person, choice in ((bob, 1), (cy, 2), (dee, 3), (bob, 2)):
        person.send(f"/vote {choice}")
        assert person.expect("vote_recorded") == {"type": "vote_recorded", "poll": 1, "choice": choice}
    ada.send("/poll close")
    closed = eve.expect("poll_closed")
    assert closed["counts"] == [0, 2, 1] and closed["voters"] == 3 and "votes" not in closed
    dee.send("/vote 1")
    assert dee.expect("error", lambda e: e.get("re") == "vote")["code"] == "no_poll"

    ada.send("/poll --named Ready? | yes | no")
    assert bob.expect("poll_started")["named"] is True
    bob.send("/vote 1")
    bob.expect("vote_recorded")
    eve.send("/vote 2")
    eve.expect("vote_recorded")
    ada.send("/poll close")
    closed = dee.expect("poll_closed", lambda e: e["poll"] == 2)
    assert closed["votes"] == [{"name": "bob", "choice": 1}, {"name": "eve", "choice": 2}]

    ada.send("/help")
    usages = [c["usage"] for c in ada.expect("help")["commands"]]
    for command in ("/hand", "/react", "/poll", "/vote", "/breakout", "/spotlight", "/rename", "/ask-unmute"):
        assert any(u.startswith(command) for u in usages), command


def test_breakout_rooms_keep_media_and_chat_inside_each_room_and_everyone_comes_back(
    server_url: str, clients: ClientPool
) -> None:
    ada, meeting = clients.create("ada")
    pub1 = clients.share(meeting, "pub1", "pattern", *SMALL)
    pub2 = clients.share(meeting, "pub2", "tone")
    video = pub1.expect("publish_started")["ssrc"]
    audio = pub2.expect("publish_started")["ssrc"]
    v1, v2 = clients.joined(meeting, "v1"), clients.joined(meeting, "v2")
    raw1 = Counting(server_url, meeting, "raw1", clients.passcode)
    raw2 = Counting(server_url, meeting, "raw2", clients.passcode)
    try:
        for viewer in (v1, v2):  # before the rooms, everyone receives both
            for ssrc in (video, audio):
                viewer.latest("track_started", lambda e, ssrc=ssrc: e["ssrc"] == ssrc)
        raw1.pump(1.0)
        assert raw1.packets[video] > 0 and raw1.packets[audio] > 0

        ada.send("/breakout create 2")
        for name, room in (("pub1", 1), ("v1", 1), ("raw1", 1), ("pub2", 2), ("v2", 2), ("raw2", 2)):
            ada.send(f"/breakout assign {name} {room}")
        plan = ada.expect("breakout_rooms", lambda e: len(e["assignments"]) == 6)
        assert plan["open"] is False
        ada.send("/breakout open 30")
        assert v1.expect("breakout_opened")["rooms"] == 2
        moved = [ada.expect("breakout_moved") for _ in range(6)]
        assert {(m["name"], m["room"]) for m in moved} == {
            ("pub1", 1),
            ("v1", 1),
            ("raw1", 1),
            ("pub2", 2),
            ("v2", 2),
            ("raw2", 2),
        }

        # Each room's media stays in it: what arrives after one's own move is counted at the receivers.
        for raw in (raw1, raw2):
            raw.expect("breakout_moved", named(raw.name))
            raw.packets.clear()
        gone = v1.expect("track_ended", lambda e: e["ssrc"] == audio)
        assert gone["reason"] == "moved"
        assert v2.expect("track_ended", lambda e: e["ssrc"] == video)["reason"] == "moved"
        raw1.pump(3.0)
        raw2.pump(0.5)
        assert raw1.packets[video] > 20 and raw1.packets[audio] == 0, raw1.packets
        assert raw2.packets[audio] > 20 and raw2.packets[video] == 0, raw2.packets
        assert set(raw1.packets) == {video} and set(raw2.packets) == {audio}

        # ... and so does chat; a private word cannot cross; the host's broadcast reaches every room.
        v1.send("hello from room 1")
        assert pub1.expect("chat")["text"] == "hello from room 1"
        v2.send("/msg v1 psst")
        assert v2.expect("error", lambda e: e.get("re") == "chat")["code"] == "not_in_room"
        ada.send("/breakout broadcast two minutes left")
        for person in (v1, v2, pub1, pub2):
            assert person.expect("breakout_broadcast") == {
                "type": "breakout_broadcast",
                "from": "ada",
                "text": "two minutes left",
            }
        raw2.pump(0.5)
        v2.drain(0.3)
        pub2.drain(0.3)
        assert not [m for m in raw2.messages if m.get("type") == "chat"]
        assert not [e for e in v2.seen + pub2.seen if e.get("type") == "chat"]

        # The host visits room 2 and hears it; closing brings everyone back, with all the media.
        ada.send("/breakout visit 2")
        ada.expect("track_started", lambda e: e["ssrc"] == audio)
        ada.send("/breakout close")
        for person in (v1, v2, pub1, pub2):
            assert person.expect("breakout_closed") == {
                "type": "breakout_closed",
                "reason": "closed",
                "by": "ada",
            }
        counted(v1, "track_started", audio, 2)  # once before the rooms, once after
        counted(v2, "track_started", video, 2)
        raw1.expect("breakout_closed")
        raw1.packets.clear()
        raw1.pump(2.0)
        assert raw1.packets[video] > 0 and raw1.packets[audio] > 0
        v2.expect("track_stats", lambda e: e["ssrc"] == video and e["frames"] > 0, timeout=10)
    finally:
        raw1.close()
        raw2.close()


def test_a_member_on_a_raw_connection_cannot_run_the_meeting(server_url: str, clients: ClientPool) -> None:
    ada, meeting = clients.create("ada")
    bob = clients.joined(meeting, "bob")
    mallory = Counting(server_url, meeting, "mallory", clients.passcode)
    try:
        ada.send("/hand")
        bob.expect("hand_raised")
        requests: list[dict[str, Any]] = [
            {"type": "poll_start", "question": "Q?", "options": ["a", "b"]},
            {"type": "breakout_create", "rooms": 2},
            {"type": "breakout_assign", "name": "bob", "room": 1},
            {"type": "breakout_open"},
            {"type": "breakout_broadcast", "text": "hi"},
            {"type": "spotlight", "name": "mallory"},
            {"type": "rename", "name": "ada", "new_name": "loser"},
            {"type": "ask_unmute", "name": "bob"},
            {"type": "lower_hand", "name": "ada"},
            {"type": "lower_hand", "all": True},
        ]
        for request in requests:
            mallory.link.send_control(request)
            refusal = mallory.expect("error", lambda e, kind=request["type"]: e.get("re") == kind)
            assert refusal["code"] == "not_allowed", refusal
        mallory.link.send_control({"type": "react", "emoji": "\x1b]0;pwned\x07"})
        assert mallory.expect("error")["code"] == "bad_request"
        bob.send("still here")
        for person in (ada, bob):
            person.expect("chat", lambda e: e["text"] == "still here")
        kinds = {e.get("type") for e in ada.seen + bob.seen}
        assert not kinds & {
            "poll_started",
            "breakout_rooms",
            "breakout_opened",
            "breakout_moved",
            "breakout_broadcast",
            "spotlight",
            "participant_renamed",
            "unmute_requested",
            "hand_lowered",
            "reaction",
        }
    finally:
        mallory.close()


def test_spotlight_rename_and_an_ask_to_unmute_that_only_asks(clients: ClientPool) -> None:
    ada, meeting = clients.create("ada")
    bob = clients.joined(meeting, "bob")
    cy = clients.joined(meeting, "cy")

    ada.send("/spotlight bob")
    assert cy.expect("spotlight") == {"type": "spotlight", "name": "bob", "by": "ada"}
    bob.send("/spotlight cy")
    assert bob.expect("error", lambda e: e.get("re") == "spotlight")["code"] == "not_allowed"

    ada.send("/ask-unmute bob")
    assert bob.expect("unmute_requested") == {"type": "unmute_requested", "name": "bob", "by": "ada"}
    ada.expect("unmute_requested")
    cy.send("/ask-unmute bob")
    assert cy.expect("error", lambda e: e.get("re") == "ask_unmute")["code"] == "not_allowed"
    # Asking turned nothing on: nobody announced a track.
    bob.send("/who")
    assert all(not p["sharing"] for p in bob.expect("participants")["participants"])

    ada.send('/rename bob "Robert B"')
    assert cy.expect("participant_renamed") == {
        "type": "participant_renamed",
        "name": "bob",
        "new_name": "Robert B",
        "by": "ada",
    }
    bob.expect("participant_renamed")
    bob.send("hello as Robert")
    assert cy.expect("chat", lambda e: e["text"] == "hello as Robert")["from"] == "Robert B"
    ada.send("/rename cy robert b")
    assert ada.expect("error", lambda e: e.get("re") == "rename")["code"] == "name_taken"
    bob.send("/leave")
    assert cy.expect("participant_left")["name"] == "Robert B"
    assert cy.expect("spotlight") == {"type": "spotlight"}  # the pinned person left
