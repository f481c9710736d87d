"""Create or join a meeting and run it in the terminal or in machine mode."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conf_cli.client import Client
from conf_cli.errors import ConfError, RequestRefused
from conf_cli.meeting_loop import EXIT_DENIED, REFUSAL_EXIT_CODES, MeetingUI, run_meeting
from conf_cli.plugins import registry
from conf_cli.protocol.control import Message
from conf_cli.security import client_security
from conf_cli.transport import TransportOptions
from conf_cli.urls import ServerAddress, invite_link

if TYPE_CHECKING:
    from conf_cli.media.playback import SinkOpener


def make_ui(machine: bool, me: str) -> MeetingUI:
    if machine:
        from conf_cli.ui.machine import MachineUI

        return MachineUI()
    from conf_cli.ui.terminal import TerminalUI

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
    ``waiting_room`` gives a meeting this call creates a waiting room.
    ``encryption`` is ``on`` (the server's key pinned on first use, or checked against ``fingerprint``)
    or ``none``; ``pin=False`` checks ``fingerprint`` without writing known_hosts.
    """
    from conf_cli.media.manager import MediaManager, share_settings
    from conf_cli.media.publisher import open_source
    from conf_cli.remote_control import DesktopControl, check_viewer

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
            first = [await client.join(meeting, name, passcode, require_e2ee=e2ee)]
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
    media = MediaManager(client, ui.show, record_dir, outputs.opener(ui))
    remote = DesktopControl(client, media, ui.show, leave_when_done=control is not None)
    from conf_cli.calls.runner import MeetingCalls

    def start() -> None:  # once in: at once, or when admitted from the waiting room
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


def _denied(meeting: object) -> ConfError:
    error = ConfError(f"you were not admitted to meeting {meeting}")
    error.exit_code = EXIT_DENIED
    return error


@dataclass(frozen=True)
class Outputs:
    """Where received media goes: the speaker (a sink factory, or None) and the video view."""

    speaker: Any
    speaker_device: str | None
    view: str
    sinks: Mapping[str, Any]

    def opener(self, ui: MeetingUI) -> SinkOpener | None:
        """The sinks each received track gets, for a meeting (or call) shown by ``ui``."""
        open_sinks = None
        if self.speaker is not None:
            from conf_cli.media.playback import speaker_opener

            open_sinks = speaker_opener(self.speaker, _speaker_options(self.speaker_device), ui.show)
        return _with_viewer(open_sinks, self.view, self.sinks, ui)


async def prepare_outputs(
    machine: bool, *, play: bool | None = None, speaker: str | None = None, view: str | None = None
) -> Outputs:
    """Check the speaker and the view asked for (see :func:`attend`) before connecting; ConfError if not."""
    from conf_cli.media.playback import find_sink_factory
    from conf_cli.media.viewing import check_sink, resolve_view

    sinks = registry().sinks
    shown = resolve_view(view, machine)
    if shown != "none" and shown not in sinks:
        if view is not None:  # asked for: say what is missing; by default: go on without a preview
            find_sink_factory(sinks, shown)
        shown = "none"
    if shown == "window":
        await asyncio.to_thread(check_sink, sinks[shown])
    speaker_factory = await _speaker(sinks, machine if play is None else not play, play is True, speaker)
    return Outputs(speaker_factory, speaker, shown, sinks)


def _with_viewer(
    open_sinks: SinkOpener | None, view: str, sinks: Mapping[str, Any], ui: MeetingUI
) -> SinkOpener | None:
    """``open_sinks`` plus the sinks that show received video as ``view`` asks (its sink is registered)."""
    from conf_cli.media.viewing import combine, preview_opener, window_opener

    if view == "window":
        return combine(open_sinks, window_opener(sinks, ui.show))
    add_preview = getattr(ui, "add_preview", None)
    if view == "preview" and add_preview is not None:
        return combine(open_sinks, preview_opener(sinks, add_preview))
    return open_sinks


def _speaker_options(device: str | None) -> dict[str, Any]:
    return {"device": device} if device else {}


async def _speaker(sinks: Mapping[str, Any], skip: bool, required: bool, device: str | None) -> Any:
    """The speaker sink factory to play received audio with, or ``None`` (not wanted, or unusable).

    The speaker is opened and closed once, in a thread, to find out now whether it works.
    """
    if skip:
        return None
    from conf_cli.media.playback import check_speaker, find_sink_factory

    try:
        factory = find_sink_factory(sinks)
        await asyncio.to_thread(check_speaker, factory, _speaker_options(device))
    except ConfError:
        if required:
            raise
        return None
    except Exception as exc:  # whatever the device layer raised
        if required:
            raise ConfError(f"cannot play sound: {exc}") from None
        return None
    return factory
