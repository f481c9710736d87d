"""Control messages: JSON objects with a ``type``, validated against a schema.

This module is sans-I/O: ``encode`` turns a message into bytes, ``decode`` turns bytes into a validated
message or raises :class:`~conf_cli.errors.ProtocolError`. docs/protocol.md lists every message.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
import unicodedata
from typing import Any

from conf_cli.errors import ProtocolError

HEARTBEAT_INTERVAL = 2.0
"""Seconds between heartbeats each side sends when it has nothing else to say."""
HEARTBEAT_TIMEOUT = 6.0
"""Seconds of silence after which either side gives the link up."""

PROTOCOL_VERSION = 1
MAX_CONTROL_BYTES = 65_535  # one RFC 4571 frame
MAX_NAME_CHARS = 64
MAX_NAME_BYTES = 64  # a name's bytes in a JSON string (UTF-8; '"' and '\\' count two): bounds the snapshot
MAX_CHAT_CHARS = 4_000
MAX_PASSCODE_CHARS = 128
MAX_TOKEN_CHARS = 2048
"""An access token (a JSON Web Token: three base64url parts joined by dots) in ``join``."""
MAX_RESUME_TOKEN_CHARS = 1_024
"""A resume token (``resume``; docs/protocol.md, "Resuming"): base64url, a dot, base64url."""
MAX_PASSWORD_CHARS = 1_024
MAX_ID_CHARS = 64
MAX_KEY_BOXES = 100  # sealed keys in one e2ee_keys request: one per other participant
MAX_BOX_CHARS = 128  # one sealed SFrame key, base64
MAX_INPUT_TEXT_CHARS = 256  # text typed on a controlled desktop in one control_input
MAX_KEY_CHARS = 32
MAX_SCROLL_STEPS = 100
MAX_CANDIDATES = 8
MAX_CANDIDATE_CHARS = 64  # "HOST:PORT", HOST an IPv4 or IPv6 literal
KEY_CHARS = 43  # 32 bytes, unpadded URL-safe base64 (an X25519 public key)
MAX_CALL_ID_CHARS = 32
MAX_RING_TIMEOUT = 120
CALL_PATHS = ("direct", "relayed")
MAX_LAYERS = 3
"""Simulcast layers of one video track (``publish``'s ``layers``)."""
MIN_BITRATE = 10_000
MAX_BITRATE = 100_000_000
"""bit/s: the bounds of a layer's bit rate and of ``receive``'s ``max_bitrate``."""
MEDIA_KINDS = ("audio", "video", "screen")
CODECS = {"audio": "opus", "video": "H264", "screen": "H264"}
FEEDBACK_FORMATS = ("ccfb",)
"""What a publisher may ask the server for in ``publish``'s ``feedback``: RFC 8888 congestion control
feedback about its packets' arrival (:mod:`conf_cli.server.uplink`)."""
"""The codec of each kind of track: all a meeting carries (names compared case-insensitively)."""

MAX_POLL_QUESTION_CHARS = 200
MIN_POLL_OPTIONS = 2
MAX_POLL_OPTIONS = 10
MAX_POLL_OPTION_CHARS = 80
MAX_ROOMS = 20  # breakout rooms of one meeting
MAX_BREAKOUT_MINUTES = 240
REACTION_EMOJI = ("👍", "👎", "👏", "🎉", "❤️", "😂", "😮", "🤔", "🙏", "👋", "✅", "❌")
"""The reactions a ``react`` may carry: exactly these strings."""
REACTIONS = {
    "thumbsup": "👍",
    "+1": "👍",
    "thumbsdown": "👎",
    "-1": "👎",
    "clap": "👏",
    "tada": "🎉",
    "heart": "❤️",
    "laugh": "😂",
    "wow": "😮",
    "think": "🤔",
    "pray": "🙏",
    "wave": "👋",
    "yes": "✅",
    "no": "❌",
}
"""Names the conf client (and the web page) take for each reaction."""

Message = dict[str, Any]

# Field kinds: "int", "str" (up to 256 characters), "name" (see check_name), "text" (chat), "passcode",
# "token" (an access token, see MAX_TOKEN_CHARS), "resume_token" (see MAX_RESUME_TOKEN_CHARS),
# "media_kind" (one of MEDIA_KINDS), "codec" (one of CODECS' values), "feedback" (one of FEEDBACK_FORMATS),
# "role" (one of ROLES), "permission" (one of PERMISSIONS), "id" (an integer or a short string),
# "bool", "e2ee_key" (an X25519 public key: base64 of 32 bytes), "key_boxes" (sealed keys, see e2ee_keys),
# "password" (up to MAX_PASSWORD_CHARS); for control_input: "input_action" (one of INPUT_ACTIONS),
# "fraction" (a number 0..1), "button" (1..3), "key" (a key name), "input_text" (typed text),
# "steps" (wheel steps); for calls: "call_key" (an X25519 public key, or the SHA-256 commitment to one:
# 32 bytes as KEY_CHARS of base64url),
# "candidates" (a list of at most MAX_CANDIDATES "HOST:PORT" strings), "call" (a call ID), "path" (one of
# CALL_PATHS), "ring_timeout" (1..MAX_RING_TIMEOUT s); in the meeting: "emoji" (one of REACTION_EMOJI),
# "question" (a poll's), "options" (a poll's, see _check_options), "choice" (1..MAX_POLL_OPTIONS),
# "rooms" (1..MAX_ROOMS), "room" (0..MAX_ROOMS; 0 the main room), "minutes" (1..MAX_BREAKOUT_MINUTES)
_CLIENT_SCHEMA: dict[str, dict[str, tuple[str, bool]]] = {
    # type: {field: (kind, required)}
    "hello": {"protocol": ("int", True), "client": ("str", False)},
    "ping": {},
    "pong": {},
    "login": {"user": ("name", True), "password": ("password", True)},
    "create": {
        "name": ("name", True),
        "passcode": ("passcode", False),
        "e2ee": ("bool", False),
        "e2ee_key": ("e2ee_key", False),
        "waiting_room": ("bool", False),
    },
    "join": {
        "meeting": ("str", True),
        "name": ("name", True),
        "passcode": ("passcode", False),
        "e2ee_key": ("e2ee_key", False),
        "token": ("token", False),
        "recorder": ("bool", False),
    },
    "resume": {"token": ("resume_token", True), "e2ee_key": ("e2ee_key", False)},
    "leave": {},
    "who": {},
    "chat": {"text": ("text", True), "to": ("name", False)},
    "set_role": {"name": ("name", True), "role": ("role", True)},
    "forbid": {"what": ("permission", True), "name": ("name", False)},
    "permit": {"what": ("permission", True), "name": ("name", False)},
    "kick": {"name": ("name", True)},
    "unban": {"name": ("name", True)},
    "lock": {},
    "unlock": {},
    "end": {},
    "admit": {"name": ("name", False), "all": ("bool", False)},
    "deny": {"name": ("name", True)},
    "set_waiting_room": {"enabled": ("bool", True)},
    "publish": {
        "kind": ("media_kind", True),
        "ssrc": ("int", True),
        "codec": ("codec", True),
        "layers": ("layers", False),
        "feedback": ("feedback", False),
    },
    "receive": {"max_bitrate": ("bitrate", False), "max_height": ("height", False)},
    "downlink": {"bitrate": ("bitrate", True), "queued_ms": ("queued_ms", False)},
    "unpublish": {"kind": ("media_kind", True)},
    "e2ee_keys": {"keys": ("key_boxes", True)},
    "control_request": {"name": ("name", True)},
    "control_accept": {"name": ("name", False), "request": ("int", False)},
    "control_reject": {"name": ("name", False), "request": ("int", False)},
    "control_revoke": {},
    "control_input": {
        "action": ("input_action", True),
        "x": ("fraction", False),
        "y": ("fraction", False),
        "button": ("button", False),
        "pressed": ("bool", False),
        "key": ("key", False),
        "text": ("input_text", False),
        "dx": ("steps", False),
        "dy": ("steps", False),
    },
    # In the meeting (docs/protocol.md, "In the meeting"): hands, reactions, polls, breakout rooms ...
    "hand": {"raised": ("bool", False)},
    "lower_hand": {"name": ("name", False), "all": ("bool", False)},
    "react": {"emoji": ("emoji", True)},
    "poll_start": {"question": ("question", True), "options": ("options", True), "named": ("bool", False)},
    "vote": {"choice": ("choice", True), "poll": ("int", False)},
    "poll_close": {},
    "breakout_create": {"rooms": ("rooms", True)},
    "breakout_assign": {"name": ("name", True), "room": ("room", True)},
    "breakout_shuffle": {},
    "breakout_open": {"minutes": ("minutes", False)},
    "breakout_visit": {"room": ("room", True)},
    "breakout_broadcast": {"text": ("text", True)},
    "breakout_close": {},
    "spotlight": {"name": ("name", False)},
    "rename": {"name": ("name", True), "new_name": ("name", True)},
    "ask_unmute": {"name": ("name", True)},
    # One-to-one calls (docs/protocol.md, "Calls"): the server introduces two clients and relays if need be.
    "online": {"name": ("name", True)},
    "offline": {},
    "call": {
        "to": ("name", True),
        "commitment": ("call_key", True),
        "candidates": ("candidates", True),
        "timeout": ("ring_timeout", False),
    },
    "call_accept": {"call": ("call", True), "key": ("call_key", True), "candidates": ("candidates", True)},
    "call_reveal": {"call": ("call", True), "key": ("call_key", True)},
    "call_decline": {"call": ("call", True)},
    "call_connected": {"call": ("call", True)},
    "call_path": {"call": ("call", True), "path": ("path", True)},
    "call_hangup": {"call": ("call", True)},
}
# Any request may carry an ``id``, which the server echoes in its error reply.
_COMMON_FIELDS: dict[str, tuple[str, bool]] = {"id": ("id", False)}
# Lone UTF-16 surrogates, which JSON escapes can produce but UTF-8 cannot carry on.
SURROGATE = re.compile("[\ud800-\udfff]")
# C0 controls, DEL and C1 controls: a terminal acts on them (ESC starts OSC 52, title and screen sequences).
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_KEY = re.compile("[A-Za-z0-9_-]+")
_TOKEN = re.compile("[A-Za-z0-9_.-]+")
_RESUME_TOKEN = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")

ROLES = ("host", "admin", "member")
RECORDER_SUFFIX = " (recorder)"
"""How a recorder's name ends (``conf record``), so that everyone sees what it is."""
PERMISSIONS = ("audio", "video", "screen", "control", "chat", "record")
INPUT_ACTIONS = ("move", "button", "scroll", "key", "text")
# The fields each control_input action needs besides ``action``.
INPUT_NEEDS: dict[str, tuple[str, ...]] = {
    "move": ("x", "y"),
    "button": ("button", "pressed"),
    "scroll": (),
    "key": ("key", "pressed"),
    "text": ("text",),
}
INPUT_FIELDS = ("action", "x", "y", "button", "pressed", "key", "text", "dx", "dy")


_NUMBER_RANGES: dict[str, tuple[int, int]] = {
    "fraction": (0, 1),
    "button": (1, 3),
    "steps": (-MAX_SCROLL_STEPS, MAX_SCROLL_STEPS),
    "choice": (1, MAX_POLL_OPTIONS),
    "rooms": (1, MAX_ROOMS),
    "room": (0, MAX_ROOMS),
    "minutes": (1, MAX_BREAKOUT_MINUTES),
    "height": (16, 4320),
    "queued_ms": (0, 60_000),
}


def client_message_types() -> tuple[str, ...]:
    """Every message type a client may send."""
    return tuple(_CLIENT_SCHEMA)


def encode(message: Message) -> bytes:
    """Serialise a message to compact UTF-8 JSON; refuses messages over :data:`MAX_CONTROL_BYTES`."""
    try:
        data = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError as exc:
        raise ProtocolError(f"control message is not valid Unicode: {exc}") from None
    if len(data) > MAX_CONTROL_BYTES:
        raise ProtocolError(f"control message of {len(data)} bytes exceeds {MAX_CONTROL_BYTES}")
    return data


def decode_any(data: bytes) -> Message:
    """Parse bytes into a JSON object with a string ``type`` (no schema check)."""
    if len(data) > MAX_CONTROL_BYTES:
        raise ProtocolError(f"control message of {len(data)} bytes exceeds {MAX_CONTROL_BYTES}")
    try:
        message = json.loads(data.decode("utf-8"))
    except ValueError as exc:  # invalid UTF-8, invalid JSON, or a number too long to convert
        raise ProtocolError(f"control message is not UTF-8 JSON: {exc}") from None
    except RecursionError:
        raise ProtocolError("control message is nested too deeply") from None
    if not isinstance(message, dict):
        raise ProtocolError("control message is not a JSON object")
    kind = message.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("control message has no string 'type'")
    return message


def decode_client_message(data: bytes) -> Message:
    """Parse and validate a message sent by a client to the server."""
    message = decode_any(data)
    kind = message["type"]
    schema = _CLIENT_SCHEMA.get(kind)
    if schema is None:
        raise ProtocolError(f"unknown message type {kind[:40]!r}")
    for field, (field_kind, required) in {**schema, **_COMMON_FIELDS}.items():
        if field not in message or message[field] is None:
            if required:
                raise ProtocolError(f"{kind}: missing field {field!r}")
            continue
        check_field(kind, field, field_kind, message[field])
    if kind == "control_input":
        check_input(message)
    return message


def check_layers(value: Any, where: str) -> None:
    """A list of 1 to :data:`MAX_LAYERS` simulcast layers: objects with an ``ssrc`` (32-bit), a
    ``width`` and ``height`` (16 to 7680 by 4320) and a ``bitrate`` (bit/s)."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_LAYERS:
        raise ProtocolError(f"{where} must be a list of 1 to {MAX_LAYERS} layers")
    bounds = {
        "ssrc": (0, 0xFFFFFFFF),
        "width": (16, 7680),
        "height": (16, 4320),
        "bitrate": (MIN_BITRATE, MAX_BITRATE),
    }
    for layer in value:
        if not isinstance(layer, dict):
            raise ProtocolError(f"{where} must hold objects")
        for key, (low, high) in bounds.items():
            number = layer.get(key)
            if not isinstance(number, int) or isinstance(number, bool) or not low <= number <= high:
                raise ProtocolError(f"{where}: each layer's {key} must be an integer from {low} to {high}")


def check_input(message: Message) -> None:
    """The fields a ``control_input``'s action needs, given together (each field alone is checked)."""
    action = message["action"]
    for field in INPUT_NEEDS[action]:
        if message.get(field) is None:
            raise ProtocolError(f"control_input: a {action!r} action needs {field!r}")
    if (message.get("x") is None) != (message.get("y") is None):
        raise ProtocolError("control_input: give both 'x' and 'y', or neither")
    if action == "scroll" and not (message.get("dx") or message.get("dy")):
        raise ProtocolError("control_input: a 'scroll' action needs 'dx' or 'dy'")


def check_field(kind: str, field: str, field_kind: str, value: Any) -> None:
    """ProtocolError, naming ``kind.field``, unless ``value`` is a valid field of ``field_kind`` (the field
    kinds listed above); shared by client requests and the server's events."""
    where = f"{kind}.{field}"
    if field_kind == "bool":
        if not isinstance(value, bool):
            raise ProtocolError(f"{where} must be true or false")
        return
    if field_kind == "key_boxes":
        _check_key_boxes(where, value)
        return
    if field_kind in ("int", "ring_timeout"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ProtocolError(f"{where} must be an integer")
        if field_kind == "ring_timeout" and not 1 <= value <= MAX_RING_TIMEOUT:
            raise ProtocolError(f"{where} must be 1 to {MAX_RING_TIMEOUT} seconds")
        return
    if field_kind == "candidates":
        check_candidates(value, where)
        return
    if field_kind == "bitrate":
        if not isinstance(value, int) or isinstance(value, bool) or not MIN_BITRATE <= value <= MAX_BITRATE:
            raise ProtocolError(f"{where} must be an integer from {MIN_BITRATE} to {MAX_BITRATE} bit/s")
        return
    if field_kind == "layers":
        check_layers(value, where)
        return
    if field_kind == "options":
        _check_options(where, value)
        return
    if field_kind in _NUMBER_RANGES:
        low, high = _NUMBER_RANGES[field_kind]
        allowed = (int, float) if field_kind == "fraction" else int
        if not isinstance(value, allowed) or isinstance(value, bool) or not low <= value <= high:
            raise ProtocolError(f"{where} must be a number from {low} to {high}")
        return
    if field_kind == "id":
        if isinstance(value, int) and not isinstance(value, bool):
            return
        if not isinstance(value, str) or len(value) > MAX_ID_CHARS:
            raise ProtocolError(
                f"{where} must be an integer or a string of at most {MAX_ID_CHARS} characters"
            )
    if not isinstance(value, str):
        raise ProtocolError(f"{where} must be a string")
    if SURROGATE.search(value):
        raise ProtocolError(f"{where} is not valid Unicode text (it holds a lone surrogate)")
    # No control characters in relayed text: plain strings and ids here, chat text below; names and keys
    # must be printable. Passcodes and passwords are never relayed or shown, and a remote-control ``text``
    # is typed on a desktop, never drawn (it may type Enter or Tab).
    if field_kind in ("str", "id"):
        check_no_controls(value, where)
    if field_kind == "id":
        return
    if field_kind == "name":
        check_name(value, where)
    elif field_kind == "text":
        if not value.strip():
            raise ProtocolError(f"{where} is empty")
        if len(value) > MAX_CHAT_CHARS:
            raise ProtocolError(f"{where} is longer than {MAX_CHAT_CHARS} characters")
        check_no_controls(value, where)
    elif field_kind == "question":
        if not value.strip() or len(value) > MAX_POLL_QUESTION_CHARS:
            raise ProtocolError(f"{where} must be 1 to {MAX_POLL_QUESTION_CHARS} characters")
        check_no_controls(value, where)
    elif field_kind == "emoji":
        if value not in REACTION_EMOJI:
            raise ProtocolError(f"{where} must be one of {' '.join(REACTION_EMOJI)}")
    elif field_kind == "passcode":
        if len(value) > MAX_PASSCODE_CHARS:
            raise ProtocolError(f"{where} is longer than {MAX_PASSCODE_CHARS} characters")
    elif field_kind == "token":
        if len(value) > MAX_TOKEN_CHARS or not _TOKEN.fullmatch(value):
            raise ProtocolError(
                f"{where} must be an access token: at most {MAX_TOKEN_CHARS} characters of base64url and dots"
            )
    elif field_kind == "resume_token":
        if len(value) > MAX_RESUME_TOKEN_CHARS or not _RESUME_TOKEN.fullmatch(value):
            raise ProtocolError(
                f"{where} must be a resume token: at most {MAX_RESUME_TOKEN_CHARS} characters of base64url "
                "and one dot"
            )
    elif field_kind == "password":
        if not value or len(value) > MAX_PASSWORD_CHARS:
            raise ProtocolError(f"{where} must be 1 to {MAX_PASSWORD_CHARS} characters")
    elif field_kind == "role":
        if value not in ROLES:
            raise ProtocolError(f"{where} must be one of {', '.join(ROLES)}")
    elif field_kind == "permission":
        if value not in PERMISSIONS:
            raise ProtocolError(f"{where} must be one of {', '.join(PERMISSIONS)}")
    elif field_kind == "e2ee_key":
        if len(value) != 44 or len(decode_base64(value) or b"") != 32:
            raise ProtocolError(f"{where} must be a 32-byte X25519 public key in base64 (44 characters)")
    elif field_kind == "input_action":
        if value not in INPUT_ACTIONS:
            raise ProtocolError(f"{where} must be one of {', '.join(INPUT_ACTIONS)}")
    elif field_kind == "key":
        if not value or len(value) > MAX_KEY_CHARS or not value.isprintable():
            raise ProtocolError(f"{where} must be a key name of 1 to {MAX_KEY_CHARS} printable characters")
    elif field_kind == "input_text":
        if not value or len(value) > MAX_INPUT_TEXT_CHARS:
            raise ProtocolError(f"{where} must be 1 to {MAX_INPUT_TEXT_CHARS} characters")
    elif field_kind == "call_key":
        if len(value) != KEY_CHARS or not _KEY.fullmatch(value):
            raise ProtocolError(f"{where} must be {KEY_CHARS} characters of unpadded base64url (32 bytes)")
    elif field_kind == "call":
        if not value or len(value) > MAX_CALL_ID_CHARS or not value.isalnum() or not value.isascii():
            raise ProtocolError(f"{where} must be 1 to {MAX_CALL_ID_CHARS} ASCII letters and digits")
    elif field_kind == "media_kind":
        if value not in MEDIA_KINDS:
            raise ProtocolError(f"{where} must be one of {', '.join(MEDIA_KINDS)}")
    elif field_kind == "feedback":
        if value not in FEEDBACK_FORMATS:
            raise ProtocolError(f"{where} must be one of {', '.join(FEEDBACK_FORMATS)}")
    elif field_kind == "codec":
        if value.casefold() not in {codec.casefold() for codec in CODECS.values()}:
            raise ProtocolError(f"{where} must be one of {', '.join(sorted(set(CODECS.values())))}")
    elif field_kind == "path":
        if value not in CALL_PATHS:
            raise ProtocolError(f"{where} must be one of {', '.join(CALL_PATHS)}")
    elif len(value) > 256:
        raise ProtocolError(f"{where} is longer than 256 characters")


def decode_base64(text: str) -> bytes | None:
    """The bytes ``text`` holds in standard base64, or None if it is not base64."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _check_options(where: str, value: Any) -> None:
    """A poll's options: MIN_POLL_OPTIONS..MAX_POLL_OPTIONS printable strings of 1..MAX_POLL_OPTION_CHARS
    characters, no two the same (compared as names are)."""
    if not isinstance(value, list) or not MIN_POLL_OPTIONS <= len(value) <= MAX_POLL_OPTIONS:
        raise ProtocolError(f"{where} must be a list of {MIN_POLL_OPTIONS} to {MAX_POLL_OPTIONS} options")
    for option in value:
        if not isinstance(option, str) or not option.strip() or len(option) > MAX_POLL_OPTION_CHARS:
            raise ProtocolError(f"{where} must hold strings of 1 to {MAX_POLL_OPTION_CHARS} characters")
        if SURROGATE.search(option):
            raise ProtocolError(f"{where} is not valid Unicode text (it holds a lone surrogate)")
        check_no_controls(option, where)
    if len({name_key(option) for option in value}) != len(value):
        raise ProtocolError(f"{where} names one option twice")


def _check_key_boxes(where: str, value: Any) -> None:
    """1..MAX_KEY_BOXES objects ``{"to": name, "box": base64}``, at most one per recipient."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_KEY_BOXES:
        raise ProtocolError(f"{where} must be a list of 1 to {MAX_KEY_BOXES} sealed keys")
    recipients: set[str] = set()
    for entry in value:
        if not isinstance(entry, dict) or not isinstance(entry.get("to"), str):
            raise ProtocolError(f"{where} entries must be objects with a 'to' name and a 'box'")
        check_name(entry["to"], f"{where}.to")
        box = entry.get("box")
        if not isinstance(box, str) or not 0 < len(box) <= MAX_BOX_CHARS or decode_base64(box) is None:
            raise ProtocolError(f"{where}.box must be base64 of at most {MAX_BOX_CHARS} characters")
        folded = name_key(entry["to"])
        if folded in recipients:
            raise ProtocolError(f"{where} names {entry['to']!r} twice")
        recipients.add(folded)


def check_candidates(value: Any, where: str = "candidates") -> list[tuple[str, int]]:
    """A call's candidate addresses: a list of at most MAX_CANDIDATES "HOST:PORT" (IP literals)."""
    if not isinstance(value, list) or len(value) > MAX_CANDIDATES:
        raise ProtocolError(f"{where} must be a list of at most {MAX_CANDIDATES} HOST:PORT strings")
    found: list[tuple[str, int]] = []
    for item in value:
        if not isinstance(item, str) or len(item) > MAX_CANDIDATE_CHARS:
            raise ProtocolError(
                f"{where} must hold HOST:PORT strings of at most {MAX_CANDIDATE_CHARS} characters"
            )
        host, _, port = item.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise ProtocolError(f"{where}: {item[:64]!r} is not IP:PORT") from None
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ProtocolError(f"{where}: {item[:64]!r} has no port 1..65535")
        found.append((str(address), int(port)))
    return found


def name_key(name: str) -> str:
    """What two names are compared by: NFKC, case-folded, NFKC again (Unicode's NFKC_Casefold, less the
    default-ignorable characters that check_name refuses anyway). "Ada", "ADA" and full-width "Ada"
    (U+FF21 U+FF44 U+FF41) are one name; look-alikes from other scripts (a Cyrillic U+0430 for "a") are
    not."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def check_no_controls(text: str, where: str) -> None:
    """Refuse C0 and C1 control characters and DEL: relayed to a terminal, ESC and its kin act there."""
    found = CONTROL_CHARS.search(text)
    if found:
        raise ProtocolError(
            f"{where} holds the control character U+{ord(found.group()):04X}; "
            "control characters (C0, DEL, C1) are not allowed"
        )


def json_bytes(text: str) -> int:
    """The bytes ``text`` takes inside a JSON string as :func:`encode` writes it (control characters
    aside, which no relayed field holds): UTF-8, with '"' and '\\' escaped."""
    return len(text.encode("utf-8", "surrogatepass")) + text.count('"') + text.count("\\")


def check_name(name: str, where: str = "name") -> None:
    """A display name: 1..64 printable characters taking at most 64 bytes (see :func:`json_bytes`), no
    leading or trailing space, no '/' at the start."""
    if not name or len(name) > MAX_NAME_CHARS:
        raise ProtocolError(f"{where} must be 1 to {MAX_NAME_CHARS} characters")
    if json_bytes(name) > MAX_NAME_BYTES:
        raise ProtocolError(
            f"{where} is too long: at most {MAX_NAME_BYTES} bytes of UTF-8 ('\"' and '\\' count two)"
        )
    if name != name.strip() or not name.isprintable():
        raise ProtocolError(f"{where} must be printable with no leading or trailing spaces")
    if name.startswith("/"):
        raise ProtocolError(f"{where} must not start with '/'")
