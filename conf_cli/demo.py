"""``conf demo``: a meeting on an embedded local server with synthetic participants.

The participants chat, answer private messages, and two of them share media from synthetic sources (a
moving test pattern and a tone), so the demo shows the whole path on a machine without devices. In a
terminal you are the host: the pattern appears in the meeting view. Without a terminal a scripted host
runs the meeting and every event, track statistics included, is printed as a JSON line.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

from conf_cli.client.link import Client
from conf_cli.client.runner import attend
from conf_cli.client.ui.machine import MachineUI
from conf_cli.errors import ConfError
from conf_cli.identity import Identity
from conf_cli.plugin.registry import registry
from conf_cli.plugin.security import Security, client_security
from conf_cli.plugin.transport import TransportOptions
from conf_cli.protocol.control import Message
from conf_cli.server.edge import Endpoint, Server
from conf_cli.urls import parse_server_url

BOT_NAMES = ["Ada", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Dennis", "Radia", "Edsger", "Frances"]
BOT_LINES = [
    "hello everyone",
    "can you all hear me?",
    "I'm sharing a test pattern",
    "the numbers look good this week",
    "let's take questions at the end",
    "agreed",
    "one moment, my cat is on the keyboard",
]
# What the first synthetic participants share: a source name and its options.
BOT_SHARES: list[tuple[str, dict[str, Any]]] = [
    ("pattern", {"width": 640, "height": 360, "fps": 15}),
    ("tone", {"frequency": 330}),
]
SCRIPTED_DURATION = 20.0


async def _bot(
    url: str,
    meeting: str,
    passcode: str,
    name: str,
    share: tuple[str, dict[str, Any]] | None,
    fingerprint: str,
) -> None:
    """A synthetic participant: joins, shares, chats now and then, answers private messages."""
    from conf_cli.client.media.manager import MediaManager

    rng = random.Random(name)
    security = client_security(registry().ciphers, url, "on", fingerprint, pin=False)
    client = Client(registry(), parse_server_url(url), TransportOptions(security=security))
    await client.connect()
    await client.join(meeting, name, passcode)
    media = MediaManager(client, lambda event: None)
    try:
        if share is not None:
            with contextlib.suppress(ConfError):  # a demo goes on without a source that cannot open
                await media.share(*share)
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
            media.handle_event(event)
            if event["type"] in ("meeting_closed", "kicked", "disconnected", "left"):
                return
            if event["type"] == "chat" and event.get("private") and event.get("from") != name:
                client.send({"type": "chat", "to": event["from"], "text": f"you said {event['text']!r}"})
    finally:
        await media.close()
        await client.close()


async def _script(bots: list[str]) -> AsyncIterator[str]:
    """What the scripted host types."""
    steps = [
        (2.0, "welcome to the conf demo"),
        (1.0, "/who"),
        (1.0, f"/admin {bots[0]}"),
        (1.0, f"/msg {bots[-1]} a private word"),
        (1.0, "/lock"),
        (1.0, "/forbid chat"),
        (1.0, "/permit chat"),
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


async def run_demo(
    participants: int, duration: float | None, name: str, *, interactive: bool, play: bool = False
) -> int:
    server = Server(registry())
    identity = Identity.generate()  # an embedded server for this demo only: its key is not kept or pinned
    options = TransportOptions(security=Security(registry().ciphers, identity))
    (url,) = await server.start([Endpoint("tcp", "127.0.0.1", 0)], options)
    names = [bot for bot in BOT_NAMES if bot.casefold() != name.casefold()][:participants]
    bots: list[asyncio.Task[None]] = []

    def start_bots(created: Message) -> None:
        for index, bot_name in enumerate(names):
            share = BOT_SHARES[index] if index < len(BOT_SHARES) else None
            bots.append(
                asyncio.create_task(
                    _bot(url, created["meeting"], created["passcode"], bot_name, share, identity.fingerprint)
                )
            )

    meeting = attend(
        parse_server_url(url),
        name,
        None,
        None,
        not interactive,
        play=play,
        ui=None if interactive else _ScriptedUI(names),
        on_created=start_bots,
        fingerprint=identity.fingerprint,
        pin=False,
    )
    try:
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
