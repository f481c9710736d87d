"""Webhook signatures (tampered, replayed, wrong key), and the sender's lanes in process against real
HTTP receivers: order, retries across an outage, a receiver that never answers, bounded queues."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from aiohttp import web

from conf_cli.errors import ConfError
from conf_cli.server.journal import Happening
from conf_cli.server.webhooks import (
    EVENT_HEADER,
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    BadSignature,
    Webhooks,
    check_url,
    sign,
    verify,
)

SECRET = b"test-secret"
BODY = b'{"id":"evt_1","type":"meeting_started"}'
T = 1765010000


def test_the_signature_is_hmac_sha256_over_the_timestamp_and_the_body() -> None:
    expected = hmac.new(SECRET, b"1765010000." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, T, BODY) == f"t={T},v1={expected}"
    assert verify(SECRET, sign(SECRET, T, BODY), BODY, now=T + 10) == T


def test_a_tampered_body_or_timestamp_a_wrong_key_and_a_replay_are_refused() -> None:
    header = sign(SECRET, T, BODY)
    with pytest.raises(BadSignature, match="does not match"):
        verify(SECRET, header, BODY.replace(b"started", b"ended"), now=T)
    with pytest.raises(BadSignature, match="does not match"):
        verify(SECRET, header.replace(f"t={T}", f"t={T + 1}"), BODY, now=T)
    with pytest.raises(BadSignature, match="does not match"):
        verify(b"another-secret", header, BODY, now=T)
    with pytest.raises(BadSignature, match="replay"):
        verify(SECRET, header, BODY, now=T + 3600)  # the same request, an hour later
    for malformed in ("", "v1=abc", f"t={T}", "t=soon,v1=abc"):
        with pytest.raises(BadSignature, match="malformed"):
            verify(SECRET, malformed, BODY, now=T)


def test_webhook_urls_are_checked() -> None:
    assert check_url("https://hooks.example/conf") == "https://hooks.example/conf"
    for bad in ("ftp://x/", "http://", "hooks.example/conf"):
        with pytest.raises(ConfError, match="--webhook"):
            check_url(bad)


class Receiver:
    """A real HTTP receiver on loopback that can go down and come back on its port."""

    def __init__(self, *, hang: bool = False) -> None:
        self.got: list[dict[str, Any]] = []
        self.hang = hang
        self.port = 0
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.hang:
            await asyncio.sleep(3600)
        verify(SECRET, request.headers[SIGNATURE_HEADER], body, time.time())
        event = json.loads(body)
        assert request.headers[EVENT_ID_HEADER] == event["id"]
        assert request.headers[EVENT_HEADER] == event["type"]
        self.got.append(event)
        return web.Response(status=204)

    async def never(self, request: web.Request) -> web.Response:
        await asyncio.sleep(3600)
        return web.Response(status=204)

    async def up(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        app.router.add_post("/hang", self.never)
        self.runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True).start()
        self.port = self.runner.addresses[0][1]

    async def down(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


def joined(name: str, meeting: str = "m-1") -> Happening:
    return Happening("participant_joined", meeting, {"name": name, "role": "member"})


async def until(condition: Any, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


async def test_events_arrive_in_order_and_retries_deliver_after_an_outage() -> None:
    receiver = Receiver()
    await receiver.up()
    hooks = Webhooks([receiver.url], SECRET, first_backoff=0.1, max_backoff=0.4)
    await hooks.start()
    try:
        hooks.post([joined("ada"), joined("bob")])
        await until(lambda: len(receiver.got) == 2)
        await receiver.down()
        hooks.post([joined(f"guest{index}") for index in range(5)])
        await until(lambda: hooks.stats.failed_attempts >= 2)  # refused connections, retried
        await receiver.up()
        await until(lambda: len(receiver.got) == 7)
        assert [event["name"] for event in receiver.got] == ["ada", "bob"] + [f"guest{i}" for i in range(5)]
        assert [event["seq"] for event in receiver.got] == list(range(1, 8))
        assert len({event["id"] for event in receiver.got}) == 7
        assert hooks.stats.delivered == 7 and hooks.stats.given_up == 0
    finally:
        await hooks.close()
        await receiver.down()


async def test_a_receiver_that_never_answers_blocks_nothing_and_memory_stays_bounded() -> None:
    receiver = Receiver(hang=True)
    await receiver.up()
    hooks = Webhooks([receiver.url], SECRET, max_queue=10, timeout=0.5, first_backoff=0.1, max_attempts=2)
    await hooks.start()
    try:
        started = time.monotonic()
        for index in range(1_000):
            hooks.post([joined(f"p{index}")])
        assert time.monotonic() - started < 1.0  # posting only queues
        assert hooks.stats_dict()["queued"] <= 10 and hooks.stats.dropped >= 990
        await until(lambda: hooks.stats.given_up >= 1)  # each event: 2 attempts of 0.5 s, then given up
        assert hooks.stats.delivered == 0 and receiver.got == []
    finally:
        await hooks.close()
        await receiver.down()


async def test_each_url_has_its_own_lane() -> None:
    alive, dead = Receiver(), Receiver()
    await alive.up()
    await dead.up()
    dead_url = dead.url
    await dead.down()
    hanging = alive.url.replace("/hook", "/hang")  # the same host and port as a good one
    hooks = Webhooks([dead_url, hanging, alive.url], SECRET, first_backoff=0.2, timeout=60)
    await hooks.start()
    try:
        hooks.post([joined("ada"), joined("bob")])
        # held up by neither the dead one nor the hanging one (whose delivery would take 60 s)
        await until(lambda: len(alive.got) == 2, timeout=10)
    finally:
        await hooks.close()
        await alive.down()


async def test_events_queued_when_the_server_stops_are_delivered_before_it_closes() -> None:
    # what a stopping server posts last (a recorder's recording_finished, meeting_ended) still goes out
    receiver = Receiver()
    await receiver.up()
    hooks = Webhooks([receiver.url], SECRET)
    await hooks.start()
    try:
        hooks.post([joined(f"p{index}") for index in range(20)])
        await hooks.close()
        assert [event["name"] for event in receiver.got] == [f"p{index}" for index in range(20)]
    finally:
        await receiver.down()


async def test_a_stop_waits_no_longer_than_its_grace_for_a_receiver_that_never_answers() -> None:
    receiver = Receiver(hang=True)
    await receiver.up()
    hooks = Webhooks([receiver.url], SECRET, timeout=60)
    await hooks.start()
    try:
        hooks.post([joined("ada")])
        started = time.monotonic()
        await hooks.close(grace=0.5)
        assert time.monotonic() - started < 5.0 and receiver.got == []
    finally:
        await receiver.down()
