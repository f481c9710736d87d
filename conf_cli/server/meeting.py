"""The rules of one meeting, as a sans-I/O state machine.

Each method takes an event from one participant (identified by an opaque ``pid``) and returns the
messages to send and to whom, as :class:`Send` objects, or raises :class:`RequestRefused` with an error
code from docs/protocol.md. Nothing here touches a socket or a clock.

Roles: the *host* runs the meeting; *admins* help (forbid/permit, kick members, lock, end); *members*
take part. Meeting-wide forbids apply to members; a forbid naming a participant applies to that person.
Nobody may forbid the host anything, so whoever becomes host loses any forbids naming them.

A meeting may have a *waiting room*: then everyone but its creator waits in it after a correct passcode
until the host or an admin admits or denies them. Waiting people are not participants: no chat, media,
participant list or track announcement reaches them, and only the host and admins learn who waits.

Names are compared by :func:`~conf_cli.protocol.control.name_key` (NFKC, case-folded): "Ada", "ada"
and full-width "Ada" (U+FF21 U+FF44 U+FF41) are one name. Someone kicked stays out: their name, and
their *origin* (where they connect from, as the hub tells: an address, or an IPv6 /64), are banned from
the meeting until the host or an admin unbans the name. An origin that someone still in the meeting
shares is not banned (the host behind the same NAT as the person they remove must not lock themselves
out).

While *breakout rooms* are open (:mod:`conf_cli.server.breakout`), each room is a meeting of its own for
media and chat: :meth:`Meeting.audience` (the forwarding path), public chat, reactions and track
announcements reach the sender's room only, and a move tells each participant which tracks left its
room and which came in. Hands, polls, the spotlight and asks to unmute are
:mod:`conf_cli.server.activities`'.
The server's operator (the admin API) acts through these same methods as :data:`OPERATOR`, with the
host's role and the same checks; it may also remove the host. Every meeting notes its end, who enters
and leaves and what is published in its :class:`~conf_cli.server.journal.Journal`, for webhooks.

A *recorder* (``conf record``) joins with ``recorder: true`` under a name ending in
:data:`RECORDER_SUFFIX` (and nobody else may take such a name): everyone is told ``recording_started``
when it enters and ``recording_stopped`` when it goes, it is always a member (never host: when only
recorders are left the meeting ends), ``record`` is a permission like the others (forbidding it refuses
recorders and removes those in the meeting), and in an end-to-end encrypted meeting it waits for the
host's admission even without a waiting room, since it will hold the media keys.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from conf_cli.errors import RequestRefused
from conf_cli.protocol.control import CODECS, MEDIA_KINDS, RECORDER_SUFFIX, name_key
from conf_cli.protocol.events import (
    BreakoutBroadcast,
    BreakoutClosed,
    BreakoutMoved,
    BreakoutOpened,
    BreakoutRooms,
    Chat,
    Denied,
    E2eeKey,
    Error,
    Joined,
    Kicked,
    Left,
    MeetingClosed,
    MeetingLocked,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantRenamed,
    Participants,
    PermissionChanged,
    RecordingStarted,
    RecordingStopped,
    RoleChanged,
    RoomEntry,
    ShareStarted,
    ShareStopped,
    TrackEntry,
    Unbanned,
    Waiting,
    WaitingJoined,
    WaitingLeft,
    WaitingRoom,
    WaitingRoomChanged,
)
from conf_cli.server.activities import Activities
from conf_cli.server.breakout import Breakout
from conf_cli.server.feedback import TrackFeedback
from conf_cli.server.journal import Journal
from conf_cli.server.limiter import seconds_text
from conf_cli.server.passcode import PasscodeHash
from conf_cli.server.people import (
    CHAT_BURST,
    CHAT_RATE,
    OPERATOR,
    OPERATOR_NAME,
    Grant,
    Message,
    Participant,
    Role,
    Send,
)
from conf_cli.server.remote_control import RemoteControl
from conf_cli.server.resume import new_seat
from conf_cli.server.simulcast import Layer
from conf_cli.server.speaker import SpeakerDetector
from conf_cli.server.uplink import UplinkFeedback

# These bounds, with at most one track of each kind per participant, a codec from CODECS and names of at
# most MAX_NAME_BYTES, keep the meeting's snapshot (``joined``, ``participants``) within one control frame
# (tests/server/test_snapshot_bound.py builds the largest one).
MAX_PARTICIPANTS = 100
MAX_WAITING = 50
MAX_BANS = 1_000
"""Bans kept per meeting; beyond, the oldest goes."""
MAX_DEPARTED = 1_000
"""Seats that left that a meeting remembers (for resume tokens); beyond, the oldest goes."""
RESUMABLE = frozenset(("disconnected", "timeout"))
"""The reasons for leaving after which a resume token still seats its holder again."""
_RANK = {Role.MEMBER: 0, Role.ADMIN: 1, Role.HOST: 2}


class RouteVersion:
    """A number that changes whenever who receives whose media may have changed: a participant came or
    went, a track was published, replaced or stopped. The hub shares one among all its meetings, and an
    edge may keep the routes it asked for while the number stays the same
    (:mod:`conf_cli.server.forwarding`)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def bump(self) -> None:
        self.value += 1


@dataclass
class Track:
    """One published media stream: an RTP SSRC owned by a participant."""

    ssrc: int
    owner: int
    kind: str
    codec: str
    feedback: TrackFeedback = field(default_factory=TrackFeedback, compare=False, repr=False)
    """Which of its packets were forwarded, and who waits for a resend (the hub's business)."""
    layers: tuple[Layer, ...] = ()
    """Simulcast: its layers, lowest first, the last one with the track's own SSRC; empty for one layer."""
    parent: Track | None = field(default=None, compare=False, repr=False)
    """For a lower simulcast layer (kept in :attr:`Meeting.layer_tracks`): the track it is a layer of."""
    index: int = 0
    """Which of its parent's layers this is (0 the lowest); a track's own SSRC is its highest layer."""
    active: frozenset[int] | None = field(default=None, compare=False, repr=False)
    """Dynacast: the layers the publisher was last told to send (None: not told yet, all of them)."""
    uplink: UplinkFeedback | None = field(default=None, compare=False, repr=False)
    """The RFC 8888 feedback its publisher asked for (``"feedback": "ccfb"``), else None."""

    def summary(self, owner_name: str) -> TrackEntry:
        """Whose track it is, its kind, SSRC and codec (what ``share_stopped`` and snapshots say)."""
        return TrackEntry(name=owner_name, kind=self.kind, ssrc=self.ssrc, codec=self.codec)

    def describe(self, owner_name: str) -> TrackEntry:
        """:meth:`summary` and, for a simulcast track, its layers."""
        layers = tuple(layer.describe() for layer in self.layers) if self.layers else None
        return TrackEntry(name=owner_name, kind=self.kind, ssrc=self.ssrc, codec=self.codec, layers=layers)

    def started(self, owner_name: str) -> ShareStarted:
        """The ``share_started`` that announces this track (with its layers, for a simulcast track)."""
        entry = self.describe(owner_name)
        return ShareStarted(
            name=entry.name, kind=entry.kind, ssrc=entry.ssrc, codec=entry.codec, layers=entry.layers
        )


@dataclass
class Ban:
    """A kicked name, as it was spelt, and the origins it was kicked from."""

    name: str
    origins: set[str] = field(default_factory=set)


class Meeting:
    """One meeting: its participants, roles, permissions, lock and waiting room."""

    def __init__(
        self,
        meeting_id: str,
        passcode: PasscodeHash,
        *,
        e2ee: bool = False,
        waiting_room: bool = False,
        version: RouteVersion | None = None,
        rng: random.Random | None = None,
        journal: Journal | None = None,
    ) -> None:
        self.id = meeting_id
        self.passcode = passcode
        self.e2ee = e2ee
        """Media is end-to-end encrypted: everyone must bring a public key, and sealed keys are relayed."""
        self.participants: dict[int, Participant] = {}
        self.waiting_room = waiting_room
        self.waiting: dict[int, str] = {}  # pid -> name, in order of arrival
        self._waiting_keys: dict[int, str] = {}  # pid -> E2EE public key of those waiting
        self._waiting_grants: dict[int, Grant] = {}  # pid -> what the access token of one waiting gives
        self._waiting_recorders: set[int] = set()  # pids of recorders that wait
        self._origins: dict[int, str] = {}  # pid -> where it connects from (participants and waiting)
        self.bans: dict[str, Ban] = {}
        """name_key of a kicked name -> its ban, oldest first."""
        self.locked = False
        self.forbidden: set[str] = set()
        self.closed = False
        self.tracks: dict[int, Track] = {}
        self.speakers = SpeakerDetector()
        """The dominant speaker, from the audio levels on the meeting's audio packets."""
        self.layer_tracks: dict[int, Track] = {}
        """The lower simulcast layers of :attr:`tracks`, by their own SSRC."""
        self._seniority = 0
        self._audience: dict[int, tuple[int, ...]] = {}  # owner -> everyone else, rebuilt on change
        self.version = version if version is not None else RouteVersion()
        """Bumped by :meth:`_routes_changed` whenever participants or tracks change."""
        self.journal = journal if journal is not None else Journal()
        """Where the meeting notes what happens in it for webhooks (shared by the hub's meetings)."""
        self._operator = Participant(OPERATOR, OPERATOR_NAME, Role.HOST, 0)
        """The server's operator as an actor (:mod:`conf_cli.server.operator`): never a participant."""
        self.control = RemoteControl(self)
        """Remote-control sessions: requests, grants (see :mod:`conf_cli.server.remote_control`)."""
        self.activities = Activities(self)
        """Hands, reactions, polls, the spotlight, asks to unmute (:mod:`conf_cli.server.activities`)."""
        self.breakout = Breakout()
        """Breakout rooms: who is in which (:mod:`conf_cli.server.breakout`); media and chat follow it."""
        self._breakout_by: str | None = None
        self._rng = rng if rng is not None else random.SystemRandom()
        """Shuffles people into breakout rooms."""
        self._now = 0.0
        """The latest time the hub told us (:meth:`expire`), for the time left in breakout rooms."""
        self.tokens: Callable[[Meeting, Participant], Message | None] | None = None
        """Makes a participant's ``resume_token`` event (the hub's, when its server gives them)."""
        self._departed: dict[str, Role | None] = {}
        """Seats that left, oldest first: the role each had if it vanished (it may resume with at most
        that role), None if it left, was removed or stopped recording (it may not resume)."""
        self.recreated = False
        """Recreated from its record (:mod:`conf_cli.server.record`): a resume token's role is at most
        what the record gave that name (:attr:`pending`), and a member's otherwise."""
        self.pending: dict[str, tuple[str, Role, set[str]]] = {}
        """A recreated meeting's people (by name_key) the record names and who are not back yet: their
        name, role and own forbids, given back when they resume (and kept in the record meanwhile)."""
        self.recreated_at: float | None = None
        """When (the hub's clock) it was recreated: a host who does not come back is succeeded."""
        self.on_change: Callable[[Meeting], None] | None = None
        """Told whenever what the meeting's record holds changes (:mod:`conf_cli.server.record`)."""

    # -- queries ------------------------------------------------------------------------------------

    @property
    def host(self) -> Participant | None:
        return next((p for p in self.participants.values() if p.role is Role.HOST), None)

    def find(self, name: str) -> Participant:
        folded = name_key(name)
        for participant in self.participants.values():
            if name_key(participant.name) == folded:
                return participant
        raise RequestRefused("unknown_participant", f"no participant named {name!r} in this meeting")

    def allowed(self, participant: Participant, what: str) -> bool:
        """Whether ``participant`` may use ``what`` (audio, video, screen, control, chat) now."""
        if what in participant.forbidden:
            return False
        return not (what in self.forbidden and participant.role is Role.MEMBER)

    def snapshot(self, pid: int | None = None) -> Message:
        """The whole state participant ``pid`` needs to draw the meeting: everyone in it, and the tracks of
        its room (every track while no breakout room is open).

        With a waiting room (or people still waiting in one), ``waiting_room`` says whether it is on and,
        for the host and admins only, ``waiting`` lists who waits."""
        snapshot = Participants(**self._snapshot(pid)).to_message()
        del snapshot["type"]
        return snapshot

    def _snapshot(self, pid: int | None) -> dict[str, Any]:
        """The fields of a snapshot (``joined``, ``participants``) for participant ``pid``."""
        ordered = sorted(self.participants.values(), key=lambda p: p.seniority)
        fields: dict[str, Any] = {
            "meeting": self.id,
            "participants": tuple(p.describe() for p in ordered),
            "tracks": tuple(  # without simulcast layers: they would not fit one frame (layer_switched tells)
                t.summary(self.participants[t.owner].name)
                for t in self.tracks.values()
                if pid is None or self.together(pid, t.owner)
            ),
            "locked": self.locked,
            "forbidden": tuple(sorted(self.forbidden)),
            "e2ee": True if self.e2ee else None,  # every participant's public key is in ``participants``
        }
        if self.waiting_room or self.waiting:
            fields["waiting_room"] = self.waiting_room
            if pid is not None and (pid == OPERATOR or pid in self._staff()):
                fields["waiting"] = tuple(self.waiting.values())
        return fields

    def audience(self, owner: int) -> tuple[int, ...]:
        """Everyone who receives ``owner``'s media: all the others in its room. Cached: this is the
        forwarding path."""
        audience = self._audience.get(owner)
        if audience is None:
            audience = self._audience[owner] = tuple(pid for pid in self.room_mates(owner) if pid != owner)
        return audience

    def _routes_changed(self) -> None:
        """Participants changed: audiences are rebuilt, and cached routes are stale."""
        self._audience.clear()
        self.version.bump()

    def _everyone(self, *, but: int | None = None) -> tuple[int, ...]:
        return tuple(pid for pid in self.participants if pid != but)

    def _staff(self) -> tuple[int, ...]:
        """The host and admins: they see and decide who waits."""
        return tuple(pid for pid, p in self.participants.items() if p.role is not Role.MEMBER)

    # -- membership ---------------------------------------------------------------------------------

    def join(
        self,
        pid: int,
        name: str,
        *,
        passcode_ok: bool,
        key: str | None = None,
        origin: str | None = None,
        grant: Grant | None = None,
        recorder: bool = False,
    ) -> list[Send]:
        """Let a participant in (the first one becomes host), or into the waiting room if there is one.

        ``recorder``: it joins to record (see the module's notes): its name must end in
        :data:`RECORDER_SUFFIX`, ``record`` must be allowed, and in an E2EE meeting it waits for admission.

        ``key``: its E2EE public key, if it has one (kept while it waits). ``origin``: where it connects
        from (the hub's address key), for bans. ``grant``: what its access token gives (the hub checked
        the token instead of a passcode): its role, and the kinds it may publish. A host's or an admin's
        token passes a lock and the waiting room; a member's waits like anyone.
        """
        staff = grant is not None and grant.role is not Role.MEMBER and not recorder
        if self.closed:
            raise RequestRefused("unknown_meeting", f"meeting {self.id} has ended")
        if not passcode_ok:
            raise RequestRefused("wrong_passcode", f"wrong passcode for meeting {self.id}")
        if self.e2ee and key is None:
            raise RequestRefused(
                "e2ee_required",
                f"meeting {self.id} is end-to-end encrypted and this client offered no E2EE key; "
                "join with a client that supports E2EE",
            )
        if self.locked and not staff:
            raise RequestRefused("meeting_locked", f"meeting {self.id} is locked; ask the host to /unlock it")
        folded = name_key(name)
        ban = self.bans.get(folded)
        if ban is None and origin is not None:
            ban = next((b for b in self.bans.values() if origin in b.origins), None)
        if ban is not None:
            raise RequestRefused(
                "banned",
                f"you were removed from meeting {self.id} and cannot rejoin until the host lets you back in "
                f"(/unban {ban.name})",
            )
        self._check_recorder(name, recorder)
        self._check_room()
        if any(name_key(p.name) == folded for p in self.participants.values()) or any(
            name_key(waiting) == folded for waiting in self.waiting.values()
        ):
            raise RequestRefused("name_taken", f"the name {name!r} is taken in this meeting; pick another")
        if self.participants and (self.waiting_room or (recorder and self.e2ee)) and not staff:
            if len(self.waiting) >= MAX_WAITING:
                raise RequestRefused(
                    "waiting_room_full", f"the waiting room of meeting {self.id} is full; try again later"
                )
            self.waiting[pid] = name
            if key is not None:
                self._waiting_keys[pid] = key
            if grant is not None:
                self._waiting_grants[pid] = grant
            if recorder:
                self._waiting_recorders.add(pid)
            if origin is not None:
                self._origins[pid] = origin
            return [
                Send((pid,), Waiting(meeting=self.id, name=name).to_message()),
                Send(self._staff(), WaitingJoined(name=name).to_message()),
            ]
        if origin is not None:
            self._origins[pid] = origin
        return self._enter(pid, name, key, grant, recorder=recorder)

    @staticmethod
    def check_recorder_name(name: str, recorder: bool) -> None:
        """A recorder must say what it is in its name (NAME (recorder)), and nobody else may."""
        named = name_key(name).endswith(name_key(RECORDER_SUFFIX))
        if not recorder and named:
            raise RequestRefused(
                "bad_request", f"names ending in {RECORDER_SUFFIX.strip()!r} are for recorders (conf record)"
            )
        if recorder and (not named or not name_key(name).removesuffix(name_key(RECORDER_SUFFIX)).strip()):
            raise RequestRefused("bad_request", f"a recorder's name must be NAME{RECORDER_SUFFIX}")

    def _check_recorder(self, name: str, recorder: bool) -> None:
        """The name rule, and for a recorder: ``record`` allowed, and someone to record."""
        self.check_recorder_name(name, recorder)
        if not recorder:
            return
        if "record" in self.forbidden:
            raise RequestRefused(
                "forbidden", f"recording is forbidden in meeting {self.id}; the host can /permit record"
            )
        if not self.participants:
            raise RequestRefused("unknown_meeting", f"meeting {self.id} has nobody to record")

    def resume(
        self,
        pid: int,
        name: str,
        role: Role,
        seat: str,
        *,
        key: str | None = None,
        origin: str | None = None,
        can_publish: frozenset[str] | None = None,
        recorder: bool = False,
    ) -> list[Send]:
        """Someone comes back with a resume token whose seat is no longer here: its grace ran out, or
        the meeting was recreated from its record. As a join, without the passcode and past the lock and
        the waiting room (they were in), but not past a ban; under the token's seat and name, and its role
        at most as high as the seat had when it vanished (or as the record says), and never a second host.
        RequestRefused ``resume_refused`` for a seat that left, was removed or stopped recording."""
        if self.closed:
            raise RequestRefused("unknown_meeting", f"meeting {self.id} has ended")
        if seat in self._departed:
            had = self._departed[seat]
            if had is None:
                raise RequestRefused(
                    "resume_refused", f"you left meeting {self.id}; join it again with its passcode"
                )
            role = min(role, had, key=_RANK.__getitem__)
        elif self.recreated:
            kept = self.pending.get(name_key(name))
            role = min(role, kept[1] if kept is not None else Role.MEMBER, key=_RANK.__getitem__)
        if self.e2ee and key is None:
            raise RequestRefused("e2ee_required", f"meeting {self.id} is end-to-end encrypted: send your key")
        ban = self.bans.get(name_key(name))
        if ban is None and origin is not None:
            ban = next((b for b in self.bans.values() if origin in b.origins), None)
        if ban is not None:
            raise RequestRefused("banned", f"you were removed from meeting {self.id}")
        self.check_recorder_name(name, recorder)
        self._check_room()
        folded = name_key(name)
        if any(name_key(p.name) == folded for p in self.participants.values()) or any(
            name_key(waiting) == folded for waiting in self.waiting.values()
        ):
            raise RequestRefused("name_taken", f"the name {name!r} was taken in meeting {self.id} meanwhile")
        if recorder:
            role = Role.MEMBER
        elif role is Role.HOST and self.host is not None:
            role = Role.ADMIN
        if origin is not None:
            self._origins[pid] = origin
        grant = Grant(role, can_publish) if can_publish is not None else None
        return self._enter(pid, name, key, grant, recorder=recorder, seat=seat, role=role)

    def _check_room(self) -> None:
        if len(self.participants) >= MAX_PARTICIPANTS:
            raise RequestRefused(
                "meeting_full", f"meeting {self.id} is full ({MAX_PARTICIPANTS} participants)"
            )

    def _enter(
        self,
        pid: int,
        name: str,
        key: str | None,
        grant: Grant | None = None,
        *,
        recorder: bool = False,
        seat: str | None = None,
        role: Role | None = None,
    ) -> list[Send]:
        """Seat ``name``; ``seat`` and ``role`` are given by a resume token (:meth:`resume`), else the
        seat is new and the role the rules': the first one in hosts, a token's holder has its role."""
        if recorder:
            grant = None  # a recorder is a member, whatever a token says
        if role is None:
            role = Role.HOST if not self.participants else grant.role if grant is not None else Role.MEMBER
        former = self.host if self.participants and role is Role.HOST else None
        if former is not None:  # a host's token: the host until now becomes an admin
            former.role = Role.ADMIN
        self._seniority += 1
        participant = Participant(
            pid,
            name,
            role,
            self._seniority,
            key=key if self.e2ee else None,
            can_publish=grant.can_publish if grant is not None else None,
            recorder=recorder,
            seat=seat or new_seat(),
        )
        others = self._everyone()
        self.participants[pid] = participant
        self._departed.pop(participant.seat, None)
        kept = self.pending.pop(name_key(name), None)
        if kept is not None and role is not Role.HOST:
            participant.forbidden |= kept[2]
        if role is not Role.MEMBER:
            self._changed()
        self._routes_changed()
        self.journal.note("participant_joined", self.id, name=name, role=str(role))
        joined = Joined(name=name, role=str(role), resumed=True if seat else None, **self._snapshot(pid))
        sends = [Send((pid,), joined.to_message()), *self.resume_token(participant)]
        if others:
            arrived = ParticipantJoined(
                name=name, role=str(role), key=participant.key, recorder=True if recorder else None
            )
            sends.append(Send(others, arrived.to_message()))
        if recorder:
            sends.append(Send(self._everyone(), RecordingStarted(by=name).to_message()))
        if former is not None:
            sends += self._role_changed(former, by=name)
        catch_up = [*self.activities.catch_up(), *self._breakout_catch_up()]
        return sends + [Send((pid,), message) for message in catch_up]

    def ensure_host(self) -> list[Send]:
        """A recreated meeting whose host did not come back: the role passes on as when a host leaves."""
        if self.host is not None or not any(not p.recorder for p in self.participants.values()):
            return []
        self.pending = {key: kept for key, kept in self.pending.items() if kept[1] is not Role.HOST}
        return self._succeed()

    def _succeed(self) -> list[Send]:
        """The longest-present admin, else member (never a recorder), becomes host."""
        successor = min(
            (p for p in self.participants.values() if not p.recorder),
            key=lambda p: (p.role is not Role.ADMIN, p.seniority),
        )
        was_staff = successor.role is not Role.MEMBER
        self._make_host(successor)
        sends = self._role_changed(successor, by=None)
        if not was_staff and (self.waiting_room or self.waiting):
            sends.append(self._waiting_room_state(successor.pid))
        return sends

    def reseated(self, pid: int) -> list[Send]:
        """Participant ``pid`` took its seat back on a new connection (a resume): what it may have missed,
        as a newcomer is told it (``joined`` with ``resumed``, then what is going on), and a new resume
        token. Nobody else is told anything."""
        participant = self.participants[pid]
        role = str(participant.role)
        joined = Joined(name=participant.name, role=role, resumed=True, **self._snapshot(pid))
        catch_up = [*self.activities.catch_up(), *self._breakout_catch_up()]
        return [
            Send((pid,), joined.to_message()),
            *self.resume_token(participant),
            *(Send((pid,), message) for message in catch_up),
        ]

    def leave(self, pid: int, reason: str = "left") -> list[Send]:
        """Remove a participant (left, kicked, timeout, disconnected); hand on the host role if needed."""
        self._origins.pop(pid, None)
        if pid in self.waiting:
            name = self.waiting.pop(pid)
            self._waiting_keys.pop(pid, None)
            self._waiting_grants.pop(pid, None)
            self._waiting_recorders.discard(pid)
            return [Send(self._staff(), WaitingLeft(name=name, reason=reason).to_message())]
        participant = self.participants.get(pid)
        if participant is None:
            return []
        control = self.control.leaving(pid)
        sends = [self._stop_track(track, "left") for track in self._tracks_of(pid)]
        del self.participants[pid]
        # Whoever vanished may come back with their resume token, with at most the role they had; whoever
        # left, was removed or stopped recording may not.
        self._departed[participant.seat] = participant.role if reason in RESUMABLE else None
        while len(self._departed) > MAX_DEPARTED:
            del self._departed[next(iter(self._departed))]
        self.breakout.forget(pid)
        self.speakers.forget(pid)
        self._routes_changed()
        self.journal.note("participant_left", self.id, name=participant.name, reason=reason)
        if participant.role is not Role.MEMBER or participant.forbidden or not self.participants:
            self._changed()
        if not self.participants:
            self.closed = True
            self.journal.note("meeting_ended", self.id, reason="empty")
            return self._close_waiting_room(None)
        stopped = [Send(to, s.message) for s in sends if (to := tuple(p for p in s.to if p != pid))]
        sends = [*control, *stopped]
        sends.append(
            Send(self._everyone(), ParticipantLeft(name=participant.name, reason=reason).to_message())
        )
        if participant.recorder:
            stopped_recording = RecordingStopped(by=participant.name, reason=reason).to_message()
            sends.append(Send(self._everyone(), stopped_recording))
        sends += self.activities.leaving(pid)
        if all(p.recorder for p in self.participants.values()):
            return sends + self._close("empty", None)  # recorders alone: nobody is left to record
        if participant.role is Role.HOST:
            sends += self._succeed()
        return sends

    # -- requests from participants -----------------------------------------------------------------

    def chat(self, pid: int, text: str, to: str | None = None, *, now: float) -> list[Send]:
        """Relay chat to the sender's room (or privately, within it); each participant may send
        :data:`CHAT_BURST` messages at once and :data:`CHAT_RATE` a second on average (more is refused
        with ``rate_limited``, and lost)."""
        sender = self.participants[pid]
        if not self.allowed(sender, "chat"):
            raise RequestRefused("forbidden", "chat is forbidden for you in this meeting")
        target = self.find(to) if to is not None else None
        if target is not None and not self.together(pid, target.pid):
            raise RequestRefused("not_in_room", f"{target.name} is in another breakout room")
        self._take_chat_token(sender, now)
        if target is None:
            public = Chat(sender=sender.name, text=text, private=False).to_message()
            return [Send(self.room_mates(pid), public)]
        message = Chat(sender=sender.name, text=text, private=True, to=target.name).to_message()
        recipients = (pid,) if target.pid == pid else (target.pid, pid)
        return [Send(recipients, message)]

    @staticmethod
    def _take_chat_token(sender: Participant, now: float) -> None:
        if sender.chat_stamp is not None:
            elapsed = max(0.0, now - sender.chat_stamp)
            sender.chat_tokens = min(CHAT_BURST, sender.chat_tokens + elapsed * CHAT_RATE)
        sender.chat_stamp = now
        if sender.chat_tokens < 1:
            wait = (1 - sender.chat_tokens) / CHAT_RATE
            raise RequestRefused(
                "rate_limited",
                f"you are sending chat messages too fast; try again in {seconds_text(wait)}",
                retry_after=wait,
            )
        sender.chat_tokens -= 1

    def set_role(self, pid: int, name: str, role: str) -> list[Send]:
        """Host only: make someone admin or member, or hand the host role to them."""
        actor = self._require(pid, Role.HOST, "change roles")
        target = self.find(name)
        new_role = Role(role)
        if target.pid == pid:
            raise RequestRefused(
                "bad_request", "you cannot change your own role; hand the host role on instead"
            )
        if target.role is new_role:
            return []
        if target.recorder:
            raise RequestRefused("not_allowed", f"{target.name} records: a recorder is always a member")
        sends: list[Send] = []
        was_staff = target.role is not Role.MEMBER
        if new_role is Role.HOST:
            actor.role = Role.ADMIN
            self._make_host(target)
            sends += self._role_changed(target, by=actor.name)
            sends += self._role_changed(actor, by=actor.name)
        else:
            target.role = new_role
            sends += self._role_changed(target, by=actor.name)
            sends += self._stop_forbidden_shares(target, sorted(target.sharing))
        if not was_staff and (self.waiting_room or self.waiting):
            sends.append(self._waiting_room_state(target.pid))
        return sends + self.control.enforce()

    def set_permission(self, pid: int, what: str, allowed: bool, name: str | None = None) -> list[Send]:
        """Host and admins: forbid or permit a kind of media, control or chat, meeting-wide or for one."""
        actor = self._require(pid, Role.ADMIN, "forbid or permit")
        sends: list[Send] = []
        affected: list[Participant]
        if name is None:
            if allowed:
                self.forbidden.discard(what)
            else:
                self.forbidden.add(what)
            affected = [p for p in self.participants.values() if p.role is Role.MEMBER]
        else:
            target = self.find(name)
            if target.role is Role.HOST or (target.role is Role.ADMIN and actor.role is not Role.HOST):
                raise RequestRefused("not_allowed", f"you cannot forbid or permit for {target.name}")
            if what == "record":  # nothing to remember: it stops that recorder, which records nothing else
                if not target.recorder:
                    raise RequestRefused("bad_request", f"{target.name} is not a recorder")
                if allowed:
                    return []
            elif allowed:
                target.forbidden.discard(what)
            else:
                target.forbidden.add(what)
            affected = [target]
        whom = affected[0].name if name is not None else None
        self._changed()
        change = PermissionChanged(what=what, allowed=allowed, by=actor.name, name=whom)
        sends.append(Send(self._everyone(), change.to_message()))
        for participant in affected:
            sends += self._stop_forbidden_shares(participant, [what])
        if what == "record" and not allowed:
            for participant in [p for p in affected if p.recorder]:
                sends += self._stop_recorder(participant, actor.name)
        return sends + self.control.enforce()

    def _stop_recorder(self, recorder: Participant, by: str) -> list[Send]:
        """``record`` was forbidden: the recorder is told why and leaves (everyone hears it stopped)."""
        refused = Error(code="forbidden", message=f"recording was forbidden in this meeting by {by}")
        left = Left(meeting=self.id, reason="recording_forbidden")
        return [
            Send((recorder.pid,), refused.to_message()),
            Send((recorder.pid,), left.to_message()),
            *self.leave(recorder.pid, "recording_forbidden"),
        ]

    def kick(self, pid: int, name: str) -> list[Send]:
        actor = self._require(pid, Role.ADMIN, "remove participants")
        target = self.find(name)
        if target.pid == pid:
            raise RequestRefused("bad_request", "you cannot remove yourself; use /leave")
        if (target.role is Role.HOST and pid != OPERATOR) or (
            target.role is Role.ADMIN and actor.role is not Role.HOST
        ):
            raise RequestRefused("not_allowed", f"you cannot remove {target.name}")
        origin = self._origins.get(target.pid)
        sends = [Send((target.pid,), Kicked(by=actor.name).to_message())]
        sends += self.leave(target.pid, "kicked")
        self._ban(target.name, origin)
        return sends

    def unban(self, pid: int, name: str) -> list[Send]:
        """Host and admins: let a kicked name (and where it connected from) join again."""
        actor = self._require(pid, Role.ADMIN, "let removed people back in")
        ban = self.bans.pop(name_key(name), None)
        if ban is None:
            raise RequestRefused(
                "unknown_participant", f"nobody named {name!r} was removed from this meeting"
            )
        self._changed()
        return [Send(self._staff(), Unbanned(name=ban.name, by=actor.name).to_message())]

    def _ban(self, name: str, origin: str | None) -> None:
        """Keep ``name``, and ``origin`` unless someone still here connects from it, out of the meeting."""
        ban = self.bans.pop(name_key(name), None) or Ban(name)
        if origin is not None and origin not in self._origins.values():
            ban.origins.add(origin)
        self.bans[name_key(name)] = ban  # the newest goes last
        while len(self.bans) > MAX_BANS:
            del self.bans[next(iter(self.bans))]
        self._changed()

    def set_locked(self, pid: int, locked: bool) -> list[Send]:
        actor = self._require(pid, Role.ADMIN, "lock or unlock the meeting")
        if self.locked == locked:
            return []
        self.locked = locked
        self._changed()
        return [Send(self._everyone(), MeetingLocked(locked=locked, by=actor.name).to_message())]

    def end(self, pid: int) -> list[Send]:
        """Close the meeting for everyone (host and admins)."""
        actor = self._require(pid, Role.ADMIN, "end the meeting for everyone")
        return self._close("ended", actor.name)

    def _close(self, reason: str, by: str | None) -> list[Send]:
        """End the meeting for everyone still in it."""
        everyone = self._everyone()
        for track in self.tracks.values():
            owner = self.participants[track.owner].name
            self.journal.note(
                "track_unpublished", self.id, **track.describe(owner).to_message(), reason="ended"
            )
        for participant in self.participants.values():
            self.journal.note("participant_left", self.id, name=participant.name, reason=reason)
        self.journal.note("meeting_ended", self.id, reason=reason, **({"by": by} if by else {}))
        self.participants.clear()
        self.tracks.clear()
        self.layer_tracks.clear()
        self._routes_changed()
        self.control.clear()
        self.closed = True
        self._changed()
        closed = Send(everyone, MeetingClosed(by=by, reason=reason).to_message())
        return [closed, *self._close_waiting_room(by)]

    def relay_keys(self, pid: int, keys: list[Message]) -> list[Send]:
        """Hand each sealed sender key (``{"to": name, "box": ...}``) to its one recipient, as it is.

        The server cannot open them; a recipient who has just left is skipped.
        """
        if not self.e2ee:
            raise RequestRefused("bad_request", f"meeting {self.id} is not end-to-end encrypted")
        sender = self.participants[pid]
        by_name = {name_key(p.name): p for p in self.participants.values()}
        sends: list[Send] = []
        for entry in keys:
            target = by_name.get(name_key(str(entry["to"])))
            if target is not None and target.pid != pid:
                sealed = E2eeKey(sender=sender.name, box=entry["box"])
                sends.append(Send((target.pid,), sealed.to_message()))
        return sends

    def who(self, pid: int) -> list[Send]:
        return [Send((pid,), Participants(**self._snapshot(pid)).to_message())]

    # -- the waiting room ---------------------------------------------------------------------------

    def set_waiting_room(self, pid: int, enabled: bool) -> list[Send]:
        """Host and admins: turn the waiting room on or off; turning it off lets everyone waiting in."""
        actor = self._require(pid, Role.ADMIN, "turn the waiting room on or off")
        if self.waiting_room == enabled:
            return []
        self.waiting_room = enabled
        self._changed()
        change = WaitingRoomChanged(enabled=enabled, by=actor.name)
        sends = [Send(self._everyone(), change.to_message())]
        if not enabled:
            sends += self._admit_all(actor)
        return sends

    def admit(self, pid: int, name: str | None) -> list[Send]:
        """Host and admins: let ``name`` (None: everyone waiting, as far as there is room) in."""
        actor = self._require(pid, Role.ADMIN, "admit people")
        if name is None:
            if not self.waiting:
                raise RequestRefused("unknown_participant", "nobody is waiting")
            return self._admit_all(actor)
        waiter = self._find_waiting(name)
        self._check_room()
        return self._admit(waiter, actor)

    def deny(self, pid: int, name: str) -> list[Send]:
        """Host and admins: turn ``name`` away from the waiting room."""
        actor = self._require(pid, Role.ADMIN, "deny people")
        waiter = self._find_waiting(name)
        denied_name = self.waiting.pop(waiter)
        self._waiting_keys.pop(waiter, None)
        self._waiting_grants.pop(waiter, None)
        self._waiting_recorders.discard(waiter)
        self._origins.pop(waiter, None)
        return [
            Send((waiter,), Denied(meeting=self.id, by=actor.name).to_message()),
            Send(self._staff(), WaitingLeft(name=denied_name, reason="denied", by=actor.name).to_message()),
        ]

    def _find_waiting(self, name: str) -> int:
        folded = name_key(name)
        for pid, waiting in self.waiting.items():
            if name_key(waiting) == folded:
                return pid
        raise RequestRefused("unknown_participant", f"nobody named {name!r} is waiting")

    def _admit(self, waiter: int, actor: Participant) -> list[Send]:
        name = self.waiting.pop(waiter)
        left = WaitingLeft(name=name, reason="admitted", by=actor.name)
        key, grant = self._waiting_keys.pop(waiter, None), self._waiting_grants.pop(waiter, None)
        recorder = waiter in self._waiting_recorders
        self._waiting_recorders.discard(waiter)
        return [
            Send(self._staff(), left.to_message()),
            *self._enter(waiter, name, key, grant, recorder=recorder),
        ]

    def _admit_all(self, actor: Participant) -> list[Send]:
        sends: list[Send] = []
        for waiter in list(self.waiting):
            if len(self.participants) >= MAX_PARTICIPANTS:
                break
            sends += self._admit(waiter, actor)
        return sends

    def _waiting_room_state(self, pid: int) -> Send:
        """Tell a new host or admin whether there is a waiting room and who waits in it."""
        state = WaitingRoom(enabled=self.waiting_room, waiting=tuple(self.waiting.values()))
        return Send((pid,), state.to_message())

    def _close_waiting_room(self, by: str | None) -> list[Send]:
        if not self.waiting:
            return []
        closed = MeetingClosed(by=by, reason="ended").to_message()
        waiting = tuple(self.waiting)
        self.waiting.clear()
        self._waiting_keys.clear()
        self._waiting_grants.clear()
        self._origins.clear()
        return [Send(waiting, closed)]

    # -- breakout rooms, renaming ----------------------------------------------------------------------

    def room_mates(self, pid: int) -> tuple[int, ...]:
        """Everyone in ``pid``'s room, ``pid`` too: the whole meeting while no breakout room is open."""
        breakout = self.breakout
        if not breakout.where:
            return self._everyone()
        room = breakout.room_of(pid)
        return tuple(other for other in self.participants if breakout.room_of(other) == room)

    def together(self, pid: int, other: int) -> bool:
        """Whether ``pid`` and ``other`` are in the same room (media and chat pass between them)."""
        return self.breakout.room_of(pid) == self.breakout.room_of(other)

    def breakout_create(self, pid: int, rooms: int, now: float) -> list[Send]:
        self._moderate(pid, now, "create breakout rooms")
        self.breakout.create(rooms)
        return [self._breakout_plan()]

    def breakout_assign(self, pid: int, name: str, room: int, now: float) -> list[Send]:
        actor = self._moderate(pid, now, "assign breakout rooms")
        moves = self.breakout.assign(self.find(name).pid, room)
        return [self._breakout_plan(), *self._move(moves, actor.name)]

    def breakout_shuffle(self, pid: int, now: float) -> list[Send]:
        """Everyone but the host, spread over the rooms at random."""
        actor = self._moderate(pid, now, "assign breakout rooms")
        moves = self.breakout.shuffle([other for other in self.participants if other != pid], self._rng)
        return [self._breakout_plan(), *self._move(moves, actor.name)]

    def breakout_open(self, pid: int, minutes: int | None, now: float) -> list[Send]:
        actor = self._moderate(pid, now, "open breakout rooms")
        self._now = now
        moves = self.breakout.open_rooms(now + 60 * minutes if minutes else None)
        self._breakout_by = actor.name
        opened = Send(self._everyone(), self._breakout_opened())
        return [opened, *self._move(moves, actor.name), self._breakout_plan()]

    def breakout_visit(self, pid: int, room: int, now: float) -> list[Send]:
        """The host goes to ``room`` (0: the main room) while the rooms are open."""
        actor = self._moderate(pid, now, "visit breakout rooms")
        return self._move(self.breakout.visit(pid, room), actor.name)

    def breakout_broadcast(self, pid: int, text: str, now: float) -> list[Send]:
        """The host's message to every room (it takes a chat token, as chat does)."""
        actor = self._require(pid, Role.HOST, "broadcast to breakout rooms")
        if not self.breakout.open:
            raise RequestRefused("bad_request", "breakout rooms are not open; this is ordinary chat")
        self._take_chat_token(actor, now)
        return [Send(self._everyone(), BreakoutBroadcast(sender=actor.name, text=text).to_message())]

    def breakout_close(self, pid: int, now: float) -> list[Send]:
        actor = self._moderate(pid, now, "close breakout rooms")
        moves = self.breakout.close_rooms()
        closed = BreakoutClosed(reason="closed", by=actor.name).to_message()
        return [*self._move(moves, actor.name), Send(self._everyone(), closed), self._breakout_plan()]

    def expire(self, now: float) -> list[Send]:
        """Time passed: open breakout rooms whose time is up close (everyone back to the main room)."""
        self._now = now
        breakout = self.breakout
        if not breakout.open or breakout.deadline is None or now < breakout.deadline:
            return []
        moves = breakout.close_rooms()
        closed = BreakoutClosed(reason="timeout").to_message()
        return [*self._move(moves, None), Send(self._everyone(), closed), self._breakout_plan()]

    def _moderate(self, pid: int, now: float, action: str) -> Participant:
        actor = self._require(pid, Role.HOST, action)
        self.activities.moderate(pid, now)
        return actor

    def _breakout_plan(self) -> Send:
        """The plan, for the host and admins."""
        breakout = self.breakout
        assignments = tuple(
            RoomEntry(name=self.participants[pid].name, room=room)
            for pid, room in breakout.plan.items()
            if pid in self.participants
        )
        plan = BreakoutRooms(rooms=breakout.rooms, open=breakout.open, assignments=assignments).to_message()
        return Send(self._staff(), plan)

    def _breakout_opened(self) -> Message:
        deadline = self.breakout.deadline
        ends_in = round(max(0.0, deadline - self._now), 1) if deadline is not None else None
        return BreakoutOpened(rooms=self.breakout.rooms, by=self._breakout_by, ends_in=ends_in).to_message()

    def _breakout_catch_up(self) -> list[Message]:
        """What a newcomer is told of open rooms: that they are open, and who is in which."""
        if not self.breakout.open:
            return []
        moved = [
            BreakoutMoved(name=self.participants[pid].name, room=room).to_message()
            for pid, room in self.breakout.where.items()
        ]
        return [self._breakout_opened(), *moved]

    def _visible(self, pid: int) -> set[int]:
        """The SSRCs of the tracks ``pid`` receives: the others' in its room."""
        return {
            ssrc
            for ssrc, track in self.tracks.items()
            if track.owner != pid and self.together(pid, track.owner)
        }

    def _move(self, moves: dict[int, int], by: str | None) -> list[Send]:
        """Carry out ``moves`` (pid -> room): tell everyone, and tell each participant whose view changes
        which tracks left it (``share_stopped``, reason ``moved``) and which came into it."""
        if not moves:
            return []
        before = {pid: self._visible(pid) for pid in self.participants}
        for pid, room in moves.items():
            self.breakout.move(pid, room)
        self._routes_changed()
        sends: list[Send] = []
        everyone = self._everyone()
        for pid, room in moves.items():
            moved = BreakoutMoved(name=self.participants[pid].name, room=room, by=by)
            sends.append(Send(everyone, moved.to_message()))
        lost: dict[int, list[int]] = {}
        gained: dict[int, list[int]] = {}
        for pid, seen in before.items():
            now_seen = self._visible(pid)
            for ssrc in seen - now_seen:
                lost.setdefault(ssrc, []).append(pid)
            for ssrc in now_seen - seen:
                gained.setdefault(ssrc, []).append(pid)
        for ssrc, pids in sorted(lost.items()):
            track = self.tracks[ssrc]
            owner = self.participants[track.owner].name
            stopped = ShareStopped(
                name=owner, kind=track.kind, ssrc=track.ssrc, codec=track.codec, reason="moved"
            )
            sends.append(Send(tuple(pids), stopped.to_message()))
        for ssrc, pids in sorted(gained.items()):
            track = self.tracks[ssrc]
            started = track.started(self.participants[track.owner].name)
            sends.append(Send(tuple(pids), started.to_message()))
        return sends + self.control.apart()

    def rename(self, pid: int, name: str, new_name: str, now: float) -> list[Send]:
        """Host only: give ``name`` another name (not in an end-to-end encrypted meeting, where names are
        bound to keys and to the security code)."""
        actor = self._require(pid, Role.HOST, "rename people")
        if self.e2ee:
            raise RequestRefused(
                "not_allowed",
                "names cannot change in an end-to-end encrypted meeting: each is bound to its key",
            )
        target = self.find(name)
        self.check_recorder_name(new_name, target.recorder)
        folded = name_key(new_name)
        taken = [p.name for p in self.participants.values() if p is not target] + list(self.waiting.values())
        if any(name_key(other) == folded for other in taken):
            raise RequestRefused(
                "name_taken", f"the name {new_name!r} is taken in this meeting; pick another"
            )
        self.activities.moderate(pid, now)
        if new_name == target.name:
            return []
        old, target.name = target.name, new_name
        self.activities.renamed(target.pid, new_name)
        self._changed()
        renamed = ParticipantRenamed(name=old, new_name=new_name, by=actor.name)
        return [Send(self._everyone(), renamed.to_message()), *self.resume_token(target)]

    # -- helpers ------------------------------------------------------------------------------------

    def require(self, pid: int, at_least: Role, action: str) -> Participant:
        """``pid``'s participant if its role is at least ``at_least`` (host, or host and admins), else
        RequestRefused ``not_allowed`` naming ``action``: every role check of the meeting's rules."""
        return self._require(pid, at_least, action)

    def _require(self, pid: int, at_least: Role, action: str) -> Participant:
        """The participant ``pid`` if its role allows ``action``, else RequestRefused ``not_allowed``.
        The operator (:data:`OPERATOR`) acts with the host's role."""
        actor = self._operator if pid == OPERATOR else self.participants[pid]
        if at_least is Role.HOST and actor.role is not Role.HOST:
            raise RequestRefused("not_allowed", f"only the host can {action}")
        if at_least is Role.ADMIN and actor.role is Role.MEMBER:
            raise RequestRefused("not_allowed", f"only the host and admins can {action}")
        return actor

    def _make_host(self, participant: Participant) -> None:
        participant.role = Role.HOST
        participant.forbidden.clear()

    def _stop_forbidden_shares(self, participant: Participant, kinds: list[str]) -> list[Send]:
        """Stop each of ``kinds`` that ``participant`` shares but may no longer share."""
        sends: list[Send] = []
        for kind in kinds:
            if kind in participant.sharing and not self.allowed(participant, kind):
                tracks = [t for t in self._tracks_of(participant.pid) if t.kind == kind]
                participant.sharing.discard(kind)
                if tracks:
                    sends += [self._stop_track(track, "forbidden") for track in tracks]
                    continue
                stopped = ShareStopped(name=participant.name, kind=kind, reason="forbidden")
                sends.append(Send(self._everyone(), stopped.to_message()))
        return sends

    # -- media --------------------------------------------------------------------------------------

    def publish(
        self,
        pid: int,
        kind: str,
        ssrc: int,
        codec: str,
        layers: list[Message] | None = None,
        feedback: str | None = None,
    ) -> list[Send]:
        """Start a track; a participant has at most one track of each kind (a new one replaces it).

        A simulcast video track lists its ``layers`` (lowest first, the last one with ``ssrc``).
        ``feedback="ccfb"``: the server reports the track's packet arrivals to its publisher (RFC 8888)."""
        participant = self.participants[pid]
        if kind not in MEDIA_KINDS:
            raise RequestRefused(
                "bad_request", f"cannot publish {kind!r}; kinds are {', '.join(MEDIA_KINDS)}"
            )
        if participant.recorder:
            raise RequestRefused("forbidden", "a recorder publishes nothing")
        if participant.can_publish is not None and kind not in participant.can_publish:
            raise RequestRefused("forbidden", f"your access token does not let you publish {kind}")
        if not self.allowed(participant, kind):
            raise RequestRefused("forbidden", f"{kind} is forbidden for you in this meeting")
        if not 0 <= ssrc <= 0xFFFFFFFF:
            raise RequestRefused("bad_request", "ssrc must be a 32-bit unsigned integer")
        if codec.casefold() != CODECS[kind].casefold():
            raise RequestRefused("bad_request", f"{kind} is carried as {CODECS[kind]}, not {codec}")
        codec = CODECS[kind]
        existing = self.tracks.get(ssrc)
        if existing is not None and (existing.owner != pid or existing.kind != kind):
            raise RequestRefused("bad_request", f"SSRC {ssrc:#010x} is already in use in this meeting")
        described = self._layers(pid, kind, ssrc, layers) if layers else ()
        if (
            existing is not None
            and existing.layers == described
            and (existing.uplink is None) == (feedback != "ccfb")
        ):
            return []  # published again as it is (a client that resumed its seat): nothing changes
        replaced = [t for t in self._tracks_of(pid) if t.kind == kind and t.ssrc != ssrc]
        sends = [self._stop_track(track, "replaced") for track in replaced]
        if existing is not None and existing.ssrc in self.tracks:
            self._drop_layers(existing)
        track = Track(ssrc, pid, kind, codec, layers=described)
        if feedback == "ccfb":  # one report covers every layer: the publisher's estimate is for all it sends
            track.uplink = UplinkFeedback(ssrc, tuple(layer.ssrc for layer in described[:-1]))
        self.tracks[ssrc] = track
        for index, layer in enumerate(described[:-1]):
            self.layer_tracks[layer.ssrc] = Track(
                layer.ssrc, pid, kind, codec, parent=track, index=index, uplink=track.uplink
            )
        track.index = len(described) - 1 if described else 0
        self.version.bump()
        participant.sharing.add(kind)
        sends.append(Send(self.room_mates(pid), track.started(participant.name).to_message()))
        self.journal.note("track_published", self.id, **track.describe(participant.name).to_message())
        return sends

    def unpublish(self, pid: int, kind: str) -> list[Send]:
        tracks = [t for t in self._tracks_of(pid) if t.kind == kind]
        if not tracks:
            raise RequestRefused("bad_request", f"you are not sharing {kind}")
        return [self._stop_track(track, "stopped") for track in tracks]

    def video_tracks(self) -> list[Track]:
        """Tracks whose receivers need keyframes (camera and screen)."""
        return [t for t in self.tracks.values() if t.kind != "audio"]

    def _tracks_of(self, pid: int) -> list[Track]:
        return [t for t in self.tracks.values() if t.owner == pid]

    def _layers(self, pid: int, kind: str, ssrc: int, layers: list[Message]) -> tuple[Layer, ...]:
        """The layers a ``publish`` lists, checked: video only, lowest first, the last one the track's
        SSRC, each SSRC new in this meeting (docs/protocol.md, "Simulcast")."""
        if kind == "audio":
            raise RequestRefused("bad_request", "audio has no simulcast layers")
        if self.e2ee:
            raise RequestRefused(
                "bad_request",
                "an end-to-end encrypted meeting takes one layer per track (the server cannot rewrite "
                "headers that SFrame authenticates)",
            )
        described = tuple(
            Layer(int(layer["ssrc"]), int(layer["width"]), int(layer["height"]), int(layer["bitrate"]))
            for layer in layers
        )
        if described[-1].ssrc != ssrc:
            raise RequestRefused("bad_request", "the last (highest) layer must have the track's ssrc")
        if len({layer.ssrc for layer in described}) != len(described):
            raise RequestRefused("bad_request", "each layer needs its own ssrc")
        if any(a.bitrate > b.bitrate for a, b in itertools.pairwise(described)):
            raise RequestRefused("bad_request", "layers go from the lowest bit rate to the highest")
        for layer in described[:-1]:
            taken = self.tracks.get(layer.ssrc) or self.layer_tracks.get(layer.ssrc)
            if taken is not None and taken.owner != pid:
                raise RequestRefused("bad_request", f"SSRC {layer.ssrc:#010x} is already in use")
        return described

    def _drop_layers(self, track: Track) -> None:
        for layer in track.layers[:-1]:
            self.layer_tracks.pop(layer.ssrc, None)

    def _stop_track(self, track: Track, reason: str) -> Send:
        del self.tracks[track.ssrc]
        self._drop_layers(track)
        self.version.bump()
        owner = self.participants[track.owner]
        if not any(t.kind == track.kind for t in self._tracks_of(track.owner)):
            owner.sharing.discard(track.kind)
        self.journal.note(
            "track_unpublished", self.id, **track.describe(owner.name).to_message(), reason=reason
        )
        stopped = ShareStopped(
            name=owner.name, kind=track.kind, ssrc=track.ssrc, codec=track.codec, reason=reason
        )
        return Send(self.room_mates(track.owner), stopped.to_message())

    def _role_changed(self, participant: Participant, *, by: str | None) -> list[Send]:
        """Everyone is told of ``participant``'s new role; they get a resume token that says it."""
        message = RoleChanged(name=participant.name, role=str(participant.role), by=by)
        self._changed()
        return [Send(self._everyone(), message.to_message()), *self.resume_token(participant)]

    def _changed(self) -> None:
        """What the meeting's record holds (settings, roles, forbids, bans) changed, or it ended."""
        if self.on_change is not None:
            self.on_change(self)

    def resume_token(self, participant: Participant) -> list[Send]:
        """A new resume token for ``participant`` (entering, after a change of role or name, or when
        its token is old), if this meeting's server gives them (:attr:`tokens`)."""
        issue = self.tokens
        message = issue(self, participant) if issue is not None else None
        return [Send((participant.pid,), message)] if message is not None else []

    def seat_of(self, seat: str) -> Participant | None:
        """The participant in ``seat`` (its ID that outlives its connections), if here."""
        return next((p for p in self.participants.values() if p.seat == seat), None)
