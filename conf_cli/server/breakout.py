"""Breakout rooms of one meeting: the plan (who goes to which room), whether the rooms are open, who is
where, and when they close. Sans-I/O and free of messages: :class:`~conf_cli.server.meeting.Meeting`
asks it where people are and what a change moves, and tells everyone.

Rooms are numbered 1..``rooms``; room 0 is the main room, where everyone is while the rooms are closed,
and where newcomers arrive. Who receives whose media and chat follows :meth:`Breakout.room_of`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from conf_cli.errors import RequestRefused

MAIN_ROOM = 0


@dataclass
class Breakout:
    rooms: int = 0
    """Rooms planned (0: none)."""
    plan: dict[int, int] = field(default_factory=dict)
    """pid -> the room they go to when the rooms open, in order of arrival."""
    where: dict[int, int] = field(default_factory=dict)
    """While open: pid -> their room, for everyone not in the main room."""
    open: bool = False
    deadline: float | None = None
    """When open rooms close by themselves (None: when the host closes them)."""

    def room_of(self, pid: int) -> int:
        return self.where.get(pid, MAIN_ROOM)

    def create(self, rooms: int) -> None:
        if self.open:
            raise RequestRefused("busy", "breakout rooms are open; close them first (/breakout close)")
        self.rooms, self.plan = rooms, {}

    def check_room(self, room: int) -> None:
        if not self.rooms:
            raise RequestRefused("bad_request", "there are no breakout rooms; /breakout create N first")
        if not 0 <= room <= self.rooms:
            raise RequestRefused(
                "bad_request", f"breakout rooms are numbered 1 to {self.rooms} (0: the main room)"
            )

    def assign(self, pid: int, room: int) -> dict[int, int]:
        """Plan ``pid`` for ``room`` (0: for none); the moves this makes now (while open)."""
        self.check_room(room)
        self.plan.pop(pid, None)
        if room != MAIN_ROOM:
            self.plan[pid] = room
        return {pid: room} if self.open and self.room_of(pid) != room else {}

    def shuffle(self, pids: list[int], rng: random.Random) -> dict[int, int]:
        """Spread ``pids`` over the rooms at random, sizes differing by one at most; the moves made now."""
        self.check_room(MAIN_ROOM)
        order = list(pids)
        rng.shuffle(order)
        self.plan = {pid: index % self.rooms + 1 for index, pid in enumerate(order)}
        if not self.open:
            return {}
        return {pid: room for pid, room in self.plan.items() if self.room_of(pid) != room}

    def open_rooms(self, deadline: float | None) -> dict[int, int]:
        """Open the rooms: everyone planned goes to their room."""
        self.check_room(MAIN_ROOM)
        if self.open:
            raise RequestRefused("busy", "breakout rooms are already open")
        self.open, self.deadline = True, deadline
        return dict(self.plan)

    def visit(self, pid: int, room: int) -> dict[int, int]:
        if not self.open:
            raise RequestRefused("bad_request", "breakout rooms are not open")
        self.check_room(room)
        return {pid: room} if self.room_of(pid) != room else {}

    def close_rooms(self) -> dict[int, int]:
        """Everyone back to the main room; the plan stays."""
        if not self.open:
            raise RequestRefused("bad_request", "breakout rooms are not open")
        moves = {pid: MAIN_ROOM for pid in self.where}
        self.open, self.deadline = False, None
        return moves

    def move(self, pid: int, room: int) -> None:
        if room == MAIN_ROOM:
            self.where.pop(pid, None)
        else:
            self.where[pid] = room

    def forget(self, pid: int) -> None:
        self.plan.pop(pid, None)
        self.where.pop(pid, None)
