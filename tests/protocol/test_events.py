"""Server-to-client messages as typed events: round trips, refusals, and the server's own messages."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from itertools import count
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conf_cli.errors import ProtocolError
from conf_cli.protocol import events
from conf_cli.protocol.control import (
    CODECS,
    MEDIA_KINDS,
    PERMISSIONS,
    PROTOCOL_VERSION,
    REACTION_EMOJI,
    ROLES,
    encode,
)
from conf_cli.protocol.events import (
    EVENT_TYPES,
    ControlInput,
    Event,
    Joined,
    ParticipantEntry,
    RoomEntry,
    TrackEntry,
    VoteEntry,
    parse_event,
)
from conf_cli.protocol.rtp import RtpPacket
from conf_cli.server import passcode as passcode_module
from conf_cli.server.call_board import CallBoard
from conf_cli.server.hub import Deferred, Hub
from conf_cli.server.meeting import MAX_PARTICIPANTS, MAX_WAITING, Send
from conf_cli.server.resume import ResumeKey

KEY = "A" * 43 + "="
CALL_KEY = "C" * 42 + "Q"

# -- strategies, one per field kind --------------------------------------------------------------------

names = st.text(
    alphabet=st.characters(codec="utf-8", categories=["L", "N", "P", "S"]), min_size=1, max_size=16
).filter(lambda name: not name.startswith("/"))
words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=20)
seconds = st.one_of(st.integers(0, 86_400), st.floats(0, 86_400, allow_nan=False))
participant_entries = st.builds(
    ParticipantEntry,
    name=names,
    role=st.sampled_from(ROLES),
    sharing=st.lists(st.sampled_from(MEDIA_KINDS), unique=True).map(tuple),
    forbidden=st.lists(st.sampled_from(PERMISSIONS), unique=True).map(tuple),
    key=st.none() | st.just(KEY),
)
track_entries = st.builds(
    TrackEntry,
    name=names,
    kind=st.sampled_from(MEDIA_KINDS),
    ssrc=st.integers(0, 0xFFFFFFFF),
    codec=st.sampled_from(sorted(set(CODECS.values()))),
)
KIND_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "int": st.integers(-(2**31), 2**31),
    "name": names,
    "text": st.text(alphabet=st.characters(codec="utf-8", categories=["L", "N", "Zs"]), min_size=1).filter(
        str.strip
    ),
    "role": st.sampled_from(ROLES),
    "permission": st.sampled_from(PERMISSIONS),
    "media_kind": st.sampled_from(MEDIA_KINDS),
    "codec": st.sampled_from(sorted(set(CODECS.values()))),
    "bool": st.booleans(),
    "true": st.just(True),
    "passcode": st.text(max_size=128),
    "e2ee_key": st.just(KEY),
    "number": seconds,
    "clock": st.one_of(st.integers(0, 2**33 - 1), st.floats(0, 2**33 - 1, allow_nan=False, exclude_max=True)),
    "port": st.integers(1, 65535),
    "count": st.integers(0, 2**53),
    "ssrc": st.integers(0, 0xFFFFFFFF),
    "ssrcs": st.lists(st.integers(0, 0xFFFFFFFF), max_size=3).map(tuple),
    "layers_list": st.lists(
        st.fixed_dictionaries(
            {
                "ssrc": st.integers(0, 0xFFFFFFFF),
                "width": st.integers(16, 7680),
                "height": st.integers(16, 4320),
                "bitrate": st.integers(10_000, 100_000_000),
            }
        ),
        min_size=1,
        max_size=3,
    ).map(tuple),
    "meeting": words,
    "server": words,
    "reason": words,
    "code": words,
    "error_message": st.text(alphabet=st.characters(codec="utf-8", categories=["L", "Zs"]), min_size=1),
    "id": st.integers(-(2**31), 2**31) | words,
    "waiting": st.lists(names, max_size=5).map(tuple),
    "permissions": st.lists(st.sampled_from(PERMISSIONS), unique=True).map(tuple),
    "participants": st.lists(participant_entries, max_size=4).map(tuple),
    "tracks": st.lists(track_entries, max_size=4).map(tuple),
    "services": st.dictionaries(words, st.lists(words, max_size=3).map(tuple), max_size=3),
    "urls": st.lists(words, max_size=3).map(tuple),
    "resume_token": st.from_regex(r"[A-Za-z0-9_-]{1,40}\.[A-Za-z0-9_-]{1,40}", fullmatch=True),
    "box": st.just("AAAA"),
    "relay": st.binary(min_size=1, max_size=16).map(bytes.hex),
    "call": st.text(alphabet="abc123", min_size=1, max_size=32),
    "call_key": st.just(CALL_KEY),
    "candidates": st.lists(st.just("10.0.0.1:4000") | st.just("[::1]:5000"), max_size=8).map(tuple),
    "path": st.sampled_from(("direct", "relayed")),
    "url": st.sampled_from(("tcp://10.0.0.2:7450", "zmq://[::1]:7452", "rtp://node-b.example:7454")),
    "fingerprint": st.just("SHA256:" + "K" * 42 + "="),
    "input_action": st.just("text"),  # the action's own needs are drawn in control_inputs below
    "input_text": st.text(min_size=1, max_size=256),
    "fraction": st.floats(0, 1),
    "button": st.integers(1, 3),
    "key": st.just("Return"),
    "steps": st.integers(-100, 100),
    "position": st.integers(1, 100),
    "emoji": st.sampled_from(REACTION_EMOJI),
    "question": words,
    "options": st.lists(words, min_size=2, max_size=10, unique=True).map(tuple),
    "choice": st.integers(1, 10),
    "counts": st.lists(st.integers(0, 100), max_size=10).map(tuple),
    "votes": st.lists(st.builds(VoteEntry, name=names, choice=st.integers(1, 10)), max_size=4).map(tuple),
    "assignments": st.lists(st.builds(RoomEntry, name=names, room=st.integers(0, 20)), max_size=4).map(tuple),
    "rooms": st.integers(1, 20),
    "room": st.integers(0, 20),
}


def event_of(cls: type[Event]) -> st.SearchStrategy[Event]:
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for spec in dataclasses.fields(cls):
        values = KIND_VALUES[spec.metadata["kind"]]
        fields[spec.name] = values if spec.default is dataclasses.MISSING else st.none() | values
    return st.builds(cls, **fields)


control_inputs = st.one_of(
    st.builds(ControlInput, sender=names, action=st.just("move"), x=st.floats(0, 1), y=st.floats(0, 1)),
    st.builds(ControlInput, sender=names, action=st.just("key"), key=st.just("a"), pressed=st.booleans()),
    st.builds(ControlInput, sender=names, action=st.just("text"), text=st.text(min_size=1, max_size=9)),
    st.builds(ControlInput, sender=names, action=st.just("scroll"), dy=st.integers(1, 100)),
)
any_event = st.one_of(
    *(event_of(cls) for cls in EVENT_TYPES.values() if cls is not ControlInput), control_inputs
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


# -- round trips and refusals ---------------------------------------------------------------------------


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(any_event)
def test_every_event_survives_a_round_trip_through_its_message(event: Event) -> None:
    message = event.to_message()
    assert message["type"] == event.TYPE
    assert parse_event(message) == event
    assert parse_event(json.loads(encode(message))) == event  # as the wire carries it


@settings(max_examples=400)
@given(st.sampled_from(sorted(EVENT_TYPES)), st.dictionaries(st.text(max_size=12), json_values, max_size=8))
def test_a_malformed_message_raises_protocol_error_and_nothing_else(
    kind: str, fields: dict[str, Any]
) -> None:
    try:
        event = parse_event({**fields, "type": kind})
    except ProtocolError:
        return
    assert isinstance(event, EVENT_TYPES[kind])


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(any_event, st.data())
def test_one_field_changed_is_refused_with_protocol_error_or_parsed(
    event: Event, data: st.DataObject
) -> None:
    message = event.to_message()
    key = data.draw(st.sampled_from(sorted(message)))
    message[key] = data.draw(json_values)
    try:
        parsed = parse_event(message)
    except ProtocolError:
        return
    assert isinstance(parsed, type(event))


def test_the_errors_say_which_field_is_wrong() -> None:
    joined = {"type": "participant_joined", "name": "Ada"}
    with pytest.raises(ProtocolError, match=r"^participant_joined: missing field 'role'$"):
        parse_event(joined)
    with pytest.raises(ProtocolError, match=r"^participant_joined.role must be one of host, admin, member$"):
        parse_event({**joined, "role": "owner"})
    with pytest.raises(ProtocolError, match=r"^share_started.ssrc must be an integer from 0 to 4294967295$"):
        parse_event({"type": "share_started", "name": "Ada", "kind": "video", "ssrc": -1, "codec": "H264"})
    with pytest.raises(ProtocolError, match=r"^chat.from must be printable with no leading"):
        parse_event({"type": "chat", "from": "Ada\x1b[2J", "text": "hi", "private": False})
    redirect = {"type": "redirect", "re": "join", "node": "b", "url": "tcp://10.0.0.2:7450"}
    with pytest.raises(ProtocolError, match=r"^redirect.url must be a URL"):
        parse_event({**redirect, "url": "10.0.0.2:7450"})
    with pytest.raises(ProtocolError, match=r"^redirect.fingerprint must be a key fingerprint"):
        parse_event({**redirect, "fingerprint": "MD5:abc"})
    with pytest.raises(ProtocolError, match=r"^unknown event type 'nonsense'$"):
        parse_event({"type": "nonsense"})
    with pytest.raises(ProtocolError, match=r"^control_input: a 'move' action needs 'x'$"):
        parse_event({"type": "control_input", "from": "Ada", "action": "move"})


def test_the_event_bounds_are_the_meetings() -> None:
    assert events.MAX_PARTICIPANT_ENTRIES == MAX_PARTICIPANTS
    assert events.MAX_WAITING_ENTRIES == MAX_WAITING


def test_the_attribute_for_a_keyword_field_keeps_its_wire_name() -> None:
    chat = parse_event({"type": "chat", "from": "Ada", "text": "hi", "private": True, "to": "Bob"})
    assert chat == events.Chat(sender="Ada", text="hi", private=True, to="Bob")
    assert chat.to_message() == {"type": "chat", "from": "Ada", "text": "hi", "private": True, "to": "Bob"}


# -- every message the server sends today is an event, and to_message gives it back -------------------


@pytest.fixture(autouse=True, scope="module")
def cheap_scrypt() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(passcode_module, "_SCRYPT", {"n": 2, "r": 1, "p": 1})
        yield


class Server:
    """A hub with calls, driven request by request; it keeps every message it sends."""

    def __init__(self) -> None:
        numbers = count(1)
        calls = CallBoard(new_id=lambda: f"c{next(numbers)}", stun_port=3478)
        self.hub = Hub(
            new_id=lambda: "k7m-q2xw-9fd",
            new_passcode=lambda: "sesame",
            calls=calls,
            services={"web": ["http://127.0.0.1:8080/"]},
            resume_key=ResumeKey.from_identity(bytes(32)),  # resume_token, to each who enters
            wall_clock=lambda: 1_800_000_000.0,
        )
        self.sent: list[dict[str, Any]] = []

    def send(self, cid: int, message: dict[str, Any], now: float = 0.0) -> None:
        self._settle(self.hub.received(cid, encode(message), now), now)

    def _settle(self, actions: list[Any], now: float) -> None:
        for action in actions:
            if isinstance(action, Deferred):
                self._settle(action.resume(action.work(), now), now)
            elif isinstance(action, Send):
                self.sent.append(action.message)

    def greet(self, cid: int) -> None:
        self.hub.connected(cid, 0.0, f"10.0.0.{cid}")
        self.send(cid, {"type": "hello", "protocol": PROTOCOL_VERSION})


def test_every_message_the_server_sends_parses_and_comes_back_unchanged() -> None:
    server = Server()
    for cid in (1, 2, 3, 4):
        server.greet(cid)
    server.send(1, {"type": "ping"})
    server.send(1, {"type": "create", "name": "Ada", "e2ee": True, "e2ee_key": KEY, "waiting_room": True})
    server.send(
        2, {"type": "join", "meeting": "k7m-q2xw-9fd", "name": "Bob", "passcode": "sesame", "e2ee_key": KEY}
    )
    server.send(1, {"type": "admit", "name": "Bob"})
    server.send(
        3, {"type": "join", "meeting": "k7m-q2xw-9fd", "name": "Cy", "passcode": "sesame", "e2ee_key": KEY}
    )
    server.send(1, {"type": "deny", "name": "Cy"})
    server.send(
        4, {"type": "join", "meeting": "k7m-q2xw-9fd", "name": "Di", "passcode": "sesame", "e2ee_key": KEY}
    )
    server.send(1, {"type": "set_role", "name": "Bob", "role": "admin"})
    server.send(1, {"type": "set_waiting_room", "enabled": False})
    server.greet(5)  # a recorder in an E2EE meeting waits for the host even without a waiting room
    recorder = {"type": "join", "meeting": "k7m-q2xw-9fd", "name": "Rec (recorder)", "passcode": "sesame"}
    server.send(5, {**recorder, "e2ee_key": KEY, "recorder": True})
    server.send(1, {"type": "admit", "name": "Rec (recorder)"})
    server.send(1, {"type": "forbid", "what": "record"})
    server.send(2, {"type": "who", "id": 7})
    server.send(2, {"type": "publish", "kind": "video", "ssrc": 1234, "codec": "h264"})
    server.send(1, {"type": "publish", "kind": "audio", "ssrc": 99, "codec": "opus"})
    meeting = server.hub.meeting_of(1)
    assert meeting is not None
    for step in range(20):  # Ada speaks: her levels make her the active speaker
        server._settle(server.hub.audio_level(1, meeting.tracks[99], 10, step * 0.02), step * 0.02)
    server.send(1, {"type": "forbid", "what": "audio", "name": "Ada"})  # the host: refused
    server.send(2, {"type": "forbid", "what": "audio"})
    server.send(2, {"type": "unpublish", "kind": "video"})
    server.send(1, {"type": "chat", "text": "hello"})
    server.send(1, {"type": "chat", "text": "psst", "to": "Bob"})
    server.send(1, {"type": "e2ee_keys", "keys": [{"to": "Bob", "box": "AAAA"}]})
    server.send(1, {"type": "lock"})
    server.send(2, {"type": "control_request", "name": "Ada"})
    server.send(1, {"type": "control_accept"})
    server.send(2, {"type": "control_input", "action": "move", "x": 0.5, "y": 0.25})
    server.send(1, {"type": "control_revoke"})
    server.send(1, {"type": "control_request", "name": "Bob"})
    server.send(2, {"type": "control_reject"})
    server.send(1, {"type": "call", "to": "Bob", "commitment": CALL_KEY, "candidates": ["10.0.0.1:4000"]})
    call = next(m["call"] for m in server.sent if m["type"] == "call_ringing")
    server.send(2, {"type": "call_accept", "call": call, "key": CALL_KEY, "candidates": ["10.0.1.1:5000"]})
    server.send(1, {"type": "call_reveal", "call": call, "key": CALL_KEY})
    server.send(4, {"type": "call", "to": "Bob", "commitment": CALL_KEY, "candidates": []})  # busy
    server.send(2, {"type": "call_connected", "call": call})
    server.send(1, {"type": "call_path", "call": call, "path": "direct"})
    server.send(1, {"type": "call_hangup", "call": call})
    server.send(1, {"type": "kick", "name": "Di"})
    server.send(1, {"type": "unban", "name": "Di"})
    server.send(2, {"type": "leave"})
    server.send(1, {"type": "end"})
    # In the meeting: hands, reactions, polls, breakout rooms, spotlight, renames, asks to unmute.
    for cid in (5, 6):
        server.greet(cid)
    server.send(5, {"type": "create", "name": "Eve"})
    server.send(6, {"type": "join", "meeting": "k7m-q2xw-9fd", "name": "Fay", "passcode": "sesame"})
    server.send(6, {"type": "hand"})
    server.send(5, {"type": "lower_hand", "name": "Fay"})
    server.send(6, {"type": "react", "emoji": "🎉"})
    server.send(5, {"type": "ask_unmute", "name": "Fay"})
    server.send(5, {"type": "poll_start", "question": "Lunch?", "options": ["Pizza", "Soup"], "named": True})
    server.send(6, {"type": "vote", "choice": 2})
    server.send(5, {"type": "poll_close"})
    server.send(6, {"type": "publish", "kind": "audio", "ssrc": 77, "codec": "opus"})
    layers = [
        {"ssrc": 501, "width": 320, "height": 180, "bitrate": 120_000},
        {"ssrc": 500, "width": 1280, "height": 720, "bitrate": 1_200_000},
    ]
    server.send(5, {"type": "publish", "kind": "video", "ssrc": 500, "codec": "H264", "layers": layers})
    server.send(6, {"type": "receive", "max_bitrate": 300_000})  # dynacast: layers_active to Eve
    keyframe = bytes(RtpPacket(96, 1, 0, 501, b"\x65idr"))
    routed = server.hub.route(5, keyframe, 0.0)  # Fay switches to the low layer ...
    server._settle(list(routed.actions), 0.0)  # ... and is told: layer_switched
    server.send(5, {"type": "breakout_create", "rooms": 2})
    server.send(5, {"type": "breakout_assign", "name": "Fay", "room": 1})
    server.send(5, {"type": "breakout_open", "minutes": 5})
    server.send(5, {"type": "breakout_broadcast", "text": "time"})
    server.send(5, {"type": "breakout_close"})
    server.send(5, {"type": "spotlight", "name": "Fay"})
    server.send(5, {"type": "rename", "name": "Fay", "new_name": "Faye"})
    server.send(3, {"type": "online", "name": "Cy"})
    server.send(3, {"type": "offline"})
    server.send(3, {"type": "nonsense"})

    seen = set()
    for message in server.sent:
        event = parse_event(message)
        assert event.to_message() == message
        assert list(event.to_message()) == list(message)  # in the server's order
        seen.add(message["type"])
    missing = set(EVENT_TYPES) - seen
    assert missing == {"logged_in", "redirect"}  # a login needs accounts, a redirect a cluster (both in
    # tests/server/test_server_events.py)
    assert isinstance(next(parse_event(m) for m in server.sent if m["type"] == "joined"), Joined)
