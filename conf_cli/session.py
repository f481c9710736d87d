"""Running a meeting on the client: typed lines in, server events out, until the meeting ends for us."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from conf_cli.client import Client
from conf_cli.commands import CommandError, LocalCommand, parse_line
from conf_cli.errors import ConfError, ProtocolError
from conf_cli.protocol.control import Message
from conf_cli.urls import invite_link

if TYPE_CHECKING:
    from conf_cli.media.manager import MediaManager

EXIT_OK = 0
EXIT_KICKED = 3
EXIT_DISCONNECTED = 4
LEAVE_TIMEOUT = 3.0

# Events after which we are no longer in the meeting, and the exit code each gives.
_FINAL = {
    "left": EXIT_OK,
    "meeting_closed": EXIT_OK,
    "kicked": EXIT_KICKED,
    "disconnected": EXIT_DISCONNECTED,
}


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


async def run_meeting(
    client: Client,
    ui: MeetingUI,
    first_events: list[Message],
    media: MediaManager | None = None,
) -> int:
    """Show ``first_events``, then relay lines and events until we leave; return the exit code.

    ``media`` sees every event too (to start and end tracks) and runs ``/share`` and ``/unshare``.
    """
    for event in first_events:
        ui.show(event)
        if media is not None:
            media.handle_event(event)
    reader = asyncio.create_task(_relay_input(client, ui, media))
    try:
        while True:
            event = await client.events.get()
            ui.show(event)
            if media is not None:
                media.handle_event(event)
            code = _FINAL.get(event["type"])
            if code is not None:
                return code
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConfError):
            await reader
        if media is not None:
            await media.close()
        await client.close()
        ui.close()


async def _share(media: MediaManager, ui: MeetingUI, name: str, options: Mapping[str, Any]) -> None:
    try:
        await media.share(name, options)
    except ConfError as exc:
        ui.show({"type": "error", "code": "media", "message": str(exc)})


def _invite(client: Client, ui: MeetingUI, name: str | None) -> None:
    link = (
        invite_link(client.welcome, client.meeting or "", client.passcode, name) if client.meeting else None
    )
    if link is None:
        text = (
            "this server serves no web page (conf server --web-port PORT)" if client.meeting else "join first"
        )
        ui.show({"type": "error", "code": "bad_command", "message": text})
        return
    ui.show({"type": "invite", "meeting": client.meeting, "url": link})


async def _local(command: LocalCommand, ui: MeetingUI, media: MediaManager | None, client: Client) -> None:
    if command.name == "help":
        ui.show_help()
        return
    if command.name == "invite":
        _invite(client, ui, command.args[0] if command.args else None)
        return
    if media is None:
        ui.show({"type": "error", "code": "bad_command", "message": "media is not available here"})
        return
    if command.name == "share":
        options: dict[str, Any] = dict(command.options)
        if len(command.args) > 1:
            options["path"] = command.args[1]
        await _share(media, ui, command.args[0], options)
    elif command.name == "unshare":
        try:
            await media.unshare(command.args[0])
        except ConfError as exc:
            ui.show({"type": "error", "code": "bad_command", "message": str(exc)})


async def _relay_input(client: Client, ui: MeetingUI, media: MediaManager | None = None) -> None:
    async for line in ui.lines():
        try:
            command = parse_line(line)
        except CommandError as exc:
            ui.show({"type": "error", "code": "bad_command", "message": str(exc)})
            continue
        if command is None:
            continue
        if isinstance(command, LocalCommand):
            await _local(command, ui, media, client)
            continue
        try:
            client.send(command)
        except ProtocolError as exc:
            ui.show({"type": "error", "code": "bad_command", "message": str(exc)})
        except ConfError as exc:
            ui.show({"type": "error", "code": "not_connected", "message": str(exc)})
            return
    # End of input: leave politely, and give the server a moment to confirm.
    with contextlib.suppress(ConfError):
        client.send({"type": "leave"})
    await asyncio.sleep(LEAVE_TIMEOUT)
    client.closed("left without confirmation")
