"""The interactive meeting view: participants, chat and a prompt, drawn with rich."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import sys
import termios
import tty
from collections.abc import AsyncIterator

from rich.console import Console, Group
from rich.layout import Layout
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from conf_cli.commands import HELP
from conf_cli.protocol.control import Message
from conf_cli.ui.view import MeetingView

ROLE_STYLE = {"host": "bold yellow", "admin": "bold cyan", "member": ""}


class LineEditor:
    """A one-line input buffer fed with raw key bytes. Sans-I/O: returns the lines completed."""

    def __init__(self) -> None:
        self.buffer = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._escape = 0  # bytes of an escape sequence still to skip

    def feed(self, data: bytes) -> list[str | None]:
        """Return completed lines; ``None`` means the user asked to quit (Ctrl-C, or Ctrl-D when empty)."""
        done: list[str | None] = []
        for ch in self._decoder.decode(data):
            if self._escape:
                self._escape = 0 if ch.isalpha() or ch == "~" else self._escape
                continue
            if ch == "\x1b":
                self._escape = 1
            elif ch in "\r\n":
                done.append(self.buffer)
                self.buffer = ""
            elif ch in "\x7f\x08":
                self.buffer = self.buffer[:-1]
            elif ch == "\x15":
                self.buffer = ""
            elif ch == "\x03" or (ch == "\x04" and not self.buffer):
                done.append(None)
            elif ch.isprintable():
                self.buffer += ch
        return done


class TerminalUI:
    """Draws a :class:`MeetingView` with rich and reads keys in cbreak mode."""

    def __init__(self, me: str) -> None:
        self.view = MeetingView(me)
        self.editor = LineEditor()
        self.console = Console()
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._fd = sys.stdin.fileno()
        self._saved = termios.tcgetattr(self._fd)
        tty.setcbreak(self._fd)
        mode = termios.tcgetattr(self._fd)
        mode[3] &= ~termios.ISIG  # Ctrl-C reaches the editor, which leaves the meeting politely
        termios.tcsetattr(self._fd, termios.TCSANOW, mode)
        self._live = Live(self._render(), console=self.console, screen=True, auto_refresh=False)
        self._live.start()
        asyncio.get_running_loop().add_reader(self._fd, self._on_keys)

    def _on_keys(self) -> None:
        data = os.read(self._fd, 1024)
        if not data:
            self._lines.put_nowait(None)
            return
        for line in self.editor.feed(data):
            self._lines.put_nowait(line if line is not None else "/leave")
        self._refresh()

    def show(self, event: Message) -> None:
        self.view.apply(event)
        self._refresh()

    def show_help(self) -> None:
        for usage, description in HELP:
            self.view.log.append(("cyan", f"{usage:<22} {description}"))
        self._refresh()

    async def lines(self) -> AsyncIterator[str]:
        while (line := await self._lines.get()) is not None:
            yield line

    def close(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self._fd)
        self._live.stop()
        termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
        if self.view.ended:
            self.console.print(f"conf: {self.view.ended}")

    # -- drawing ------------------------------------------------------------------------------------

    def _refresh(self) -> None:
        self._live.update(self._render(), refresh=True)

    def _render(self) -> Layout:
        view = self.view
        height = self.console.size.height
        header = Text.assemble(
            ("conf ", "bold"),
            (f"meeting {view.meeting or '…'}", "bold green"),
            (f"  passcode {view.passcode}" if view.passcode else "", "green"),
            (f"  you: {view.me} ({view.my_role})", ROLE_STYLE.get(view.my_role, "")),
            ("  LOCKED" if view.locked else "", "bold red"),
            (f"  forbidden: {', '.join(sorted(view.forbidden))}" if view.forbidden else "", "red"),
        )
        people = Table.grid(padding=(0, 1))
        people.add_column()
        people.add_column()
        for peer in view.peers.values():
            shares = " ".join(sorted(peer.sharing))
            people.add_row(
                Text(peer.name, style=ROLE_STYLE.get(peer.role, "")),
                Text(f"{peer.role} {shares}".strip(), style="dim"),
            )
        visible = max(1, height - 8)
        chat = Group(*(Text(text, style=style) for style, text in list(view.log)[-visible:]))
        prompt = Text.assemble(("> ", "bold"), self.editor.buffer, ("█", "blink"))
        layout = Layout()
        layout.split_column(
            Layout(Panel(header), name="header", size=3),
            Layout(name="body"),
            Layout(Panel(prompt, subtitle="/help for commands"), name="prompt", size=3),
        )
        layout["body"].split_row(
            Layout(Panel(people, title=f"participants ({len(view.peers)})"), name="people", size=34),
            Layout(Panel(chat, title="chat"), name="chat"),
        )
        return layout
