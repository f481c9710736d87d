"""What people do in a meeting besides talking: raised hands, reactions, polls, the spotlight and asks
to unmute, as a sans-I/O part of the meeting's rules (:mod:`conf_cli.server.meeting` holds one).

Each method takes a request from one participant (an opaque ``pid``) and ``now``, and returns the
messages to send and to whom (:class:`~conf_cli.server.people.Send`), or raises
:class:`~conf_cli.errors.RequestRefused`. Every request is rate-limited per participant (docs/protocol.md,
"In the meeting"): a refused one changes nothing and reaches nobody.

Hands form one queue per meeting, in the order they went up. Polls: one open at a time; votes are kept
by participant until the close, which gives the counts (and, for a named poll, who chose what). A
reaction goes to the sender's room only (breakout rooms: :mod:`conf_cli.server.breakout`); everything
else here is meeting-wide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from conf_cli.errors import RequestRefused
from conf_cli.protocol.control import REACTION_EMOJI, name_key
from conf_cli.protocol.events import (
    HandLowered,
    HandRaised,
    PollClosed,
    PollStarted,
    Reaction,
    Spotlight,
    UnmuteRequested,
    VoteEntry,
    VoteRecorded,
)
from conf_cli.server.limiter import seconds_text
from conf_cli.server.people import Message, Participant, Role, Roster, Send
from conf_cli.token_bucket import TokenBucket

GESTURE_RATE, GESTURE_BURST = 1.0, 5.0
"""``hand`` and ``react``: 5 at once, then 1 a second on average."""
VOTE_RATE, VOTE_BURST = 1.0, 5.0
MODERATION_RATE, MODERATION_BURST = 5.0, 100.0
"""The host's (and admins') requests here and in breakout rooms: 100 at once (one per participant a
meeting may hold, to assign everyone a room), then 5 a second."""


class Venue(Roster, Protocol):
    """What these rules read of their meeting (:class:`conf_cli.server.meeting.Meeting` is one)."""

    def room_mates(self, pid: int) -> tuple[int, ...]:
        """Everyone in ``pid``'s room (the whole meeting while no breakout room is open), ``pid`` too."""
        ...

    def require(self, pid: int, at_least: Role, action: str) -> Participant:
        """``pid``'s participant if its role is ``at_least`` that, else RequestRefused ``not_allowed``."""
        ...


@dataclass
class Poll:
    number: int
    question: str
    options: tuple[str, ...]
    named: bool
    by: str
    votes: dict[int, tuple[str, int]] = field(default_factory=dict)
    """pid -> (their name, their choice from 1), in the order the votes were last cast."""

    def started(self) -> Message:
        started = PollStarted(
            poll=self.number, question=self.question, options=self.options, named=self.named, by=self.by
        )
        return started.to_message()


class Allowances:
    """Token buckets per participant and kind of request; :meth:`take` refuses with ``rate_limited``."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[int, str], TokenBucket] = {}

    def take(self, pid: int, kind: str, rate: float, burst: float, now: float, what: str) -> None:
        bucket = self._buckets.get((pid, kind))
        if bucket is None:
            bucket = self._buckets[(pid, kind)] = TokenBucket(rate, burst)
        if not bucket.take(1, now):
            wait = bucket.wait(1, now)
            raise RequestRefused(
                "rate_limited",
                f"you are {what} too fast; try again in {seconds_text(wait)}",
                retry_after=wait,
            )

    def forget(self, pid: int) -> None:
        for key in [key for key in self._buckets if key[0] == pid]:
            del self._buckets[key]


class Activities:
    """Hands, reactions, polls, spotlight and asks to unmute of one meeting."""

    def __init__(self, meeting: Venue) -> None:
        self.meeting = meeting
        self.hands: list[int] = []
        """pids with a raised hand, first raised first."""
        self.poll: Poll | None = None
        self.polls = 0
        """Poll numbers given out."""
        self.spotlight: int | None = None
        self.spotlight_by: str | None = None
        self.allowances = Allowances()

    def moderate(self, pid: int, now: float) -> None:
        """Take one of the host's (or an admin's) moderation allowance (:data:`MODERATION_BURST`)."""
        self.allowances.take(pid, "moderation", MODERATION_RATE, MODERATION_BURST, now, "moderating")

    # -- hands ----------------------------------------------------------------------------------------

    def hand(self, pid: int, raised: bool | None, now: float) -> list[Send]:
        """Raise (``True``), lower (``False``) or toggle (``None``) one's own hand."""
        self.allowances.take(
            pid, "gesture", GESTURE_RATE, GESTURE_BURST, now, "raising and lowering your hand"
        )
        up = pid in self.hands
        if raised is None:
            raised = not up
        if raised == up:
            return []
        if not raised:
            return self._lower(pid, by=None)
        self.hands.append(pid)
        name = self.meeting.participants[pid].name
        raised_hand = HandRaised(name=name, position=len(self.hands))
        return [Send(self._everyone(), raised_hand.to_message())]

    def lower_hand(self, pid: int, name: str | None, everyone: bool, now: float) -> list[Send]:
        """Lower ``name``'s hand (or every hand): the host and admins may lower anyone's."""
        actor = self.meeting.participants[pid]
        targets = list(self.hands) if everyone else [self.meeting.find(name or "").pid]
        if targets != [pid]:
            self.meeting.require(pid, Role.ADMIN, "lower other people's hands")
            self.moderate(pid, now)
        else:
            self.allowances.take(pid, "gesture", GESTURE_RATE, GESTURE_BURST, now, "lowering your hand")
        sends: list[Send] = []
        for target in targets:
            if target in self.hands:
                sends += self._lower(target, by=None if target == pid else actor.name)
        return sends

    def _lower(self, pid: int, by: str | None) -> list[Send]:
        self.hands.remove(pid)
        lowered = HandLowered(name=self.meeting.participants[pid].name, by=by)
        return [Send(self._everyone(), lowered.to_message())]

    # -- reactions ------------------------------------------------------------------------------------

    def react(self, pid: int, emoji: str, now: float) -> list[Send]:
        sender = self.meeting.participants[pid]
        if emoji not in REACTION_EMOJI:  # the schema checked it; a caller in-process may not have
            raise RequestRefused("bad_request", "react: not one of the reactions docs/protocol.md lists")
        if not self.meeting.allowed(sender, "chat"):
            raise RequestRefused("forbidden", "chat, and so reactions, are forbidden for you in this meeting")
        self.allowances.take(pid, "gesture", GESTURE_RATE, GESTURE_BURST, now, "reacting")
        reaction = Reaction(name=sender.name, emoji=emoji)
        return [Send(self.meeting.room_mates(pid), reaction.to_message())]

    # -- polls ----------------------------------------------------------------------------------------

    def start_poll(self, pid: int, question: str, options: list[str], named: bool, now: float) -> list[Send]:
        actor = self.meeting.require(pid, Role.HOST, "start a poll")
        if self.poll is not None:
            raise RequestRefused(
                "busy", f"poll {self.poll.number} is still open; close it first (/poll close)"
            )
        if len({name_key(option) for option in options}) != len(options):
            raise RequestRefused("bad_request", "poll_start: two options are the same")
        self.moderate(pid, now)
        self.polls += 1
        self.poll = Poll(self.polls, question, tuple(options), named, actor.name)
        return [Send(self._everyone(), self.poll.started())]

    def vote(self, pid: int, choice: int, poll: int | None, now: float) -> list[Send]:
        current = self.poll
        if current is None or (poll is not None and poll != current.number):
            raise RequestRefused(
                "no_poll", "no poll is open" if current is None else f"poll {poll} is not open"
            )
        if not 1 <= choice <= len(current.options):
            raise RequestRefused("bad_request", f"vote: choose 1 to {len(current.options)}")
        self.allowances.take(pid, "vote", VOTE_RATE, VOTE_BURST, now, "voting")
        current.votes.pop(pid, None)  # a changed vote counts as cast now
        current.votes[pid] = (self.meeting.participants[pid].name, choice)
        return [Send((pid,), VoteRecorded(poll=current.number, choice=choice).to_message())]

    def close_poll(self, pid: int, now: float) -> list[Send]:
        actor = self.meeting.require(pid, Role.HOST, "close the poll")
        current = self.poll
        if current is None:
            raise RequestRefused("no_poll", "no poll is open")
        self.moderate(pid, now)
        self.poll = None
        counts = [0] * len(current.options)
        for _, choice in current.votes.values():
            counts[choice - 1] += 1
        votes = tuple(VoteEntry(name=name, choice=choice) for name, choice in current.votes.values())
        closed = PollClosed(
            poll=current.number,
            question=current.question,
            options=current.options,
            counts=tuple(counts),
            voters=len(current.votes),
            by=actor.name,
            votes=votes if current.named else None,
        )
        return [Send(self._everyone(), closed.to_message())]

    # -- spotlight and asking to unmute --------------------------------------------------------------

    def set_spotlight(self, pid: int, name: str | None, now: float) -> list[Send]:
        actor = self.meeting.require(pid, Role.HOST, "pin someone's video for everyone")
        target = self.meeting.find(name).pid if name is not None else None
        self.moderate(pid, now)
        if target == self.spotlight:
            return []
        self.spotlight, self.spotlight_by = target, actor.name
        return [Send(self._everyone(), self._spotlight_message())]

    def _spotlight_message(self) -> Message:
        name = self.meeting.participants[self.spotlight].name if self.spotlight is not None else None
        return Spotlight(name=name, by=self.spotlight_by).to_message()

    def ask_unmute(self, pid: int, name: str, now: float) -> list[Send]:
        """The host asks ``name`` to turn their microphone on. Only they can: nothing here starts it."""
        actor = self.meeting.require(pid, Role.HOST, "ask people to unmute")
        target = self.meeting.find(name)
        if target.pid == pid:
            raise RequestRefused("bad_request", "you cannot ask yourself to unmute")
        if not self.meeting.allowed(target, "audio"):
            raise RequestRefused(
                "forbidden", f"audio is forbidden for {target.name}; /permit audio {target.name} first"
            )
        if "audio" in target.sharing:
            raise RequestRefused("bad_request", f"{target.name} already shares audio")
        self.moderate(pid, now)
        asked = UnmuteRequested(name=target.name, by=actor.name)
        return [Send((target.pid, pid), asked.to_message())]

    # -- consequences of other events ----------------------------------------------------------------

    def catch_up(self) -> list[Message]:
        """What a newcomer is told after ``joined``: the hands up, an open poll, the spotlight."""
        people = self.meeting.participants
        messages: list[Message] = [
            HandRaised(name=people[pid].name, position=position).to_message()
            for position, pid in enumerate(self.hands, 1)
        ]
        if self.poll is not None:
            messages.append(self.poll.started())
        if self.spotlight is not None:
            messages.append(self._spotlight_message())
        return messages

    def leaving(self, pid: int) -> list[Send]:
        """``pid`` has left (no longer a participant): their hand goes down with no event of its own
        (``participant_left`` says it), their vote goes, and a spotlight on them goes out, for everyone."""
        self.allowances.forget(pid)
        if pid in self.hands:
            self.hands.remove(pid)
        if self.poll is not None:  # a voter who leaves takes their vote along
            self.poll.votes.pop(pid, None)
        if self.spotlight != pid:
            return []
        self.spotlight = self.spotlight_by = None
        return [Send(self._everyone(), Spotlight().to_message())]

    def renamed(self, pid: int, name: str) -> None:
        """``pid`` is now called ``name``: a named poll's result names them so."""
        if self.poll is not None and pid in self.poll.votes:
            self.poll.votes[pid] = (name, self.poll.votes[pid][1])

    def _everyone(self) -> tuple[int, ...]:
        return tuple(self.meeting.participants)
