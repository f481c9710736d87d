"""The client's part in remote control, with stand-ins for the link, media, injector and viewer."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from conf_cli.client.desktop_control import (
    EXIT_DENIED,
    MAX_INPUT_AGE,
    MAX_PENDING_INPUT,
    MOVE_INTERVAL,
    DesktopControl,
    _InjectorThread,
)
from conf_cli.client.prompt import LocalCommand
from conf_cli.client.state import receive
from conf_cli.errors import ConfError

Message = dict[str, Any]


class FakeInjector:
    def __init__(self, delay: float = 0.0) -> None:
        self.events: list[Mapping[str, Any]] = []
        self.started: list[float] = []  # time.monotonic() as each inject began
        self.delay = delay  # seconds each inject takes (pynput takes a few milliseconds)
        self.closed = threading.Event()

    def inject(self, event: Mapping[str, Any]) -> None:
        self.started.append(time.monotonic())
        if self.delay:
            time.sleep(self.delay)
        self.events.append(event)

    def close(self) -> None:
        self.closed.set()


@dataclass
class FakeInjectorFactory:
    name: str = "fake"
    fail: str | None = None
    opened: list[FakeInjector] = field(default_factory=list)
    areas: list[Any] = field(default_factory=list)
    gate: threading.Event | None = None  # open() waits for it
    delay: float = 0.0

    def open(self, options: Mapping[str, Any]) -> FakeInjector:
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail:
            raise ConfError(self.fail)
        self.areas.append(options.get("area"))
        injector = FakeInjector(self.delay)
        self.opened.append(injector)
        return injector


class FakeScreen:
    kind = "screen"
    area = {"left": 0, "top": 0, "width": 1280, "height": 720}
    closed = False

    def close(self) -> None:
        self.closed = True


class FakeScreenFactory:
    name = "screen"
    kind = "screen"

    def __init__(self) -> None:
        self.opened: list[FakeScreen] = []

    def open(self, options: Mapping[str, Any]) -> FakeScreen:
        screen = FakeScreen()
        self.opened.append(screen)
        return screen


class FakeViewer:
    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = options
        self.closed = False

    def write(self, frame: Any) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class FakeViewerFactory:
    name = "control"

    def __init__(self) -> None:
        self.opened: list[FakeViewer] = []

    def open(self, options: Mapping[str, Any]) -> FakeViewer:
        viewer = FakeViewer(options)
        self.opened.append(viewer)
        return viewer


@dataclass
class FakeRegistry:
    injectors: dict[str, Any]
    sources: dict[str, Any]
    sinks: dict[str, Any]


class FakeClient:
    def __init__(self, name: str, registry: FakeRegistry) -> None:
        self.name = name
        self.registry = registry
        self.sent: list[Message] = []

    def send(self, message: Message) -> None:
        self.sent.append(message)


@dataclass
class FakeTrack:
    name: str
    kind: str
    ssrc: int
    closed: bool = False
    sinks: list[Any] = field(default_factory=list)

    def add_sink(self, sink: Any) -> None:
        self.sinks.append(sink)

    def remove_sink(self, sink: Any) -> bool:
        self.sinks.remove(sink)
        return True


class FakeMedia:
    def __init__(self) -> None:
        self.publishers: list[Any] = []
        self.published: list[tuple[str, Any]] = []
        self.unshared: list[str] = []
        self.receivers: dict[int, FakeTrack] = {}

    def publish(self, name: str, source: Any) -> None:
        self.published.append((name, source))

    async def unshare(self, kind: str) -> None:
        self.unshared.append(kind)


def setup(me: str, *, fail: str | None = None, leave_when_done: bool = False):
    injectors = FakeInjectorFactory(fail=fail)
    registry = FakeRegistry(
        {"fake": injectors}, {"screen": FakeScreenFactory()}, {"control": FakeViewerFactory()}
    )
    client = FakeClient(me, registry)
    media = FakeMedia()
    notes: list[Message] = []
    control = DesktopControl(client, media, notes.append, leave_when_done=leave_when_done)  # type: ignore[arg-type]
    return control, client, media, registry, notes


def event(kind: str, controller: str = "Bob", controlled: str = "Ada", **fields: Any) -> Message:
    return receive({"type": kind, "controller": controller, "controlled": controlled, **fields})


def test_y_and_n_answer_only_while_a_request_waits():
    control, *_ = setup("Ada")
    assert control.bind("y") == "y"
    control.handle_event(event("control_requested", timeout=30.0, request=1))
    asking = control.asking_us
    assert [control.bind(t) for t in ("y", " Yes ", "n", "NO", "maybe")] == [
        LocalCommand("accept", request=asking),
        LocalCommand("accept", request=asking),
        LocalCommand("reject", request=asking),
        LocalCommand("reject", request=asking),
        "maybe",
    ]
    assert control.bind("/accept Bob") == LocalCommand("accept", ("Bob",), request=asking)
    assert control.bind("/reject") == LocalCommand("reject", request=asking)


def test_an_answer_typed_for_one_request_never_lands_on_another():
    # The security review: Bob asks, Ada types y; before her answer is carried out Bob withdraws and
    # Eve asks. The y was for Bob: it must answer nothing, not grant Eve.
    async def run() -> None:
        control, client, _, registry, _ = setup("Ada")
        control.handle_event(event("control_requested", timeout=30.0, request=1))
        answer = control.bind("y")
        control.handle_event(event("control_denied", reason="withdrawn", request=1))
        control.handle_event(event("control_requested", "Eve", timeout=30.0, request=2))
        assert isinstance(answer, LocalCommand)
        with pytest.raises(ConfError, match="from Bob is no longer waiting"):
            await control.accept(*answer.args, request=answer.request)
        with pytest.raises(ConfError, match="from Bob is no longer waiting"):
            control.reject(request=answer.request)
        assert client.sent == []
        assert registry.injectors["fake"].opened == []
        # Typed now, it answers Eve's, and says so to the server by number.
        now = control.bind("y")
        assert isinstance(now, LocalCommand)
        await control.accept(request=now.request)
        assert client.sent == [{"type": "control_accept", "name": "Eve", "request": 2}]

    asyncio.run(run())


def test_an_accept_whose_request_goes_while_getting_ready_answers_nothing():
    async def run() -> None:
        control, client, _, registry, _ = setup("Ada")
        gate = threading.Event()
        registry.injectors["fake"].gate = gate
        control.handle_event(event("control_requested", timeout=30.0, request=1))
        answer = control.bind("y")
        assert isinstance(answer, LocalCommand)
        task = asyncio.create_task(control.accept(request=answer.request))
        await asyncio.sleep(0.05)  # the injector is opening, in a thread
        control.handle_event(event("control_denied", reason="withdrawn", request=1))
        control.handle_event(event("control_requested", "Eve", timeout=30.0, request=2))
        gate.set()
        with pytest.raises(ConfError, match="no longer waiting"):
            await task
        assert client.sent == []
        [injector] = registry.injectors["fake"].opened
        assert injector.closed.is_set()  # what was opened for Bob is closed again
        assert registry.sources["screen"].opened[0].closed

    asyncio.run(run())


def test_a_grant_for_another_request_than_the_one_accepted_is_refused():
    async def run() -> None:
        control, client, media, registry, _ = setup("Ada")
        control.handle_event(event("control_requested", timeout=30.0, request=1))
        await control.accept()
        control.handle_event(event("control_granted", "Eve", request=2))
        assert client.sent[-1] == {"type": "control_revoke"}
        assert media.published == []
        control.handle_event(receive({"type": "control_input", "from": "Eve", "action": "text", "text": "x"}))
        await control.close()
        [injector] = registry.injectors["fake"].opened
        assert injector.events == [] and injector.closed.is_set()

    asyncio.run(run())


def test_the_controlled_side_shares_its_screen_injects_the_controller_only_and_cleans_up():
    async def run() -> None:
        control, client, media, registry, _ = setup("Ada")
        control.handle_event(event("control_requested", timeout=30.0))
        await control.accept()
        assert client.sent == [{"type": "control_accept", "name": "Bob"}]  # no request number: none given
        assert registry.injectors["fake"].areas == [(0, 0, 1280, 720)]  # the screen it will share
        assert media.published == []  # not before the grant
        control.handle_event(event("control_granted"))
        [(name, screen)] = media.published
        assert name == "screen" and screen is registry.sources["screen"].opened[0]
        control.handle_event(
            receive({"type": "control_input", "from": "Bob", "action": "move", "x": 0.5, "y": 0.5})
        )
        control.handle_event(
            receive({"type": "control_input", "from": "Dee", "action": "move", "x": 0.9, "y": 0.9})
        )
        [injector] = registry.injectors["fake"].opened
        for _ in range(500):  # replayed in the injector's thread
            if injector.events:
                break
            await asyncio.sleep(0.01)
        control.handle_event(event("control_revoked", reason="revoked", by="Ada"))
        await control.close()
        assert injector.closed.is_set()
        assert [e["x"] for e in injector.events] == [0.5]
        assert media.unshared == ["screen"]

    asyncio.run(run())


def test_a_desktop_that_cannot_be_driven_says_no_with_the_reason():
    async def run() -> None:
        control, client, _, registry, notes = setup("Ada", fail="no window system here")
        control.handle_event(event("control_requested", timeout=30.0))
        await control.accept()
        assert client.sent == [{"type": "control_reject", "name": "Bob"}]
        assert notes[-1]["message"] == "cannot be controlled: no window system here"
        assert registry.sources["screen"].opened[0].closed  # the screen opened for it is closed again

    asyncio.run(run())


def test_accept_without_a_request_is_an_error():
    control, *_ = setup("Ada")
    with pytest.raises(ConfError):
        asyncio.run(control.accept())


def test_the_viewer_follows_the_controlled_screen_track():
    async def run() -> None:
        control, client, media, registry, _ = setup("Bob", leave_when_done=True)
        control.handle_event(event("control_requested", timeout=30.0))
        assert control.handle_event(event("control_granted")) is None
        assert registry.sinks["control"].opened == []  # no screen track yet
        track = FakeTrack("Ada", "screen", 7)
        media.receivers[7] = track
        control.handle_event(
            receive({"type": "share_started", "name": "Ada", "kind": "screen", "ssrc": 7, "codec": "H264"})
        )
        [viewer] = registry.sinks["control"].opened
        assert track.sinks == [viewer]
        viewer.options["on_input"]({"type": "control_input", "action": "move", "x": 0.1, "y": 0.2})
        viewer.options["on_close"]()
        await asyncio.sleep(0)  # the window thread's calls arrive on the loop
        assert client.sent[-2:] == [
            {"type": "control_input", "action": "move", "x": 0.1, "y": 0.2},
            {"type": "control_revoke"},
        ]
        assert control.handle_event(event("control_revoked", reason="released", by="Bob")) == 0
        await control.close()
        assert track.sinks == [] and viewer.closed

    asyncio.run(run())


def test_conf_control_ends_with_the_answer():
    control, *_ = setup("Bob", leave_when_done=True)
    assert control.handle_event(event("control_denied", reason="rejected")) == EXIT_DENIED
    control, *_ = setup("Bob", leave_when_done=True)
    busy = receive({"type": "error", "code": "busy", "message": "Ada is busy", "re": "control_request"})
    assert control.handle_event(busy) == 1
    control, *_ = setup("Bob")  # /control in a meeting: the meeting goes on
    assert control.handle_event(event("control_denied", reason="rejected")) is None


def test_pointer_moves_are_thinned_and_never_overtake_a_click():
    async def run() -> None:
        control, client, *_ = setup("Bob")
        control.handle_event(event("control_granted"))
        moves = [{"type": "control_input", "action": "move", "x": i / 10, "y": 0.5} for i in range(10)]
        for move in moves:
            control._send_input(move)
        assert client.sent == [moves[0]]  # the rest wait for the interval; only the newest is kept
        await asyncio.sleep(MOVE_INTERVAL * 2)
        assert client.sent == [moves[0], moves[9]]
        await asyncio.sleep(MOVE_INTERVAL * 2)
        control._send_input(moves[1])  # the interval has passed: at once
        control._send_input(moves[2])  # held back
        click = {"type": "control_input", "action": "button", "button": 1, "pressed": True}
        control._send_input(click)
        assert client.sent[2:] == [moves[1], moves[2], click]  # the held-back move first, at once
        await asyncio.sleep(MOVE_INTERVAL * 2)
        assert len(client.sent) == 5  # and not again

    asyncio.run(run())


# -- taking control back ------------------------------------------------------------------------------


def _flood(control: DesktopControl, count: int, sender: str = "Bob") -> None:
    for i in range(count):
        control.handle_event(
            receive({"type": "control_input", "from": sender, "action": "text", "text": f"<{i}>"})
        )


def test_revoking_stops_injection_at_once_and_drops_the_queue_without_the_server():
    # The security review: the controlled person revokes while the controller floods; the server never
    # answers. Nothing may be replayed after the revoke, nor from what was queued.
    async def run() -> None:
        control, client, media, registry, notes = setup("Ada")
        registry.injectors["fake"].delay = 0.002  # as slow as a real injector: a queue builds up
        control.handle_event(event("control_requested", timeout=30.0, request=1))
        await control.accept()
        control.handle_event(event("control_granted", request=1))
        _flood(control, MAX_PENDING_INPUT)
        await asyncio.sleep(0.1)
        control.revoke()
        revoked_at = time.monotonic()
        assert client.sent[-1] == {"type": "control_revoke"}
        assert notes[-1] == {"type": "control_stopped", "controller": "Bob", "controlled": "Ada"}
        _flood(control, 100)  # the server has not heard (or ignores) the revoke: input keeps coming
        await asyncio.sleep(0.5)
        [injector] = registry.injectors["fake"].opened
        assert injector.started and max(injector.started) < revoked_at
        assert len(injector.events) < MAX_PENDING_INPUT * 3  # most of the queue (3 characters each) dropped
        assert injector.closed.wait(2)  # what it held is released
        assert media.unshared == ["screen"]
        assert control.controlled_by is None
        # The server's answer, late, changes nothing
        control.handle_event(event("control_revoked", reason="revoked", by="Ada", request=1))
        await control.close()

    asyncio.run(run())


def test_input_that_waited_too_long_is_dropped_but_a_late_release_still_lets_go():
    now = [100.0]
    injector = FakeInjector()
    thread = _InjectorThread(injector, clock=lambda: now[0])
    old = now[0] - MAX_INPUT_AGE - 0.01
    thread.put({"action": "key", "key": "a", "pressed": True}, old)
    thread.put({"action": "text", "text": "late"}, old)
    thread.put({"action": "move", "x": 0.5, "y": 0.5}, old)
    thread.put({"action": "key", "key": "a", "pressed": False}, old)
    thread.put({"action": "text", "text": "ok"}, now[0])
    deadline = time.monotonic() + 5
    while len(injector.events) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    thread.stop()
    thread.join()
    assert [dict(e) for e in injector.events] == [
        {"action": "key", "key": "a", "pressed": False},
        {"action": "text", "text": "o"},  # text goes one character at a time: a revoke cuts in between
        {"action": "text", "text": "k"},
    ]
    assert thread.stale == 3 and injector.closed.is_set()


def test_revoke_typed_while_a_command_is_still_running_takes_effect_at_once():
    from conf_cli.client.meeting_loop import _relay_input

    class Lines:
        def __init__(self) -> None:
            self.queue: asyncio.Queue[str | None] = asyncio.Queue()
            self.shown: list[Message] = []

        def show(self, event: Message) -> None:
            self.shown.append(event)

        async def lines(self):
            while (line := await self.queue.get()) is not None:
                yield line

    class SlowMedia(FakeMedia):
        async def share(self, name: str, options: Any) -> None:
            await asyncio.sleep(30)  # a device that takes its time to open

    async def run() -> None:
        control, client, _, registry, _ = setup("Ada")
        control.media = SlowMedia()
        registry.injectors["fake"].delay = 0.002
        control.handle_event(event("control_requested", timeout=30.0, request=1))
        await control.accept()
        control.handle_event(event("control_granted", request=1))
        ui = Lines()
        relay = asyncio.create_task(_relay_input(client, ui, control.media, control))  # type: ignore[arg-type]
        ui.queue.put_nowait("/share camera")
        await asyncio.sleep(0.05)
        _flood(control, 200)
        ui.queue.put_nowait("/revoke")
        await asyncio.sleep(0.05)
        assert control.controlled_by is None and client.sent[-1] == {"type": "control_revoke"}
        relay.cancel()
        await control.close()

    asyncio.run(run())
