"""Remote control on the client: asking for control, answering, the viewer and the input injector.

The consent rules live on the server (:mod:`conf_cli.server.remote_control`); this side carries them out.

*Controlled*: ``control_requested`` naming us asks for an answer (``/accept`` or ``/reject``; ``y``/``n``
while it waits). An answer is bound to the request that was waiting when it was typed (the server's
``request`` number goes back with it): if that request has gone meanwhile, the answer does nothing, so a
``y`` meant for one person never lands on another. Accepting first makes sure we can be driven: it opens
the ``screen`` source (unless the screen is already shared) and an injector (the ``pynput`` plugin) over
the rectangle that screen shows; either failing answers ``control_reject`` with the reason shown. Once
``control_granted``, the screen is published and every ``control_input`` the server relays is replayed by
the injector, in a thread of its own; input that has waited here longer than :data:`MAX_INPUT_AGE` is
dropped, never replayed late. When control ends (revoked, released, either party leaving, forbidden) the
injector releases what it holds and the screen share we started stops.

Taking control back (``/revoke``, Ctrl-R) happens here first: :meth:`DesktopControl.revoke` stops the
injector and drops what it still had queued before it tells the server, so that no input is replayed
after that instant, whenever (or whether) the server answers.

*Controller*: ``/control NAME`` (or ``conf control NAME``) checks that a viewer window can open, then asks.
Once granted, the ``control`` sink (a window) is attached to the controlled participant's screen track,
now or when it starts; what the user does over it goes out as ``control_input``. Closing the window lets
go (``control_revoke``). With ``leave_when_done`` (``conf control``) the end of control ends the meeting for
us: exit code 0 after control, :data:`EXIT_DENIED` when refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from conf_cli.client.prompt import CommandError, LocalCommand, parse_answer, parse_line
from conf_cli.client.state import event_of
from conf_cli.errors import ConfError
from conf_cli.media.source import Sink, Source
from conf_cli.plugin.injector import Injector
from conf_cli.protocol.control import Message
from conf_cli.protocol.events import (
    ControlDenied,
    ControlGranted,
    ControlInput,
    ControlRequested,
    ControlRevoked,
    Error,
    ShareStarted,
)

if TYPE_CHECKING:
    from conf_cli.client.link import Client
    from conf_cli.client.media.manager import MediaManager, Notify
    from conf_cli.client.media.receiver import RemoteTrack

log = logging.getLogger(__name__)

EXIT_DENIED = 10  # conf control: the peer refused or did not answer
EXIT_REFUSED = 1
VIEWER_SINK = "control"
SCREEN_SOURCE = "screen"
MOVE_INTERVAL = 1 / 120  # seconds: pointer moves sent at most this often (the newest wins), well
# within the server's limit of 250 input events a second, so that no click or key is ever dropped there
MAX_PENDING_INPUT = 1024  # input events waiting for the injector; more are dropped (the server limits rate)
MAX_INPUT_AGE = 0.25  # seconds: input that has waited here longer is dropped, never replayed late
STOP_WAIT = 0.5  # seconds a revoke waits for an injector call already under way


def screen_area(source: object) -> tuple[int, int, int, int] | None:
    """The desktop rectangle a screen source grabs (its ``area``: left, top, width, height), if it says."""
    area = getattr(source, "area", None)
    if not isinstance(area, Mapping):
        return None
    try:
        return int(area["left"]), int(area["top"]), int(area["width"]), int(area["height"])
    except (KeyError, TypeError, ValueError):
        return None


class _InjectorThread:
    """Feeds one injector from a bounded queue in a thread of its own.

    Each event carries the time it reached us; one that has waited longer than :data:`MAX_INPUT_AGE`
    is dropped (a late release of a key or button is still applied: it only lets go). :meth:`stop`
    takes effect at once: what is queued is dropped, and once it returns no event starts being
    replayed. Text is typed one character at a time, so a stop never waits for a long string.
    """

    def __init__(self, injector: Injector, clock: Callable[[], float] = time.monotonic) -> None:
        self.injector = injector
        self.dropped = 0  # the queue was full
        self.stale = 0  # waited too long
        self._clock = clock
        self._queue: queue.Queue[tuple[Mapping[str, Any], float] | None] = queue.Queue(MAX_PENDING_INPUT)
        self._stopped = threading.Event()
        self._busy = threading.Lock()  # held while one event is replayed
        self._thread = threading.Thread(target=self._run, name="conf-inject", daemon=True)
        self._thread.start()

    def put(self, event: Mapping[str, Any], received: float) -> None:
        """Queue ``event``, which reached us at ``received`` (on the same clock)."""
        if self._stopped.is_set():
            return
        try:
            self._queue.put_nowait((event, received))
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            event, received = item
            if self._clock() - received > MAX_INPUT_AGE and event.get("pressed") is not False:
                self.stale += 1
                continue
            for step in _steps(event):
                with self._busy:
                    if self._stopped.is_set():
                        break
                    try:
                        self.injector.inject(step)
                    except Exception:  # one bad event must not end control
                        log.warning("cannot inject %s", step.get("action"), exc_info=True)
                        break
            if self._stopped.is_set():
                break
        with contextlib.suppress(Exception):
            self.injector.close()

    def stop(self) -> None:
        """Replay nothing more: drop the queue; return once no event is being replayed (at most
        :data:`STOP_WAIT` seconds for an injector call already under way). The thread then closes the
        injector, which releases what it holds."""
        self._stopped.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._busy.acquire(timeout=STOP_WAIT):
            self._busy.release()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)  # wakes the thread (the queue was just emptied)

    def join(self, timeout: float = 1.0) -> None:
        self._thread.join(timeout)


def _steps(event: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """``event`` as the injector calls that replay it: text one character each, the rest as it is."""
    text = event.get("text")
    if event.get("action") != "text" or not isinstance(text, str) or len(text) <= 1:
        return [event]
    first = {**event, "text": text[0]}  # a pointer position goes with the first character only
    rest = {key: value for key, value in event.items() if key not in ("x", "y")}
    return [first, *({**rest, "text": char} for char in text[1:])]


@dataclass(frozen=True)
class Asking:
    """A request for control of our desktop, waiting for our answer."""

    controller: str
    request: int | None  # the server's number for it (None from a server that gives none)


class DesktopControl:
    """One meeting client's part in remote control, on either side."""

    def __init__(
        self,
        client: Client,
        media: MediaManager,
        notify: Notify,
        *,
        leave_when_done: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.media = media
        self.notify = notify
        self.leave_when_done = leave_when_done
        self.clock = clock
        self.asking_us: Asking | None = None  # a controller waiting for our answer
        self.controlled_by: str | None = None
        self.asked: str | None = None  # whom we asked
        self.controlling: str | None = None
        self._prepared: tuple[Asking, Injector, Source | None] | None = None  # opened by /accept
        self._injector: _InjectorThread | None = None
        self._shared_screen = False  # we started the screen share for control: stop it at the end
        self._viewer: Sink | None = None
        self._viewer_track: RemoteTrack | None = None
        self._last_move = float("-inf")
        self._pending_move: Message | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- typed commands ---------------------------------------------------------------------------------

    def bind(self, line: str) -> str | LocalCommand:
        """A line as typed, with an answer bound to the request waiting for us at this moment.

        While a request waits, ``y``/``n``, ``/accept [NAME]`` and ``/reject [NAME]`` become the
        ``accept`` or ``reject`` command for that request; any other line is returned as it is.
        """
        asking = self.asking_us
        if asking is None:
            return line
        answer = parse_answer(line)
        if answer is not None:
            return LocalCommand(answer, request=asking)
        try:
            command = parse_line(line)
        except CommandError:
            return line
        if isinstance(command, LocalCommand) and command.name in ("accept", "reject"):
            return replace(command, request=asking)
        return line

    def _still_waiting(self, request: object) -> Asking:
        """The request an answer is for, if it still waits for us; ConfError saying why not."""
        asking = self.asking_us
        if asking is None:
            raise ConfError("nobody is waiting for your answer about remote control")
        if request is not None and request is not asking:
            who = request.controller if isinstance(request, Asking) else "that person"
            raise ConfError(f"the request from {who} is no longer waiting; nothing was answered")
        return asking

    async def ask(self, name: str) -> None:
        """``/control NAME``: ask for control, once a viewer window can open here."""
        await asyncio.to_thread(check_viewer, self.client.registry.sinks)
        self.client.send({"type": "control_request", "name": name})

    async def accept(self, name: str | None = None, request: object = None) -> None:
        """``/accept``: get the screen and the injector ready, then say yes (or no, saying why).

        ``request`` is the request the answer was bound to when typed (:meth:`bind`); by default the one
        waiting now. If it is no longer the one waiting, nothing is answered (ConfError says so)."""
        asking = self._still_waiting(request)
        try:
            screen_and_injector = await asyncio.to_thread(self._prepare)
        except ConfError as exc:
            self.notify({"type": "error", "code": "control", "message": f"cannot be controlled: {exc}"})
            if self.asking_us is asking:
                self.client.send(self._answer("control_reject", asking))
            return
        injector, source = screen_and_injector
        if self.asking_us is not asking:  # withdrawn, or replaced, while we got ready
            _close_prepared(injector, source)
            self._still_waiting(asking)
        self._drop_prepared()
        self._prepared = (asking, injector, source)
        self.client.send(self._answer("control_accept", asking, name))

    def reject(self, name: str | None = None, request: object = None) -> None:
        """``/reject``: say no to the request the answer was bound to (by default the one waiting now)."""
        self.client.send(self._answer("control_reject", self._still_waiting(request), name))

    @staticmethod
    def _answer(kind: str, asking: Asking, name: str | None = None) -> Message:
        message: Message = {"type": kind, "name": name or asking.controller}
        if asking.request is not None:
            message["request"] = asking.request
        return message

    def revoke(self) -> None:
        """``/revoke`` and Ctrl-R: end our part in remote control here and now, then tell the server.

        On the controlled side the injector stops before this returns (what it had queued is dropped),
        the screen share started for control stops and later input is ignored; on the controller's side
        nothing more is sent. None of it waits for the server, which may answer late or never; the
        ``control_stopped`` shown says it is done here."""
        me = str(self.client.name)
        if self.controlled_by is not None:
            stopped: Message | None = {"controller": self.controlled_by, "controlled": me}
        elif self.controlling is not None:
            stopped = {"controller": me, "controlled": self.controlling}
        else:
            stopped = None
        self._ended()
        with contextlib.suppress(ConfError):
            self.client.send({"type": "control_revoke"})
        if stopped is not None:
            self.notify({"type": "control_stopped", **stopped})

    def _prepare(self) -> tuple[Injector, Source | None]:
        """Open the screen source (unless shared already) and an injector over the rectangle it shows."""
        from conf_cli.client.media.publisher import open_source

        registry = self.client.registry
        factory = next(iter(registry.injectors.values()), None)
        if factory is None:
            raise ConfError(
                "no input-injection plugin is loaded (the capture plugin's pynput); see `conf plugins`"
            )
        sharing = [p for p in self.media.publishers if not p.finished and SCREEN_SOURCE in p.kinds]
        source = None if sharing else open_source(registry.sources, SCREEN_SOURCE, {})
        area = screen_area(sharing[0].source if sharing else source)
        try:
            injector = factory.open({"area": area} if area else {})
        except Exception as exc:
            if source is not None:
                source.close()
            raise ConfError(str(exc)) from None
        return injector, source

    # -- server events ----------------------------------------------------------------------------------

    def handle_event(self, message: Message) -> int | None:
        """React to a server message (after the media manager), through its typed event; an exit code
        when the meeting should end."""
        event = event_of(message)
        me = self.client.name
        match event:
            case ControlInput():  # the server relays only the grant holder's; check anyway
                if self._injector is not None and event.sender == self.controlled_by:
                    self._injector.put(event.to_message(), self.clock())
            case ControlRequested() if event.controlled == me:
                self.asking_us = Asking(event.controller, event.request)
            case ControlRequested() if event.controller == me:
                self.asked = event.controlled
            case ControlGranted() if event.controlled == me:
                self._granted(event.controller, event.request)
            case ControlGranted() if event.controller == me:
                self.asked = None
                self.controlling = event.controlled
                self._attach_viewer()
            case ControlDenied() | ControlRevoked():
                was_controller = event.controller == me
                self._ended()
                if self.leave_when_done and was_controller:
                    return EXIT_DENIED if isinstance(event, ControlDenied) else 0
            case ShareStarted() if self.controlling is not None:
                self._attach_viewer()
            case Error(re="control_accept"):
                self._drop_prepared()
            case Error(re="control_request") if self.leave_when_done:
                return EXIT_REFUSED
            case None if message.get("type") == "track_ended" and self._viewer_track is not None:
                if message.get("ssrc") == self._viewer_track.ssrc:  # the receiver closed the viewer with it
                    self._viewer, self._viewer_track = None, None
        return None

    def _granted(self, controller: str, request: int | None) -> None:
        self.asking_us = None
        prepared, self._prepared = self._prepared, None
        if prepared is not None and (prepared[0].controller != controller or prepared[0].request != request):
            _close_prepared(prepared[1], prepared[2])  # a grant for another request than we accepted
            prepared = None
        if prepared is None or self._injector is not None:
            # Granted without our /accept of this request here: refuse it
            with contextlib.suppress(ConfError):
                self.client.send({"type": "control_revoke"})
            return
        _, injector, source = prepared
        self.controlled_by = controller
        self._injector = _InjectorThread(injector, self.clock)
        if source is not None:
            self.media.publish(SCREEN_SOURCE, source)
            self._shared_screen = True

    def _ended(self) -> None:
        self.asking_us = None
        self.asked = self.controlled_by = self.controlling = None
        self._pending_move = None
        self._drop_prepared()
        if self._injector is not None:
            injector, self._injector = self._injector, None
            injector.stop()  # at once: nothing queued is replayed after this
            self._background(asyncio.to_thread(injector.join))
        if self._shared_screen:
            self._shared_screen = False
            self._background(self._unshare_screen())
        self._detach_viewer()

    async def _unshare_screen(self) -> None:
        with contextlib.suppress(ConfError):
            await self.media.unshare(SCREEN_SOURCE)

    def _drop_prepared(self) -> None:
        prepared, self._prepared = self._prepared, None
        if prepared is not None:
            _close_prepared(prepared[1], prepared[2])

    # -- the viewer -------------------------------------------------------------------------------------

    def _attach_viewer(self) -> None:
        if self._viewer is not None or self.controlling is None:
            return
        track = next(
            (
                r
                for r in self.media.receivers.values()
                if r.name == self.controlling and r.kind == SCREEN_SOURCE and not r.closed
            ),
            None,
        )
        if track is None:
            return  # it comes with the share_started that follows the grant
        loop = asyncio.get_running_loop()
        options = {
            "title": f"conf control: {self.controlling}'s desktop",
            "on_input": lambda message: loop.call_soon_threadsafe(self._send_input, message),
            "on_close": lambda: loop.call_soon_threadsafe(self._let_go),
        }
        try:
            viewer = self.client.registry.sinks[VIEWER_SINK].open(options)
        except (KeyError, ConfError) as exc:
            self.notify({"type": "error", "code": "control", "message": f"cannot show the desktop: {exc}"})
            self._let_go()
            return
        self._viewer, self._viewer_track = viewer, track
        track.add_sink(viewer)

    def _detach_viewer(self) -> None:
        viewer, track = self._viewer, self._viewer_track
        self._viewer = self._viewer_track = None
        if viewer is None:
            return
        if track is not None:
            track.remove_sink(viewer)
        self._background(asyncio.to_thread(viewer.close))

    def _send_input(self, message: Message) -> None:
        """Send the viewer's input; pointer moves are thinned to one per :data:`MOVE_INTERVAL`."""
        if self.controlling is None:
            return
        loop = asyncio.get_running_loop()
        if message.get("action") == "move":
            due = self._last_move + MOVE_INTERVAL
            if loop.time() < due:
                if self._pending_move is None:
                    loop.call_at(due, self._flush_move)
                self._pending_move = message
                return
            self._last_move = loop.time()
        else:
            self._flush_move()  # a move held back goes first: a click lands where the pointer went
        with contextlib.suppress(ConfError):
            self.client.send(message)

    def _flush_move(self) -> None:
        message, self._pending_move = self._pending_move, None
        if message is not None and self.controlling is not None:
            self._last_move = asyncio.get_running_loop().time()
            with contextlib.suppress(ConfError):
                self.client.send(message)

    def _let_go(self) -> None:
        if self.controlling is not None:
            with contextlib.suppress(ConfError):
                self.client.send({"type": "control_revoke"})

    # -- life cycle -------------------------------------------------------------------------------------

    def _background(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """End our part: release held keys, close the viewer, wait for the clean-ups."""
        self._ended()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _close_prepared(injector: Injector, source: Source | None) -> None:
    with contextlib.suppress(Exception):
        injector.close()
    if source is not None:
        with contextlib.suppress(Exception):
            source.close()


def check_viewer(sinks: Mapping[str, Any]) -> None:
    """ConfError, in one line, when no remote-control viewer can open here (blocking: run in a thread)."""
    factory = sinks.get(VIEWER_SINK)
    if factory is None:
        raise ConfError("remote control needs the capture plugin's 'control' viewer; see `conf plugins`")
    factory.open({}).close()
