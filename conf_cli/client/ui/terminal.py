"""The interactive meeting view: participants, chat, received media and a prompt, drawn with rich.

Received video is drawn small in a preview panel (one track at a time: the newest, or the next one on
Tab). Preview sinks are written by decoder threads; the view only reads their latest picture, from a
refresh task on the event loop that redraws at most :data:`PREVIEW_HZ` times a second when a new picture
has arrived.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import enum
import os
import sys
import termios
import tty
from collections.abc import AsyncIterator, Iterable

from rich.console import Console, Group
from rich.layout import Layout
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from conf_cli.client.prompt import HELP
from conf_cli.client.ui.activity import REACTION_SECONDS, Activity
from conf_cli.client.ui.panels import (
    PREVIEW_COLUMNS,
    PREVIEW_LINES,
    media_panel_height,
    media_table,
    preview_panel,
)
from conf_cli.client.ui.previews import Picture, Preview, PreviewDeck
from conf_cli.client.ui.view import MeetingView
from conf_cli.media.source import Sink
from conf_cli.protocol.control import Message
from conf_cli.text import printable

ROLE_STYLE = {"host": "bold yellow", "admin": "bold cyan", "member": ""}
PREVIEW_HZ = 5.0
MIN_PEOPLE_LINES = 6  # participants kept in sight beside a preview (if there are that many)
TERMINAL_KEYS: list[tuple[str, str]] = [
    ("Tab", "show the next received video in the preview"),
    ("Ctrl-R", "take your desktop back from whoever controls it (/revoke)"),
]


class Key(enum.Enum):
    """A key that acts at once instead of editing the line."""

    TAB = "tab"
    REVOKE = "revoke"


def newest_lines(console: Console, log: Iterable[tuple[str, str]], width: int, height: int) -> list[Text]:
    """The newest log entries that fit ``height`` lines of ``width`` cells once wrapped (the top one cut)."""
    entries = list(log)
    shown: list[Text] = []
    used = 0
    for style, text in reversed(entries[-height:]):
        for line in reversed(Text(text, style=style).wrap(console, width)):
            if used == height:
                return shown[::-1]
            shown.append(line)
            used += 1
    return shown[::-1]


class LineEditor:
    """A one-line input buffer fed with raw key bytes. Sans-I/O: returns the lines completed."""

    def __init__(self) -> None:
        self.buffer = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._escape = 0  # bytes of an escape sequence still to skip

    def feed(self, data: bytes) -> list[str | Key | None]:
        """Return completed lines and keys; ``None`` means the user asked to quit (Ctrl-C, or Ctrl-D when
        empty)."""
        done: list[str | Key | None] = []
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
            elif ch == "\t":
                done.append(Key.TAB)
            elif ch == "\x12":  # Ctrl-R
                done.append(Key.REVOKE)
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
        self.previews = PreviewDeck()
        self._live = Live(self._render(), console=self.console, screen=True, auto_refresh=False)
        self._live.start()
        asyncio.get_running_loop().add_reader(self._fd, self._on_keys)
        self._refresher = asyncio.create_task(self._refresh_previews(), name="preview-refresh")

    def _on_keys(self) -> None:
        data = os.read(self._fd, 1024)
        if not data:
            self._lines.put_nowait(None)
            return
        for line in self.editor.feed(data):
            if line is Key.TAB:
                self.previews.cycle()
            elif line is Key.REVOKE:
                self._lines.put_nowait("/revoke")
            else:
                self._lines.put_nowait(line if isinstance(line, str) else "/leave")
        self._refresh()

    def show(self, event: Message) -> None:
        self.view.apply(event)
        kind = event.get("type")
        if kind == "track_ended" and isinstance(event.get("ssrc"), int):
            self.previews.remove(event["ssrc"])
        elif kind == "reaction":  # on show beside the name for a few seconds
            name, emoji = printable(str(event.get("name"))), printable(str(event.get("emoji")))
            asyncio.get_running_loop().call_later(REACTION_SECONDS, self._reaction_over, name, emoji)
        elif kind == "spotlight":
            self.previews.pin(self.view.activity.spotlight)
        elif kind == "follow":
            self.previews.follow = bool(event.get("on"))
            if self.previews.follow and self.view.speaker:
                self.previews.speaker(self.view.speaker)
        elif kind == "active_speaker":
            self.previews.speaker(printable(str(event.get("name", ""))))
        self._refresh()

    def _reaction_over(self, name: str, emoji: str) -> None:
        self.view.activity.forget_reaction(name, emoji)
        self._refresh()

    def show_help(self) -> None:
        for usage, description in [*HELP, *TERMINAL_KEYS]:
            self.view.log.append(("cyan", f"{usage:<22} {description}"))
        self._refresh()

    def add_preview(self, track: Message, sink: Sink) -> None:
        """Draw a received video track's preview sink (which has ``frames`` and ``renderable()``)."""
        if not isinstance(sink, Picture) or not isinstance(track.get("ssrc"), int):
            return
        self.previews.add(
            Preview(track["ssrc"], printable(track.get("name", "")), printable(track.get("kind", "")), sink)
        )
        self._refresh()

    async def _refresh_previews(self) -> None:
        while True:
            await asyncio.sleep(1 / PREVIEW_HZ)
            if self.previews.changed():
                self._refresh()

    async def lines(self) -> AsyncIterator[str]:
        while (line := await self._lines.get()) is not None:
            yield line

    def close(self) -> None:
        self._refresher.cancel()
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self._fd)
        self._live.stop()
        termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
        if self.view.ended:
            if self.view.control_outcome:  # Text: names in it are never read as markup
                self.console.print(Text(f"conf: {printable(self.view.control_outcome)}"))
            self.console.print(Text(f"conf: {printable(self.view.ended)}"))

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
            (f"  E2EE code {view.security_code or '…'}" if view.e2ee else "", "bold cyan"),
            (f"  you: {view.me} ({view.my_role})", ROLE_STYLE.get(view.my_role, "")),
            ("  LOCKED" if view.locked else "", "bold red"),
            (f"  ● REC by {', '.join(view.recorders)}" if view.recorders else "", "bold red"),
            ("  WAITING ROOM" if view.waiting_room else "", "yellow"),
            ("  you are waiting to be admitted" if view.held else "", "bold yellow"),
            (f"  forbidden: {', '.join(sorted(view.forbidden))}" if view.forbidden else "", "red"),
            *activity_header(view.activity, view.me),
        )
        people = Table.grid(padding=(0, 1))
        people.add_column()
        people.add_column()
        for peer in view.peers.values():
            shares = " ".join(sorted(peer.sharing))
            speaking = peer.name == view.speaker
            people.add_row(
                Text(("▶ " if speaking else "") + peer.name, style=ROLE_STYLE.get(peer.role, "")),
                Text.assemble(
                    (f"{peer.role} {shares}".strip(), "dim"), *activity_marks(view.activity, peer.name)
                ),
            )
        for waiting in view.waiting:
            people.add_row(Text(waiting, style="yellow"), Text("waiting", style="dim yellow"))
        tracks = list(view.tracks.values())
        media_height = media_panel_height(tracks)
        body_lines = max(1, height - 6 - media_height) - 2  # inside the body's panels
        picture = preview_panel(self.previews)
        self.previews.drawn()
        people_panel = Panel(people, title=f"participants ({len(view.peers)})")
        if picture is None:
            left_width = 34
            left = Layout(people_panel, name="people", size=left_width)
        else:
            left_width = PREVIEW_COLUMNS + 2
            left = Layout(name="people", size=left_width)
            people_lines = min(len(view.peers), MIN_PEOPLE_LINES)  # the picture shrinks to leave them room
            picture_lines = max(1, min(PREVIEW_LINES, body_lines - people_lines - 2))
            left.split_column(
                Layout(people_panel, name="participants"),
                Layout(picture, name="preview", size=picture_lines + 2),
            )
        chat_width = max(10, self.console.size.width - left_width - 4)
        chat = Group(*newest_lines(self.console, view.log, chat_width, body_lines))
        prompt = Text.assemble(("> ", "bold"), self.editor.buffer, ("█", "blink"))
        layout = Layout()
        parts = [Layout(Panel(header), name="header", size=3), Layout(name="body")]
        if media_height:
            parts.append(Layout(Panel(media_table(tracks), title="media"), name="media", size=media_height))
        parts.append(Layout(Panel(prompt, subtitle="/help for commands"), name="prompt", size=3))
        layout.split_column(*parts)
        layout["body"].split_row(left, Layout(Panel(chat, title="chat"), name="chat"))
        return layout


def activity_header(activity: Activity, me: str) -> list[tuple[str, str]]:
    """What the header says of breakout rooms and the open poll."""
    parts: list[tuple[str, str]] = []
    room = activity.room_of(me)
    if activity.breakout_open:
        parts.append(
            (f"  breakout room {room}" if room else "  main room (breakout rooms open)", "bold cyan")
        )
    poll = activity.poll
    if poll is not None:
        voted = f", you voted {activity.my_vote}" if activity.my_vote else ": /vote N"
        parts.append((f"  POLL {poll.get('poll')} open{voted}", "bold magenta"))
    return parts


def activity_marks(activity: Activity, name: str) -> list[tuple[str, str]]:
    """What the participants list shows beside a name: raised hand (place in line), room, spotlight,
    the latest reaction."""
    marks: list[tuple[str, str]] = []
    if name in activity.hands:
        marks.append((f" ✋{activity.hands.index(name) + 1}", "bold yellow"))
    if activity.room_of(name):
        marks.append((f" room {activity.room_of(name)}", "cyan"))
    if activity.spotlight == name:
        marks.append((" ★", "bold magenta"))
    if name in activity.reactions:
        marks.append((f" {activity.reactions[name]}", ""))
    return marks
