"""What the terminal keeps of what people do in the meeting: raised hands, reactions, the open poll,
breakout rooms and the spotlight, from the server's events. Sans-I/O.

:meth:`Activity.apply` takes one event (already made printable by the view) and returns the lines a
person would want to read about it, as ``(style, text)``; the view logs them and draws the state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, Any]
Lines = list[tuple[str, str]]

REACTION_SECONDS = 5.0
"""How long the terminal shows a reaction beside a name."""


@dataclass
class Activity:
    hands: list[str] = field(default_factory=list)
    """Raised hands, first raised first."""
    reactions: dict[str, str] = field(default_factory=dict)
    """The latest reaction of each person, while it is on show (the terminal takes it away)."""
    poll: Message | None = None
    """The open poll's ``poll_started``."""
    my_vote: int | None = None
    rooms: dict[str, int] = field(default_factory=dict)
    """Who is in which breakout room (absent: the main room)."""
    breakout_open: bool = False
    spotlight: str | None = None
    """Whose video the host pinned for everyone."""

    def apply(self, event: Message, me: str) -> Lines:
        handler: Callable[[Message, str], Lines] | None = getattr(self, f"_on_{event.get('type')}", None)
        return handler(event, me) if handler is not None else []

    def room_of(self, name: str) -> int:
        return self.rooms.get(name, 0)

    def forget_reaction(self, name: str, emoji: str) -> None:
        """Take ``name``'s reaction off show (unless a newer one replaced it)."""
        if self.reactions.get(name) == emoji:
            del self.reactions[name]

    # -- hands and reactions --------------------------------------------------------------------------

    def _on_hand_raised(self, e: Message, me: str) -> Lines:
        name = str(e["name"])
        if name in self.hands:
            self.hands.remove(name)
        position = e.get("position")
        at = position - 1 if isinstance(position, int) and position > 0 else len(self.hands)
        self.hands.insert(min(at, len(self.hands)), name)
        who = "you raise" if name == me else f"{name} raises"
        return [("bold yellow", f"✋ {who} a hand ({_ordinal(self.hands.index(name) + 1)} in line)")]

    def _on_hand_lowered(self, e: Message, me: str) -> Lines:
        if e["name"] in self.hands:
            self.hands.remove(e["name"])
        by = f" ({e['by']} lowered it)" if e.get("by") else ""
        whose = "your" if e["name"] == me else f"{e['name']}'s"
        return [("dim", f"{whose} hand is down{by}")]

    def _on_reaction(self, e: Message, me: str) -> Lines:
        self.reactions[str(e["name"])] = str(e["emoji"])
        return [("bold", f"{e['name']} {e['emoji']}")]

    # -- polls ----------------------------------------------------------------------------------------

    def _on_poll_started(self, e: Message, me: str) -> Lines:
        self.poll, self.my_vote = e, None
        kind = "named" if e.get("named") else "anonymous"
        lines = [("bold magenta", f"poll {e['poll']} ({kind}) from {e['by']}: {e['question']}")]
        lines += [("magenta", f"  {n}. {option}") for n, option in enumerate(e.get("options") or (), 1)]
        return [*lines, ("dim", "  vote with /vote N")]

    def _on_vote_recorded(self, e: Message, me: str) -> Lines:
        self.my_vote = e.get("choice")
        return [("dim", f"your vote for option {e.get('choice')} counts (vote again to change it)")]

    def _on_poll_closed(self, e: Message, me: str) -> Lines:
        self.poll, self.my_vote = None, None
        lines = [
            ("bold magenta", f"poll {e['poll']} closed by {e['by']}: {e['question']} ({e['voters']} voted)")
        ]
        counts = [c for c in e.get("counts") or () if isinstance(c, int)]
        total = max(1, sum(counts))
        voters: dict[int, list[str]] = {}
        for vote in e.get("votes") or ():
            voters.setdefault(vote.get("choice"), []).append(str(vote.get("name")))
        for number, option in enumerate(e.get("options") or (), 1):
            count = counts[number - 1] if number <= len(counts) else 0
            bar = "█" * round(20 * count / total)
            names = f" ({', '.join(voters[number])})" if number in voters else ""
            lines.append(("magenta", f"  {number}. {option}: {count} {bar}{names}"))
        return lines

    # -- breakout rooms -------------------------------------------------------------------------------

    def _on_breakout_rooms(self, e: Message, me: str) -> Lines:
        plan = ", ".join(f"{a['name']} → {a['room']}" for a in e.get("assignments") or ())
        state = "open" if e.get("open") else "not open yet"
        return [("cyan", f"breakout: {e.get('rooms')} rooms, {state}; {plan or 'nobody assigned'}")]

    def _on_breakout_opened(self, e: Message, me: str) -> Lines:
        self.breakout_open = True
        ends = e.get("ends_in")
        until = f" for {max(1, round(ends / 60))} min" if isinstance(ends, int | float) and ends else ""
        who = f"{e['by']} opened" if e.get("by") else "open:"
        return [("bold cyan", f"{who} {e.get('rooms')} breakout rooms{until}")]

    def _on_breakout_moved(self, e: Message, me: str) -> Lines:
        name, room = str(e["name"]), e.get("room", 0)
        if isinstance(room, int) and room:
            self.rooms[name] = room
        else:
            self.rooms.pop(name, None)
        where = f"breakout room {room}" if room else "the main room"
        if name == me:
            return [("bold cyan", f"you are now in {where}: media and chat stay in it")]
        return [("dim", f"{name} is in {where}")]

    def _on_breakout_broadcast(self, e: Message, me: str) -> Lines:
        return [("bold cyan", f"[to every room] {e['from']}: {e['text']}")]

    def _on_breakout_closed(self, e: Message, me: str) -> Lines:
        self.breakout_open = False
        self.rooms.clear()
        why = f"{e['by']} closed" if e.get("by") else "time is up for"
        return [("bold cyan", f"{why} the breakout rooms: everyone is back in the main room")]

    # -- spotlight, asks to unmute, people going and renamed -----------------------------------------

    def _on_spotlight(self, e: Message, me: str) -> Lines:
        self.spotlight = e.get("name")
        if self.spotlight:
            return [("magenta", f"{e.get('by')} pinned {self.spotlight}'s video for everyone")]
        return [("dim", "the spotlight is off")]

    def _on_unmute_requested(self, e: Message, me: str) -> Lines:
        if e["name"] == me:
            return [
                ("bold yellow", f"{e['by']} asks you to turn your microphone on: /share audio (only you can)")
            ]
        return [("dim", f"{e['by']} asked {e['name']} to turn their microphone on")]

    def _on_participant_left(self, e: Message, me: str) -> Lines:
        name = e.get("name")
        if name in self.hands:
            self.hands.remove(name)
        self.rooms.pop(str(name), None)
        self.reactions.pop(str(name), None)
        return []

    def _on_participant_renamed(self, e: Message, me: str) -> Lines:
        old, new = str(e["name"]), str(e["new_name"])
        self.hands = [new if name == old else name for name in self.hands]
        if old in self.rooms:
            self.rooms[new] = self.rooms.pop(old)
        if old in self.reactions:
            self.reactions[new] = self.reactions.pop(old)
        if self.spotlight == old:
            self.spotlight = new
        return []


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"
