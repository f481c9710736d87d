"""One client-side model of the meeting, kept from the server's typed events. Sans-I/O.

The client link parses each server message once, with the client profile of
:func:`~conf_cli.protocol.events.parse_event` (docs/protocol.md, "The client profile"), and hands on a
:class:`ServerMessage`: the message as it came (what machine mode prints, and the faces show) holding its
typed event. Whatever reads server messages (the terminal view, the media manager, remote control, calls)
reads that event (:func:`event_of`) and trusts its fields: they were checked once, here. Messages the client
makes itself (``track_started``, ``security_code``, ``disconnected`` ... docs/events.md) stay plain dicts
with no typed event.

:class:`MeetingState` is the meeting as one participant knows it (who is in, with which role, permissions,
keys and tracks; the lock and the waiting room; the remote-control session we take part in; whether the
meeting is end-to-end encrypted), updated by :meth:`MeetingState.apply` from one typed event at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from conf_cli.protocol.control import Message
from conf_cli.protocol.events import (
    EVENT_TYPES,
    ControlDenied,
    ControlGranted,
    ControlRequested,
    ControlRevoked,
    Denied,
    Event,
    Joined,
    Kicked,
    Left,
    MeetingClosed,
    MeetingCreated,
    MeetingLocked,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantRenamed,
    Participants,
    PermissionChanged,
    RecordingStarted,
    RecordingStopped,
    RoleChanged,
    ShareStarted,
    ShareStopped,
    Snapshot,
    TrackEntry,
    Waiting,
    WaitingJoined,
    WaitingLeft,
    WaitingRoom,
    WaitingRoomChanged,
    parse_event,
)


class ServerMessage(dict[str, Any]):
    """A server's message as it came, holding the typed event the client link parsed from it once."""

    __slots__ = ("event",)

    def __init__(self, message: Message, event: Event) -> None:
        super().__init__(message)
        self.event = event

    @classmethod
    def of(cls, event: Event) -> ServerMessage:
        """``event`` as if the server had sent it (a call's direct path stands in for the server)."""
        return cls(event.to_message(), event)


def receive(message: Message) -> Message:
    """A decoded server message as the client link hands it on: a :class:`ServerMessage` for a type
    conf knows, checked with the client profile (ProtocolError naming the first wrong field); a type it
    does not know (a newer server's) stays the dict it is, to be shown as it came."""
    if message.get("type") not in EVENT_TYPES:
        return message
    return ServerMessage(message, parse_event(message, lenient=True))


def with_fields(message: Message, **fields: Any) -> Message:
    """``message`` with fields the client adds to it (an invite link), keeping its typed event."""
    event = event_of(message)
    added = {**message, **fields}
    return ServerMessage(added, event) if event is not None else added


def event_of(message: Message) -> Event | None:
    """The typed event of a message the client link received; None for the client's own messages."""
    return message.event if isinstance(message, ServerMessage) else None


@dataclass
class Participant:
    """One person in the meeting, as we know them."""

    name: str
    role: str
    sharing: set[str] = field(default_factory=set)
    """The kinds of track they publish (audio, video, screen)."""
    forbidden: set[str] = field(default_factory=set)
    """What the host forbade them in particular."""
    key: str | None = None
    """Their X25519 public key (base64), in an end-to-end encrypted meeting: the key ring checks it."""
    recorder: bool = False
    """They record the meeting (``conf record``)."""


@dataclass(frozen=True)
class ControlSession:
    """The remote-control session we take part in: asked for, then granted."""

    controller: str
    controlled: str
    request: int | None
    """The server's number for the request (None from a server that gives none)."""
    granted: bool = False


@dataclass
class MeetingState:
    """The meeting as one participant knows it, from the server's events."""

    me: str = ""
    meeting: str = ""
    passcode: str | None = None
    e2ee: bool = False
    """The meeting is end-to-end encrypted (``meeting_created`` or a snapshot said so)."""
    locked: bool = False
    forbidden: set[str] = field(default_factory=set)
    """What members may not do, meeting-wide."""
    waiting_room: bool = False
    waiting: list[str] = field(default_factory=list)
    """Who waits to be admitted (known to the host and admins only)."""
    held: bool = False
    """We ourselves wait in the meeting's waiting room."""
    participants: dict[str, Participant] = field(default_factory=dict)
    """Everyone in the meeting, us included, in the order they came."""
    tracks: dict[int, TrackEntry] = field(default_factory=dict)
    """Every live track of the meeting, by SSRC."""
    control: ControlSession | None = None
    ended: str | None = None
    """The type of the event after which we are no longer in the meeting (``left``, ``kicked`` ...)."""

    @property
    def role(self) -> str:
        """Our role (``member`` until we know better)."""
        me = self.participants.get(self.me)
        return me.role if me is not None else "member"

    def tracks_of(self, name: str) -> list[TrackEntry]:
        """The live tracks ``name`` publishes."""
        return [track for track in self.tracks.values() if track.name == name]

    def apply(self, event: Event) -> None:
        """Update the model from one typed event; events that change nothing here are ignored."""
        match event:
            case MeetingCreated():
                self.meeting, self.passcode = event.meeting, event.passcode
                self.e2ee = self.e2ee or event.e2ee is True
            case Joined():
                self.me, self.held, self.ended = event.name, False, None
                self._load(event)
            case Participants():
                self._load(event)
            case Waiting():
                self.me, self.meeting, self.held = event.name, event.meeting, True
            case ParticipantJoined():
                self.participants[event.name] = Participant(
                    event.name, event.role, key=event.key, recorder=event.recorder is True
                )
            case RecordingStarted() | RecordingStopped():
                if (peer := self.participants.get(event.by)) is not None:
                    peer.recorder = isinstance(event, RecordingStarted)
            case ParticipantLeft():
                self._gone(event.name)
            case ParticipantRenamed():
                self._renamed(event.name, event.new_name)
            case RoleChanged():
                self._role_changed(event.name, event.role)
            case PermissionChanged():
                self._permission_changed(event)
            case MeetingLocked():
                self.locked = event.locked
            case ShareStarted():
                self.tracks[event.ssrc] = TrackEntry(
                    name=event.name, kind=event.kind, ssrc=event.ssrc, codec=event.codec
                )
                if (peer := self.participants.get(event.name)) is not None:
                    peer.sharing.add(event.kind)
            case ShareStopped():
                self._share_stopped(event)
            case WaitingRoom():
                self.waiting_room, self.waiting = event.enabled, list(event.waiting)
            case WaitingRoomChanged():
                self.waiting_room = event.enabled
            case WaitingJoined():
                if event.name not in self.waiting:
                    self.waiting.append(event.name)
            case WaitingLeft():
                if event.name in self.waiting:
                    self.waiting.remove(event.name)
            case ControlRequested():
                self.control = ControlSession(event.controller, event.controlled, event.request)
            case ControlGranted():
                self.control = ControlSession(event.controller, event.controlled, event.request, granted=True)
            case ControlDenied() | ControlRevoked():
                self.control = None
            case Left() | Kicked() | MeetingClosed() | Denied():
                self.ended = event.TYPE
                self.control = None

    def _load(self, snapshot: Snapshot) -> None:
        self.meeting = snapshot.meeting
        self.locked = snapshot.locked
        self.forbidden = set(snapshot.forbidden)
        self.e2ee = snapshot.e2ee is True or self.e2ee
        self.waiting_room = snapshot.waiting_room is True
        self.waiting = list(snapshot.waiting or ())
        self.participants = {
            entry.name: Participant(
                entry.name, entry.role, set(entry.sharing), set(entry.forbidden), entry.key, entry.recorder
            )
            for entry in snapshot.participants
        }
        self.tracks = {track.ssrc: track for track in snapshot.tracks}

    def _renamed(self, old: str, new: str) -> None:
        """The host renamed ``old`` (perhaps us) ``new``: their entry, their tracks and, if it is us, our
        name."""
        self.participants = {(new if name == old else name): peer for name, peer in self.participants.items()}
        if (peer := self.participants.get(new)) is not None:
            peer.name = new
        self.tracks = {
            ssrc: replace(track, name=new) if track.name == old else track
            for ssrc, track in self.tracks.items()
        }
        if self.me == old:
            self.me = new

    def _gone(self, name: str) -> None:
        self.participants.pop(name, None)
        self.tracks = {ssrc: track for ssrc, track in self.tracks.items() if track.name != name}
        if self.control is not None and name in (self.control.controller, self.control.controlled):
            self.control = None

    def _role_changed(self, name: str, role: str) -> None:
        peer = self.participants.get(name)
        if peer is not None:
            peer.role = role
            if role == "host":  # nobody may forbid the host anything
                peer.forbidden.clear()

    def _permission_changed(self, event: PermissionChanged) -> None:
        if event.name is None:
            forbidden = self.forbidden
        elif (peer := self.participants.get(event.name)) is not None:
            forbidden = peer.forbidden
        else:
            return
        if event.allowed:
            forbidden.discard(event.what)
        else:
            forbidden.add(event.what)

    def _share_stopped(self, event: ShareStopped) -> None:
        peer = self.participants.get(event.name)
        if peer is not None:
            peer.sharing.discard(event.kind)
        self.tracks = {
            ssrc: track
            for ssrc, track in self.tracks.items()
            if not (track.name == event.name and track.kind == event.kind and event.ssrc in (None, ssrc))
        }
