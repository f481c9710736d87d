"""``conf demo``: a meeting on an embedded local server with synthetic participants.

In a terminal you are the host and can chat with the participants, who answer private messages. Without
a terminal a scripted host runs the meeting and every event is printed as a JSON line.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator

from conf_cli.client import Client
from conf_cli.meeting_runner import make_ui
from conf_cli.plugins import registry
from conf_cli.server import Endpoint, Server
from conf_cli.session import run_meeting
from conf_cli.ui.machine import MachineUI
from conf_cli.urls import parse_server_url

BOT_NAMES = ["Ada", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Radia", "Edsger", "Frances"]
BOT_LINES = [
    "hello everyone",
    "can you all hear me?",
    "I'll share my screen in a minute",
    "the numbers look good this week",
    "let's take questions at the end",
    "agreed",
    "one moment, my cat is on the keyboard",
]
SCRIPTED_DURATION = 20.0


async def _bot(url: str, meeting: str, passcode: str, name: str, seed: int) -> None:
    """A synthetic participant: joins, chats now and then, answers private messages."""
    rng = random.Random(f"{name}-{seed}")
    client = Client(registry(), parse_server_url(url))
    await client.connect()
    await client.join(meeting, name, passcode)
    try:
        next_line = asyncio.get_running_loop().time() + rng.uniform(2, 6)
        while True:
            timeout = max(0.0, next_line - asyncio.get_running_loop().time())
            try:
                async with asyncio.timeout(timeout):
                    event = await client.events.get()
            except TimeoutError:
                client.send({"type": "chat", "text": rng.choice(BOT_LINES)})
                next_line = asyncio.get_running_loop().time() + rng.uniform(5, 12)
                continue
            if event["type"] in ("meeting_closed", "kicked", "disconnected", "left"):
                return
            if event["type"] == "chat" and event.get("private") and event.get("from") != name:
                client.send({"type": "chat", "to": event["from"], "text": f"you said {event['text']!r}"})
    finally:
        await client.close()


async def _script(bots: list[str]) -> AsyncIterator[str]:
    """What the scripted host types."""
    steps = [
        (2.0, "welcome to the conf demo"),
        (1.0, "/who"),
        (1.0, f"/admin {bots[0]}"),
        (1.0, f"/msg {bots[-1]} a private word"),
        (1.0, "/lock"),
        (1.0, "/forbid video"),
        (1.0, "/permit video"),
        (1.0, "/unlock"),
    ]
    for delay, line in steps:
        await asyncio.sleep(delay)
        yield line
    await asyncio.sleep(max(0.0, SCRIPTED_DURATION - sum(d for d, _ in steps)))
    yield "/end"


class _ScriptedUI(MachineUI):
    def __init__(self, bots: list[str]) -> None:
        super().__init__()
        self._bots = bots

    def lines(self) -> AsyncIterator[str]:
        return _script(self._bots)


async def run_demo(participants: int, duration: float | None, name: str, *, interactive: bool) -> int:
    server = Server(registry())
    (url,) = await server.start([Endpoint("tcp", "127.0.0.1", 0)])
    host = Client(registry(), parse_server_url(url))
    bots: list[asyncio.Task[None]] = []
    try:
        await host.connect()
        created, joined = await host.create(name)
        names = [bot for bot in BOT_NAMES if bot.casefold() != name.casefold()][:participants]
        for index, bot_name in enumerate(names):
            bots.append(
                asyncio.create_task(_bot(url, created["meeting"], created["passcode"], bot_name, index))
            )
        ui = make_ui(False, name) if interactive else _ScriptedUI(names)
        meeting = run_meeting(host, ui, [created, joined])
        if duration is None:
            return await meeting
        try:
            async with asyncio.timeout(duration):
                return await meeting
        except TimeoutError:
            return 0
    finally:
        for task in bots:
            task.cancel()
        for task in bots:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await server.close()
