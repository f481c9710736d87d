"""Who takes part in a meeting and what the meeting rules send them: the vocabulary that the meeting's
rules (:mod:`conf_cli.server.meeting`) and remote control (:mod:`conf_cli.server.remote_control`) share.

This module sits below both, so neither imports the other to name a participant or a message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from conf_cli.protocol.events import ParticipantEntry

Message = dict[str, Any]

CHAT_RATE = 1.0  # chat messages a participant may send per second, on average ...
CHAT_BURST = 10.0  # ... and at once

OPERATOR = -1
"""The actor id of the server's operator (the admin API, :mod:`conf_cli.server.operator`): never a
connection's, and never among a meeting's participants."""
OPERATOR_NAME = "server admin"
"""The name participants see in ``by`` when the operator acts (``kicked``, ``meeting_locked`` ...)."""

__all__ = [
    "CHAT_BURST",
    "CHAT_RATE",
    "OPERATOR",
    "OPERATOR_NAME",
    "Grant",
    "Message",
    "Participant",
    "Role",
    "Roster",
    "Send",
]


class Role(StrEnum):
    HOST = "host"
    ADMIN = "admin"
    MEMBER = "member"


@dataclass(frozen=True)
class Send:
    """Send ``message`` to each participant in ``to``."""

    to: tuple[int, ...]
    message: Message


@dataclass(frozen=True)
class Grant:
    """What an access token gives its holder in a meeting (:mod:`conf_cli.server.tokens`): the role they
    enter with, and the media kinds they may ever publish there, whatever their role becomes."""

    role: Role
    can_publish: frozenset[str]


@dataclass
class Participant:
    pid: int
    name: str
    role: Role
    seniority: int
    sharing: set[str] = field(default_factory=set)
    forbidden: set[str] = field(default_factory=set)
    key: str | None = None  # X25519 public key (base64) in an end-to-end encrypted meeting
    chat_tokens: float = CHAT_BURST  # the chat rate limit's bucket ...
    chat_stamp: float | None = None  # ... as of this time (None: never chatted)
    can_publish: frozenset[str] | None = None
    """The kinds an access token lets this participant publish; None: no token, no such limit."""
    recorder: bool = False
    """Joined as a recorder (``conf record``): everyone is told it records; it never becomes host."""
    seat: str = ""
    """Its ID that outlives its connections (:mod:`conf_cli.server.resume`): a resume token names it."""
    token_issued: float | None = None
    """When (the hub's clock) its latest resume token was issued; None: it holds none."""

    def describe(self) -> ParticipantEntry:
        """This participant as a snapshot lists them."""
        return ParticipantEntry(
            name=self.name,
            role=str(self.role),
            sharing=tuple(sorted(self.sharing)),
            forbidden=tuple(sorted(self.forbidden)),
            key=self.key,
            recorder=self.recorder,
        )


class Roster(Protocol):
    """What remote control reads of its meeting (:class:`conf_cli.server.meeting.Meeting` is one)."""

    participants: dict[int, Participant]

    def find(self, name: str) -> Participant:
        """The participant called ``name``; RequestRefused ``unknown_participant`` if none."""
        ...

    def allowed(self, participant: Participant, what: str) -> bool:
        """Whether ``participant`` may use ``what`` (audio, video, screen, control, chat) now."""
        ...

    def together(self, pid: int, other: int) -> bool:
        """Whether two participants are in the same room (always, unless breakout rooms are open)."""
        ...
