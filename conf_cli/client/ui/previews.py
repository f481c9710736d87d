"""Which received video the terminal view shows: one preview at a time, the newest unless Tab picks another.

:class:`PreviewDeck` is sans-I/O: the terminal view adds a preview sink when a video track starts (the
sink is written by the track's decoder thread), removes it when the track ends, and asks :meth:`changed`
on its refresh timer whether a new picture arrived. Reading a picture goes through the sink's own lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from rich.console import RenderableType


@runtime_checkable
class Picture(Protocol):
    """What the terminal needs of a preview sink: a frame counter and the latest picture to draw."""

    frames: int

    def renderable(self) -> RenderableType | None:
        """The latest picture (safe to call while another thread writes frames), or ``None``."""


@dataclass
class Preview:
    ssrc: int
    name: str
    kind: str
    picture: Picture

    @property
    def label(self) -> str:
        return f"{self.name}'s {self.kind}"


class PreviewDeck:
    """Previews of the received video tracks, in the order they started, and the one on show."""

    def __init__(self) -> None:
        self.previews: dict[int, Preview] = {}
        self.pinned: str | None = None
        """Whose video the host pinned for everyone (the spotlight): it stays on show while there is one."""
        self._chosen: int | None = None
        self.follow = False
        """Show the active speaker's video whenever the speaker changes (``/follow``)."""
        self._drawn: tuple[int | None, int] = (None, -1)  # (ssrc, frames) last drawn

    def add(self, preview: Preview) -> None:
        """A new track: it goes on show (the newest video is the one people want to see), unless the
        pinned person's is on show and this one is someone else's."""
        self.previews[preview.ssrc] = preview
        current = self.current
        if (
            self.pinned is None
            or preview.name == self.pinned
            or current is None
            or current.name != self.pinned
        ):
            self._chosen = preview.ssrc

    def pin(self, name: str | None) -> None:
        """Show ``name``'s newest video now and keep it on show (None: unpin; what shows stays)."""
        self.pinned = name
        pinned = [ssrc for ssrc, preview in self.previews.items() if preview.name == name]
        if pinned:
            self._chosen = pinned[-1]

    def remove(self, ssrc: int) -> None:
        """A track ended: the newest remaining one goes on show if it was this one."""
        self.previews.pop(ssrc, None)
        if self._chosen == ssrc:
            self._chosen = next(reversed(self.previews), None)

    @property
    def current(self) -> Preview | None:
        return None if self._chosen is None else self.previews.get(self._chosen)

    def speaker(self, name: str) -> Preview | None:
        """``name`` is the active speaker: when following, their newest video goes on show."""
        if not self.follow:
            return None
        theirs = [ssrc for ssrc, preview in self.previews.items() if preview.name == name]
        if theirs:
            self._chosen = theirs[-1]
        return self.current if theirs else None

    def cycle(self) -> Preview | None:
        """Show the next track (in order of arrival, wrapping round); the one now on show."""
        order = list(self.previews)
        if not order:
            return None
        position = order.index(self._chosen) if self._chosen in order else -1
        self._chosen = order[(position + 1) % len(order)]
        return self.current

    def changed(self) -> bool:
        """Whether what should be drawn differs from what was last drawn (a new picture, another track)."""
        current = self.current
        state = (None, -1) if current is None else (current.ssrc, current.picture.frames)
        return state != self._drawn

    def drawn(self) -> None:
        """Note that the current state has been drawn."""
        current = self.current
        self._drawn = (None, -1) if current is None else (current.ssrc, current.picture.frames)
