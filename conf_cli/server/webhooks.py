"""Webhooks: ``conf server --webhook URL`` POSTs what happens in meetings to other programs.

Each :class:`~conf_cli.server.journal.Happening` becomes one JSON object (an ``id``, its ``type``, a
``seq`` number, the ``time`` and the meeting) POSTed to every URL, signed with HMAC-SHA256 over the
timestamp and the body under the secret in ``webhook.key`` in the server's folder::

    Conf-Signature: t=1765000000,v1=<hex HMAC-SHA256(secret, "1765000000." + body)>

A receiver checks the signature with :func:`verify` (or the few lines in docs/operations.md), refuses
timestamps too far from its clock, and remembers event ids it has handled (a retry carries the same id
with a new timestamp).

Each URL has its own lane: a bounded queue and one task delivering its events one at a time, in order,
retrying a failed delivery with exponential backoff up to a bounded number of attempts. :meth:`Webhooks.post`
only appends to the queues, so the server never waits for a receiver; when a lane's queue is full (its
receiver down for long), new events for it are dropped and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections import deque
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

import aiohttp

from conf_cli.errors import ConfError
from conf_cli.server.journal import Happening
from conf_cli.version import __version__

log = logging.getLogger("conf.webhooks")

SIGNATURE_HEADER = "Conf-Signature"
EVENT_ID_HEADER = "Conf-Event-Id"
EVENT_HEADER = "Conf-Event"
TOLERANCE = 300.0
"""Seconds a receiver should accept between a signature's timestamp and its own clock (:func:`verify`)."""
MAX_QUEUE = 1_000
"""Events waiting per URL at most."""
MAX_ATTEMPTS = 10
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0
POST_TIMEOUT = 10.0
CLOSE_GRACE = 2.0  # seconds a stopping server gives its queued events (the last meeting_ended ...)
"""Seconds one delivery may take, connecting included."""
MAX_URL_CHARS = 2_000


class BadSignature(ValueError):
    """A webhook's ``Conf-Signature`` does not prove the body came from the server now."""


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``Conf-Signature`` header value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    mac = hmac.new(secret, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: bytes, header: str, body: bytes, now: float, tolerance: float = TOLERANCE) -> int:
    """Check a ``Conf-Signature`` header against ``body``; return its timestamp, or raise BadSignature.

    Refuses a timestamp more than ``tolerance`` seconds from ``now`` (a replay of an old delivery)."""
    timestamp: int | None = None
    macs: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1":
            macs.append(value)
    if timestamp is None or not macs:
        raise BadSignature("malformed signature header: expected t=TIMESTAMP,v1=HEX")
    if abs(now - timestamp) > tolerance:
        raise BadSignature(f"signature timestamp is {abs(now - timestamp):.0f} s away from now; a replay?")
    expected = sign(secret, timestamp, body).partition(",v1=")[2].encode("ascii")
    if not any(hmac.compare_digest(expected, mac.encode("utf-8", "replace")) for mac in macs):
        raise BadSignature("signature does not match the body")
    return timestamp


def check_url(url: str) -> str:
    """A ``--webhook`` URL as given, or ConfError saying what is wrong with it."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > MAX_URL_CHARS:
        raise ConfError(f"--webhook {url!r}: expected an http:// or https:// URL")
    return url


@dataclass
class WebhookStats:
    delivered: int = 0
    failed_attempts: int = 0  # deliveries that got no 2xx answer (each retried, up to MAX_ATTEMPTS)
    given_up: int = 0  # events dropped after MAX_ATTEMPTS
    dropped: int = 0  # events not queued: the URL's queue was full


@dataclass(frozen=True)
class _Event:
    id: str
    kind: str
    body: bytes


class _Lane:
    """One URL's queue and the task that delivers it, in order."""

    def __init__(self, url: str, owner: Webhooks) -> None:
        self.url = url
        self.owner = owner
        self.queue: deque[_Event] = deque()
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.full_logged = False

    def put(self, event: _Event) -> None:
        if len(self.queue) >= self.owner.max_queue:
            self.owner.stats.dropped += 1
            if not self.full_logged:
                self.full_logged = True
                log.warning("webhook %s: %d events waiting; dropping new ones", self.url, len(self.queue))
            return
        self.queue.append(event)
        self.wake.set()

    async def run(self, session: aiohttp.ClientSession) -> None:
        while True:
            if not self.queue:
                self.full_logged = False
                self.wake.clear()
                await self.wake.wait()
                continue
            await self._deliver(session, self.queue[0])
            self.queue.popleft()

    async def _deliver(self, session: aiohttp.ClientSession, event: _Event) -> None:
        owner = self.owner
        delay = owner.first_backoff
        why = ""
        for attempt in range(1, owner.max_attempts + 1):
            headers = {
                "Content-Type": "application/json",
                "User-Agent": f"conf/{__version__}",
                SIGNATURE_HEADER: sign(owner.secret, int(time.time()), event.body),
                EVENT_ID_HEADER: event.id,
                EVENT_HEADER: event.kind,
            }
            try:
                async with session.post(
                    self.url, data=event.body, headers=headers, allow_redirects=False
                ) as response:
                    if 200 <= response.status < 300:
                        owner.stats.delivered += 1
                        return
                    why = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                why = str(exc) or type(exc).__name__
            owner.stats.failed_attempts += 1
            if attempt < owner.max_attempts:
                log.info(
                    "webhook %s: event %s not delivered (%s); retrying in %.1f s",
                    self.url,
                    event.id,
                    why,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, owner.max_backoff)
        owner.stats.given_up += 1
        log.warning(
            "webhook %s: gave up on event %s after %d attempts (%s)",
            self.url,
            event.id,
            owner.max_attempts,
            why,
        )


class Webhooks:
    """Delivers happenings to every ``--webhook`` URL; start, :meth:`post` from anywhere, close."""

    def __init__(
        self,
        urls: list[str],
        secret: bytes,
        *,
        max_queue: int = MAX_QUEUE,
        max_attempts: int = MAX_ATTEMPTS,
        first_backoff: float = FIRST_BACKOFF,
        max_backoff: float = MAX_BACKOFF,
        timeout: float = POST_TIMEOUT,
    ) -> None:
        self.secret = secret
        self.max_queue = max_queue
        self.max_attempts = max_attempts
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self.stats = WebhookStats()
        self.lanes = [_Lane(check_url(url), self) for url in dict.fromkeys(urls)]
        self._seq = 0
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            connector=aiohttp.TCPConnector(limit=len(self.lanes)),  # one delivery per lane at a time
        )
        for lane in self.lanes:
            lane.task = asyncio.create_task(lane.run(self._session), name=f"webhook {lane.url}")

    def post(self, happenings: list[Happening], when: float | None = None) -> None:
        """Queue each happening for every URL (never waits); ``when`` is its Unix time (default now)."""
        stamp = time.time() if when is None else when
        for happening in happenings:
            self._seq += 1
            event_id = f"evt_{secrets.token_hex(12)}"
            payload = {
                "id": event_id,
                "type": happening.event,
                "seq": self._seq,
                "time": round(stamp, 3),
                "meeting": happening.meeting,
                **happening.fields,
            }
            body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            event = _Event(event_id, happening.event, body)
            for lane in self.lanes:
                lane.put(event)

    def stats_dict(self) -> dict[str, int]:
        return {**asdict(self.stats), "queued": sum(len(lane.queue) for lane in self.lanes)}

    async def close(self, grace: float = CLOSE_GRACE) -> None:
        """Stop delivering, once what is queued has gone out or ``grace`` seconds have passed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                while any(lane.queue for lane in self.lanes):
                    await asyncio.sleep(0.02)
        undelivered = sum(len(lane.queue) for lane in self.lanes)
        if undelivered:
            log.warning("webhooks: %d events not delivered when the server stopped", undelivered)
        for lane in self.lanes:
            if lane.task is not None:
                lane.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await lane.task
        if self._session is not None:
            await self._session.close()
            self._session = None
