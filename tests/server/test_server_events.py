"""Every message type the server can send, made by the server's own rules, is the events.py dataclass it
claims to be: it parses with the strict profile and comes back unchanged, in the server's field order."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import count
from typing import Any

import pytest

from conf_cli.protocol.control import PROTOCOL_VERSION, REACTION_EMOJI, encode
from conf_cli.protocol.events import EVENT_TYPES, parse_event
from conf_cli.protocol.rtp import RtpPacket
from conf_cli.server.call_board import CallBoard
from conf_cli.server.directory import ClaimMeeting, ClusterView, Holder, NodeInfo, Question
from conf_cli.server.hub import Action, Ask, Deferred, Hub
from conf_cli.server.meeting import Send
from conf_cli.server.resume import REFRESH_SECONDS, ResumeKey

pytestmark = pytest.mark.usefixtures("cheap_scrypt")

KEY = "A" * 43 + "="
CALL_KEY = "C" * 42 + "Q"
MID = "k7m-q2xw-9fd"
NODE_B = NodeInfo("b", ("tcp://10.0.1.2:7450", "zmq://10.0.1.2:7452"), "SHA256:" + "B" * 43)


def directory(question: Question) -> object:
    """The cluster's directory as the scenario has it: node b holds every meeting asked about."""
    return True if isinstance(question, ClaimMeeting) else Holder("b", NODE_B)


class Accounts:
    """One account, Ada's."""

    def verify(self, name: str, password: str) -> tuple[str, str]:
        if name.casefold() != "ada":
            return "unknown", name
        return ("ok", "Ada") if password == "hunter2" else ("wrong", name)

    def exists(self, name: str) -> bool:
        return name.casefold() == "ada"


class Server:
    """A hub with accounts, calls and a service, driven request by request; it keeps what it sends."""

    def __init__(self) -> None:
        numbers = count(1)
        self.hub = Hub(
            new_id=lambda: MID,
            new_passcode=lambda: "sesame",
            accounts=Accounts(),
            calls=CallBoard(new_id=lambda: f"c{next(numbers)}", stun_port=3478),
            services={"web": ["http://127.0.0.1:8080/"]},
            resume_key=ResumeKey.from_identity(bytes(range(32))),
            wall_clock=lambda: 1_700_000_000.0,
            urls=["tcp://127.0.0.1:7447"],
        )
        self.sent: list[dict[str, Any]] = []
        self.to: list[tuple[int, ...]] = []

    def keep(self, actions: Iterable[Action], now: float) -> None:
        for action in actions:
            if isinstance(action, Deferred):
                self.keep(action.resume(action.work(), now), now)
            elif isinstance(action, Ask):
                self.keep(action.resume(directory(action.question), now), now)
            elif isinstance(action, Send):
                self.sent.append(action.message)
                self.to.append(action.to)

    def token_of(self, cid: int) -> str:
        """The latest resume token sent to ``cid``."""
        sent = zip(self.sent, self.to, strict=True)
        return [m["token"] for m, to in sent if m["type"] == "resume_token" and to == (cid,)][-1]

    def send(self, cid: int, message: dict[str, Any], now: float = 0.0) -> None:
        self.keep(self.hub.received(cid, encode(message), now), now)

    def greet(self, *cids: int) -> None:
        for cid in cids:
            self.hub.connected(cid, 0.0, f"10.0.0.{cid}", "tcp")
            self.send(cid, {"type": "hello", "protocol": PROTOCOL_VERSION})

    def join(self, cid: int, name: str) -> None:
        self.send(cid, {"type": "join", "meeting": MID, "name": name, "passcode": "sesame", "e2ee_key": KEY})


def test_every_message_type_the_server_sends_is_its_event_and_round_trips() -> None:
    server = Server()
    server.greet(1, 2, 3, 4, 5, 6, 7, 8)
    server.send(1, {"type": "ping"})
    server.send(1, {"type": "login", "user": "ada", "password": "hunter2"})
    server.send(1, {"type": "create", "name": "Ada", "e2ee": True, "e2ee_key": KEY, "waiting_room": True})
    server.join(2, "Bob")
    server.send(2, {"type": "leave"})  # gives up waiting
    server.join(3, "Cy")
    server.send(1, {"type": "admit", "name": "Cy"})
    server.join(4, "Di")
    server.send(1, {"type": "deny", "name": "Di"})
    server.join(5, "Eve")
    server.send(1, {"type": "set_role", "name": "Cy", "role": "admin"})  # Cy is told who waits
    server.send(1, {"type": "set_waiting_room", "enabled": False})  # Eve is let in
    server.send(3, {"type": "publish", "kind": "video", "ssrc": 1234, "codec": "H264"})
    server.send(1, {"type": "forbid", "what": "video", "name": "Cy"})
    server.send(1, {"type": "chat", "text": "hello", "id": 1})
    server.send(1, {"type": "chat", "text": "psst", "to": "Cy"})
    server.send(1, {"type": "e2ee_keys", "keys": [{"to": "Cy", "box": "AAAA"}]})
    server.send(1, {"type": "lock"})
    server.send(3, {"type": "who"})
    server.send(3, {"type": "control_request", "name": "Ada"})
    server.send(1, {"type": "control_accept"})
    server.send(3, {"type": "control_input", "action": "key", "key": "a", "pressed": True})
    server.send(1, {"type": "control_revoke"})
    server.send(3, {"type": "control_request", "name": "Ada"})
    server.send(1, {"type": "control_reject"})
    server.send(1, {"type": "kick", "name": "Eve"})
    server.send(1, {"type": "unban", "name": "Eve"})
    server.send(1, {"type": "kick", "name": "Nobody", "id": 9})  # refused: an error echoing the id
    server.send(1, {"type": "nonsense"})
    server.send(1, {"type": "unlock"})
    server.send(1, {"type": "set_waiting_room", "enabled": True})
    server.join(4, "Di")  # waits again
    server.send(1, {"type": "leave"})  # the host leaves: Cy, an admin, succeeds
    server.send(3, {"type": "leave"})  # the last one out: the meeting closes for those waiting

    # A plain meeting for what an end-to-end encrypted one refuses (renaming) and the meeting's activities.
    server.greet(9, 10, 11)
    server.send(9, {"type": "create", "name": "Jo", "passcode": "sesame"})
    meeting = server.hub.meeting_of(9)
    assert meeting is not None
    for cid, name in ((10, "Kim"), (11, "Lu")):
        server.send(cid, {"type": "join", "meeting": meeting.id, "name": name, "passcode": "sesame"})
    server.send(10, {"type": "publish", "kind": "audio", "ssrc": 99, "codec": "opus"})
    for step in range(20):  # Kim speaks: her levels make her the active speaker
        server.keep(server.hub.audio_level(10, meeting.tracks[99], 10, step * 0.02), step * 0.02)
    server.send(10, {"type": "hand", "raised": True})
    server.send(9, {"type": "lower_hand", "name": "Kim"})
    server.send(11, {"type": "react", "emoji": REACTION_EMOJI[0]})
    server.send(9, {"type": "poll_start", "question": "Lunch?", "options": ["yes", "no"], "named": True})
    server.send(10, {"type": "vote", "choice": 1})
    server.send(9, {"type": "poll_close"})
    server.send(9, {"type": "spotlight", "name": "Kim"})
    server.send(9, {"type": "rename", "name": "Lu", "new_name": "Lou"})
    server.send(9, {"type": "ask_unmute", "name": "Lou"})
    server.send(9, {"type": "breakout_create", "rooms": 2})
    server.send(9, {"type": "breakout_assign", "name": "Kim", "room": 1})
    server.send(9, {"type": "breakout_open"})
    server.send(9, {"type": "breakout_broadcast", "text": "two minutes"})
    server.send(9, {"type": "breakout_close"})
    layers = [
        {"ssrc": 0xA0, "width": 320, "height": 180, "bitrate": 120_000},
        {"ssrc": 0xA1, "width": 640, "height": 360, "bitrate": 400_000},
        {"ssrc": 0xA2, "width": 1280, "height": 720, "bitrate": 1_200_000},
    ]
    server.send(9, {"type": "publish", "kind": "video", "ssrc": 0xA2, "codec": "H264", "layers": layers})
    # Lou's link drops; a new connection takes the seat back with the resume token (joined, resumed).
    server.keep(server.hub.disconnected(11, "disconnected", 1.0), 1.0)
    server.greet(13)
    server.send(13, {"type": "resume", "token": server.token_of(11)})
    server.send(10, {"type": "receive", "max_bitrate": 300_000})  # the low layer: layers_active to Jo
    routed = server.hub.route(9, bytes(RtpPacket(96, 1, 0, 0xA0, b"\x65" + bytes(20))), 1.0)  # its keyframe
    server.keep(list(routed.actions), 1.0)  # layer_switched to Kim
    server.greet(12)
    recorder = {"type": "join", "meeting": meeting.id, "name": "Jo (recorder)", "passcode": "sesame"}
    server.send(12, {**recorder, "recorder": True})
    server.send(12, {"type": "leave"})

    server.send(6, {"type": "online", "name": "Gus"})
    server.send(7, {"type": "online", "name": "Hal"})
    server.send(8, {"type": "online", "name": "Ivy"})
    server.send(6, {"type": "call", "to": "Hal", "commitment": CALL_KEY, "candidates": ["10.0.0.6:4000"]})
    server.send(7, {"type": "call_accept", "call": "c1", "key": CALL_KEY, "candidates": ["10.0.0.7:5000"]})
    server.send(6, {"type": "call_reveal", "call": "c1", "key": CALL_KEY})
    server.send(7, {"type": "call_connected", "call": "c1"})
    server.send(6, {"type": "call_path", "call": "c1", "path": "relayed"})
    server.send(8, {"type": "call", "to": "Hal", "commitment": CALL_KEY, "candidates": []})  # busy
    server.send(6, {"type": "call_hangup", "call": "c1"})
    server.send(7, {"type": "offline"})
    server.send(8, {"type": "call", "to": "Gus", "commitment": CALL_KEY, "candidates": [], "timeout": 5})
    server.keep(server.hub.tick(6.0), 6.0)  # nobody answered

    # A node of a cluster, full: a create and a join of a meeting node b holds are sent on to b.
    full = NodeInfo("a", ("tcp://10.0.1.1:7450",), participants=500, capacity=500)
    server.hub.cluster = ClusterView(
        "a", "redis://10.0.0.1:6379/0", nodes={"a": full, "b": NODE_B}, reachable=True
    )
    server.greet(13)
    server.send(13, {"type": "join", "meeting": "zzz-zzzz-zzz", "name": "Max", "passcode": "sesame"})
    server.send(13, {"type": "create", "name": "Max"}, now=7.0)
    # Jo's token is renewed: it names where to reconnect as the cluster is now, node b included.
    server.hub.wall_clock = lambda: 1_700_000_000.0 + REFRESH_SECONDS
    server.keep(server.hub.tick(8.0), 8.0)

    seen: dict[str, list[dict[str, Any]]] = {}
    for message in server.sent:
        event = parse_event(message)  # the strict profile: what every conforming server sends
        assert event.to_message() == message
        assert list(event.to_message()) == list(message)  # in the server's order
        seen.setdefault(message["type"], []).append(message)
    assert set(seen) == set(EVENT_TYPES)
    # The variants a client must tell apart came too.
    assert any(m.get("id") == 9 and m.get("re") == "kick" for m in seen["error"])
    assert any("by" not in m for m in seen["role_changed"])  # a succession
    assert any("ssrc" in m for m in seen["share_stopped"])
    assert {m["reason"] for m in seen["waiting_left"]} == {"left", "admitted", "denied"}
    assert {m["reason"] for m in seen["call_declined"]} == {"busy", "timeout"}
    assert any("key" in m for m in seen["call_accepted"]) and any(
        "key" not in m for m in seen["call_accepted"]
    )
    assert any(m["waiting"] for m in seen["waiting_room"])
    assert any("by" not in m for m in seen["meeting_closed"])  # to those still waiting
    assert {(m["re"], m.get("meeting"), m["url"]) for m in seen["redirect"]} == {
        ("join", "zzz-zzzz-zzz", "tcp://10.0.1.2:7450"),
        ("create", None, "tcp://10.0.1.2:7450"),
    }
    assert any(m.get("resumed") for m in seen["joined"])
    *alone, node = seen["welcome"]
    assert all(m["urls"] == ["tcp://127.0.0.1:7447"] for m in alone)
    assert node["urls"] == ["tcp://127.0.0.1:7447", "tcp://10.0.1.2:7450"]  # then the other nodes
    renewed = [m for m in server.sent if m["type"] == "resume_token"]
    assert renewed[0]["urls"] == ["tcp://127.0.0.1:7447"]
    assert any(m["urls"] == ["tcp://127.0.0.1:7447", "tcp://10.0.1.2:7450"] for m in renewed)
