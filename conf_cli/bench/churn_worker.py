"""A churn load-generator process: clients that join a meeting with its passcode, chat, then leave or
drop their connection, over and over (``conf bench --churn``).

Started as ``python -m conf_cli.bench.churn_worker FD`` where FD is one end of a socket pair carrying
:mod:`multiprocessing.connection` messages. From the parent: a :class:`ChurnPlan`, then ``("start",)``
(or ``("stop",)`` at any time). To the parent: ``("ready",)`` once loaded, then ``("done",
ChurnTotals)`` when its share of joins is done, or ``("error", text)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from array import array
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

from conf_cli.bench.churn_plan import ChurnPlan, ChurnTotals
from conf_cli.bench.generator import run_generator
from conf_cli.bench.links import client_options
from conf_cli.client.link import Client
from conf_cli.errors import ConfError, RequestRefused
from conf_cli.plugin.registry import registry
from conf_cli.urls import parse_server_url

START_TIMEOUT = 120.0
STEP_TIMEOUT = 30.0
"""The longest one step of a cycle (connect, join, chat, leave) may take before it counts as failed."""


async def _until(client: Client, wanted: str, match: dict[str, Any]) -> None:
    """Wait for ``wanted`` (with ``match``) on ``client``'s events, skipping the meeting's other news."""
    async with asyncio.timeout(STEP_TIMEOUT):
        while True:
            event = await client.events.get()
            if event["type"] == "disconnected":
                raise ConfError(f"lost the server: {event.get('reason')}")
            if event["type"] == wanted and all(event.get(k) == v for k, v in match.items()):
                return


def drop(client: Client) -> None:
    """End ``client``'s connection as a crash would: no ``leave``, no TLS close, the socket just goes."""
    link = client.link
    transport = getattr(link, "transport", None)
    if transport is not None:
        transport.abort()
    elif link is not None:
        link.close()


class ChurnWorker:
    def __init__(self, conn: Connection, plan: ChurnPlan) -> None:
        self.conn = conn
        self.plan = plan
        self.inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self.join_ns = array("q")
        self.connect_ns = array("q")
        self.chat_ns = array("q")
        self.errors: Counter[str] = Counter()
        self.left = 0
        self.dropped = 0
        self.started = 0
        self.stopping = False

    async def cycle(self, number: int) -> None:
        """One client's life: connect, join with the passcode, chat, then leave or drop."""
        plan = self.plan
        options = client_options(plan.url, plan.encryption, plan.fingerprint, connect_timeout=STEP_TIMEOUT)
        client = Client(registry(), parse_server_url(plan.url), options)
        name = f"c{plan.index}-{number}"
        meeting = plan.meetings[number % len(plan.meetings)]
        try:
            began = time.monotonic_ns()
            await client.connect()
            connected = time.monotonic_ns()
            async with asyncio.timeout(STEP_TIMEOUT):
                await client.join(meeting, name, plan.passcode)
            joined = time.monotonic_ns()
            self.connect_ns.append(connected - began)
            self.join_ns.append(joined - began)
            if plan.chat:
                client.send({"type": "chat", "text": f"hello from {name}"})
                await _until(client, "chat", {"from": name})
                self.chat_ns.append(time.monotonic_ns() - joined)
            if plan.stay > 0:
                await asyncio.sleep(plan.stay)
            if plan.drop_every and number % plan.drop_every == plan.drop_every - 1:
                drop(client)
                self.dropped += 1
            else:
                client.send({"type": "leave"})
                await _until(client, "left", {"meeting": meeting})
                self.left += 1
        except RequestRefused as refusal:
            self.errors[refusal.code] += 1
        except (ConfError, TimeoutError, OSError) as exc:
            self.errors[type(exc).__name__ if not isinstance(exc, ConfError) else _short(str(exc))] += 1
        finally:
            await client.close()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        threading.Thread(target=self._read_pipe, args=(loop,), daemon=True).start()
        registry()  # loads the plugins now, not in the first measured join
        self.conn.send(("ready",))
        message = await asyncio.wait_for(self.inbox.get(), START_TIMEOUT)
        if message[0] != "start":
            return
        plan = self.plan
        gate = asyncio.Semaphore(plan.clients)
        tasks: set[asyncio.Task[None]] = set()
        start = time.monotonic()
        end = start + plan.duration if plan.joins == 0 else None
        number = 0
        while not self.stopping and (plan.joins == 0 or number < plan.joins):
            if end is not None and time.monotonic() >= end:
                break
            if plan.rate > 0:  # an open schedule: the next join starts on time, whoever is still busy
                delay = start + number / plan.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await gate.acquire()
            task = asyncio.create_task(self._gated(gate, number))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            number += 1
        self.started = number
        if tasks:
            await asyncio.wait(tasks)
        self.conn.send(("done", self.totals(time.monotonic() - start)))

    async def _gated(self, gate: asyncio.Semaphore, number: int) -> None:
        try:
            await self.cycle(number)
        finally:
            gate.release()

    def totals(self, seconds: float) -> ChurnTotals:
        return ChurnTotals(
            started=self.started,
            joined=len(self.join_ns),
            left=self.left,
            dropped=self.dropped,
            errors=dict(self.errors),
            join_ns=self.join_ns.tobytes(),
            connect_ns=self.connect_ns.tobytes(),
            chat_ns=self.chat_ns.tobytes(),
            seconds=seconds,
        )

    def _read_pipe(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                message = ("stop",)
            if message[0] == "stop":
                self.stopping = True
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(self.inbox.put_nowait, message)
            if message[0] == "stop":
                return


def _short(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."


async def _main(conn: Connection) -> None:
    plan: ChurnPlan = conn.recv()
    await ChurnWorker(conn, plan).run()


if __name__ == "__main__":
    sys.exit(run_generator(sys.argv, _main))
