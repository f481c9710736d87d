"""The client's part in remote control, with stand-ins for the link, media, injector and viewer."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from conf_cli.errors import ConfError
from conf_cli.remote_control import EXIT_DENIED, MOVE_INTERVAL, RemoteControl

Message = dict[str, Any]


class FakeInjector:
    def __init__(self) -> None:
        self.events: list[Mapping[str, Any]] = []
        self.closed = threading.Event()

    def inject(self, event: Mapping[str, Any]) -> None:
        self.events.append(event)

    def close(self) -> None:
        self.closed.set()


@dataclass
class FakeInjectorFactory:
    name: str = "fake"
    fail: str | None = None
    opened: list[FakeInjector] = field(default_factory=list)
    areas: list[Any] = field(default_factory=list)

    def open(self, options: Mapping[str, Any]) -> FakeInjector:
        if self.fail:
            raise ConfError(self.fail)
        self.areas.append(options.get("area"))
        injector = FakeInjector()
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
    control = RemoteControl(client, media, notes.append, leave_when_done=leave_when_done)  # type: ignore[arg-type]
    return control, client, media, registry, notes


def event(kind: str, controller: str = "Bob", controlled: str = "Ada", **fields: Any) -> Message:
    return {"type": kind, "controller": controller, "controlled": controlled, **fields}


def test_y_and_n_answer_only_while_a_request_waits():
    control, *_ = setup("Ada")
    assert control.translate("y") == "y"
    control.handle_event(event("control_requested", timeout=30.0))
    assert [control.translate(t) for t in ("y", " Yes ", "n", "NO", "maybe")] == [
        "/accept",
        "/accept",
        "/reject",
        "/reject",
        "maybe",
    ]


def test_the_controlled_side_shares_its_screen_injects_the_controller_only_and_cleans_up():
    async def run() -> None:
        control, client, media, registry, _ = setup("Ada")
        control.handle_event(event("control_requested", timeout=30.0))
        await control.accept()
        assert client.sent == [{"type": "control_accept", "name": "Bob"}]
        assert registry.injectors["fake"].areas == [(0, 0, 1280, 720)]  # the screen it will share
        assert media.published == []  # not before the grant
        control.handle_event(event("control_granted"))
        [(name, screen)] = media.published
        assert name == "screen" and screen is registry.sources["screen"].opened[0]
        control.handle_event({"type": "control_input", "from": "Bob", "action": "move", "x": 0.5, "y": 0.5})
        control.handle_event({"type": "control_input", "from": "Dee", "action": "move", "x": 0.9, "y": 0.9})
        control.handle_event(event("control_revoked", reason="revoked", by="Ada"))
        await control.close()
        [injector] = registry.injectors["fake"].opened
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
        control.handle_event({"type": "share_started", "name": "Ada", "kind": "screen", "ssrc": 7})
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
    assert control.handle_event({"type": "error", "code": "busy", "re": "control_request"}) == 1
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
