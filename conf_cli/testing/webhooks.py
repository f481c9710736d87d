"""A webhook receiver for tests: a real aiohttp endpoint that checks every ``Conf-Signature`` with the
server's ``webhook.key`` (in the test's ``CONF_HOME``) and keeps each event once, in arrival order."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from conf_cli.server.webhooks import EVENT_ID_HEADER, SIGNATURE_HEADER, BadSignature, verify
from conf_cli.testing.processes import test_home as conf_home

Event = dict[str, Any]


class Receiver:
    """An HTTP endpoint that keeps every webhook whose signature holds, once per event id."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.ids: set[str] = set()
        self.refused: list[str] = []
        self.posts = 0
        self.port = 0
        self.runner: web.AppRunner | None = None
        self.lock = threading.Lock()

    def secret(self) -> bytes:
        return (Path(conf_home()) / "server" / "webhook.key").read_text().strip().encode()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        with self.lock:
            self.posts += 1
            try:
                verify(self.secret(), request.headers.get(SIGNATURE_HEADER, ""), body, time.time())
            except BadSignature as exc:
                self.refused.append(str(exc))
                return web.Response(status=401)
            event = json.loads(body)
            assert request.headers[EVENT_ID_HEADER] == event["id"]
            if event["id"] not in self.ids:  # a retry of what was delivered already: keep it once
                self.ids.add(event["id"])
                self.events.append(event)
        return web.Response(status=204)

    async def up(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        if not self.port:
            self.port = self.runner.addresses[0][1]

    async def down(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def seen(self) -> list[tuple[str, str | None]]:
        with self.lock:
            return [(e["type"], e.get("name")) for e in self.events]


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)
