"""A meeting's record: what it takes to recreate a meeting faithfully on a server that does not hold it
(it was restarted; later, another node of a cluster). Sans-I/O.

The record holds the meeting's settings, not its people or media: its ID, its passcode's verifier (the
salted scrypt hash, never the passcode), whether it is end-to-end encrypted, locked, and has a waiting
room, the meeting-wide forbids, who has which role (host, admins) and whose own forbids, and the names
banned from it. Its participants come back themselves, each with its resume token
(:mod:`conf_cli.server.resume`), and publish their tracks again. The hub notes each meeting whose record
changed (:meth:`conf_cli.server.hub.Hub.take_records`); a :class:`MeetingStore` keeps the bytes
(:mod:`conf_cli.server.record_store`: files under the server's folder for a lone server).

Encoding: one UTF-8 JSON object with ``"v": 1``, at most :data:`MAX_RECORD_BYTES`; :func:`decode` checks
every field and bound, so a record that was cut short, altered on disk or written by another version is
refused rather than half-read.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Protocol

from conf_cli.errors import ProtocolError
from conf_cli.protocol.control import PERMISSIONS, ROLES, check_name, name_key
from conf_cli.server.meeting import MAX_BANS, MAX_PARTICIPANTS, Ban, Meeting
from conf_cli.server.passcode import PasscodeHash
from conf_cli.server.people import Role

VERSION = 1
MAX_RECORD_BYTES = 256 * 1024
"""A record's size at most: 1,000 bans and 100 people with every forbid take about 120 kB."""
_SALT_BYTES = 16
_DIGEST_BYTES = 64


class RecordError(Exception):
    """Bytes that are not a meeting record this server can use, and why."""


class MeetingStore(Protocol):
    """Where meeting records are kept, by meeting ID (a lone server's files; a cluster's store later)."""

    def save(self, meeting: str, data: bytes) -> None:
        """Keep ``data`` as ``meeting``'s record, replacing any (atomically: never half written)."""
        ...

    def load(self, meeting: str) -> bytes | None:
        """``meeting``'s record, or None if there is none."""
        ...

    def delete(self, meeting: str) -> None:
        """Forget ``meeting``'s record (it ended); nothing if there is none."""
        ...


@dataclass(frozen=True)
class Person:
    """Someone the record names: their role and their own forbids."""

    name: str
    role: str
    forbidden: tuple[str, ...] = ()


@dataclass(frozen=True)
class MeetingRecord:
    meeting: str
    salt: bytes
    digest: bytes
    e2ee: bool = False
    waiting_room: bool = False
    locked: bool = False
    forbidden: tuple[str, ...] = ()
    people: tuple[Person, ...] = ()
    """The host and admins, and anyone with forbids of their own (at most MAX_PARTICIPANTS)."""
    bans: tuple[str, ...] = ()
    """Names removed from the meeting (at most MAX_BANS)."""

    def encode(self) -> bytes:
        payload = {
            "v": VERSION,
            "meeting": self.meeting,
            "passcode": {"salt": _b64(self.salt), "digest": _b64(self.digest)},
            "e2ee": self.e2ee,
            "waiting_room": self.waiting_room,
            "locked": self.locked,
            "forbidden": list(self.forbidden),
            "people": [{"name": p.name, "role": p.role, "forbidden": list(p.forbidden)} for p in self.people],
            "bans": list(self.bans),
        }
        data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        if len(data) > MAX_RECORD_BYTES:  # the meeting's own bounds keep it far below: a bug
            raise RecordError(f"a meeting record of {len(data)} bytes is over {MAX_RECORD_BYTES}")
        return data


def decode(data: bytes) -> MeetingRecord:
    """The record ``data`` holds; RecordError saying what is wrong."""
    if len(data) > MAX_RECORD_BYTES:
        raise RecordError(f"a meeting record has at most {MAX_RECORD_BYTES} bytes")
    try:
        payload = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise RecordError("the meeting record is not UTF-8 JSON") from None
    if not isinstance(payload, dict) or payload.get("v") != VERSION:
        raise RecordError("the meeting record is of another version")
    meeting = payload.get("meeting")
    if not isinstance(meeting, str) or not 0 < len(meeting) <= 64:
        raise RecordError("the meeting record names no meeting")
    passcode = payload.get("passcode")
    if not isinstance(passcode, dict):
        raise RecordError("the meeting record has no passcode verifier")
    salt, digest = _unb64(passcode.get("salt")), _unb64(passcode.get("digest"))
    if len(salt) != _SALT_BYTES or len(digest) != _DIGEST_BYTES:
        raise RecordError("the meeting record's passcode verifier is not a conf scrypt hash")
    flags = {key: payload.get(key) for key in ("e2ee", "waiting_room", "locked")}
    if not all(isinstance(value, bool) for value in flags.values()):
        raise RecordError("the meeting record's flags are not true or false")
    people_field = payload.get("people")
    bans = payload.get("bans")
    if not isinstance(people_field, list) or len(people_field) > MAX_PARTICIPANTS:
        raise RecordError(f"the meeting record names more than {MAX_PARTICIPANTS} people")
    if not isinstance(bans, list) or len(bans) > MAX_BANS:
        raise RecordError(f"the meeting record has more than {MAX_BANS} bans")
    people = []
    for entry in people_field:
        if not isinstance(entry, dict) or entry.get("role") not in ROLES:
            raise RecordError("the meeting record's people must each have a name and a role")
        people.append(Person(_name(entry.get("name")), entry["role"], _permissions(entry.get("forbidden"))))
    return MeetingRecord(
        meeting,
        salt,
        digest,
        e2ee=flags["e2ee"] is True,
        waiting_room=flags["waiting_room"] is True,
        locked=flags["locked"] is True,
        forbidden=_permissions(payload.get("forbidden")),
        people=tuple(people),
        bans=tuple(_name(name) for name in bans),
    )


def _name(value: Any) -> str:
    if not isinstance(value, str):
        raise RecordError("the meeting record holds a name that is not text")
    try:
        check_name(value, "the meeting record's name")
    except ProtocolError as exc:
        raise RecordError(str(exc)) from None
    return value


def _permissions(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or any(item not in PERMISSIONS for item in value):
        raise RecordError(f"the meeting record's forbids must be a list of {', '.join(PERMISSIONS)}")
    return tuple(dict.fromkeys(value))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: Any) -> bytes:
    if not isinstance(value, str) or len(value) > 128:
        return b""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return b""


def record_of(meeting: Meeting) -> MeetingRecord:
    """The record of ``meeting`` as it is now (a recreated meeting's people not back yet included)."""
    present = sorted(meeting.participants.values(), key=lambda p: p.seniority)
    people = [
        Person(p.name, str(p.role), tuple(sorted(p.forbidden)))
        for p in present
        if p.role is not Role.MEMBER or p.forbidden
    ]
    people += [
        Person(name, str(role), tuple(sorted(forbids))) for name, role, forbids in meeting.pending.values()
    ]
    return MeetingRecord(
        meeting.id,
        meeting.passcode.salt,
        meeting.passcode.digest,
        e2ee=meeting.e2ee,
        waiting_room=meeting.waiting_room,
        locked=meeting.locked,
        forbidden=tuple(sorted(meeting.forbidden)),
        people=tuple(people[:MAX_PARTICIPANTS]),
        bans=tuple(ban.name for ban in meeting.bans.values()),
    )


def restore(record: MeetingRecord, meeting: Meeting) -> Meeting:
    """``meeting`` (new, empty, under the record's ID and passcode) given the record's settings; its
    people come back by resuming (:attr:`Meeting.pending`)."""
    meeting.locked = record.locked
    meeting.forbidden = set(record.forbidden)
    meeting.recreated = True
    for name in record.bans:
        meeting.bans[name_key(name)] = Ban(name)
    meeting.pending = {
        name_key(person.name): (person.name, Role(person.role), set(person.forbidden))
        for person in record.people
    }
    return meeting


def passcode_of(record: MeetingRecord) -> PasscodeHash:
    """The passcode verifier the record keeps."""
    return PasscodeHash(record.salt, record.digest)
