"""Taking control back does not wait for the server (the security review, "revoking remote control").

A real ``conf server`` sits behind a tap that drops the controlled person's ``control_revoke``, so the
server never hears of it, keeps the grant and goes on relaying the controller's flood. The controlled
client is conf's own (``run_meeting`` with its remote control), with an injector that records when each
event is replayed and takes 10 ms to do it, as a real one does: a queue builds up. The controller is a
conf client sending input as fast as the server relays it. After the revoke, nothing may be replayed,
and nothing replayed may have waited longer than about a quarter of a second.
"""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from conf_cli.client.desktop_control import DesktopControl
from conf_cli.client.link import Client
from conf_cli.client.media.manager import MediaManager
from conf_cli.client.meeting_loop import run_meeting
from conf_cli.plugin.registry import registry
from conf_cli.plugin.transport import TransportOptions
from conf_cli.testing.tap import start_tap
from conf_cli.urls import parse_server_url

Message = dict[str, Any]
WAIT = 30.0
INJECT_TIME = 0.01  # seconds one replayed event takes here
FLOOD = 20_000  # move events numbered by x = i / FLOOD


class RecordingInjector:
    def __init__(self) -> None:
        self.replayed: list[tuple[float, Mapping[str, Any]]] = []  # (when it began, event)
        self.closed = threading.Event()

    def inject(self, event: Mapping[str, Any]) -> None:
        self.replayed.append((time.monotonic(), event))
        time.sleep(INJECT_TIME)

    def close(self) -> None:
        self.closed.set()


class RecordingInjectorFactory:
    name = "recording"

    def __init__(self) -> None:
        self.opened: list[RecordingInjector] = []

    def open(self, options: Mapping[str, Any]) -> RecordingInjector:
        injector = RecordingInjector()
        self.opened.append(injector)
        return injector


class SmallScreen:
    """The ``screen`` source, as a small synthetic picture (no display needed)."""

    name = "screen"
    kind = "screen"

    def open(self, options: Mapping[str, Any]) -> Any:
        return registry().sources["pattern"].open({"size": "320x180", "fps": 5})


class TypedLines:
    """The controlled person's keyboard: lines put here are typed; ``typed`` says when each was read."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.typed: dict[str, float] = {}
        self.events: list[Message] = []

    def show(self, event: Message) -> None:
        self.events.append(event)

    def show_help(self) -> None:
        pass

    async def lines(self) -> AsyncIterator[str]:
        while (line := await self.queue.get()) is not None:
            self.typed[line] = time.monotonic()
            yield line

    def close(self) -> None:
        pass

    async def expect(self, kind: str, timeout: float = WAIT) -> Message:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events:
                if event.get("type") == kind:
                    return event
            await asyncio.sleep(0.02)
        raise AssertionError(f"no {kind!r} within {timeout} s; got {[e['type'] for e in self.events][-10:]}")


def plain_client(reg: Any, url: str) -> Client:
    return Client(reg, parse_server_url(url), TransportOptions(security=None))


async def until(kind: str, client: Client, timeout: float = WAIT) -> Message:
    async with asyncio.timeout(timeout):
        while (event := await client.events.get())["type"] != kind:
            pass
    return event


def test_revoke_stops_input_at_once_when_the_server_never_answers(plain_server: str) -> None:
    dropped: list[float] = []

    def drop_revokes(conn: int, message: Message) -> Message | None:
        if message.get("type") == "control_revoke":
            dropped.append(time.monotonic())
            return None  # the server never hears of it, and so never answers
        return message

    injectors = RecordingInjectorFactory()
    reg = copy.copy(registry())
    reg.injectors = {"recording": injectors}
    reg.sources = {**reg.sources, "screen": SmallScreen()}

    async def scenario(tap_url: str) -> tuple[dict[int, float], TypedLines, list[Message]]:
        ada = plain_client(reg, tap_url)
        await ada.connect()
        created, joined = await ada.create("Ada", "pass-123")
        ui = TypedLines()
        media = MediaManager(ada, ui.show)
        control = DesktopControl(ada, media, ui.show)
        meeting = asyncio.create_task(run_meeting(ada, ui, [created, joined], media, control))  # type: ignore[arg-type]

        bob = plain_client(registry(), plain_server)
        await bob.connect()
        await bob.join(created["meeting"], "Bob", "pass-123")
        bob.send({"type": "control_request", "name": "Ada"})
        await ui.expect("control_requested")
        ui.queue.put_nowait("y")
        await until("control_granted", bob)

        sent: dict[int, float] = {}
        stop_flood = asyncio.Event()

        async def flood() -> None:  # 500 events a second offered; the server relays 250
            number = 0
            while not stop_flood.is_set() and number < FLOOD:
                for _ in range(5):
                    sent[number] = time.monotonic()
                    bob.send({"type": "control_input", "action": "move", "x": number / FLOOD, "y": 0.5})
                    number += 1
                await asyncio.sleep(0.01)

        flooding = asyncio.create_task(flood())
        await asyncio.sleep(2.0)  # a backlog builds up on Ada's side
        ui.queue.put_nowait("/revoke")
        await asyncio.sleep(3.0)  # the flood goes on; the server still relays it
        stop_flood.set()
        await flooding
        bob_events: list[Message] = []
        while not bob.events.empty():
            bob_events.append(bob.events.get_nowait())
        ui.queue.put_nowait(None)
        async with asyncio.timeout(WAIT):
            await meeting
        await bob.close()
        return sent, ui, bob_events

    with start_tap(plain_server, upstream=drop_revokes) as tap:
        sent, ui, bob_events = asyncio.run(scenario(tap.url))

    revoked_at = ui.typed["/revoke"]
    assert dropped, "the tap did not see the revoke"
    assert not [e for e in bob_events if e["type"] == "control_revoked"]  # the server kept the grant
    [injector] = injectors.opened
    assert injector.replayed, "no input was replayed while control was granted"
    # Nothing is replayed after the revoke (a few ms for the thread to notice, at most)...
    late = [when - revoked_at for when, _ in injector.replayed if when > revoked_at + 0.05]
    assert not late, f"{len(late)} events replayed after the revoke, the last {max(late):.2f} s after it"
    # ... and nothing replayed had waited long (0.25 s here, plus the trip through server and tap).
    ages = [when - sent[round(float(event["x"]) * FLOOD)] for when, event in injector.replayed]
    assert max(ages) < 1.0, f"input replayed {max(ages):.2f} s after it was sent"
    assert injector.closed.wait(WAIT)  # and whatever it held is released


def test_an_answer_for_a_request_that_has_gone_grants_nobody(plain_server: str) -> None:
    """Ada's yes was for Bob; Bob withdrew and Eve asked before it arrived: the server grants no one."""

    async def scenario() -> None:
        people: dict[str, Client] = {}
        for name in ("Ada", "Bob", "Eve"):
            people[name] = plain_client(registry(), plain_server)
            await people[name].connect()
        created, _ = await people["Ada"].create("Ada", "pass-123")
        for name in ("Bob", "Eve"):
            await people[name].join(created["meeting"], name, "pass-123")
        ada, bob, eve = people["Ada"], people["Bob"], people["Eve"]
        try:
            bob.send({"type": "control_request", "name": "Ada"})
            asked = await until("control_requested", ada)
            bob.send({"type": "control_revoke"})
            assert (await until("control_denied", ada))["reason"] == "withdrawn"
            eve.send({"type": "control_request", "name": "Ada"})
            assert (await until("control_requested", ada))["controller"] == "Eve"
            # Ada's answer, typed for Bob's request, arrives now.
            ada.send({"type": "control_accept", "request": asked["request"]})
            refused = await until("error", ada)
            assert refused["code"] == "no_request" and refused["re"] == "control_accept"
            eve.send({"type": "who"})
            async with asyncio.timeout(WAIT):
                while (event := await eve.events.get())["type"] != "participants":
                    assert event["type"] != "control_granted", "Eve was granted control by Bob's answer"
        finally:
            for client in people.values():
                await client.close()

    asyncio.run(scenario())
