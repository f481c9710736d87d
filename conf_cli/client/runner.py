"""Create or join a meeting and run it in the terminal or in machine mode."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conf_cli.client.calls.runner import MeetingCalls
from conf_cli.client.link import Client
from conf_cli.client.media.outputs import prepare_outputs
from conf_cli.client.meeting_loop import EXIT_DENIED, REFUSAL_EXIT_CODES, run_meeting
from conf_cli.client.ui.meeting_ui import MeetingUI
from conf_cli.errors import ConfError, RequestRefused
from conf_cli.plugin.registry import registry
from conf_cli.plugin.security import client_security
from conf_cli.plugin.transport import TransportOptions
from conf_cli.protocol.control import Message
from conf_cli.urls import ServerAddress, invite_link

if TYPE_CHECKING:
    pass


def make_ui(machine: bool, me: str) -> MeetingUI:
    if machine:
        from conf_cli.client.ui.machine import MachineUI

        return MachineUI()
    from conf_cli.client.ui.terminal import TerminalUI

    return TerminalUI(me)


async def attend(
    address: ServerAddress,
    name: str,
    passcode: str | None,
    meeting: str | None,
    machine: bool,
    *,
    record_dir: Path | None = None,
    share: tuple[str, Mapping[str, Any]] | None = None,
    play: bool | None = None,
    speaker: str | None = None,
    view: str | None = None,
    ui: MeetingUI | None = None,
    on_created: Callable[[Message], None] | None = None,
    e2ee: bool = False,
    control: str | None = None,
    user: str | None = None,
    password: str | None = None,
    waiting_room: bool = False,
    encryption: str = "on",
    fingerprint: str | None = None,
    pin: bool = True,
    token: str | None = None,
    max_bitrate: int | None = None,
    simulcast: bool = True,
) -> int:
    """Create (``meeting`` is None) or join a meeting and stay until it ends for us.

    ``ui`` replaces the face ``machine`` would pick; ``on_created`` is told of a meeting this call
    created (with its ID and passcode) before anything else happens in it.

    ``record_dir`` records every received track there (``.mkv``, through the ``recorder`` sink);
    ``share`` (a source name and its options) is opened before connecting, so that a source that cannot
    open fails at once, and published once in.
    ``play`` plays received audio on the speaker (device ``speaker``); ``None`` means on in the
    interactive terminal when a speaker can be opened, off in machine mode. With ``play=True`` a speaker
    that cannot be opened fails at once, in one line.
    ``view`` shows received video: ``preview`` in the terminal view, ``window`` in a desktop window,
    ``none``; ``None`` means preview in the interactive terminal, none in machine mode. A window that
    cannot be opened (no window system, no pygame) fails at once, in one line.
    ``e2ee`` creates an end-to-end encrypted meeting, or joins only one that is (a meeting the server says
    is plain is refused, also when it admits us from a waiting room); joining one needs nothing more.
    ``control`` names a participant to ask for control of their desktop once in (``conf control``): a
    viewer window that cannot open fails at once, in one line, and the end of control ends the call.
    ``user`` logs in to that account first (with ``password``); the account name is then our name.
    ``token`` joins with an access token instead of ``passcode`` (``conf token create``).
    ``waiting_room`` gives a meeting this call creates a waiting room.
    ``max_bitrate`` (bit/s) caps the simulcast layer the server sends of each video; the view asks for
    the layer that fits it too (the terminal preview the smallest). ``simulcast=False`` publishes video
    as one layer.
    ``encryption`` is ``on`` (the server's key pinned on first use, or checked against ``fingerprint``)
    or ``none``; ``pin=False`` checks ``fingerprint`` without writing known_hosts.
    """
    from conf_cli.client.desktop_control import DesktopControl, check_viewer
    from conf_cli.client.media.manager import MediaManager, share_settings
    from conf_cli.client.media.publisher import open_source

    reg = registry()
    security = client_security(reg.ciphers, str(address), encryption, fingerprint, pin=pin)
    if control is not None:
        await asyncio.to_thread(check_viewer, reg.sinks)
    if record_dir is not None and "recorder" not in reg.sinks:
        raise ConfError("--record needs the 'recorder' sink of the capture plugin; see `conf plugins`")
    outputs = await prepare_outputs(machine, play=play, speaker=speaker, view=view)
    if record_dir is not None:
        try:
            record_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfError(f"cannot record into {record_dir}: {exc.strerror or exc}") from None
    source = None
    settings = share_settings(share[1]) if share is not None else {}
    if share is not None:
        source = await asyncio.to_thread(open_source, reg.sources, share[0], share[1])
    client = Client(reg, address, TransportOptions(security=security))
    try:
        await client.connect()
        if user is not None:
            name = (await client.login(user, password or ""))["user"]
        first: list[Message]
        if meeting is None:
            created, joined = await client.create(name, passcode, e2ee=e2ee, waiting_room=waiting_room)
            invite = invite_link(client.welcome, created["meeting"], created.get("passcode"))
            if invite is not None:
                created = {**created, "invite": invite}
            first = [created, joined]
            if on_created is not None:
                on_created(created)
        else:
            first = [await client.join(meeting, name, passcode, require_e2ee=e2ee, token=token)]
    except RequestRefused as refusal:
        await client.close()
        if source is not None:
            source.close()
        error = ConfError(str(refusal))
        error.exit_code = REFUSAL_EXIT_CODES.get(refusal.code, 1)
        raise error from None
    except BaseException:
        await client.close()
        if source is not None:
            source.close()
        raise
    ui = ui or make_ui(machine, name)
    media = MediaManager(client, ui.show, record_dir, outputs.opener(ui), simulcast=simulcast)
    wanted = receive_request(max_bitrate, outputs.view if control is None else "none")  # control: full size
    remote = DesktopControl(client, media, ui.show, leave_when_done=control is not None)

    def start() -> None:  # once in: at once, or when admitted from the waiting room
        if wanted is not None:
            with contextlib.suppress(ConfError):  # the link went: run_meeting reports it
                client.send(wanted)
        if share is not None and source is not None:
            media.publish(share[0], source, **settings)
        if control is not None:
            with contextlib.suppress(ConfError):  # the link went: run_meeting reports it
                client.send({"type": "control_request", "name": control})

    calls = MeetingCalls(client, ui, outputs.opener(ui))
    code = await run_meeting(client, ui, first, media, remote, calls, on_joined=start)
    if source is not None and not media.publishers:
        source.close()  # never admitted: the source was never handed on
    if code == EXIT_DENIED:
        raise _denied(first[-1].get("meeting"))
    return code


PREVIEW_HEIGHT = 180
"""The terminal preview is a few dozen character cells: the smallest simulcast layer is plenty."""
WINDOW_HEIGHT = 720
"""A video window's height (it shows up to 720p): the layer that fits it."""


def receive_request(max_bitrate: int | None, view: str) -> Message | None:
    """The ``receive`` request telling the server which simulcast layers to send us: at most
    ``max_bitrate`` bit/s, and no more lines than ``view`` (``preview``, ``window``, ``none``) shows;
    None if there is nothing to ask."""
    request: Message = {"type": "receive"}
    if max_bitrate is not None:
        request["max_bitrate"] = max_bitrate
    if view == "preview":
        request["max_height"] = PREVIEW_HEIGHT
    elif view == "window":
        request["max_height"] = WINDOW_HEIGHT
    return request if len(request) > 1 else None


def _denied(meeting: object) -> ConfError:
    error = ConfError(f"you were not admitted to meeting {meeting}")
    error.exit_code = EXIT_DENIED
    return error
