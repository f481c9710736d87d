"""Control messages: encoding, decoding and the schema of every client message."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conf_cli.errors import ProtocolError
from conf_cli.protocol.control import (
    CONTROL_CHARS,
    MAX_CHAT_CHARS,
    MAX_CONTROL_BYTES,
    MAX_ID_CHARS,
    MAX_NAME_BYTES,
    MAX_NAME_CHARS,
    MAX_PASSCODE_CHARS,
    PERMISSIONS,
    ROLES,
    check_name,
    client_message_types,
    decode_any,
    decode_client_message,
    encode,
    json_bytes,
)

KEY = "A" * 43 + "="  # a 32-byte X25519 public key in base64 (E2EE meetings)
CALL_KEY = "A" * 42 + "Q"  # 32 bytes of unpadded base64url (calls)

# One valid example of every client message, with every optional field.
VALID: dict[str, dict[str, Any]] = {
    "hello": {"type": "hello", "protocol": 1, "client": "conf/0.1.0"},
    "ping": {"type": "ping"},
    "pong": {"type": "pong"},
    "login": {"type": "login", "user": "Ada", "password": "correct horse"},
    "create": {
        "type": "create",
        "name": "Ada",
        "passcode": "sesame",
        "e2ee": True,
        "e2ee_key": KEY,
        "waiting_room": True,
    },
    "join": {"type": "join", "meeting": "abc-defg-hjk", "name": "Bob", "passcode": "sesame", "e2ee_key": KEY},
    "resume": {"type": "resume", "token": "eyJ2IjoxfQ.c2lnbmF0dXJl", "e2ee_key": KEY},
    "leave": {"type": "leave"},
    "who": {"type": "who"},
    "chat": {"type": "chat", "text": "hello", "to": "Ada"},
    "set_role": {"type": "set_role", "name": "Bob", "role": "admin"},
    "forbid": {"type": "forbid", "what": "screen", "name": "Bob"},
    "permit": {"type": "permit", "what": "screen", "name": "Bob"},
    "kick": {"type": "kick", "name": "Bob"},
    "unban": {"type": "unban", "name": "Bob"},
    "lock": {"type": "lock"},
    "unlock": {"type": "unlock"},
    "end": {"type": "end"},
    "publish": {"type": "publish", "kind": "video", "ssrc": 1234, "codec": "h264"},
    "receive": {"type": "receive", "max_bitrate": 300_000},
    "downlink": {"type": "downlink", "bitrate": 350_000},
    "unpublish": {"type": "unpublish", "kind": "video"},
    "e2ee_keys": {"type": "e2ee_keys", "keys": [{"to": "Bob", "box": "c2VhbGVk"}]},
    "control_request": {"type": "control_request", "name": "Ada"},
    "control_accept": {"type": "control_accept", "name": "Bob"},
    "control_reject": {"type": "control_reject", "name": "Bob"},
    "control_revoke": {"type": "control_revoke"},
    "control_input": {
        "type": "control_input",
        "action": "button",
        "x": 0.25,
        "y": 1,
        "button": 1,
        "pressed": True,
    },
    "admit": {"type": "admit", "name": "Bob", "all": False},
    "deny": {"type": "deny", "name": "Bob"},
    "set_waiting_room": {"type": "set_waiting_room", "enabled": True},
    "online": {"type": "online", "name": "Ada"},
    "offline": {"type": "offline"},
    "call": {
        "type": "call",
        "to": "Bob",
        "commitment": CALL_KEY,
        "candidates": ["10.0.0.2:4000", "[::1]:5"],
        "timeout": 30,
    },
    "call_accept": {"type": "call_accept", "call": "a1b2", "key": CALL_KEY, "candidates": []},
    "call_reveal": {"type": "call_reveal", "call": "a1b2", "key": CALL_KEY},
    "call_decline": {"type": "call_decline", "call": "a1b2"},
    "call_connected": {"type": "call_connected", "call": "a1b2"},
    "call_path": {"type": "call_path", "call": "a1b2", "path": "relayed"},
    "call_hangup": {"type": "call_hangup", "call": "a1b2"},
    "hand": {"type": "hand", "raised": True},
    "lower_hand": {"type": "lower_hand", "name": "Bob", "all": False},
    "react": {"type": "react", "emoji": "❤️"},
    "poll_start": {"type": "poll_start", "question": "Lunch?", "options": ["Pizza", "Soup"], "named": True},
    "vote": {"type": "vote", "choice": 10, "poll": 3},
    "poll_close": {"type": "poll_close"},
    "breakout_create": {"type": "breakout_create", "rooms": 20},
    "breakout_assign": {"type": "breakout_assign", "name": "Bob", "room": 0},
    "breakout_shuffle": {"type": "breakout_shuffle"},
    "breakout_open": {"type": "breakout_open", "minutes": 240},
    "breakout_visit": {"type": "breakout_visit", "room": 1},
    "breakout_broadcast": {"type": "breakout_broadcast", "text": "five minutes left"},
    "breakout_close": {"type": "breakout_close"},
    "spotlight": {"type": "spotlight", "name": "Bob"},
    "rename": {"type": "rename", "name": "Bob", "new_name": "Robert"},
    "ask_unmute": {"type": "ask_unmute", "name": "Bob"},
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "hello": ("protocol",),
    "create": ("name",),
    "join": ("meeting", "name"),
    "resume": ("token",),
    "chat": ("text",),
    "set_role": ("name", "role"),
    "forbid": ("what",),
    "permit": ("what",),
    "kick": ("name",),
    "unban": ("name",),
    "downlink": ("bitrate",),
    "publish": ("kind", "ssrc", "codec"),
    "unpublish": ("kind",),
    "e2ee_keys": ("keys",),
    "control_request": ("name",),
    "control_input": ("action",),
    "login": ("user", "password"),
    "deny": ("name",),
    "set_waiting_room": ("enabled",),
    "online": ("name",),
    "call": ("to", "commitment", "candidates"),
    "call_accept": ("call", "key", "candidates"),
    "call_reveal": ("call", "key"),
    "call_decline": ("call",),
    "call_connected": ("call",),
    "call_path": ("call", "path"),
    "call_hangup": ("call",),
    "react": ("emoji",),
    "poll_start": ("question", "options"),
    "vote": ("choice",),
    "breakout_create": ("rooms",),
    "breakout_assign": ("name", "room"),
    "breakout_visit": ("room",),
    "breakout_broadcast": ("text",),
    "rename": ("name", "new_name"),
    "ask_unmute": ("name",),
}


def raw(message: Any) -> bytes:
    """Bytes of any JSON value, lone surrogates and all (escaped, as JSON allows)."""
    return json.dumps(message).encode()


def refused(data: bytes, decode=decode_client_message) -> str:
    with pytest.raises(ProtocolError) as info:
        decode(data)
    return str(info.value)


def with_field(kind: str, field: str, value: Any) -> bytes:
    return raw({**VALID[kind], field: value})


# -- encode -------------------------------------------------------------------------------------------


def test_encode_is_compact_utf8_json():
    assert encode({"type": "chat", "from": "Zoë", "text": "日本 ✓"}) == (
        '{"type":"chat","from":"Zoë","text":"日本 ✓"}'.encode()
    )


def test_encode_refuses_more_than_one_frame():
    filler = "x" * (MAX_CONTROL_BYTES - len(encode({"type": "chat", "text": ""})))
    assert len(encode({"type": "chat", "text": filler})) == MAX_CONTROL_BYTES
    with pytest.raises(ProtocolError) as info:
        encode({"type": "chat", "text": filler + "x"})
    assert str(info.value) == f"control message of {MAX_CONTROL_BYTES + 1} bytes exceeds {MAX_CONTROL_BYTES}"


def test_encode_counts_bytes_not_characters():
    with pytest.raises(ProtocolError):
        encode({"type": "chat", "text": "é" * (MAX_CONTROL_BYTES // 2)})


def test_encode_refuses_text_utf8_cannot_carry():
    with pytest.raises(ProtocolError) as info:
        encode({"type": "chat", "text": "half \ud83d"})
    assert str(info.value).startswith("control message is not valid Unicode")


@pytest.mark.parametrize("message", list(VALID.values()), ids=list(VALID))
def test_encode_then_decode_round_trips(message):
    assert decode_client_message(encode(message)) == message
    assert decode_any(encode(message)) == message


# -- decode_any ---------------------------------------------------------------------------------------


def test_decode_any_accepts_any_object_with_a_string_type():
    assert decode_any(b'{"type": "welcome", "extra": [1, {"a": null}]}') == {
        "type": "welcome",
        "extra": [1, {"a": None}],
    }
    assert decode_any(b'  {"type":""}\n') == {"type": ""}


def test_decode_refuses_oversize_input_before_parsing():
    data = b"{" + b" " * MAX_CONTROL_BYTES + b"}"
    message = f"control message of {MAX_CONTROL_BYTES + 2} bytes exceeds {MAX_CONTROL_BYTES}"
    assert refused(data, decode_any) == message
    assert refused(data) == message


def test_decode_accepts_exactly_one_frame():
    bare = raw({"type": "ping", "pad": ""})
    data = raw({"type": "ping", "pad": "x" * (MAX_CONTROL_BYTES - len(bare))})
    assert len(data) == MAX_CONTROL_BYTES
    assert decode_client_message(data)["type"] == "ping"


@pytest.mark.parametrize(
    "data",
    [b"\xff", b'{"type": "ping\xc3"}', b'{"type": "\xed\xa0\x80"}', b"\xc0\xaf", b'{"type": "pi\x80ng"}'],
)
def test_decode_refuses_invalid_utf8(data):
    assert refused(data, decode_any).startswith(
        "control message is not UTF-8 JSON: 'utf-8' codec can't decode"
    )


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b"{'type': 'ping'}", b'{"type": "ping",}', b"nul", b'{"type": "ping"} {}', b"\xef\xbb\xbf{}"],
)
def test_decode_refuses_invalid_json(data):
    assert refused(data, decode_any).startswith("control message is not UTF-8 JSON: ")


@pytest.mark.parametrize("data", [b"[]", b'["type", "ping"]', b"1", b'"ping"', b"null", b"true", b"1.5"])
def test_decode_refuses_json_that_is_not_an_object(data):
    assert refused(data, decode_any) == "control message is not a JSON object"


@pytest.mark.parametrize(
    "data", [b"{}", b'{"kind": "ping"}', b'{"type": 1}', b'{"type": null}', b'{"type": ["ping"]}']
)
def test_decode_refuses_objects_without_a_string_type(data):
    assert refused(data, decode_any) == "control message has no string 'type'"


@pytest.mark.parametrize("opening", [b"[", b'{"a":'])
def test_decode_refuses_deep_nesting(opening):
    depth = MAX_CONTROL_BYTES // len(opening) - 1
    assert refused(opening * depth, decode_any) == "control message is nested too deeply"


def test_decode_refuses_numbers_too_long_to_convert():
    data = b'{"type": "ping", "n": ' + b"9" * 5_000 + b"}"
    assert refused(data, decode_any).startswith("control message is not UTF-8 JSON: Exceeds the limit")
    assert refused(raw({"type": "hello", "protocol": 1}).replace(b"1", b"1" * 5_000)).startswith(
        "control message is not UTF-8 JSON"
    )


# -- the client schema --------------------------------------------------------------------------------


def test_every_client_message_type_is_covered_here():
    assert set(VALID) == set(client_message_types())
    assert set(REQUIRED) <= set(VALID)


@pytest.mark.parametrize("kind", sorted(set(VALID) - {"control_input"}))  # its needs depend on its action
def test_minimal_messages_are_accepted(kind):
    minimal = {
        field: value
        for field, value in VALID[kind].items()
        if field == "type" or field in REQUIRED.get(kind, ())
    }
    assert decode_client_message(raw(minimal)) == minimal


def test_unknown_fields_are_kept():
    message = {"type": "chat", "text": "hi", "x-client": {"colour": "blue"}}
    assert decode_client_message(raw(message)) == message


@pytest.mark.parametrize(("kind", "field"), [(k, f) for k, fields in REQUIRED.items() for f in fields])
def test_missing_required_fields_are_refused(kind, field):
    message = {k: v for k, v in VALID[kind].items() if k != field}
    assert refused(raw(message)) == f"{kind}: missing field {field!r}"
    assert refused(with_field(kind, field, None)) == f"{kind}: missing field {field!r}"


@pytest.mark.parametrize(
    ("kind", "field"),
    [("hello", "client"), ("create", "passcode"), ("join", "passcode"), ("chat", "to"), ("forbid", "name")],
)
def test_optional_fields_may_be_null(kind, field):
    assert decode_client_message(with_field(kind, field, None))[field] is None


def test_unknown_type_is_refused_and_quoted_short():
    assert refused(raw({"type": "teleport"})) == "unknown message type 'teleport'"
    assert refused(raw({"type": "welcome"})) == "unknown message type 'welcome'"
    long_type = "x" * 1_000
    assert refused(raw({"type": long_type})) == f"unknown message type {'x' * 40!r}"


@pytest.mark.parametrize("value", ["1", 1.0, True, False, [1], {"v": 1}])
def test_int_fields(value):
    assert refused(with_field("hello", "protocol", value)) == "hello.protocol must be an integer"


@pytest.mark.parametrize("value", [0, -1, 2**40])
def test_int_fields_take_any_integer(value):
    assert decode_client_message(with_field("hello", "protocol", value))["protocol"] == value


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        ("hello", "client"),
        ("join", "meeting"),
        ("create", "name"),
        ("chat", "text"),
        ("chat", "to"),
        ("create", "passcode"),
        ("set_role", "role"),
        ("forbid", "what"),
    ],
)
@pytest.mark.parametrize("value", [1, 1.5, True, [], {}])
def test_string_fields_refuse_other_types(kind, field, value):
    assert refused(with_field(kind, field, value)) == f"{kind}.{field} must be a string"


@pytest.mark.parametrize(("kind", "field"), [("hello", "client"), ("join", "meeting")])
def test_plain_string_fields_are_bounded(kind, field):
    assert decode_client_message(with_field(kind, field, "x" * 256))[field] == "x" * 256
    assert refused(with_field(kind, field, "x" * 257)) == f"{kind}.{field} is longer than 256 characters"


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        ("hello", "client"),
        ("join", "meeting"),
        ("create", "name"),
        ("chat", "text"),
        ("chat", "to"),
        ("join", "passcode"),
    ],
)
@pytest.mark.parametrize("value", ["\ud800", "a\udfffb", "\ud83d half an emoji"])
def test_string_fields_refuse_lone_surrogates(kind, field, value):
    assert refused(with_field(kind, field, value)) == (
        f"{kind}.{field} is not valid Unicode text (it holds a lone surrogate)"
    )


def test_surrogate_pairs_written_as_escapes_are_fine():
    assert decode_client_message(b'{"type": "chat", "text": "\\ud83d\\ude00"}')["text"] == "😀"


TOO_MANY_BYTES = "is too long: at most 64 bytes of UTF-8 ('\"' and '\\' count two)"


@pytest.mark.parametrize(
    "name",
    [
        "A",
        "Ada Lovelace",
        "x" * MAX_NAME_CHARS,
        "Zoë",
        "李雷",
        "O'Brien",
        "a/b",
        "🦊" * (MAX_NAME_BYTES // 4),
        "é" * (MAX_NAME_BYTES // 2),
        '"' * (MAX_NAME_BYTES // 2),
    ],
)
def test_good_names(name):
    assert decode_client_message(with_field("create", "name", name))["name"] == name
    check_name(name)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "must be 1 to 64 characters"),
        ("x" * (MAX_NAME_CHARS + 1), "must be 1 to 64 characters"),
        (" Ada", "must be printable with no leading or trailing spaces"),
        ("Ada ", "must be printable with no leading or trailing spaces"),
        ("Ada\tL", "must be printable with no leading or trailing spaces"),
        ("Ada\nL", "must be printable with no leading or trailing spaces"),
        ("Ada\x00", "must be printable with no leading or trailing spaces"),
        ("Ada\u200bL", "must be printable with no leading or trailing spaces"),
        ("\u3000Ada", "must be printable with no leading or trailing spaces"),
        ("/Ada", "must not start with '/'"),
        ("/", "must not start with '/'"),
        ("Ada\x1b]52;c;ZXZpbA==\x07", "must be printable with no leading or trailing spaces"),
        ("Ada\x9b2J", "must be printable with no leading or trailing spaces"),
        ("🦊" * (MAX_NAME_BYTES // 4 + 1), TOO_MANY_BYTES),
        ("é" * (MAX_NAME_BYTES // 2 + 1), TOO_MANY_BYTES),
        ('"' * (MAX_NAME_BYTES // 2 + 1), TOO_MANY_BYTES),
        ("\\" * (MAX_NAME_BYTES // 2 + 1), TOO_MANY_BYTES),
    ],
)
def test_bad_names(name, why):
    for kind, field in [
        ("create", "name"),
        ("join", "name"),
        ("chat", "to"),
        ("kick", "name"),
        ("forbid", "name"),
    ]:
        assert refused(with_field(kind, field, name)) == f"{kind}.{field} {why}"
    with pytest.raises(ProtocolError) as info:
        check_name(name)
    assert str(info.value) == f"name {why}"


def test_chat_text_bounds():
    assert (
        decode_client_message(with_field("chat", "text", "x" * MAX_CHAT_CHARS))["text"]
        == "x" * MAX_CHAT_CHARS
    )
    assert decode_client_message(with_field("chat", "text", "  padded "))["text"] == "  padded "
    assert (
        refused(with_field("chat", "text", "x" * (MAX_CHAT_CHARS + 1)))
        == "chat.text is longer than 4000 characters"
    )
    for blank in ("", " ", "\n\t "):
        assert refused(with_field("chat", "text", blank)) == "chat.text is empty"


@pytest.mark.parametrize("kind", ["create", "join"])
def test_passcode_bounds(kind):
    for value in ("", "x", "x" * MAX_PASSCODE_CHARS, " spaced out ", "pässwörd"):
        assert decode_client_message(with_field(kind, "passcode", value))["passcode"] == value
    too_long = with_field(kind, "passcode", "x" * (MAX_PASSCODE_CHARS + 1))
    assert refused(too_long) == f"{kind}.passcode is longer than 128 characters"


@pytest.mark.parametrize("role", ROLES)
def test_roles(role):
    assert decode_client_message(with_field("set_role", "role", role))["role"] == role


@pytest.mark.parametrize("role", ["owner", "Admin", "", "host "])
def test_unknown_roles(role):
    assert refused(with_field("set_role", "role", role)) == "set_role.role must be one of host, admin, member"


@pytest.mark.parametrize("kind", ["forbid", "permit"])
def test_permissions(kind):
    for what in PERMISSIONS:
        assert decode_client_message(with_field(kind, "what", what))["what"] == what
    for what in ("microphone", "Chat", "", "all"):
        assert refused(with_field(kind, "what", what)) == (
            f"{kind}.what must be one of audio, video, screen, control, chat, record"
        )


@pytest.mark.parametrize("kind", sorted(VALID))
@pytest.mark.parametrize("request_id", [0, -5, 2**53, "", "req-1", "x" * MAX_ID_CHARS, "日本"])
def test_any_request_may_carry_an_id(kind, request_id):
    assert decode_client_message(with_field(kind, "id", request_id))["id"] == request_id


@pytest.mark.parametrize("request_id", [True, 1.5, [], {}, "x" * (MAX_ID_CHARS + 1)])
def test_ids_must_be_integers_or_short_strings(request_id):
    assert refused(with_field("who", "id", request_id)) == (
        "who.id must be an integer or a string of at most 64 characters"
    )


# -- properties ---------------------------------------------------------------------------------------

# Text with lone surrogates too: JSON escapes can carry them.
any_text = st.lists(st.characters() | st.sampled_from("\ud800\udbff\udc00\udfff"), max_size=20).map("".join)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=20,
)
# Objects that look like requests: a real type and fields with real names but any values.
request_like = st.builds(
    lambda kind, fields: {**fields, "type": kind},
    st.sampled_from(client_message_types()),
    st.dictionaries(
        st.sampled_from(sorted({f for m in VALID.values() for f in m} - {"type"} | {"id"})),
        json_values | st.sampled_from(["Ada", "admin", "chat", "video", 1, "x" * 300]),
    ),
)


def _strings_in(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings_in(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings_in(item)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_protocol_error(data):
    for decode in (decode_any, decode_client_message):
        try:
            message = decode(data)
        except ProtocolError:
            continue
        assert isinstance(message, dict) and isinstance(message["type"], str)


@given(json_values)
def test_arbitrary_json_values_raise_only_protocol_error(value):
    try:
        message = decode_client_message(raw(value))
    except ProtocolError:
        return
    assert isinstance(value, dict)
    assert message["type"] in client_message_types()


@given(request_like)
def test_accepted_requests_can_be_relayed(message):
    try:
        accepted = decode_client_message(raw(message))
    except ProtocolError:
        return
    assert accepted["type"] in client_message_types()
    # Whatever the server may quote back (the type, the id, any schema field) is valid UTF-8.
    for field, value in accepted.items():
        if field == "type" or field == "id" or field in VALID[accepted["type"]]:
            for text in _strings_in(value):
                text.encode()


@given(
    st.dictionaries(any_text, json_values, max_size=5).map(lambda d: {**d, "type": "x"})
    | st.dictionaries(st.text(), st.text(), max_size=5).map(lambda d: {**d, "type": "chat"})
)
def test_decode_any_round_trips_what_encode_accepts(message):
    try:
        data = encode(message)
    except ProtocolError:
        return
    decoded = decode_any(data)
    assert json.dumps(decoded, sort_keys=True) == json.dumps(message, sort_keys=True)


# -- end-to-end encryption -----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["", "A" * 44, "A" * 42 + "==", "!" * 43 + "=", 32])
def test_e2ee_keys_must_be_32_bytes_of_base64(key):
    assert "e2ee_key" in refused(with_field("join", "e2ee_key", key))


@pytest.mark.parametrize("value", [1, "yes", None])
def test_e2ee_flag_is_a_boolean(value):
    if value is None:
        assert decode_client_message(with_field("create", "e2ee", value))["e2ee"] is None
    else:
        assert refused(with_field("create", "e2ee", value)) == "create.e2ee must be true or false"


@pytest.mark.parametrize(
    ("keys", "why"),
    [
        ([], "must be a list of 1 to 100 sealed keys"),
        ("x", "must be a list of 1 to 100 sealed keys"),
        ([{"to": f"p{i}", "box": "eA=="} for i in range(101)], "must be a list of 1 to 100 sealed keys"),
        (["x"], "entries must be objects"),
        ([{"box": "eA=="}], "entries must be objects"),
        ([{"to": "", "box": "eA=="}], "e2ee_keys.keys.to must be 1 to 64 characters"),
        ([{"to": "Bob"}], "box must be base64"),
        ([{"to": "Bob", "box": "not base64!"}], "box must be base64"),
        ([{"to": "Bob", "box": "A" * 132}], "box must be base64 of at most 128"),
        ([{"to": "Bob", "box": "eA=="}, {"to": "BOB", "box": "eA=="}], "names 'BOB' twice"),
    ],
)
def test_sealed_key_lists_are_bounded(keys, why):
    assert why in refused(raw({"type": "e2ee_keys", "keys": keys}))


# -- control_input ------------------------------------------------------------------------------------


def input_event(**fields: Any) -> bytes:
    return raw({"type": "control_input", **fields})


@pytest.mark.parametrize(
    "fields",
    [
        {"action": "move", "x": 0, "y": 1.0},
        {"action": "button", "button": 3, "pressed": False},
        {"action": "scroll", "dy": -100, "x": 0.5, "y": 0.5},
        {"action": "scroll", "dx": 2},
        {"action": "key", "key": "left shift", "pressed": True},
        {"action": "text", "text": "héllo wörld\n"},
    ],
)
def test_input_events_of_every_action_are_accepted(fields):
    assert decode_client_message(input_event(**fields)) == {"type": "control_input", **fields}


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"action": "teleport"}, "control_input.action must be one of move, button, scroll, key, text"),
        ({"action": "move", "x": 0.5}, "control_input: a 'move' action needs 'y'"),
        ({"action": "move", "x": 1.01, "y": 0}, "control_input.x must be a number from 0 to 1"),
        ({"action": "move", "x": -0.1, "y": 0}, "control_input.x must be a number from 0 to 1"),
        ({"action": "move", "x": True, "y": 0}, "control_input.x must be a number from 0 to 1"),
        ({"action": "move", "x": "0.5", "y": 0}, "control_input.x must be a number from 0 to 1"),
        (
            {"action": "button", "button": 4, "pressed": True},
            "control_input.button must be a number from 1 to 3",
        ),
        (
            {"action": "button", "button": 1.0, "pressed": True},
            "control_input.button must be a number from 1 to 3",
        ),
        ({"action": "button", "button": 1, "pressed": 1}, "control_input.pressed must be true or false"),
        (
            {"action": "button", "button": 1, "pressed": True, "x": 0.5},
            "control_input: give both 'x' and 'y', or neither",
        ),
        ({"action": "scroll"}, "control_input: a 'scroll' action needs 'dx' or 'dy'"),
        ({"action": "scroll", "dy": 101}, "control_input.dy must be a number from -100 to 100"),
        ({"action": "key", "key": "a"}, "control_input: a 'key' action needs 'pressed'"),
        (
            {"action": "key", "key": "", "pressed": True},
            "control_input.key must be a key name of 1 to 32 printable characters",
        ),
        (
            {"action": "key", "key": "x" * 33, "pressed": True},
            "control_input.key must be a key name of 1 to 32 printable characters",
        ),
        (
            {"action": "key", "key": "\u0007", "pressed": True},
            "control_input.key must be a key name of 1 to 32 printable characters",
        ),
        ({"action": "text", "text": ""}, "control_input.text must be 1 to 256 characters"),
        ({"action": "text", "text": "x" * 257}, "control_input.text must be 1 to 256 characters"),
    ],
)
def test_bad_input_events_are_refused_with_the_reason(fields, why):
    assert refused(input_event(**fields)) == why


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (
            {**VALID["call"], "commitment": "short"},
            "call.commitment must be 43 characters of unpadded base64url (32 bytes)",
        ),
        (
            {**VALID["call_reveal"], "key": "+" * 43},
            "call_reveal.key must be 43 characters of unpadded base64url (32 bytes)",
        ),
        ({**VALID["call"], "candidates": "1.2.3.4:5"}, "call.candidates must be a list of at most 8"),
        ({**VALID["call"], "candidates": ["1.2.3.4:5"] * 9}, "call.candidates must be a list of at most 8"),
        (
            {**VALID["call"], "candidates": ["example.com:5"]},
            "call.candidates: 'example.com:5' is not IP:PORT",
        ),
        ({**VALID["call"], "candidates": ["1.2.3.4:0"]}, "call.candidates: '1.2.3.4:0' has no port 1..65535"),
        ({**VALID["call"], "candidates": [7]}, "call.candidates must hold HOST:PORT strings"),
        ({**VALID["call"], "timeout": 0}, "call.timeout must be 1 to 120 seconds"),
        ({**VALID["call_path"], "path": "sideways"}, "call_path.path must be one of direct, relayed"),
        (
            {**VALID["call_hangup"], "call": "x" * 33},
            "call_hangup.call must be 1 to 32 ASCII letters and digits",
        ),
        (
            {**VALID["call_hangup"], "call": "a-b"},
            "call_hangup.call must be 1 to 32 ASCII letters and digits",
        ),
    ],
)
def test_call_fields_are_bounded(message, error):
    assert refused(raw(message)).startswith(error)


# -- control characters, codecs and kinds (the security review: escape injection, snapshot size) -------

CONTROL = st.sampled_from([chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))])
SAFE_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=0, max_size=30
)  # Cc is exactly C0, DEL and C1; "x" + 30 + 1 + 30 characters fit every field, an id's 64 too
RELAYED_TEXT = [("chat", "text"), ("join", "meeting"), ("hello", "client"), ("chat", "id")]


@given(before=SAFE_TEXT, control=CONTROL, after=SAFE_TEXT)
def test_a_control_character_anywhere_in_relayed_text_is_refused_by_name(before, control, after):
    value = "x" + before + control + after
    for kind, field in RELAYED_TEXT:
        assert refused(with_field(kind, field, value)) == (
            f"{kind}.{field} holds the control character U+{ord(control):04X}; "
            "control characters (C0, DEL, C1) are not allowed"
        )


@given(text=SAFE_TEXT.filter(lambda t: t.strip()))
def test_text_without_control_characters_is_relayed_as_it_is(text):
    for kind, field in RELAYED_TEXT:
        assert decode_client_message(with_field(kind, field, text))[field] == text


@pytest.mark.parametrize(
    "attack",
    [
        "\x1b]52;c;ZXZpbCBjbGlwYm9hcmQ=\x07",  # OSC 52: write the clipboard
        "\x1b]0;pwned\x07",  # the window title
        "\x1b[2J\x1b[H",  # clear the screen
        "\x9b2J",  # the same with a C1 CSI
        "a\x7fb",
        "line\nfake: message",
    ],
)
def test_terminal_escapes_in_chat_are_refused(attack):
    assert "control characters (C0, DEL, C1) are not allowed" in refused(with_field("chat", "text", attack))


@given(name=st.text(min_size=1, max_size=MAX_NAME_CHARS))
def test_every_accepted_name_is_printable_and_fits_its_bytes(name):
    try:
        check_name(name)
    except ProtocolError:
        return
    assert name.isprintable() and not CONTROL_CHARS.search(name)
    assert len(encode({"n": name})) - len('{"n":""}') == json_bytes(name) <= MAX_NAME_BYTES


@pytest.mark.parametrize("codec", ["H264", "h264", "opus", "OPUS"])
def test_known_codecs_are_accepted(codec):
    assert decode_client_message(with_field("publish", "codec", codec))["codec"] == codec


@given(codec=st.text(max_size=300).filter(lambda c: c.casefold() not in ("h264", "opus")))
def test_any_other_codec_is_refused(codec):
    assert refused(with_field("publish", "codec", codec)) == "publish.codec must be one of H264, opus"


@pytest.mark.parametrize("kind", ["publish", "unpublish"])
def test_media_kinds_are_a_known_set(kind):
    assert decode_client_message(with_field(kind, "kind", "screen"))["kind"] == "screen"
    assert (
        refused(with_field(kind, "kind", "\x01" * 256)) == f"{kind}.kind must be one of audio, video, screen"
    )


# -- in the meeting: the bounds of reactions, polls and breakout rooms ----------------------------------


@pytest.mark.parametrize(
    ("kind", "field", "value", "error"),
    [
        ("react", "emoji", "🦊", "react.emoji must be one of 👍 👎 👏 🎉 ❤️ 😂 😮 🤔 🙏 👋 ✅ ❌"),
        ("react", "emoji", "❤", "react.emoji must be one of 👍 👎 👏 🎉 ❤️ 😂 😮 🤔 🙏 👋 ✅ ❌"),
        ("poll_start", "question", "", "poll_start.question must be 1 to 200 characters"),
        ("poll_start", "question", "?" * 201, "poll_start.question must be 1 to 200 characters"),
        ("poll_start", "options", ["one"], "poll_start.options must be a list of 2 to 10 options"),
        (
            "poll_start",
            "options",
            list("abcdefghijk"),
            "poll_start.options must be a list of 2 to 10 options",
        ),
        ("poll_start", "options", ["a", " "], "poll_start.options must hold strings of 1 to 80 characters"),
        (
            "poll_start",
            "options",
            ["a", "b" * 81],
            "poll_start.options must hold strings of 1 to 80 characters",
        ),
        ("poll_start", "options", ["a", 1], "poll_start.options must hold strings of 1 to 80 characters"),
        ("poll_start", "options", ["\uff21", "a"], "poll_start.options names one option twice"),
        ("vote", "choice", 0, "vote.choice must be a number from 1 to 10"),
        ("vote", "choice", True, "vote.choice must be a number from 1 to 10"),
        ("breakout_create", "rooms", 21, "breakout_create.rooms must be a number from 1 to 20"),
        ("breakout_assign", "room", -1, "breakout_assign.room must be a number from 0 to 20"),
        ("breakout_open", "minutes", 0, "breakout_open.minutes must be a number from 1 to 240"),
        ("breakout_open", "minutes", 1.5, "breakout_open.minutes must be a number from 1 to 240"),
    ],
)
def test_meeting_request_bounds(kind, field, value, error):
    assert refused(with_field(kind, field, value)) == error


@pytest.mark.parametrize("text", ["Q?\x1b[2J", "Q?\u009b"])
def test_poll_text_holds_no_control_characters(text):
    assert "control character" in refused(with_field("poll_start", "question", text))
    assert "control character" in refused(with_field("poll_start", "options", ["a", text]))


@pytest.mark.parametrize("token", ["", "no-dot", "a.b.c", "a.b\n", "x" * 1025 + ".y", "a b.c"])
def test_resume_takes_only_a_token_s_shape(token):
    assert "resume.token must be a resume token" in refused(raw({"type": "resume", "token": token}))
