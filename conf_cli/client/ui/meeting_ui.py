"""What a meeting's face offers the meeting loop: the terminal one or machine mode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from conf_cli.protocol.control import Message


class MeetingUI(Protocol):
    """A face for a meeting: the terminal one (rich) or machine mode (JSON lines)."""

    def show(self, event: Message) -> None:
        """Present a server event (or a client-side ``error``)."""

    def show_help(self) -> None:
        """Present the list of commands."""

    def lines(self) -> AsyncIterator[str]:
        """Lines typed (or piped) by the user; ends at end of input."""

    def close(self) -> None:
        """Restore the terminal."""
