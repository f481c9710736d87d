"""Remote control on the client: asking for control, answering, the viewer and the input injector.

The consent rules live on the server (:mod:`conf_cli.meeting.control`); this side carries them out.

*Controlled*: ``control_requested`` naming us asks for an answer (``/accept`` or ``/reject``; ``y``/``n``
while it waits). Accepting first makes sure we can be driven: it opens the ``screen`` source (unless the
screen is already shared) and an injector (the ``pynput`` plugin) over the rectangle that screen shows;
either failing answers ``control_reject`` with the reason shown. Once ``control_granted``, the screen is
published and every ``control_input`` the server relays is replayed by the injector, in a thread of its
own. When control ends (revoked, released, either party leaving, forbidden) the injector releases what it
holds and the screen share we started stops.

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
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from conf_cli.errors import ConfError
from conf_cli.media.source import Sink, Source
from conf_cli.protocol.control import Message

if TYPE_CHECKING:
    from conf_cli.client import Client
    from conf_cli.media.manager import MediaManager, Notify
    from conf_cli.media.receiver import RemoteTrack

log = logging.getLogger(__name__)

EXIT_DENIED = 10  # conf control: the peer refused or did not answer
EXIT_REFUSED = 1
VIEWER_SINK = "control"
SCREEN_SOURCE = "screen"
MOVE_INTERVAL = 1 / 120  # seconds: pointer moves sent at most this often (the newest wins), well
# within the server's limit of 250 input events a second, so that no click or key is ever dropped there
MAX_PENDING_INPUT = 1024  # input events waiting for the injector; more are dropped (the server limits rate)
ANSWERS = {"y": "/accept", "yes": "/accept", "n": "/reject", "no": "/reject"}


class Injector(Protocol):
    """Replays ``control_input`` events on this desktop (blocking calls; run in a thread)."""

    def inject(self, event: Mapping[str, Any]) -> None: ...

    def close(self) -> None:
        """Release every button and key still held."""


class InjectorFactory(Protocol):
    """What a plugin registers with ``conf_register_injectors``."""

    name: str

    def open(self, options: Mapping[str, Any]) -> Injector:
        """Options: ``area``, the desktop rectangle (left, top, width, height) the shared picture shows.
        ConfError, in one line, where this desktop cannot be driven."""
        ...


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
    """Feeds one injector from a bounded queue in a thread of its own; closing releases what it holds."""

    def __init__(self, injector: Injector) -> None:
        self.injector = injector
        self.dropped = 0
        self._queue: queue.Queue[Mapping[str, Any] | None] = queue.Queue(MAX_PENDING_INPUT)
        self._thread = threading.Thread(target=self._run, name="conf-inject", daemon=True)
        self._thread.start()

    def put(self, event: Mapping[str, Any]) -> None:
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while (event := self._queue.get()) is not None:
            try:
                self.injector.inject(event)
            except Exception:  # one bad event must not end control
                log.warning("cannot inject %s", event.get("action"), exc_info=True)
        with contextlib.suppress(Exception):
            self.injector.close()

    def close(self) -> None:
        """Stop after the events already queued; blocking up to a second."""
        while True:
            try:
                self._queue.put_nowait(None)
                break
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._queue.get_nowait()
        self._thread.join(1.0)


class RemoteControl:
    """One meeting client's part in remote control, on either side."""

    def __init__(
        self, client: Client, media: MediaManager, notify: Notify, *, leave_when_done: bool = False
    ) -> None:
        self.client = client
        self.media = media
        self.notify = notify
        self.leave_when_done = leave_when_done
        self.asking_us: str | None = None  # a controller waiting for our answer
        self.controlled_by: str | None = None
        self.asked: str | None = None  # whom we asked
        self.controlling: str | None = None
        self._prepared: tuple[Injector, Source | None] | None = None  # opened by /accept
        self._injector: _InjectorThread | None = None
        self._shared_screen = False  # we started the screen share for control: stop it at the end
        self._viewer: Sink | None = None
        self._viewer_track: RemoteTrack | None = None
        self._last_move = float("-inf")
        self._pending_move: Message | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- typed commands ---------------------------------------------------------------------------------

    def translate(self, line: str) -> str:
        """``y`` or ``n`` answer a request waiting for us; any other line is left as it is."""
        if self.asking_us is not None:
            return ANSWERS.get(line.strip().lower(), line)
        return line

    async def ask(self, name: str) -> None:
        """``/control NAME``: ask for control, once a viewer window can open here."""
        await asyncio.to_thread(check_viewer, self.client.registry.sinks)
        self.client.send({"type": "control_request", "name": name})

    async def accept(self, name: str | None = None) -> None:
        """``/accept``: get the screen and the injector ready, then say yes (or no, saying why)."""
        if self.asking_us is None:
            raise ConfError("nobody is waiting for your answer about remote control")
        controller = self.asking_us
        try:
            self._prepared = await asyncio.to_thread(self._prepare)
        except ConfError as exc:
            self.notify({"type": "error", "code": "control", "message": f"cannot be controlled: {exc}"})
            self.client.send({"type": "control_reject", "name": controller})
            return
        self.client.send({"type": "control_accept", "name": name or controller})

    def _prepare(self) -> tuple[Injector, Source | None]:
        """Open the screen source (unless shared already) and an injector over the rectangle it shows."""
        from conf_cli.media.publisher import open_source

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

    def handle_event(self, event: Message) -> int | None:
        """React to a server event (after the media manager); an exit code when the meeting should end."""
        kind = event.get("type")
        me = self.client.name
        if kind == "control_input":  # the server relays only the grant holder's; check anyway
            if self._injector is not None and event.get("from") == self.controlled_by:
                self._injector.put(event)
            return None
        if kind == "control_requested":
            if event.get("controlled") == me:
                self.asking_us = str(event.get("controller"))
            elif event.get("controller") == me:
                self.asked = str(event.get("controlled"))
        elif kind == "control_granted":
            if event.get("controlled") == me:
                self._granted(str(event.get("controller")))
            elif event.get("controller") == me:
                self.asked = None
                self.controlling = str(event.get("controlled"))
                self._attach_viewer()
        elif kind in ("control_denied", "control_revoked"):
            was_controller = event.get("controller") == me
            self._ended()
            if self.leave_when_done and was_controller:
                return EXIT_DENIED if kind == "control_denied" else 0
        elif kind == "share_started" and self.controlling is not None:
            self._attach_viewer()
        elif kind == "track_ended" and self._viewer_track is not None:
            if event.get("ssrc") == self._viewer_track.ssrc:  # the receiver closed the viewer with it
                self._viewer, self._viewer_track = None, None
        elif kind == "error" and event.get("re") == "control_accept":
            self._drop_prepared()
        elif kind == "error" and event.get("re") == "control_request" and self.leave_when_done:
            return EXIT_REFUSED
        return None

    def _granted(self, controller: str) -> None:
        self.asking_us = None
        self.controlled_by = controller
        prepared, self._prepared = self._prepared, None
        if prepared is None:  # granted without our /accept here (another client of ours?): refuse it
            with contextlib.suppress(ConfError):
                self.client.send({"type": "control_revoke"})
            return
        injector, source = prepared
        self._injector = _InjectorThread(injector)
        if source is not None:
            self.media.publish(SCREEN_SOURCE, source)
            self._shared_screen = True

    def _ended(self) -> None:
        self.asking_us = self.asked = self.controlled_by = self.controlling = None
        self._drop_prepared()
        if self._injector is not None:
            injector, self._injector = self._injector, None
            self._background(asyncio.to_thread(injector.close))
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
            injector, source = prepared
            injector.close()
            if source is not None:
                source.close()

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


def check_viewer(sinks: Mapping[str, Any]) -> None:
    """ConfError, in one line, when no remote-control viewer can open here (blocking: run in a thread)."""
    factory = sinks.get(VIEWER_SINK)
    if factory is None:
        raise ConfError("remote control needs the capture plugin's 'control' viewer; see `conf plugins`")
    factory.open({}).close()
