"""What happens in meetings, in order, for the server's webhooks. Sans-I/O.

The meeting rules (:mod:`conf_cli.server.meeting`) note each meeting's start and end, everyone who
enters or leaves it and every track published or stopped, and the server's recorders each recording
they finished, in :class:`Journal` that the hub shares among its meetings (as it shares the route
version). The asyncio edge takes what was noted after
each change it carries out and hands it on (:mod:`conf_cli.server.webhooks`); nothing here waits.

A journal is off until the edge turns it on (``conf server --webhook``): a server without webhooks
keeps nothing.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

EVENTS = (
    "meeting_started",
    "meeting_ended",
    "participant_joined",
    "participant_left",
    "track_published",
    "track_unpublished",
    "recording_finished",
)
"""Every event a journal may hold. ``recording_finished`` is noted by the server's recorders
(:mod:`conf_cli.server.recorders`) when a recording the admin API started has ended and its file is
finished; the rest by the meeting rules."""

MAX_PENDING = 10_000
"""Happenings kept between two takes at most; beyond, the oldest go (and are counted in ``lost``)."""


@dataclass(frozen=True)
class Happening:
    """One thing that happened in meeting ``meeting``: ``event`` (one of :data:`EVENTS`) and its fields."""

    event: str
    meeting: str
    fields: dict[str, Any] = field(default_factory=dict)


class Journal:
    """Happenings in the order they happened, until the edge takes them."""

    def __init__(self, *, enabled: bool = False, limit: int = MAX_PENDING) -> None:
        self.enabled = enabled
        self.lost = 0
        self._pending: deque[Happening] = deque()
        self._limit = limit

    def note(self, event: str, meeting: str, **fields: Any) -> None:
        """Keep that ``event`` happened in ``meeting`` (nothing, while the journal is off)."""
        if not self.enabled:
            return
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}")
        self._pending.append(Happening(event, meeting, fields))
        if len(self._pending) > self._limit:
            self._pending.popleft()
            self.lost += 1

    def take(self) -> list[Happening]:
        """Everything noted since the last take, oldest first."""
        if not self._pending:
            return []
        taken = list(self._pending)
        self._pending.clear()
        return taken
