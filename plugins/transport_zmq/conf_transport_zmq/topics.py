"""Who may use each PUB topic, sans-I/O: one publisher per SSRC across the whole server.

Meetings pick their SSRCs independently, so two meetings can hold tracks with the same SSRC, by chance or
because a participant of one meeting copied another meeting's SSRC into its own ``publish``. A PUB topic
is only an SSRC, so publishing both would deliver each meeting's packets to the other's subscribers. The
listener therefore publishes a topic for one publisher only (the first link that sends it); a packet with
that SSRC from anyone else, or from another transport (``sender`` None), makes the topic *contested*, and
packets of a contested topic go point to point to exactly the recipients the meeting core chose. An
entry idle for ``idle`` seconds is forgotten; a link's entries go when it closes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FOREIGN = 0
"""Owner of a topic first seen from another transport's link (never published)."""
CONTESTED = -1
"""Owner of a topic seen from two senders (never published until idle)."""


@dataclass(slots=True)
class _Entry:
    owner: int
    last: float


@dataclass
class TopicOwners:
    limit: int = 65_536
    idle: float = 30.0
    contested: int = 0
    _entries: dict[bytes, _Entry] = field(default_factory=dict)
    _owned: dict[int, set[bytes]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._entries)

    def may_publish(self, name: bytes, sender: int | None, now: float) -> bool:
        """True if a packet of topic ``name`` from link ``sender`` (None: another transport) may be
        published; False means send it point to point."""
        owner = FOREIGN if sender is None else sender
        entry = self._entries.get(name)
        if entry is None:
            if len(self._entries) >= self.limit:
                return False
            self._entries[name] = _Entry(owner, now)
            if owner > 0:
                self._owned.setdefault(owner, set()).add(name)
            return owner > 0
        entry.last = now
        if entry.owner == owner:
            return owner > 0
        if entry.owner != CONTESTED:
            self._disown(entry.owner, name)
            entry.owner = CONTESTED
            self.contested += 1
        return False

    def release(self, sender: int) -> None:
        """Link ``sender`` closed: its topics are free again."""
        for name in self._owned.pop(sender, set()):
            entry = self._entries.get(name)
            if entry is not None and entry.owner == sender:
                del self._entries[name]

    def expire(self, now: float) -> None:
        """Forget topics nobody has sent for ``idle`` seconds."""
        for name, entry in list(self._entries.items()):
            if now - entry.last > self.idle:
                del self._entries[name]
                self._disown(entry.owner, name)

    def _disown(self, owner: int, name: bytes) -> None:
        names = self._owned.get(owner)
        if names is not None:
            names.discard(name)
            if not names:
                del self._owned[owner]
