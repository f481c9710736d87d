"""What a participant knows about the meeting, kept from server events. Sans-I/O.

The terminal UI draws from this; tests check it without a terminal.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from conf_cli.client.ui.activity import Activity
from conf_cli.text import printable_event

Message = dict[str, Any]


@dataclass
class PeerView:
    name: str
    role: str
    sharing: set[str] = field(default_factory=set)
    forbidden: set[str] = field(default_factory=set)
    recorder: bool = False
    """It records the meeting (``conf record``)."""


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


@dataclass
class MeetingView:
    me: str
    meeting: str = ""
    passcode: str | None = None
    locked: bool = False
    forbidden: set[str] = field(default_factory=set)
    waiting_room: bool = False
    waiting: list[str] = field(default_factory=list)
    """Who waits to be admitted (known to the host and admins only)."""
    held: bool = False
    """We ourselves wait in the meeting's waiting room."""
    peers: dict[str, PeerView] = field(default_factory=dict)
    log: deque[tuple[str, str]] = field(default_factory=lambda: deque(maxlen=500))  # (style, text)
    ended: str | None = None
    tracks: dict[tuple[str, str], TrackView] = field(default_factory=dict)
    """Received tracks by (name, kind), in the order they started, with their latest figures."""
    e2ee: bool = False
    security_code: str | None = None
    """In an end-to-end encrypted meeting: the code everyone compares aloud (the same on every screen)."""
    control_outcome: str | None = None
    """How the last remote-control request or session we took part in ended (said again on leaving)."""
    activity: Activity = field(default_factory=Activity)
    """Hands, reactions, the open poll, breakout rooms, the spotlight (:mod:`conf_cli.client.ui.activity`)."""

    @property
    def recorders(self) -> list[str]:
        """Who records the meeting now, in order of arrival."""
        return [peer.name for peer in self.peers.values() if peer.recorder]

    @property
    def my_role(self) -> str:
        peer = self.peers.get(self.me)
        return peer.role if peer else "member"

    def apply(self, event: Message) -> None:
        """Update the view from one event and add a line to the log where a person would want one.

        Every string of the event is made printable first: what the view keeps is safe to draw (as
        rich Text, never as markup)."""
        event = printable_event(event)
        kind = event.get("type")
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(event)
        elif str(kind).startswith("call_"):
            from conf_cli.client.ui.call_console import describe

            line = describe(event)
            if line is not None:
                self._note(line, "magenta")
        for style, text in self.activity.apply(event, self.me):
            self._note(text, style)

    def _note(self, text: str, style: str = "dim") -> None:
        self.log.append((style, text))

    def _load(self, snapshot: Message) -> None:
        self.meeting = snapshot.get("meeting", self.meeting)
        self.locked = bool(snapshot.get("locked"))
        self.forbidden = set(snapshot.get("forbidden", ()))
        self.e2ee = snapshot.get("e2ee") is True or self.e2ee
        self.waiting_room = bool(snapshot.get("waiting_room"))
        self.waiting = [str(name) for name in snapshot.get("waiting", ())]
        self.peers = {
            p["name"]: PeerView(
                p["name"],
                p["role"],
                set(p.get("sharing", ())),
                set(p.get("forbidden", ())),
                recorder=p.get("recorder") is True,
            )
            for p in snapshot.get("participants", ())
        }

    def _on_meeting_created(self, e: Message) -> None:
        self.meeting, self.passcode = e["meeting"], e.get("passcode")
        self._note(f"meeting {e['meeting']} created, passcode {e.get('passcode')}", "bold green")
        if e.get("invite"):
            self._note(f"browsers join at {e['invite']}", "green")

    def _on_invite(self, e: Message) -> None:
        self._note(f"invite: {e['url']}", "bold green")

    def _on_joined(self, e: Message) -> None:
        self.me = e["name"]
        self.held = False
        self._load(e)
        self._note(f"you joined meeting {self.meeting} as {e['role']}; type /help for commands", "green")

    def _on_security_code(self, e: Message) -> None:
        self.e2ee = True
        self.security_code = str(e.get("code", ""))
        names = ", ".join(str(n) for n in e.get("participants") or ())
        self._note(
            f"end-to-end encrypted; security code {self.security_code} ({names}): "
            "compare it aloud, everyone must see the same",
            "bold cyan",
        )

    def _on_participants(self, e: Message) -> None:
        self._load(e)
        listing = ", ".join(
            f"{p.name} ({p.role}{'; ' + ', '.join(sorted(p.sharing)) if p.sharing else ''})"
            for p in self.peers.values()
        )
        self._note(f"in the meeting: {listing}", "cyan")

    def _on_participant_joined(self, e: Message) -> None:
        self.peers[e["name"]] = PeerView(e["name"], e["role"], recorder=e.get("recorder") is True)
        self._note(f"{e['name']} joined", "green")

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
        old, new = e["name"], e["new_name"]
        self.peers = {(new if name == old else name): peer for name, peer in self.peers.items()}
        if new in self.peers:
            self.peers[new].name = new
        self.tracks = {
            ((new if who == old else who), kind): track for (who, kind), track in self.tracks.items()
        }
        for track in self.tracks.values():
            if track.name == old:
                track.name = new
        if old == self.me:
            self.me = new
            self._note(f"{e['by']} renamed you {new}", "bold magenta")
        else:
            self._note(f"{e['by']} renamed {old} {new}", "magenta")

    def _on_participant_left(self, e: Message) -> None:
        self.peers.pop(e["name"], None)
        reason = e.get("reason", "left")
        if reason == "kicked":  # the server keeps them out until the host or an admin lets them back
            reason = f"kicked; they stay out until /unban {e['name']}"
        self._note(f"{e['name']} left" + ("" if reason == "left" else f" ({reason})"), "yellow")

    def _on_role_changed(self, e: Message) -> None:
        peer = self.peers.get(e["name"])
        if peer:
            peer.role = e["role"]
            if peer.role == "host":  # nobody may forbid the host anything
                peer.forbidden.clear()
        by = f" by {e['by']}" if e.get("by") else ""
        who = "you are" if e["name"] == self.me else f"{e['name']} is"
        self._note(f"{who} now {e['role']}{by}", "magenta")

    def _on_permission_changed(self, e: Message) -> None:
        what, allowed = e["what"], e["allowed"]
        target = e.get("name")
        if target:
            peer = self.peers.get(target)
            if peer:
                (peer.forbidden.discard if allowed else peer.forbidden.add)(what)
        else:
            (self.forbidden.discard if allowed else self.forbidden.add)(what)
        scope = f"for {target}" if target else "for members"
        self._note(f"{e.get('by', 'host')} {'permitted' if allowed else 'forbade'} {what} {scope}", "magenta")

    def _on_share_started(self, e: Message) -> None:
        peer = self.peers.get(e["name"])
        if peer:
            peer.sharing.add(e["kind"])
        self._note(f"{e['name']} is sharing {e['kind']}", "blue")

    def _on_share_stopped(self, e: Message) -> None:
        peer = self.peers.get(e["name"])
        if peer:
            peer.sharing.discard(e["kind"])
        self._note(f"{e['name']} stopped sharing {e['kind']}", "blue")

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

    def _on_meeting_locked(self, e: Message) -> None:
        self.locked = e["locked"]
        self._note(f"{e['by']} {'locked' if e['locked'] else 'unlocked'} the meeting", "magenta")

    def _on_chat(self, e: Message) -> None:
        if e.get("private"):
            arrow = f"{e['from']} → {e.get('to')}"
            self.log.append(("italic yellow", f"[private] {arrow}: {e['text']}"))
        else:
            style = "bold" if e["from"] == self.me else ""
            self.log.append((style, f"{e['from']}: {e['text']}"))

    def _on_control_requested(self, e: Message) -> None:
        self.control_outcome = None
        if e["controlled"] == self.me:
            wait = f" ({e['timeout']:g} s)" if isinstance(e.get("timeout"), int | float) else ""
            text = f"{e['controller']} asks to control your desktop: y to allow, n to refuse{wait}"
            self._note(text, "bold yellow")
        else:
            self._note(
                f"asked {e['controlled']} for control of their desktop; waiting for an answer", "yellow"
            )

    def _on_control_granted(self, e: Message) -> None:
        if e["controlled"] == self.me:
            self._note(
                f"{e['controller']} controls your desktop: Ctrl-R or /revoke takes it back", "bold yellow"
            )
        else:
            self._note(
                f"you control {e['controlled']}'s desktop (in its window; close it to let go)", "yellow"
            )

    def _on_control_denied(self, e: Message) -> None:
        reason = {"rejected": "refused", "timeout": "no answer in time", "withdrawn": "request withdrawn"}
        why = reason.get(str(e.get("reason")), str(e.get("reason")))
        self.control_outcome = f"remote control of {e['controlled']}'s desktop by {e['controller']}: {why}"
        self._note(self.control_outcome, "yellow")

    def _on_control_stopped(self, e: Message) -> None:
        if e["controlled"] == self.me:
            text = f"you took your desktop back from {e['controller']}: nothing more of theirs is replayed"
        else:
            text = f"you let go of {e['controlled']}'s desktop"
        self._note(text, "yellow")

    def _on_control_revoked(self, e: Message) -> None:
        by = f" by {e['by']}" if e.get("by") else ""
        whose = f"{e['controlled']}'s desktop by {e['controller']}"
        self.control_outcome = f"remote control of {whose} ended{by} ({e.get('reason')})"
        self._note(self.control_outcome, "yellow")

    def _on_error(self, e: Message) -> None:
        if e.get("re") == "control_request":
            self.control_outcome = f"remote control refused: {e.get('message')}"
        self._note(f"error: {e.get('message')}", "bold red")

    def _on_kicked(self, e: Message) -> None:
        self.ended = f"{e.get('by')} removed you from the meeting"
        self._note(self.ended, "bold red")

    def _on_meeting_closed(self, e: Message) -> None:
        self.ended = f"{e['by']} ended the meeting" if e.get("by") else "the meeting ended"
        self._note(self.ended, "bold red")

    # -- the waiting room ---------------------------------------------------------------------------

    def _on_waiting(self, e: Message) -> None:
        self.me, self.meeting, self.held = e["name"], e["meeting"], True
        self._note(
            f"you are in the waiting room of meeting {self.meeting}; the host will let you in", "yellow"
        )

    def _on_denied(self, e: Message) -> None:
        self.ended = f"{e.get('by')} did not admit you to the meeting"
        self._note(self.ended, "bold red")

    def _on_waiting_room(self, e: Message) -> None:
        self.waiting_room = bool(e.get("enabled"))
        self.waiting = [str(name) for name in e.get("waiting", ())]
        if self.waiting:
            self._note(
                f"waiting to be admitted: {', '.join(self.waiting)} (/admit NAME, /deny NAME)", "yellow"
            )

    def _on_waiting_room_changed(self, e: Message) -> None:
        self.waiting_room = bool(e["enabled"])
        self._note(f"{e['by']} turned the waiting room {'on' if e['enabled'] else 'off'}", "magenta")

    def _on_waiting_joined(self, e: Message) -> None:
        if e["name"] not in self.waiting:
            self.waiting.append(e["name"])
        self._note(
            f"{e['name']} is waiting to be admitted (/admit {e['name']}, /deny {e['name']})", "bold yellow"
        )

    def _on_waiting_left(self, e: Message) -> None:
        if e["name"] in self.waiting:
            self.waiting.remove(e["name"])
        reason, by = e.get("reason", "left"), f" by {e['by']}" if e.get("by") else ""
        if reason in ("admitted", "denied"):
            self._note(f"{e['name']} was {reason}{by}", "dim")
        else:
            self._note(f"{e['name']} stopped waiting ({reason})", "dim")

    def _on_unbanned(self, e: Message) -> None:
        self._note(f"{e['by']} let {e['name']} join again", "dim")

    def _on_left(self, e: Message) -> None:
        self.ended = "you left the meeting"
        self._note(self.ended, "yellow")

    def _on_disconnected(self, e: Message) -> None:
        self.ended = f"connection lost: {e.get('reason')}"
        self._note(self.ended, "bold red")
