"""What the terminal shows of the meeting, kept from events. Sans-I/O.

The meeting itself (who is in, roles, permissions, the lock, the waiting room) is a
:class:`~conf_cli.client.state.MeetingState`, updated from the typed event of each server message; the view
adds what a person reads: a log of lines, the received tracks' figures (from the client's own
``track_started`` and ``track_stats``), the security code, and why the meeting or remote control ended.
The terminal UI draws from this; tests check it without a terminal.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conf_cli.client.state import MeetingState, Participant, event_of
from conf_cli.client.ui.activity import Activity
from conf_cli.protocol.events import (
    Chat,
    ControlDenied,
    ControlGranted,
    ControlRequested,
    ControlRevoked,
    Denied,
    Error,
    Event,
    Joined,
    Kicked,
    Left,
    MeetingClosed,
    MeetingLocked,
    ParticipantJoined,
    ParticipantLeft,
    Participants,
    PermissionChanged,
    RoleChanged,
    ShareStarted,
    ShareStopped,
    Unbanned,
    Waiting,
    WaitingJoined,
    WaitingLeft,
    WaitingRoom,
    WaitingRoomChanged,
)
from conf_cli.text import printable_event

Message = dict[str, Any]

PeerView = Participant
"""One participant as the view shows them (the meeting state's :class:`Participant`)."""


@dataclass
class TrackView:
    """The latest reception figures of one remote track (from ``track_stats``)."""

    name: str
    kind: str
    ssrc: int | None = None
    codec: str = ""
    frames: int = 0
    fps: float = 0.0
    bitrate: float = 0.0
    """bit/s over the last second"""
    loss_rate: float = 0.0
    """0..1"""
    jitter_ms: float = 0.0
    rtt_ms: float | None = None
    """round-trip time to the publisher, once measured"""

    @classmethod
    def from_event(cls, e: Message) -> TrackView:
        rtt = e.get("rtt_ms")
        return cls(
            name=str(e.get("name", "")),
            kind=str(e.get("kind", "")),
            ssrc=e["ssrc"] if isinstance(e.get("ssrc"), int) else None,
            codec=str(e.get("codec", "")),
            frames=_number(e.get("frames"), int),
            fps=_number(e.get("fps"), float),
            bitrate=_number(e.get("bitrate"), float),
            loss_rate=_number(e.get("loss_rate"), float),
            jitter_ms=_number(e.get("jitter_ms"), float),
            rtt_ms=float(rtt) if isinstance(rtt, int | float) and not isinstance(rtt, bool) else None,
        )


def _number(value: Any, kind: type[int] | type[float]) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return kind(value)
    return kind(0)


class MeetingView:
    """The meeting as one participant's terminal shows it."""

    def __init__(self, me: str) -> None:
        self.state = MeetingState(me=me)
        self.log: deque[tuple[str, str]] = deque(maxlen=500)  # (style, text)
        self.ended: str | None = None
        """Why the meeting ended for us, in words."""
        self.tracks: dict[tuple[str, str], TrackView] = {}
        """Received tracks by (name, kind), in the order they started, with their latest figures."""
        self.security_code: str | None = None
        """In an end-to-end encrypted meeting: the code everyone compares aloud (the same on every screen)."""
        self.control_outcome: str | None = None
        """How the last remote-control request or session we took part in ended (said again on leaving)."""
        self.speaker: str | None = None
        """Who the server last named the active speaker (``active_speaker``)."""
        self.activity = Activity()
        """Hands, reactions, the open poll, breakout rooms, the spotlight
        (:mod:`conf_cli.client.ui.activity`)."""

    # What the meeting state knows, as the terminal reads it.

    @property
    def me(self) -> str:
        return self.state.me

    @property
    def meeting(self) -> str:
        return self.state.meeting

    @property
    def passcode(self) -> str | None:
        return self.state.passcode

    @property
    def locked(self) -> bool:
        return self.state.locked

    @property
    def forbidden(self) -> set[str]:
        return self.state.forbidden

    @property
    def waiting_room(self) -> bool:
        return self.state.waiting_room

    @property
    def waiting(self) -> list[str]:
        return self.state.waiting

    @property
    def held(self) -> bool:
        return self.state.held

    @property
    def peers(self) -> dict[str, Participant]:
        return self.state.participants

    @property
    def e2ee(self) -> bool:
        return self.state.e2ee

    @property
    def recorders(self) -> list[str]:
        """Who records the meeting now, in order of arrival."""
        return [peer.name for peer in self.peers.values() if peer.recorder]

    @property
    def my_role(self) -> str:
        return self.state.role

    def apply(self, message: Message) -> None:
        """Update the view from one event and add a line to the log where a person would want one.

        A server message's typed event updates the meeting state and is told from its checked fields
        (the client profile has made their text printable); the client's own events are made printable
        first. What the view keeps is safe to draw (as rich Text, never as markup)."""
        event = event_of(message)
        message = printable_event(message)
        if event is not None:
            self.state.apply(event)
            tell = _TELL.get(type(event))
            if tell is not None:
                tell(self, event)
            else:
                self._tell_untyped(message)
        else:
            self._tell_untyped(message)
        for style, text in self.activity.apply(message, self.me):
            self._note(text, style)

    def _tell_untyped(self, message: Message) -> None:
        """A line for an event the view tells from its (printable) fields: the client's own events, and
        server events with no typed handler."""
        kind = message.get("type")
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(message)
        elif str(kind).startswith("call_"):
            from conf_cli.client.ui.call_console import describe

            line = describe(message)
            if line is not None:
                self._note(line, "magenta")

    def _note(self, text: str, style: str = "dim") -> None:
        self.log.append((style, text))

    # -- server events (typed) ----------------------------------------------------------------------

    def _joined(self, e: Joined) -> None:
        self._note(f"you joined meeting {e.meeting} as {e.role}; type /help for commands", "green")

    def _participants(self, e: Participants) -> None:
        listing = ", ".join(
            f"{p.name} ({p.role}{'; ' + ', '.join(sorted(p.sharing)) if p.sharing else ''})"
            for p in self.peers.values()
        )
        self._note(f"in the meeting: {listing}", "cyan")

    def _participant_joined(self, e: ParticipantJoined) -> None:
        self._note(f"{e.name} joined", "green")

    def _participant_left(self, e: ParticipantLeft) -> None:
        reason = e.reason
        if reason == "kicked":  # the server keeps them out until the host or an admin lets them back
            reason = f"kicked; they stay out until /unban {e.name}"
        self._note(f"{e.name} left" + ("" if reason == "left" else f" ({reason})"), "yellow")

    def _role_changed(self, e: RoleChanged) -> None:
        by = f" by {e.by}" if e.by else ""
        who = "you are" if e.name == self.me else f"{e.name} is"
        self._note(f"{who} now {e.role}{by}", "magenta")

    def _permission_changed(self, e: PermissionChanged) -> None:
        scope = f"for {e.name}" if e.name else "for members"
        self._note(f"{e.by} {'permitted' if e.allowed else 'forbade'} {e.what} {scope}", "magenta")

    def _share_started(self, e: ShareStarted) -> None:
        self._note(f"{e.name} is sharing {e.kind}", "blue")

    def _share_stopped(self, e: ShareStopped) -> None:
        self._note(f"{e.name} stopped sharing {e.kind}", "blue")

    def _meeting_locked(self, e: MeetingLocked) -> None:
        self._note(f"{e.by} {'locked' if e.locked else 'unlocked'} the meeting", "magenta")

    def _chat(self, e: Chat) -> None:
        if e.private:
            self.log.append(("italic yellow", f"[private] {e.sender} → {e.to}: {e.text}"))
        else:
            self.log.append(("bold" if e.sender == self.me else "", f"{e.sender}: {e.text}"))

    def _control_requested(self, e: ControlRequested) -> None:
        self.control_outcome = None
        if e.controlled == self.me:
            text = f"{e.controller} asks to control your desktop: y to allow, n to refuse ({e.timeout:g} s)"
            self._note(text, "bold yellow")
        else:
            self._note(f"asked {e.controlled} for control of their desktop; waiting for an answer", "yellow")

    def _control_granted(self, e: ControlGranted) -> None:
        if e.controlled == self.me:
            self._note(
                f"{e.controller} controls your desktop: Ctrl-R or /revoke takes it back", "bold yellow"
            )
        else:
            self._note(f"you control {e.controlled}'s desktop (in its window; close it to let go)", "yellow")

    def _control_denied(self, e: ControlDenied) -> None:
        reason = {"rejected": "refused", "timeout": "no answer in time", "withdrawn": "request withdrawn"}
        why = reason.get(e.reason, e.reason)
        self.control_outcome = f"remote control of {e.controlled}'s desktop by {e.controller}: {why}"
        self._note(self.control_outcome, "yellow")

    def _control_revoked(self, e: ControlRevoked) -> None:
        by = f" by {e.by}" if e.by else ""
        whose = f"{e.controlled}'s desktop by {e.controller}"
        self.control_outcome = f"remote control of {whose} ended{by} ({e.reason})"
        self._note(self.control_outcome, "yellow")

    def _error(self, e: Error) -> None:
        if e.re == "control_request":
            self.control_outcome = f"remote control refused: {e.message}"
        self._note(f"error: {e.message}", "bold red")

    def _kicked(self, e: Kicked) -> None:
        self.ended = f"{e.by} removed you from the meeting"
        self._note(self.ended, "bold red")

    def _meeting_closed(self, e: MeetingClosed) -> None:
        self.ended = f"{e.by} ended the meeting" if e.by else "the meeting ended"
        self._note(self.ended, "bold red")

    def _waiting(self, e: Waiting) -> None:
        self._note(f"you are in the waiting room of meeting {e.meeting}; the host will let you in", "yellow")

    def _denied(self, e: Denied) -> None:
        self.ended = f"{e.by} did not admit you to the meeting"
        self._note(self.ended, "bold red")

    def _waiting_room(self, e: WaitingRoom) -> None:
        if self.waiting:
            self._note(
                f"waiting to be admitted: {', '.join(self.waiting)} (/admit NAME, /deny NAME)", "yellow"
            )

    def _waiting_room_changed(self, e: WaitingRoomChanged) -> None:
        self._note(f"{e.by} turned the waiting room {'on' if e.enabled else 'off'}", "magenta")

    def _waiting_joined(self, e: WaitingJoined) -> None:
        self._note(f"{e.name} is waiting to be admitted (/admit {e.name}, /deny {e.name})", "bold yellow")

    def _waiting_left(self, e: WaitingLeft) -> None:
        by = f" by {e.by}" if e.by else ""
        if e.reason in ("admitted", "denied"):
            self._note(f"{e.name} was {e.reason}{by}", "dim")
        else:
            self._note(f"{e.name} stopped waiting ({e.reason})", "dim")

    def _unbanned(self, e: Unbanned) -> None:
        self._note(f"{e.by} let {e.name} join again", "dim")

    def _left(self, e: Left) -> None:
        self.ended = "you left the meeting"
        self._note(self.ended, "yellow")

    # -- the client's own events (dicts, made printable) --------------------------------------------

    def _on_meeting_created(self, e: Message) -> None:
        """Told from the message as shown: the client adds its invite link to it (the state has the rest)."""
        self._note(f"meeting {e['meeting']} created, passcode {e.get('passcode')}", "bold green")
        if e.get("invite"):
            self._note(f"browsers join at {e['invite']}", "green")

    def _on_invite(self, e: Message) -> None:
        self._note(f"invite: {e['url']}", "bold green")

    def _on_security_code(self, e: Message) -> None:
        self.state.e2ee = True
        self.security_code = str(e.get("code", ""))
        names = ", ".join(str(n) for n in e.get("participants") or ())
        self._note(
            f"end-to-end encrypted; security code {self.security_code} ({names}): "
            "compare it aloud, everyone must see the same",
            "bold cyan",
        )

    def _on_recording_started(self, e: Message) -> None:
        peer = self.peers.get(e["by"])
        if peer is not None:
            peer.recorder = True
        self._note(f"this meeting is being recorded by {e['by']}", "bold red")

    def _on_recording_stopped(self, e: Message) -> None:
        peer = self.peers.get(e["by"])
        if peer is not None:
            peer.recorder = False
        reason = e.get("reason", "left")
        self._note(f"{e['by']} stopped recording" + ("" if reason == "left" else f" ({reason})"), "red")

    def _on_participant_renamed(self, e: Message) -> None:
        """The meeting state renamed them (and us); the view's tracks follow, and the log says who did."""
        old, new = e["name"], e["new_name"]
        self.tracks = {
            ((new if who == old else who), kind): track for (who, kind), track in self.tracks.items()
        }
        for track in self.tracks.values():
            if track.name == old:
                track.name = new
        if new == self.me:
            self._note(f"{e['by']} renamed you {new}", "bold magenta")
        else:
            self._note(f"{e['by']} renamed {old} {new}", "magenta")

    def _on_active_speaker(self, e: Message) -> None:
        self.speaker = str(e.get("name", "")) or None

    def _on_follow(self, e: Message) -> None:
        self._note("the preview follows the active speaker" if e.get("on") else "the preview stays put")

    def _on_volume(self, e: Message) -> None:
        self._note(f"{e.get('name')}'s volume is now {e.get('volume')} %")

    def _on_publish_started(self, e: Message) -> None:
        self._note(f"you are sharing {e['kind']} from {e['source']}", "blue")

    def _on_publish_stopped(self, e: Message) -> None:
        reason = e.get("reason", "stopped")
        self._note(
            f"you stopped sharing {e['kind']}" + ("" if reason == "stopped" else f" ({reason})"), "blue"
        )

    def _on_track_started(self, e: Message) -> None:
        self.tracks[(str(e.get("name", "")), str(e.get("kind", "")))] = TrackView.from_event(e)
        self._note(f"receiving {e['name']}'s {e['kind']}", "dim")

    def _on_track_stats(self, e: Message) -> None:
        key = (str(e.get("name", "")), str(e.get("kind", "")))
        known = self.tracks.get(key)
        if known is not None and known.ssrc is not None and e.get("ssrc") not in (None, known.ssrc):
            return  # a late report from a track that another one of the same kind has replaced
        self.tracks[key] = TrackView.from_event(e)

    def _on_track_ended(self, e: Message) -> None:
        key = (str(e.get("name", "")), str(e.get("kind", "")))
        known = self.tracks.get(key)
        if known is not None and (known.ssrc is None or e.get("ssrc") in (None, known.ssrc)):
            del self.tracks[key]

    def _on_control_stopped(self, e: Message) -> None:
        if e["controlled"] == self.me:
            text = f"you took your desktop back from {e['controller']}: nothing more of theirs is replayed"
        else:
            text = f"you let go of {e['controlled']}'s desktop"
        self._note(text, "yellow")

    def _on_error(self, e: Message) -> None:
        self._note(f"error: {e.get('message')}", "bold red")

    def _on_reconnecting(self, e: Message) -> None:
        if e.get("attempt") == 1:  # one line for the whole outage
            self._note(f"connection lost ({e.get('reason')}); reconnecting ...", "yellow")

    def _on_reconnected(self, e: Message) -> None:
        self._note(f"reconnected to {e.get('url')} after {e.get('seconds')} s: back in the meeting", "green")

    def _on_disconnected(self, e: Message) -> None:
        self.ended = f"connection lost: {e.get('reason')}"
        self._note(self.ended, "bold red")


_TELL: dict[type[Event], Callable[[MeetingView, Any], None]] = {
    Joined: MeetingView._joined,
    Participants: MeetingView._participants,
    ParticipantJoined: MeetingView._participant_joined,
    ParticipantLeft: MeetingView._participant_left,
    RoleChanged: MeetingView._role_changed,
    PermissionChanged: MeetingView._permission_changed,
    ShareStarted: MeetingView._share_started,
    ShareStopped: MeetingView._share_stopped,
    MeetingLocked: MeetingView._meeting_locked,
    Chat: MeetingView._chat,
    ControlRequested: MeetingView._control_requested,
    ControlGranted: MeetingView._control_granted,
    ControlDenied: MeetingView._control_denied,
    ControlRevoked: MeetingView._control_revoked,
    Error: MeetingView._error,
    Kicked: MeetingView._kicked,
    MeetingClosed: MeetingView._meeting_closed,
    Waiting: MeetingView._waiting,
    Denied: MeetingView._denied,
    WaitingRoom: MeetingView._waiting_room,
    WaitingRoomChanged: MeetingView._waiting_room_changed,
    WaitingJoined: MeetingView._waiting_joined,
    WaitingLeft: MeetingView._waiting_left,
    Unbanned: MeetingView._unbanned,
    Left: MeetingView._left,
}
"""How the view tells each server event it has words for (the state has already taken it in)."""
