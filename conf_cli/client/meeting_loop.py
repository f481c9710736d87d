"""Running a meeting on the client: typed lines in, server events out, until the meeting ends for us."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from conf_cli.client.link import Client
from conf_cli.client.prompt import CALL_USAGE, CommandError, LocalCommand, parse_line, unknown_command
from conf_cli.client.ui.meeting_ui import MeetingUI
from conf_cli.errors import ConfError, ProtocolError
from conf_cli.protocol.control import Message
from conf_cli.urls import invite_link

if TYPE_CHECKING:
    from conf_cli.client.desktop_control import DesktopControl
    from conf_cli.client.media.manager import MediaManager

EXIT_OK = 0
EXIT_KICKED = 3
EXIT_DISCONNECTED = 4
EXIT_DENIED = 5
EXIT_LOGIN_REQUIRED = 6
EXIT_UNKNOWN_USER = 7
EXIT_WRONG_PASSWORD = 8
EXIT_RATE_LIMITED = 9
LEAVE_TIMEOUT = 3.0

# Events for the media layer alone (a sealed key): not shown.
_UNSHOWN = frozenset({"e2ee_key", "control_input", "resume_token"})  # media's, injector's; a secret

# Events after which we are no longer in the meeting, and the exit code each gives.
_FINAL = {
    "left": EXIT_OK,
    "meeting_closed": EXIT_OK,
    "kicked": EXIT_KICKED,
    "disconnected": EXIT_DISCONNECTED,
    "denied": EXIT_DENIED,
}
# Refusals of a login, create or join that have an exit code of their own (others exit with 1).
REFUSAL_EXIT_CODES = {
    "login_required": EXIT_LOGIN_REQUIRED,
    "unknown_user": EXIT_UNKNOWN_USER,
    "wrong_password": EXIT_WRONG_PASSWORD,
    "rate_limited": EXIT_RATE_LIMITED,
}


class CallHandler(Protocol):
    """One-to-one calls beside a meeting (``/call NAME``): conf_cli.client.calls.runner.MeetingCalls."""

    def wants(self, event: Message) -> bool:
        """Whether ``event`` is about a call (then :meth:`handle` shows it, not the meeting)."""

    async def handle(self, event: Message) -> None: ...

    async def command(self, command: LocalCommand) -> None:
        """Run a call command (one of :data:`~conf_cli.client.prompt.CALL_USAGE`)."""

    async def close(self) -> None: ...


async def run_meeting(
    client: Client,
    ui: MeetingUI,
    first_events: list[Message],
    media: MediaManager | None = None,
    control: DesktopControl | None = None,
    calls: CallHandler | None = None,
    on_joined: Callable[[], None] | None = None,
    on_resumed: Callable[[], None] | None = None,
) -> int:
    """Show ``first_events``, then relay lines and events until we leave; return the exit code.

    ``media`` sees every event too (to start and end tracks) and runs ``/share`` and ``/unshare``;
    ``control`` sees them after it and runs ``/control`` and ``/accept``; when it returns an exit code
    (``conf control`` after control ends) we leave with that code.
    ``calls`` takes the call events and commands.
    ``on_joined`` is called once we are in: at once, or when admitted from a waiting room.

    When the link drops while we are in (the server was restarted, the network blinked), the client
    reconnects and resumes our seat (:meth:`Client.reconnect`; ``reconnecting`` and ``reconnected`` are
    shown); our shares are published again and ``on_resumed`` is called. Only if that fails for good is
    the meeting over for us (``disconnected``).
    """

    def handle(event: Message) -> None:
        nonlocal on_joined
        if event["type"] not in _UNSHOWN:
            ui.show(event)
        if media is not None:
            media.handle_event(event)
        if event["type"] == "joined" and on_joined is not None:
            on_joined()
            on_joined = None

    for event in first_events:
        handle(event)
    reader = asyncio.create_task(_relay_input(client, ui, media, control, calls))
    outcome: int | None = None  # remote control ended the call: leave, then exit with this
    try:
        while True:
            if outcome is None:
                event = await client.events.get()
            else:
                try:
                    async with asyncio.timeout(LEAVE_TIMEOUT):
                        event = await client.events.get()
                except TimeoutError:
                    return outcome
            if calls is not None and calls.wants(event):
                await calls.handle(event)
                continue
            if event["type"] == "disconnected" and client.can_resume and outcome is None:
                try:
                    joined = await client.reconnect(ui.show)
                except ConfError as exc:
                    event = {"type": "disconnected", "reason": str(exc)}
                else:
                    handle(joined)
                    if media is not None:
                        media.resumed()
                    if on_resumed is not None:
                        on_resumed()
                    continue
            if event["type"] == "joined":  # admitted from a waiting room: is it what we asked for?
                client.check_e2ee(event)
            if event["type"] == "participant_renamed" and event.get("name") == client.name:
                client.name = str(event.get("new_name"))  # the host renamed us: our own tracks say so now
            handle(event)
            code = _FINAL.get(event["type"])
            if code is not None:
                return code if outcome is None else outcome
            if control is not None and (ended := control.handle_event(event)) is not None and outcome is None:
                outcome = ended
                with contextlib.suppress(ConfError):
                    client.send({"type": "leave"})
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConfError):
            await reader
        if control is not None:
            await control.close()
        if calls is not None:
            await calls.close()
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


async def _local(
    command: LocalCommand,
    ui: MeetingUI,
    media: MediaManager | None,
    control: DesktopControl | None,
    client: Client,
) -> None:
    if command.name == "help":
        ui.show_help()
        return
    if command.name == "invite":
        _invite(client, ui, command.args[0] if command.args else None)
        return
    if command.name == "follow":
        ui.show({"type": "follow", "on": command.args[0] == "on"})
        return
    if command.name in ("control", "accept", "reject", "revoke"):
        if control is None:
            if command.name == "revoke":
                with contextlib.suppress(ConfError):
                    client.send({"type": "control_revoke"})
            else:
                message = "remote control is not available here"
                ui.show({"type": "error", "code": "bad_command", "message": message})
            return
        name = command.args[0] if command.args else None
        try:
            if command.name == "control":
                await control.ask(command.args[0])
            elif command.name == "accept":
                await control.accept(name, command.request)
            elif command.name == "reject":
                control.reject(name, command.request)
            else:
                control.revoke()
        except ConfError as exc:
            ui.show({"type": "error", "code": "control", "message": str(exc)})
        return
    if media is None:
        ui.show({"type": "error", "code": "bad_command", "message": "media is not available here"})
        return
    if command.name == "share":
        options: dict[str, Any] = dict(command.options)
        if len(command.args) > 1:
            options["path"] = command.args[1]
        await _share(media, ui, command.args[0], options)
    elif command.name == "volume":
        name, percent = command.args[0], int(command.args[1])
        media.set_volume(name, percent)
        ui.show({"type": "volume", "name": name, "volume": percent})
    elif command.name == "unshare":
        try:
            await media.unshare(command.args[0])
        except ConfError as exc:
            ui.show({"type": "error", "code": "bad_command", "message": str(exc)})


async def _relay_input(
    client: Client,
    ui: MeetingUI,
    media: MediaManager | None = None,
    control: DesktopControl | None = None,
    calls: CallHandler | None = None,
) -> None:
    """Carry out typed lines in order, but ``/revoke`` (and Ctrl-R) at once, as it is typed: taking
    one's desktop back must not wait behind a command still running (a screen or device opening)."""
    lines: asyncio.Queue[str | LocalCommand | None] = asyncio.Queue()

    async def read() -> None:
        try:
            async for line in ui.lines():
                bound = control.bind(line) if control is not None else line
                if control is not None and isinstance(bound, str) and _is_revoke(bound):
                    control.revoke()
                    continue
                lines.put_nowait(bound)
        finally:
            lines.put_nowait(None)

    reader = asyncio.create_task(read())
    try:
        while (line := await lines.get()) is not None:
            if not await _carry_out(line, client, ui, media, control, calls):
                return
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    # End of input: leave politely, and give the server a moment to confirm.
    with contextlib.suppress(ConfError):
        client.send({"type": "leave"})
    await asyncio.sleep(LEAVE_TIMEOUT)
    client.closed("left without confirmation")


def _is_revoke(line: str) -> bool:
    with contextlib.suppress(CommandError):
        command = parse_line(line)
        return isinstance(command, LocalCommand) and command.name == "revoke"
    return False


async def _carry_out(
    line: str | LocalCommand,
    client: Client,
    ui: MeetingUI,
    media: MediaManager | None,
    control: DesktopControl | None,
    calls: CallHandler | None,
) -> bool:
    """One typed line (or an answer already bound to its request); False once the link is gone."""
    if isinstance(line, LocalCommand):
        command: Message | LocalCommand | None = line
    else:
        try:
            command = parse_line(line)
        except CommandError as exc:
            ui.show({"type": "error", "code": "bad_command", "message": str(exc)})
            return True
    if command is None:
        return True
    if isinstance(command, LocalCommand):
        if command.name not in CALL_USAGE:
            await _local(command, ui, media, control, client)
        elif calls is not None:
            await calls.command(command)
        else:
            ui.show({"type": "error", "code": "bad_command", "message": str(unknown_command(command))})
        return True
    try:
        client.send(command)
    except ProtocolError as exc:
        ui.show({"type": "error", "code": "bad_command", "message": str(exc)})
    except ConfError as exc:
        if client.reconnecting:  # the link is coming back: this line is lost, the next ones are not
            message = f"{exc} (reconnecting; try again in a moment)"
            ui.show({"type": "error", "code": "not_connected", "message": message})
            return True
        ui.show({"type": "error", "code": "not_connected", "message": str(exc)})
        return False
    return True
