"""Server-to-client messages as typed events: one dataclass per message ``type``. Sans-I/O.

``parse_event(message)`` checks a decoded control message (see :func:`~conf_cli.protocol.control.decode_any`)
against its type's fields, once, and returns the event, or raises
:class:`~conf_cli.errors.ProtocolError` saying which field is wrong. ``event.to_message()`` gives back the
dict the server sends (its fields in the server's order, absent optional fields left out), so
``parse_event(event.to_message()) == event``. docs/events.md lists every event and its fields.

Each field declares its *kind* (``name``, ``text``, ``role`` ...): the bounds a client request's field of
that kind has in :mod:`conf_cli.protocol.control`, and a few more for what only the server sends
(``number``, ``port``, ``ssrc``, ``participants`` ...). Fields the dataclass does not list are ignored, as
the protocol asks.

``parse_event(message, lenient=True)`` is the *client profile* (docs/protocol.md, "The client profile"),
what conf's client reads server messages with: text it will draw may hold control characters (each becomes
U+FFFD before the field is checked), a few fields may be left out (each has a ``client_default``), an
E2EE key need only be a short string (the key ring judges it), an ``e2ee`` flag may be false, and a track
may be of a kind the client does not know (see ``_CLIENT_KINDS``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from conf_cli.errors import ProtocolError
from conf_cli.protocol.control import (
    CONTROL_CHARS,
    MAX_BOX_CHARS,
    MAX_POLL_OPTIONS,
    MEDIA_KINDS,
    PERMISSIONS,
    SURROGATE,
    Message,
    check_field,
    check_input,
    check_layers,
    check_name,
    decode_base64,
)

# The server's own bounds (docs/protocol.md, "Requests"): they keep a snapshot within one control frame.
MAX_PARTICIPANT_ENTRIES = 100
MAX_WAITING_ENTRIES = 50

MAX_ERROR_CHARS = 1_024
"""An error's ``message``: the server's sentence, which may quote a name or a field."""
MAX_REASON_CHARS = 64
MAX_SERVICES = 16
MAX_SERVICE_URLS = 8
MAX_WELCOME_URLS = 16
"""URLs a ``welcome`` lists where the server (or its cluster) is reached."""
MAX_RELAY_CHARS = 64  # a relay token in hex
MAX_URL_CHARS = 256  # a redirect's URL
MAX_FINGERPRINT_CHARS = 64  # SHA256: and 43 base64 characters
MAX_CLIENT_KEY_CHARS = 64  # an E2EE key as the client profile takes it (the key ring checks it)

E = TypeVar("E", bound="Event")


_REQUIRED: Any = object()


def _field(
    kind: str, *, key: str | None = None, optional: bool = False, client_default: Any = _REQUIRED
) -> Any:
    """A message field of ``kind``; ``key`` when its JSON name is not the attribute's (``from``).

    ``client_default``: a field the server always sends, which the client profile does without, taking
    this value instead."""
    metadata = {"kind": kind, "key": key}
    if optional:
        return field(default=None, metadata=metadata)
    if client_default is not _REQUIRED:
        return field(default_factory=lambda: client_default, metadata={**metadata, "client_default": True})
    return field(metadata=metadata)


@dataclass(frozen=True, kw_only=True)
class Event:
    """One server-to-client message. Subclasses set ``TYPE`` and declare their fields with a kind."""

    TYPE: ClassVar[str] = ""

    @classmethod
    def parse(cls: type[E], message: Message, *, lenient: bool = False) -> E:
        """The event ``message`` holds; ProtocolError naming the first field that is wrong.

        ``lenient``: read it with the client profile (see :func:`parse_event`)."""
        if message.get("type") != cls.TYPE:
            raise ProtocolError(f"{cls.TYPE}: the message's type is {str(message.get('type'))[:40]!r}")
        values: dict[str, Any] = {}
        for spec in dataclasses.fields(cls):
            key = spec.metadata.get("key") or spec.name
            value = message.get(key)
            if value is None:
                if spec.default is dataclasses.MISSING and not (
                    lenient and spec.metadata.get("client_default")
                ):
                    raise ProtocolError(f"{cls.TYPE}: missing field {key!r}")
                continue
            kind = spec.metadata["kind"]
            if lenient:
                value, kind = _client_profile(kind, value)
            values[spec.name] = _check(cls.TYPE, key, kind, value)
        cls._check_together(message)
        return cls(**values)

    @classmethod
    def _check_together(cls, message: Message) -> None:
        """Rules that tie fields together (each field alone is already checked)."""

    def to_message(self) -> Message:
        """The message as the server sends it."""
        message: Message = {"type": self.TYPE}
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            if value is not None:
                message[spec.metadata.get("key") or spec.name] = _plain(value)
        return message


@dataclass(frozen=True, kw_only=True)
class ParticipantEntry:
    """One participant in a snapshot (``joined``, ``participants``)."""

    name: str
    role: str
    sharing: tuple[str, ...] = ()
    forbidden: tuple[str, ...] = ()
    key: str | None = None
    """Their X25519 public key (base64), in an end-to-end encrypted meeting."""
    recorder: bool = False
    """They record the meeting (``conf record``)."""

    def to_message(self) -> Message:
        entry: Message = {
            "name": self.name,
            "role": self.role,
            "sharing": list(self.sharing),
            "forbidden": list(self.forbidden),
        }
        if self.key is not None:
            entry["key"] = self.key
        if self.recorder:
            entry["recorder"] = True
        return entry


@dataclass(frozen=True, kw_only=True)
class TrackEntry:
    """One live track in a snapshot."""

    name: str
    kind: str
    ssrc: int
    codec: str
    layers: tuple[Any, ...] | None = None
    """A simulcast track's layers, lowest first."""

    def to_message(self) -> Message:
        entry: Message = {"name": self.name, "kind": self.kind, "ssrc": self.ssrc, "codec": self.codec}
        if self.layers is not None:
            entry["layers"] = list(self.layers)
        return entry


def _plain(value: Any) -> Any:
    """A field's value as JSON holds it."""
    if isinstance(value, ParticipantEntry | TrackEntry | VoteEntry | RoomEntry):
        return value.to_message()
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


# -- field kinds -----------------------------------------------------------------------------------------


def _check(kind: str, key: str, field_kind: str, value: Any) -> Any:
    """``value`` checked as a ``field_kind``, converted to what the dataclass holds (lists to tuples)."""
    where = f"{kind}.{key}"
    own = _KINDS.get(field_kind)
    if own is not None:
        return own(where, value)
    check_field(kind, key, field_kind, value)  # the kinds client requests share with server messages
    return value


def _layers(where: str, value: Any) -> tuple[Any, ...]:
    check_layers(value, where)
    return tuple(value)


def _ssrcs(where: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > 8:
        raise ProtocolError(f"{where} must be a list of at most 8 SSRCs")
    return tuple(_ssrc(where, item) for item in value)


def _integer(where: str, value: Any, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ProtocolError(f"{where} must be an integer from {low} to {high}")
    return value


def _number(where: str, value: Any) -> float | int:
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value < 0
        or value > 86_400
    ):
        raise ProtocolError(f"{where} must be a number of seconds from 0 to 86400")
    return value


def _string(where: str, value: Any, most: int) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= most:
        raise ProtocolError(f"{where} must be a string of 1 to {most} characters")
    if SURROGATE.search(value) or CONTROL_CHARS.search(value):
        raise ProtocolError(f"{where} must be printable Unicode text")
    return value


def _names(where: str, value: Any, most: int) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > most:
        raise ProtocolError(f"{where} must be a list of at most {most} names")
    for name in value:
        if not isinstance(name, str):
            raise ProtocolError(f"{where} must hold names")
        check_name(name, where)
    return tuple(value)


def _words(where: str, value: Any, allowed: tuple[str, ...]) -> tuple[str, ...]:
    if not isinstance(value, list) or any(item not in allowed for item in value):
        raise ProtocolError(f"{where} must be a list of {', '.join(allowed)}")
    if len(set(value)) != len(value):
        raise ProtocolError(f"{where} names one of them twice")
    return tuple(value)


def _object(where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(f"{where} entries must be objects")
    return value


def _participants(where: str, value: Any, key_kind: str = "e2ee_key") -> tuple[ParticipantEntry, ...]:
    if not isinstance(value, list) or len(value) > MAX_PARTICIPANT_ENTRIES:
        raise ProtocolError(f"{where} must be a list of at most {MAX_PARTICIPANT_ENTRIES} participants")
    entries = []
    for item in value:
        entry = _object(where, item)
        for required in ("name", "role"):
            if entry.get(required) is None:
                raise ProtocolError(f"{where}: missing field {required!r}")
        check_field(where, "name", "name", entry["name"])
        check_field(where, "role", "role", entry["role"])
        key = entry.get("key")
        if key is not None:
            _check(where, "key", key_kind, key)
        entries.append(
            ParticipantEntry(
                name=entry["name"],
                role=entry["role"],
                sharing=_words(f"{where}.sharing", entry.get("sharing", []), MEDIA_KINDS),
                forbidden=_words(f"{where}.forbidden", entry.get("forbidden", []), PERMISSIONS),
                key=key,
                recorder=entry.get("recorder") is True,
            )
        )
    return tuple(entries)


def _tracks(where: str, value: Any, kind_kind: str = "media_kind") -> tuple[TrackEntry, ...]:
    if not isinstance(value, list) or len(value) > 3 * MAX_PARTICIPANT_ENTRIES:
        raise ProtocolError(f"{where} must be a list of at most {3 * MAX_PARTICIPANT_ENTRIES} tracks")
    entries = []
    for item in value:
        entry = _object(where, item)
        for required in ("name", "kind", "ssrc", "codec"):
            if entry.get(required) is None:
                raise ProtocolError(f"{where}: missing field {required!r}")
        check_field(where, "name", "name", entry["name"])
        _check(where, "kind", kind_kind, entry["kind"])
        _ssrc(f"{where}.ssrc", entry["ssrc"])
        check_field(where, "codec", "codec", entry["codec"])
        layers = entry.get("layers")
        if layers is not None:
            check_layers(layers, f"{where}.layers")
        entries.append(
            TrackEntry(
                name=entry["name"],
                kind=entry["kind"],
                ssrc=entry["ssrc"],
                codec=entry["codec"],
                layers=None if layers is None else tuple(layers),
            )
        )
    return tuple(entries)


def _url(where: str, value: Any) -> str:
    text = _string(where, value, MAX_URL_CHARS)
    scheme, sep, rest = text.partition("://")
    if not sep or not scheme.isalnum() or not rest or any(c.isspace() or ord(c) < 32 for c in text):
        raise ProtocolError(f"{where} must be a URL (SCHEME://HOST:PORT)")
    return text


def _fingerprint(where: str, value: Any) -> str:
    text = _string(where, value, MAX_FINGERPRINT_CHARS)
    if not text.startswith("SHA256:") or not all(c.isalnum() or c in "+/=" for c in text[7:]):
        raise ProtocolError(f"{where} must be a key fingerprint (SHA256:...)")
    return text


def _ssrc(where: str, value: Any) -> int:
    return _integer(where, value, 0, 0xFFFFFFFF)


def _services(where: str, value: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict) or len(value) > MAX_SERVICES:
        raise ProtocolError(f"{where} must be an object of at most {MAX_SERVICES} services")
    services: dict[str, tuple[str, ...]] = {}
    for name, urls in value.items():
        _string(f"{where}.name", name, 64)
        if not isinstance(urls, list) or len(urls) > MAX_SERVICE_URLS:
            raise ProtocolError(f"{where}.{name[:64]} must be a list of at most {MAX_SERVICE_URLS} URLs")
        services[name] = tuple(_string(f"{where}.url", url, 256) for url in urls)
    return services


def _urls(where: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > MAX_WELCOME_URLS:
        raise ProtocolError(f"{where} must be a list of at most {MAX_WELCOME_URLS} URLs")
    return tuple(_string(f"{where}[]", url, 256) for url in value)


def _true(where: str, value: Any) -> bool:
    if value is not True:
        raise ProtocolError(f"{where} is true or absent")
    return True


def _box(where: str, value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_BOX_CHARS or decode_base64(value) is None:
        raise ProtocolError(f"{where} must be base64 of at most {MAX_BOX_CHARS} characters")
    return value


def _relay(where: str, value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_RELAY_CHARS:
        raise ProtocolError(f"{where} must be 1 to {MAX_RELAY_CHARS} hex digits")
    try:
        bytes.fromhex(value)
    except ValueError:
        raise ProtocolError(f"{where} must be 1 to {MAX_RELAY_CHARS} hex digits") from None
    return value


def _clock(where: str, value: Any) -> float | int:
    """A wall-clock time in Unix seconds (a server's clock; ``conf doctor`` compares it with its own)."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < 2**33:
        raise ProtocolError(f"{where} must be a time in Unix seconds")
    return value


def _candidates(where: str, value: Any) -> tuple[str, ...]:
    kind, key = where.split(".", 1)
    check_field(kind, key, "candidates", value)
    return tuple(value)


_KINDS: dict[str, Any] = {
    "number": _number,
    "clock": _clock,
    "port": lambda where, value: _integer(where, value, 1, 65535),
    "count": lambda where, value: _integer(where, value, 0, 2**53),
    "ssrc": _ssrc,
    "ssrcs": lambda where, value: _ssrcs(where, value),
    "layers_list": lambda where, value: _layers(where, value),
    "meeting": lambda where, value: _string(where, value, 64),
    "server": lambda where, value: _string(where, value, 256),
    "reason": lambda where, value: _string(where, value, MAX_REASON_CHARS),
    "code": lambda where, value: _string(where, value, MAX_REASON_CHARS),
    "error_message": lambda where, value: _string(where, value, MAX_ERROR_CHARS),
    "names": lambda where, value: _names(where, value, MAX_PARTICIPANT_ENTRIES),
    "waiting": lambda where, value: _names(where, value, MAX_WAITING_ENTRIES),
    "permissions": lambda where, value: _words(where, value, PERMISSIONS),
    "participants": _participants,
    "tracks": _tracks,
    "services": _services,
    "urls": _urls,
    "true": _true,
    "box": _box,
    "relay": _relay,
    "candidates": _candidates,
    "url": lambda where, value: _url(where, value),
    "fingerprint": lambda where, value: _fingerprint(where, value),
    # The client profile's own kinds (see _client_profile):
    "client_key": lambda where, value: _string(where, value, MAX_CLIENT_KEY_CHARS),
    "client_participants": lambda where, value: _participants(where, value, key_kind="client_key"),
    "client_media_kind": lambda where, value: _string(where, value, MAX_REASON_CHARS),
    "client_tracks": lambda where, value: _tracks(where, value, kind_kind="client_media_kind"),
}


# -- the client profile ----------------------------------------------------------------------------------

_RAW_KINDS = frozenset({"input_text", "key"})
"""Kinds never drawn (typed on a controlled desktop): checked as they came, as in the strict profile."""
_CLIENT_KINDS = {
    "e2ee_key": "client_key",
    "participants": "client_participants",
    "true": "bool",
    "media_kind": "client_media_kind",
    "tracks": "client_tracks",
}
"""Kinds the client profile checks its own way: an E2EE key is the key ring's to judge; a flag that is
true or absent may also be false (a meeting said to be plain: the client decides what to make of it); a
track's kind may be one the client does not know (a newer server's: a word of at most 64 characters)."""


def _client_profile(kind: str, value: Any) -> tuple[Any, str]:
    """A field's value and kind as the client profile checks them: text made printable, keys left to the
    key ring."""
    if kind not in _RAW_KINDS:
        value = _printable(value)
    return value, _CLIENT_KINDS.get(kind, kind)


def _printable(value: Any) -> Any:
    """``value`` with every control character and lone surrogate in its strings replaced by U+FFFD."""
    if isinstance(value, str):
        return SURROGATE.sub("\ufffd", CONTROL_CHARS.sub("\ufffd", value))
    if isinstance(value, list):
        return [_printable(item) for item in value]
    if isinstance(value, dict):
        return {_printable(key): _printable(item) for key, item in value.items()}
    return value


# -- getting in ------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Welcome(Event):
    TYPE: ClassVar[str] = "welcome"
    protocol: int = _field("int")
    server: str = _field("server")
    heartbeat: float = _field("number")
    stun_port: int | None = _field("port", optional=True)
    """The UDP port of the server's STUN answerer and call relay, when it offers calls."""
    services: dict[str, tuple[str, ...]] | None = _field("services", optional=True)  # noqa: RUF009
    time: float | None = _field("clock", optional=True)
    """The server's clock when it answered (Unix seconds)."""
    urls: tuple[str, ...] | None = _field("urls", optional=True)
    """The URLs this server is reached at (its own listeners; a cluster's other nodes later): where a
    client whose link dropped may reconnect to resume."""


@dataclass(frozen=True, kw_only=True)
class ResumeToken(Event):
    """Your resume token (docs/protocol.md, "Resuming"): a bearer secret, never shown."""

    TYPE: ClassVar[str] = "resume_token"
    token: str = _field("resume_token")
    expires: float = _field("clock")
    """When it stops being good (Unix seconds); a new one comes well before."""
    urls: tuple[str, ...] | None = _field("urls", optional=True)
    """Where the client may reconnect to resume, as the server knows it now: the fresh form of
    ``welcome``'s ``urls`` (a cluster's nodes that joined since the hello), which it replaces."""


@dataclass(frozen=True, kw_only=True)
class Pong(Event):
    TYPE: ClassVar[str] = "pong"


@dataclass(frozen=True, kw_only=True)
class LoggedIn(Event):
    TYPE: ClassVar[str] = "logged_in"
    user: str = _field("name")


@dataclass(frozen=True, kw_only=True)
class MeetingCreated(Event):
    TYPE: ClassVar[str] = "meeting_created"
    meeting: str = _field("meeting")
    passcode: str = _field("passcode")
    e2ee: bool | None = _field("true", optional=True)


@dataclass(frozen=True, kw_only=True)
class Redirect(Event):
    """(A cluster, docs/cluster.md) the meeting is on another node: connect there, check that it presents
    ``fingerprint``, and send the same ``create`` or ``join`` again."""

    TYPE: ClassVar[str] = "redirect"
    re: str = _field("code")
    """The request to send again there: ``create``, ``join`` or ``resume``."""
    url: str = _field("url")
    """The node's URL for the transport this client came in on."""
    node: str = _field("reason")
    """The node's name in the cluster."""
    meeting: str | None = _field("meeting", optional=True)
    """(``join``, ``resume``) the meeting the node holds."""
    fingerprint: str | None = _field("fingerprint", optional=True)
    """The node's key fingerprint; absent when the cluster runs without encryption."""


@dataclass(frozen=True, kw_only=True)
class Snapshot(Event):
    """What ``joined`` and ``participants`` both carry: the whole meeting as one participant sees it."""

    meeting: str = _field("meeting")
    participants: tuple[ParticipantEntry, ...] = _field("participants")
    tracks: tuple[TrackEntry, ...] = _field("tracks", client_default=())
    locked: bool = _field("bool", client_default=False)
    forbidden: tuple[str, ...] = _field("permissions", client_default=())
    e2ee: bool | None = _field("true", optional=True)
    waiting_room: bool | None = _field("bool", optional=True)
    waiting: tuple[str, ...] | None = _field("waiting", optional=True)
    """Who waits to be admitted: only the host and admins are told."""


@dataclass(frozen=True, kw_only=True)
class Joined(Snapshot):
    TYPE: ClassVar[str] = "joined"
    name: str = _field("name")
    role: str = _field("role")
    resumed: bool | None = _field("true", optional=True)
    """You are back in your seat after a resume (docs/protocol.md, "Resuming"): this is the meeting now."""

    def to_message(self) -> Message:
        # The server puts our name and role first, then the snapshot.
        message = super().to_message()
        return {"type": self.TYPE, "name": self.name, "role": self.role, **message}


@dataclass(frozen=True, kw_only=True)
class Participants(Snapshot):
    TYPE: ClassVar[str] = "participants"


@dataclass(frozen=True, kw_only=True)
class Waiting(Event):
    TYPE: ClassVar[str] = "waiting"
    meeting: str = _field("meeting")
    name: str = _field("name")


@dataclass(frozen=True, kw_only=True)
class Denied(Event):
    TYPE: ClassVar[str] = "denied"
    meeting: str = _field("meeting")
    by: str = _field("name")


# -- who is here -----------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ParticipantJoined(Event):
    TYPE: ClassVar[str] = "participant_joined"
    name: str = _field("name")
    role: str = _field("role")
    key: str | None = _field("e2ee_key", optional=True)
    recorder: bool | None = _field("true", optional=True)
    """Present (true) when the newcomer is a recorder."""


@dataclass(frozen=True, kw_only=True)
class RecordingStarted(Event):
    """A recorder (``conf record``) is in the meeting: everything shared is being recorded by ``by``."""

    TYPE: ClassVar[str] = "recording_started"
    by: str = _field("name")


@dataclass(frozen=True, kw_only=True)
class RecordingStopped(Event):
    TYPE: ClassVar[str] = "recording_stopped"
    by: str = _field("name")
    reason: str = _field("reason")


@dataclass(frozen=True, kw_only=True)
class ParticipantLeft(Event):
    TYPE: ClassVar[str] = "participant_left"
    name: str = _field("name")
    reason: str = _field("reason", client_default="left")


@dataclass(frozen=True, kw_only=True)
class RoleChanged(Event):
    TYPE: ClassVar[str] = "role_changed"
    name: str = _field("name")
    role: str = _field("role")
    by: str | None = _field("name", optional=True)
    """None when the host role passed on because the host left."""


@dataclass(frozen=True, kw_only=True)
class PermissionChanged(Event):
    TYPE: ClassVar[str] = "permission_changed"
    what: str = _field("permission")
    allowed: bool = _field("bool")
    by: str = _field("name")
    name: str | None = _field("name", optional=True)
    """Whom it concerns; None: every member."""


@dataclass(frozen=True, kw_only=True)
class Kicked(Event):
    TYPE: ClassVar[str] = "kicked"
    by: str = _field("name")


@dataclass(frozen=True, kw_only=True)
class Unbanned(Event):
    TYPE: ClassVar[str] = "unbanned"
    name: str = _field("name")
    by: str = _field("name")


@dataclass(frozen=True, kw_only=True)
class Left(Event):
    TYPE: ClassVar[str] = "left"
    meeting: str = _field("meeting")
    reason: str = _field("reason")


@dataclass(frozen=True, kw_only=True)
class MeetingLocked(Event):
    TYPE: ClassVar[str] = "meeting_locked"
    locked: bool = _field("bool")
    by: str = _field("name")


@dataclass(frozen=True, kw_only=True)
class MeetingClosed(Event):
    TYPE: ClassVar[str] = "meeting_closed"
    by: str | None = _field("name", optional=True)
    reason: str = _field("reason")


# -- the waiting room ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class WaitingJoined(Event):
    TYPE: ClassVar[str] = "waiting_joined"
    name: str = _field("name")


@dataclass(frozen=True, kw_only=True)
class WaitingLeft(Event):
    TYPE: ClassVar[str] = "waiting_left"
    name: str = _field("name")
    reason: str = _field("reason")
    by: str | None = _field("name", optional=True)


@dataclass(frozen=True, kw_only=True)
class WaitingRoom(Event):
    TYPE: ClassVar[str] = "waiting_room"
    enabled: bool = _field("bool")
    waiting: tuple[str, ...] = _field("waiting")


@dataclass(frozen=True, kw_only=True)
class WaitingRoomChanged(Event):
    TYPE: ClassVar[str] = "waiting_room_changed"
    enabled: bool = _field("bool")
    by: str = _field("name")


# -- chat, tracks, keys ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Chat(Event):
    TYPE: ClassVar[str] = "chat"
    sender: str = _field("name", key="from")
    text: str = _field("text")
    private: bool = _field("bool")
    to: str | None = _field("name", optional=True)


@dataclass(frozen=True, kw_only=True)
class ShareStarted(Event):
    TYPE: ClassVar[str] = "share_started"
    name: str = _field("name")
    kind: str = _field("media_kind")
    ssrc: int = _field("ssrc")
    codec: str = _field("codec")
    layers: tuple[Any, ...] | None = _field("layers_list", optional=True)
    """A simulcast track's layers, lowest first (docs/protocol.md, "Simulcast")."""


@dataclass(frozen=True, kw_only=True)
class LayersActive(Event):
    """Dynacast: which layers of one of the recipient's simulcast tracks someone receives."""

    TYPE: ClassVar[str] = "layers_active"
    ssrc: int = _field("ssrc")
    active: tuple[int, ...] = _field("ssrcs")


@dataclass(frozen=True, kw_only=True)
class LayerSwitched(Event):
    """Which layer of a simulcast track the recipient receives now (under the track's SSRC)."""

    TYPE: ClassVar[str] = "layer_switched"
    ssrc: int = _field("ssrc")
    layer: int = _field("count")
    width: int = _field("count")
    height: int = _field("count")


@dataclass(frozen=True, kw_only=True)
class ShareStopped(Event):
    TYPE: ClassVar[str] = "share_stopped"
    name: str = _field("name")
    kind: str = _field("media_kind")
    ssrc: int | None = _field("ssrc", optional=True)
    """None when a forbid ended every track of a kind at once."""
    codec: str | None = _field("codec", optional=True)
    reason: str = _field("reason", client_default="stopped")


@dataclass(frozen=True, kw_only=True)
class ActiveSpeaker(Event):
    """The meeting's dominant speaker changed: ``name``'s audio track ``ssrc`` (from its audio levels)."""

    TYPE: ClassVar[str] = "active_speaker"
    name: str = _field("name")
    ssrc: int = _field("ssrc")


@dataclass(frozen=True, kw_only=True)
class E2eeKey(Event):
    TYPE: ClassVar[str] = "e2ee_key"
    sender: str = _field("name", key="from")
    box: str = _field("box")


# -- remote control --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ControlEvent(Event):
    """What every remote-control event names: who drives whose desktop, and the request's number."""

    controller: str = _field("name")
    controlled: str = _field("name")
    request: int | None = _field("count", client_default=None)
    """None only from a server that numbers no request (the client profile)."""


@dataclass(frozen=True, kw_only=True)
class ControlRequested(ControlEvent):
    TYPE: ClassVar[str] = "control_requested"
    timeout: float = _field("number")


@dataclass(frozen=True, kw_only=True)
class ControlGranted(ControlEvent):
    TYPE: ClassVar[str] = "control_granted"


@dataclass(frozen=True, kw_only=True)
class ControlDenied(ControlEvent):
    TYPE: ClassVar[str] = "control_denied"
    reason: str = _field("reason")
    by: str | None = _field("name", optional=True)


@dataclass(frozen=True, kw_only=True)
class ControlRevoked(ControlEvent):
    TYPE: ClassVar[str] = "control_revoked"
    reason: str = _field("reason")
    by: str | None = _field("name", optional=True)


@dataclass(frozen=True, kw_only=True)
class ControlInput(Event):
    TYPE: ClassVar[str] = "control_input"
    sender: str = _field("name", key="from")
    action: str = _field("input_action")
    x: float | None = _field("fraction", optional=True)
    y: float | None = _field("fraction", optional=True)
    button: int | None = _field("button", optional=True)
    pressed: bool | None = _field("bool", optional=True)
    key: str | None = _field("key", optional=True)
    text: str | None = _field("input_text", optional=True)
    dx: int | None = _field("steps", optional=True)
    dy: int | None = _field("steps", optional=True)

    @classmethod
    def _check_together(cls, message: Message) -> None:
        check_input(message)  # the fields each action needs, as the server checked them


# -- errors ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Error(Event):
    TYPE: ClassVar[str] = "error"
    code: str = _field("code")
    message: str = _field("error_message")
    re: str | None = _field("code", optional=True)
    """The type of the request refused."""
    id: int | str | None = _field("id", optional=True)
    """The refused request's ``id``, echoed."""
    retry_after: float | None = _field("number", optional=True)
    """(``rate_limited``) seconds to wait before trying again."""


# -- calls -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Online(Event):
    TYPE: ClassVar[str] = "online"
    name: str = _field("name")
    stun_port: int = _field("port")


@dataclass(frozen=True, kw_only=True)
class Offline(Event):
    TYPE: ClassVar[str] = "offline"


@dataclass(frozen=True, kw_only=True)
class CallEvent(Event):
    call: str = _field("call")


@dataclass(frozen=True, kw_only=True)
class CallRinging(CallEvent):
    TYPE: ClassVar[str] = "call_ringing"
    peer: str = _field("name")
    timeout: float = _field("number")


@dataclass(frozen=True, kw_only=True)
class CallIncoming(CallEvent):
    TYPE: ClassVar[str] = "call_incoming"
    peer: str = _field("name")
    commitment: str = _field("call_key")
    candidates: tuple[str, ...] = _field("candidates")
    timeout: float = _field("number")
    stun_port: int = _field("port")


@dataclass(frozen=True, kw_only=True)
class CallAccepted(CallEvent):
    TYPE: ClassVar[str] = "call_accepted"
    stun_port: int = _field("port")
    peer: str = _field("name")
    key: str | None = _field("call_key", optional=True)
    """The callee's key, for the caller only."""
    candidates: tuple[str, ...] = _field("candidates")
    relay: str = _field("relay")


@dataclass(frozen=True, kw_only=True)
class CallReveal(CallEvent):
    TYPE: ClassVar[str] = "call_reveal"
    key: str = _field("call_key")


@dataclass(frozen=True, kw_only=True)
class CallConnected(CallEvent):
    TYPE: ClassVar[str] = "call_connected"


@dataclass(frozen=True, kw_only=True)
class CallPath(CallEvent):
    TYPE: ClassVar[str] = "call_path"
    path: str = _field("path")


@dataclass(frozen=True, kw_only=True)
class CallDeclined(CallEvent):
    TYPE: ClassVar[str] = "call_declined"
    peer: str = _field("name")
    reason: str = _field("reason")


@dataclass(frozen=True, kw_only=True)
class CallEnded(CallEvent):
    TYPE: ClassVar[str] = "call_ended"
    peer: str = _field("name")
    reason: str = _field("reason")


# -- in the meeting: hands, reactions, polls, breakout rooms, spotlight ---------------------------------


@dataclass(frozen=True, kw_only=True)
class VoteEntry:
    """One vote in a named poll's result."""

    name: str
    choice: int

    def to_message(self) -> Message:
        return {"name": self.name, "choice": self.choice}


@dataclass(frozen=True, kw_only=True)
class RoomEntry:
    """Where one participant goes in the breakout plan."""

    name: str
    room: int

    def to_message(self) -> Message:
        return {"name": self.name, "room": self.room}


def _entries(where: str, value: Any, number_key: str, number_kind: str) -> list[tuple[str, int]]:
    """A list of at most MAX_PARTICIPANT_ENTRIES objects ``{name, <number_key>}``."""
    if not isinstance(value, list) or len(value) > MAX_PARTICIPANT_ENTRIES:
        raise ProtocolError(f"{where} must be a list of at most {MAX_PARTICIPANT_ENTRIES} entries")
    pairs = []
    for item in value:
        entry = _object(where, item)
        for required in ("name", number_key):
            if entry.get(required) is None:
                raise ProtocolError(f"{where}: missing field {required!r}")
        check_field(where, "name", "name", entry["name"])
        check_field(where, number_key, number_kind, entry[number_key])
        pairs.append((entry["name"], entry[number_key]))
    return pairs


def _options(where: str, value: Any) -> tuple[str, ...]:
    kind, key = where.split(".", 1)
    check_field(kind, key, "options", value)
    return tuple(value)


def _counts(where: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > MAX_POLL_OPTIONS:
        raise ProtocolError(f"{where} must be a list of at most {MAX_POLL_OPTIONS} counts")
    return tuple(_integer(where, count, 0, MAX_PARTICIPANT_ENTRIES) for count in value)


_KINDS.update(
    {
        "position": lambda where, value: _integer(where, value, 1, MAX_PARTICIPANT_ENTRIES),
        "options": _options,
        "counts": _counts,
        "votes": lambda where, value: tuple(
            VoteEntry(name=name, choice=choice) for name, choice in _entries(where, value, "choice", "choice")
        ),
        "assignments": lambda where, value: tuple(
            RoomEntry(name=name, room=room) for name, room in _entries(where, value, "room", "room")
        ),
    }
)


@dataclass(frozen=True, kw_only=True)
class HandRaised(Event):
    TYPE: ClassVar[str] = "hand_raised"
    name: str = _field("name")
    position: int = _field("position")
    """Place in the queue of raised hands, from 1."""


@dataclass(frozen=True, kw_only=True)
class HandLowered(Event):
    TYPE: ClassVar[str] = "hand_lowered"
    name: str = _field("name")
    by: str | None = _field("name", optional=True)
    """Who lowered it, when not its owner."""


@dataclass(frozen=True, kw_only=True)
class Reaction(Event):
    TYPE: ClassVar[str] = "reaction"
    name: str = _field("name")
    emoji: str = _field("emoji")


@dataclass(frozen=True, kw_only=True)
class PollEvent(Event):
    """What every poll event but ``vote_recorded`` carries."""

    poll: int = _field("count")
    question: str = _field("question")
    options: tuple[str, ...] = _field("options")


@dataclass(frozen=True, kw_only=True)
class PollStarted(PollEvent):
    TYPE: ClassVar[str] = "poll_started"
    named: bool = _field("bool")
    by: str = _field("name")


@dataclass(frozen=True, kw_only=True)
class VoteRecorded(Event):
    TYPE: ClassVar[str] = "vote_recorded"
    poll: int = _field("count")
    choice: int = _field("choice")


@dataclass(frozen=True, kw_only=True)
class PollClosed(PollEvent):
    TYPE: ClassVar[str] = "poll_closed"
    counts: tuple[int, ...] = _field("counts")
    voters: int = _field("count")
    by: str = _field("name")
    votes: tuple[VoteEntry, ...] | None = _field("votes", optional=True)
    """Who chose what, in a named poll."""


@dataclass(frozen=True, kw_only=True)
class BreakoutRooms(Event):
    TYPE: ClassVar[str] = "breakout_rooms"
    rooms: int = _field("rooms")
    open: bool = _field("bool")
    assignments: tuple[RoomEntry, ...] = _field("assignments")


@dataclass(frozen=True, kw_only=True)
class BreakoutOpened(Event):
    TYPE: ClassVar[str] = "breakout_opened"
    rooms: int = _field("rooms")
    by: str | None = _field("name", optional=True)
    ends_in: float | None = _field("number", optional=True)
    """Seconds until the rooms close by themselves, when the host gave a time."""


@dataclass(frozen=True, kw_only=True)
class BreakoutMoved(Event):
    TYPE: ClassVar[str] = "breakout_moved"
    name: str = _field("name")
    room: int = _field("room")
    """0: the main room."""
    by: str | None = _field("name", optional=True)


@dataclass(frozen=True, kw_only=True)
class BreakoutBroadcast(Event):
    TYPE: ClassVar[str] = "breakout_broadcast"
    sender: str = _field("name", key="from")
    text: str = _field("text")


@dataclass(frozen=True, kw_only=True)
class BreakoutClosed(Event):
    TYPE: ClassVar[str] = "breakout_closed"
    reason: str = _field("reason")
    by: str | None = _field("name", optional=True)


@dataclass(frozen=True, kw_only=True)
class Spotlight(Event):
    TYPE: ClassVar[str] = "spotlight"
    name: str | None = _field("name", optional=True)
    """Whose video is pinned for everyone; None: nobody's."""
    by: str | None = _field("name", optional=True)


@dataclass(frozen=True, kw_only=True)
class ParticipantRenamed(Event):
    TYPE: ClassVar[str] = "participant_renamed"
    name: str = _field("name")
    new_name: str = _field("name")
    by: str = _field("name")


@dataclass(frozen=True, kw_only=True)
class UnmuteRequested(Event):
    TYPE: ClassVar[str] = "unmute_requested"
    name: str = _field("name")
    by: str = _field("name")


EVENT_TYPES: dict[str, type[Event]] = {
    cls.TYPE: cls
    for cls in (
        Welcome,
        ResumeToken,
        Pong,
        LoggedIn,
        MeetingCreated,
        Redirect,
        Joined,
        Participants,
        Waiting,
        Denied,
        ParticipantJoined,
        ParticipantLeft,
        RecordingStarted,
        RecordingStopped,
        RoleChanged,
        PermissionChanged,
        Kicked,
        Unbanned,
        Left,
        MeetingLocked,
        MeetingClosed,
        WaitingJoined,
        WaitingLeft,
        WaitingRoom,
        WaitingRoomChanged,
        Chat,
        ShareStarted,
        LayersActive,
        LayerSwitched,
        ShareStopped,
        ActiveSpeaker,
        E2eeKey,
        ControlRequested,
        ControlGranted,
        ControlDenied,
        ControlRevoked,
        ControlInput,
        Error,
        Online,
        Offline,
        CallRinging,
        CallIncoming,
        CallAccepted,
        CallReveal,
        CallConnected,
        CallPath,
        CallDeclined,
        CallEnded,
        HandRaised,
        HandLowered,
        Reaction,
        PollStarted,
        VoteRecorded,
        PollClosed,
        BreakoutRooms,
        BreakoutOpened,
        BreakoutMoved,
        BreakoutBroadcast,
        BreakoutClosed,
        Spotlight,
        ParticipantRenamed,
        UnmuteRequested,
    )
}
"""Every message type the server sends, and its event class."""


def parse_event(message: Message, *, lenient: bool = False) -> Event:
    """The typed event of a server message; ProtocolError for an unknown type or a wrong field.

    ``lenient`` reads it with the client profile (docs/protocol.md): text to be drawn may hold control
    characters, each made U+FFFD; the fields with a ``client_default`` may be left out; some kinds are
    checked as ``_CLIENT_KINDS`` says (an E2EE key, a flag, a track's kind)."""
    kind = message.get("type")
    cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ProtocolError(f"unknown event type {str(kind)[:40]!r}")
    return cls.parse(message, lenient=lenient)
