"""What the server's operator does to meetings through the admin API (:mod:`conf_cli.server.admin`).
Sans-I/O.

Every change goes through the meeting's own rules, as the host's command would (:meth:`Meeting.kick`,
:meth:`Meeting.set_permission` ...), with the operator as the actor
(:data:`~conf_cli.server.people.OPERATOR`): the same checks, the same events to participants. The
operator holds the host's powers, and may also remove the host (whose role then passes on as when a host
leaves); like anyone, it cannot forbid the host anything.

The admin key is checked here too: a wrong or missing key is a failed attempt at the target ``admin``
in the hub's attempt limiter, as a wrong passcode is at a meeting, so guessing it gets an address locked
out; an address that presented the right key is trusted for that target, as a meeting's creator is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from conf_cli.errors import RequestRefused
from conf_cli.protocol.control import MAX_PASSCODE_CHARS, Message
from conf_cli.server.directory import ClaimMeeting
from conf_cli.server.hub import CLAIM_ATTEMPTS, MIN_PASSCODE_CHARS, Action, Ask, Hub
from conf_cli.server.meeting import Meeting
from conf_cli.server.passcode import PasscodeHash, normalise_meeting_id
from conf_cli.server.people import OPERATOR, OPERATOR_NAME

ADMIN_TARGET = "admin"
"""The attempt limiter's target for admin keys."""


@dataclass(frozen=True)
class KeyCheck:
    """Whether a request may go ahead; if not, ``retry_after`` above 0 says the address is locked out."""

    allowed: bool
    retry_after: float = 0.0


def check_passcode(chosen: str) -> str:
    """A passcode chosen for a new meeting, or RequestRefused saying what is wrong with it."""
    if not MIN_PASSCODE_CHARS <= len(chosen) <= MAX_PASSCODE_CHARS:
        raise RequestRefused(
            "passcode_too_short" if len(chosen) < MIN_PASSCODE_CHARS else "bad_request",
            f"a passcode has {MIN_PASSCODE_CHARS} to {MAX_PASSCODE_CHARS} characters",
        )
    return chosen


class Operator:
    """The admin API's view of a hub."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    # -- the key ------------------------------------------------------------------------------------

    def check_key(self, address: str, key_ok: bool, now: float) -> KeyCheck:
        """Count a request from ``address`` whose key was right (``key_ok``) or wrong or missing."""
        limiter = self.hub.limiter
        wait = limiter.retry_after(address, ADMIN_TARGET, now)
        if wait > 0:
            self.hub.stats.attempts_refused += 1
            return KeyCheck(False, wait)
        if not key_ok:
            limiter.failed(address, ADMIN_TARGET, now)
            return KeyCheck(False)
        limiter.succeeded(address, ADMIN_TARGET, now)
        return KeyCheck(True)

    # -- queries ------------------------------------------------------------------------------------

    def meetings(self) -> list[Message]:
        return [summary(meeting) for meeting in self.hub.meetings.values() if not meeting.closed]

    def meeting(self, meeting_id: str) -> Meeting:
        meeting = self.hub.meetings.get(normalise_meeting_id(meeting_id))
        if meeting is None or meeting.closed:
            raise RequestRefused("unknown_meeting", f"no meeting {meeting_id!r} on this server")
        return meeting

    def participants(self, meeting_id: str) -> Message:
        return self.meeting(meeting_id).snapshot(OPERATOR)

    def waiting(self, meeting_id: str) -> Message:
        meeting = self.meeting(meeting_id)
        return {
            "meeting": meeting.id,
            "waiting_room": meeting.waiting_room,
            "waiting": list(meeting.waiting.values()),
        }

    # -- changes ------------------------------------------------------------------------------------

    def open(self, passcode: PasscodeHash, *, waiting_room: bool) -> Meeting:
        """A new meeting with nobody in it yet: whoever joins first becomes its host."""
        return self.hub.open_meeting(passcode, by=OPERATOR_NAME, waiting_room=waiting_room, e2ee=False)

    def open_claimed(
        self,
        passcode: PasscodeHash,
        *,
        waiting_room: bool,
        then: Callable[[Meeting | None], object],
        attempt: int = 1,
    ) -> list[Action]:
        """As :meth:`open`; in a cluster (a worker of ``--workers``, a ``--cluster`` node) under a meeting
        ID first claimed in the directory, so that joins through other nodes find it. ``then`` gets the
        meeting, or None when no ID could be claimed (the directory unreachable)."""
        hub = self.hub
        if hub.cluster is None:
            then(self.open(passcode, waiting_room=waiting_room))
            return []
        meeting_id = hub.fresh_id()

        def claimed(answer: object, now: float) -> list[Action]:
            if answer is True:
                opened = hub.open_meeting(
                    passcode, by=OPERATOR_NAME, waiting_room=waiting_room, e2ee=False, meeting_id=meeting_id
                )
                then(opened)
                return []
            if answer is False and attempt < CLAIM_ATTEMPTS:
                return self.open_claimed(passcode, waiting_room=waiting_room, then=then, attempt=attempt + 1)
            then(None)
            return []

        return [Ask(ClaimMeeting(meeting_id), claimed)]

    def end(self, meeting_id: str) -> list[Action]:
        meeting = self.meeting(meeting_id)
        return self.hub.after_change(meeting, len(meeting.participants), meeting.end(OPERATOR))

    def kick(self, meeting_id: str, name: str) -> list[Action]:
        meeting = self.meeting(meeting_id)
        return self.hub.after_change(meeting, len(meeting.participants), meeting.kick(OPERATOR, name))

    def unban(self, meeting_id: str, name: str) -> list[Action]:
        """Let a removed name (and where it connected from) join again: ``/unban NAME``."""
        return list(self.meeting(meeting_id).unban(OPERATOR, name))

    def mute(self, meeting_id: str, name: str, muted: bool) -> list[Action]:
        """Forbid ``name`` audio (stopping what they share), or permit it again: ``/forbid audio NAME``."""
        return list(self.meeting(meeting_id).set_permission(OPERATOR, "audio", not muted, name))

    def lock(self, meeting_id: str, locked: bool) -> list[Action]:
        return list(self.meeting(meeting_id).set_locked(OPERATOR, locked))

    def admit(self, meeting_id: str, name: str | None) -> list[Action]:
        """Let ``name`` (None: everyone waiting, as far as there is room) in from the waiting room."""
        meeting = self.meeting(meeting_id)
        return self.hub.after_change(meeting, len(meeting.participants), meeting.admit(OPERATOR, name))

    def deny(self, meeting_id: str, name: str) -> list[Action]:
        meeting = self.meeting(meeting_id)
        return self.hub.after_change(meeting, len(meeting.participants), meeting.deny(OPERATOR, name))


def summary(meeting: Meeting) -> Message:
    """One line of the meeting list."""
    host = meeting.host
    return {
        "meeting": meeting.id,
        "host": host.name if host is not None else None,
        "participants": len(meeting.participants),
        "waiting": len(meeting.waiting),
        "tracks": len(meeting.tracks),
        "locked": meeting.locked,
        "waiting_room": meeting.waiting_room,
        "e2ee": meeting.e2ee,
    }
