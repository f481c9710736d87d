"""Control messages: JSON objects with a ``type``, validated against a schema.

This module is sans-I/O: ``encode`` turns a message into bytes, ``decode`` turns bytes into a validated
message or raises :class:`~conf_cli.errors.ProtocolError`. docs/protocol.md lists every message.
"""

from __future__ import annotations

import json
import re
from typing import Any

from conf_cli.errors import ProtocolError

PROTOCOL_VERSION = 1
MAX_CONTROL_BYTES = 65_535  # one RFC 4571 frame
MAX_NAME_CHARS = 64
MAX_CHAT_CHARS = 4_000
MAX_PASSCODE_CHARS = 128
MAX_PASSWORD_CHARS = 1_024
MAX_ID_CHARS = 64

Message = dict[str, Any]

# Field kinds: "int", "str" (up to 256 characters), "name" (see check_name), "text" (chat), "passcode",
# "role" (one of ROLES), "permission" (one of PERMISSIONS), "id" (an integer or a short string),
# "bool", "password" (up to MAX_PASSWORD_CHARS)
_CLIENT_SCHEMA: dict[str, dict[str, tuple[str, bool]]] = {
    # type: {field: (kind, required)}
    "hello": {"protocol": ("int", True), "client": ("str", False)},
    "ping": {},
    "pong": {},
    "login": {"user": ("name", True), "password": ("password", True)},
    "create": {"name": ("name", True), "passcode": ("passcode", False), "waiting_room": ("bool", False)},
    "join": {"meeting": ("str", True), "name": ("name", True), "passcode": ("passcode", False)},
    "leave": {},
    "who": {},
    "chat": {"text": ("text", True), "to": ("name", False)},
    "set_role": {"name": ("name", True), "role": ("role", True)},
    "forbid": {"what": ("permission", True), "name": ("name", False)},
    "permit": {"what": ("permission", True), "name": ("name", False)},
    "kick": {"name": ("name", True)},
    "lock": {},
    "unlock": {},
    "end": {},
    "admit": {"name": ("name", False), "all": ("bool", False)},
    "deny": {"name": ("name", True)},
    "set_waiting_room": {"enabled": ("bool", True)},
    "publish": {"kind": ("str", True), "ssrc": ("int", True), "codec": ("str", True)},
    "unpublish": {"kind": ("str", True)},
}
# Any request may carry an ``id``, which the server echoes in its error reply.
_COMMON_FIELDS: dict[str, tuple[str, bool]] = {"id": ("id", False)}
# Lone UTF-16 surrogates, which JSON escapes can produce but UTF-8 cannot carry on.
_SURROGATE = re.compile("[\ud800-\udfff]")

ROLES = ("host", "admin", "member")
PERMISSIONS = ("audio", "video", "screen", "control", "chat")


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
        _check_field(kind, field, field_kind, message[field])
    return message


def _check_field(kind: str, field: str, field_kind: str, value: Any) -> None:
    where = f"{kind}.{field}"
    if field_kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise ProtocolError(f"{where} must be an integer")
        return
    if field_kind == "bool":
        if not isinstance(value, bool):
            raise ProtocolError(f"{where} must be true or false")
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
    if _SURROGATE.search(value):
        raise ProtocolError(f"{where} is not valid Unicode text (it holds a lone surrogate)")
    if field_kind == "id":
        return
    if field_kind == "name":
        check_name(value, where)
    elif field_kind == "text":
        if not value.strip():
            raise ProtocolError(f"{where} is empty")
        if len(value) > MAX_CHAT_CHARS:
            raise ProtocolError(f"{where} is longer than {MAX_CHAT_CHARS} characters")
    elif field_kind == "passcode":
        if len(value) > MAX_PASSCODE_CHARS:
            raise ProtocolError(f"{where} is longer than {MAX_PASSCODE_CHARS} characters")
    elif field_kind == "password":
        if not value or len(value) > MAX_PASSWORD_CHARS:
            raise ProtocolError(f"{where} must be 1 to {MAX_PASSWORD_CHARS} characters")
    elif field_kind == "role":
        if value not in ROLES:
            raise ProtocolError(f"{where} must be one of {', '.join(ROLES)}")
    elif field_kind == "permission":
        if value not in PERMISSIONS:
            raise ProtocolError(f"{where} must be one of {', '.join(PERMISSIONS)}")
    elif len(value) > 256:
        raise ProtocolError(f"{where} is longer than 256 characters")


def check_name(name: str, where: str = "name") -> None:
    """A display name: 1..64 printable characters, no leading or trailing space, no '/' at the start."""
    if not name or len(name) > MAX_NAME_CHARS:
        raise ProtocolError(f"{where} must be 1 to {MAX_NAME_CHARS} characters")
    if name != name.strip() or not name.isprintable():
        raise ProtocolError(f"{where} must be printable with no leading or trailing spaces")
    if name.startswith("/"):
        raise ProtocolError(f"{where} must not start with '/'")
