"""Create or join a meeting and run it in the terminal or in machine mode."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conf_cli.client.calls.runner import MeetingCalls
from conf_cli.client.link import Client
from conf_cli.client.media.outputs import prepare_outputs
from conf_cli.client.meeting_loop import EXIT_DENIED, REFUSAL_EXIT_CODES, run_meeting
from conf_cli.client.state import with_fields
from conf_cli.client.ui.meeting_ui import MeetingUI
from conf_cli.errors import ConfError, RequestRefused
from conf_cli.plugin.registry import registry
from conf_cli.plugin.security import client_security
from conf_cli.plugin.transport import TransportOptions
from conf_cli.protocol.control import Message
from conf_cli.urls import ServerAddress, invite_link

if TYPE_CHECKING:
    from conf_cli.client.media.composite import Composite
    from conf_cli.client.media.recording import CompositeRecorder


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
    composite: tuple[Composite, CompositeRecorder] | None = None,
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
    ``composite`` (``conf record``) joins as a recorder: every received track goes into the composite,
    which the recorder encodes from the moment we are in until we leave (SIGTERM leaves too); a
    ``recording_written`` event then says what was written.
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
                created = with_fields(created, invite=invite)
            first = [created, joined]
            if on_created is not None:
                on_created(created)
        else:
            first = [
                await client.join(
                    meeting, name, passcode, require_e2ee=e2ee, token=token, recorder=composite is not None
                )
            ]
        if machine:  # the person sees nothing of a cluster's redirect; machine mode one line each
            first = [*client.redirects, *first]
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
    resizes = None
    if outputs.view == "window" and control is None:  # a window asks for the layer that fits its size
        resizes = ResizeRequests(client.send, max_bitrate, asyncio.get_running_loop())
    opener = outputs.opener(ui, None if resizes is None else resizes.resized)
    if composite is not None:
        from conf_cli.client.media.viewing import combine

        opener = combine(opener, composite[0].sinks_for)
        with contextlib.suppress(NotImplementedError, RuntimeError):  # stop cleanly: the trailer is written
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, _leave_on_signal, client)
    media = MediaManager(
        client,
        ui.show,
        record_dir,
        opener,
        on_close=composite[0].hold if composite is not None else None,
        simulcast=simulcast,
    )
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
        if composite is not None:
            composite[1].start()

    def resumed() -> None:  # back in our seat after the link dropped: the server forgot what we asked
        if wanted is not None:
            with contextlib.suppress(ConfError):
                client.send(wanted)

    calls = MeetingCalls(client, ui, outputs.opener(ui))
    try:
        code = await run_meeting(client, ui, first, media, remote, calls, on_joined=start, on_resumed=resumed)
    finally:
        if composite is not None:
            failed = await asyncio.to_thread(composite[1].stop)
            written = {"type": "recording_written", **composite[1].summary(), "failed": failed}
            if machine:
                ui.show(written)
            else:  # the terminal view has closed: one line
                problems = "".join(f"; {failure}" for failure in failed)
                print(f"conf: recorded {written['seconds']} s ({written['frames']} frames){problems}")
    if source is not None and not media.publishers:
        source.close()  # never admitted: the source was never handed on
    if code == EXIT_DENIED:
        raise _denied(first[-1].get("meeting"))
    return code


def _leave_on_signal(client: Client) -> None:
    with contextlib.suppress(ConfError):
        client.send({"type": "leave"})


PREVIEW_HEIGHT = 180
"""The terminal preview is a few dozen character cells: the smallest simulcast layer is plenty."""
WINDOW_HEIGHT = 720
"""A video window's height (it shows up to 720p): the layer that fits it."""


RESIZE_SETTLE = 0.3
"""Seconds a window's size must hold before the layer that fits it is asked for (a drag resizes often)."""
MIN_VIEW_HEIGHT = 16
"""The fewest lines a ``receive`` may name (protocol.md)."""


def receive_request(max_bitrate: int | None, view: str, height: int | None = None) -> Message | None:
    """The ``receive`` request telling the server which simulcast layers to send us: at most
    ``max_bitrate`` bit/s, and no more lines than ``view`` (``preview``, ``window``, ``none``) shows (a
    window: ``height`` lines once its size is known, else :data:`WINDOW_HEIGHT`); None if there is nothing
    to ask."""
    request: Message = {"type": "receive"}
    if max_bitrate is not None:
        request["max_bitrate"] = max_bitrate
    if view == "preview":
        request["max_height"] = PREVIEW_HEIGHT
    elif view == "window":
        request["max_height"] = WINDOW_HEIGHT if height is None else max(MIN_VIEW_HEIGHT, height)
    return request if len(request) > 1 else None


class ResizeRequests:
    """A video window's sizes, as ``receive`` requests for the layer that fits: one once a size has held
    for :data:`RESIZE_SETTLE` seconds, and only when it asks for something new."""

    def __init__(
        self, send: Callable[[Message], None], max_bitrate: int | None, loop: asyncio.AbstractEventLoop
    ) -> None:
        self._send = send
        self._max_bitrate = max_bitrate
        self._loop = loop
        self._pending: asyncio.TimerHandle | None = None
        self._asked = receive_request(max_bitrate, "window")

    def resized(self, width: int, height: int) -> None:
        """The window is now ``width`` x ``height`` (called from the window's thread)."""
        with contextlib.suppress(RuntimeError):  # the loop has closed: the meeting is over
            self._loop.call_soon_threadsafe(self._settle, height)

    def _settle(self, height: int) -> None:
        if self._pending is not None:
            self._pending.cancel()
        self._pending = self._loop.call_later(RESIZE_SETTLE, self._ask, height)

    def _ask(self, height: int) -> None:
        self._pending = None
        request = receive_request(self._max_bitrate, "window", height)
        if request is None or request == self._asked:
            return
        self._asked = request
        with contextlib.suppress(ConfError):  # the link went: the meeting loop reports it
            self._send(request)


def _denied(meeting: object) -> ConfError:
    error = ConfError(f"you were not admitted to meeting {meeting}")
    error.exit_code = EXIT_DENIED
    return error
