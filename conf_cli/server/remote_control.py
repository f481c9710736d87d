"""Remote control with consent: who may drive whose desktop, as a sans-I/O state machine.

One participant (the *controller*) asks another (the *controlled*) for control; the request waits for
an answer until a deadline (``now`` is passed in; :meth:`RemoteControl.expire` turns late requests into
denials); the controlled participant accepts or rejects. While granted, the controlled participant's
client streams its screen and injects the input events the server relays from the controller, and
nobody else's. Either party ends it (``control_revoke``); so do leaving the meeting, the meeting ending,
and a forbid of ``control`` that now applies to either party.

Rules: a participant takes part in at most one control session at a time (pending or granted, on either
side), so one person has one controller at a time; nobody asks themself; ``control`` must be allowed for
both parties (a meeting-wide forbid applies to members, as for media); while breakout rooms are open both
parties are in one room. Events go to both parties only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from conf_cli.errors import RequestRefused
from conf_cli.protocol.events import (
    ControlDenied,
    ControlEvent,
    ControlGranted,
    ControlRequested,
    ControlRevoked,
)
from conf_cli.server.people import Roster, Send

CONSENT_TIMEOUT = 30.0
"""Seconds a request waits for an answer before it counts as denied."""


@dataclass
class ControlSession:
    controller: int
    controlled: int
    deadline: float
    request: int
    """The number of the request that opened this session (unique in the meeting), carried by every
    event about it; an answer that names another request is refused."""
    granted: bool = False


class RemoteControl:
    """The control sessions of one meeting."""

    def __init__(self, meeting: Roster, timeout: float = CONSENT_TIMEOUT) -> None:
        self.meeting = meeting
        self.timeout = timeout
        self.sessions: list[ControlSession] = []
        self._targets: dict[int, int] = {}  # grant holder -> the participant they control
        self._requests = 0  # request numbers given out

    # -- queries ------------------------------------------------------------------------------------

    def session_of(self, pid: int) -> ControlSession | None:
        """The session ``pid`` takes part in, on either side, pending or granted."""
        return next((s for s in self.sessions if pid in (s.controller, s.controlled)), None)

    def target_of(self, pid: int) -> int | None:
        """Whom ``pid`` controls now (a granted session), or ``None``: the input relay's check."""
        return self._targets.get(pid)

    # -- requests -----------------------------------------------------------------------------------

    def request(self, pid: int, name: str, now: float) -> list[Send]:
        """``pid`` asks ``name`` for control of their desktop."""
        meeting = self.meeting
        asker = meeting.participants[pid]
        target = meeting.find(name)
        if target.pid == pid:
            raise RequestRefused("bad_request", "you cannot ask yourself for control")
        for who in (asker, target):
            if not meeting.allowed(who, "control"):
                whose = "you" if who is asker else who.name
                raise RequestRefused("forbidden", f"remote control is forbidden for {whose} in this meeting")
        if not meeting.together(pid, target.pid):
            raise RequestRefused("not_in_room", f"{target.name} is in another breakout room")
        if self.session_of(pid) is not None:
            raise RequestRefused(
                "busy", "you already take part in a remote-control session; /revoke it first"
            )
        if self.session_of(target.pid) is not None:
            raise RequestRefused("busy", f"{target.name} already takes part in a remote-control session")
        self._requests += 1
        session = ControlSession(pid, target.pid, now + self.timeout, self._requests)
        self.sessions.append(session)
        return [self._send(session, ControlRequested, timeout=self.timeout)]

    def answer(self, pid: int, accept: bool, name: str | None = None, request: object = None) -> list[Send]:
        """The controlled participant accepts or rejects the request waiting for them (the one numbered
        ``request``, when given: an answer typed for a request that has since gone answers nothing)."""
        session = self.session_of(pid)
        if session is None or session.controlled != pid or session.granted:
            raise RequestRefused("no_request", "nobody is waiting for your answer about remote control")
        if request is not None and request != session.request:
            raise RequestRefused(
                "no_request", "the request you answered is no longer waiting; nothing was answered"
            )
        if name is not None and self.meeting.find(name).pid != session.controller:
            raise RequestRefused("no_request", f"{name} is not waiting for your answer about remote control")
        if not accept:
            return self._end(session, ControlDenied, reason="rejected")
        session.granted = True
        self._targets[session.controller] = session.controlled
        return [self._send(session, ControlGranted)]

    def revoke(self, pid: int) -> list[Send]:
        """Either party ends their session: the controlled takes control back, the controller lets go
        (or withdraws a request still waiting)."""
        session = self.session_of(pid)
        if session is None:
            raise RequestRefused("no_control", "you take part in no remote-control session")
        by = self.meeting.participants[pid].name
        if not session.granted:
            return self._end(session, ControlDenied, reason="withdrawn", by=by)
        reason = "revoked" if pid == session.controlled else "released"
        return self._end(session, ControlRevoked, reason=reason, by=by)

    # -- consequences of other events ---------------------------------------------------------------

    def expire(self, now: float) -> list[Send]:
        """Deny every request whose deadline has passed."""
        late = [s for s in self.sessions if not s.granted and now >= s.deadline]
        return [send for session in late for send in self._end(session, ControlDenied, reason="timeout")]

    def leaving(self, pid: int) -> list[Send]:
        """``pid`` is leaving (still in the meeting): end their session, telling the other party."""
        session = self.session_of(pid)
        if session is None:
            return []
        other = session.controlled if pid == session.controller else session.controller
        kind = ControlRevoked if session.granted else ControlDenied
        return [replace(send, to=(other,)) for send in self._end(session, kind, reason="left")]

    def enforce(self) -> list[Send]:
        """End every session that a forbid (or a changed role) no longer allows."""
        meeting = self.meeting
        sends: list[Send] = []
        for session in list(self.sessions):
            parties = (meeting.participants[session.controller], meeting.participants[session.controlled])
            if all(meeting.allowed(p, "control") for p in parties):
                continue
            kind = ControlRevoked if session.granted else ControlDenied
            sends += self._end(session, kind, reason="forbidden")
        return sends

    def apart(self) -> list[Send]:
        """End every session whose two parties are no longer in the same (breakout) room."""
        sends: list[Send] = []
        for session in list(self.sessions):
            if not self.meeting.together(session.controller, session.controlled):
                kind = ControlRevoked if session.granted else ControlDenied
                sends += self._end(session, kind, reason="moved")
        return sends

    def clear(self) -> None:
        self.sessions.clear()
        self._targets.clear()

    # -- helpers ------------------------------------------------------------------------------------

    def _end(self, session: ControlSession, kind: type[ControlEvent], **fields: Any) -> list[Send]:
        self.sessions.remove(session)
        if self._targets.get(session.controller) == session.controlled:
            del self._targets[session.controller]
        return [self._send(session, kind, **fields)]

    def _send(self, session: ControlSession, kind: type[ControlEvent], **fields: Any) -> Send:
        people = self.meeting.participants
        event = kind(
            controller=people[session.controller].name,
            controlled=people[session.controlled].name,
            request=session.request,
            **fields,
        )
        return Send((session.controller, session.controlled), event.to_message())
