"""Pacing the video the server sends one subscriber while it moves down for want of downlink.

When a subscriber's downlink queues (docs/media.md, "A layer per subscriber"), the server stops its old
layer at once and waits for the new layer's keyframe. On a datagram path the bottleneck's queue is full at
that moment: a keyframe sent into it in one burst loses its tail, the subscriber asks for it again, and the
picture stands for another queue's length. Let out at less than what the downlink carries, the keyframe
finds room as the queue drains and gets through whole, no later than it would have (the queue is first in,
first out: what enters it while it drains leaves when it has drained). Audio is never paced.

:class:`Pacer` is the sans-I/O part (a queue and a token bucket); :class:`Pacers` lets each subscriber's
paced packets out on the event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence

from conf_cli.plugin.transport import Link

PACE_BURST = 1_500
"""Bytes a pacer may let out at once (one packet)."""
PACE_QUEUE_LIMIT = 256 * 1024
"""Bytes a pacer holds; a packet that would take it past this is dropped (counted)."""


class Pacer:
    """One subscriber's paced packets, in order: each leaves once the bucket, filled at ``rate`` bit/s up
    to :data:`PACE_BURST` bytes, holds its size (a packet larger than that once the bucket is full, the
    bucket going below zero: the next waits the longer)."""

    __slots__ = ("_at", "_queue", "_tokens", "bytes_per_second", "dropped", "queued")

    def __init__(self, rate: float, now: float) -> None:
        self.bytes_per_second = max(1.0, rate / 8)
        self._queue: deque[bytes] = deque()
        self.queued = 0
        """Bytes waiting."""
        self.dropped = 0
        """Packets dropped because the queue was full."""
        self._tokens = float(PACE_BURST)
        self._at = now

    def push(self, packet: bytes) -> bool:
        """Queue ``packet``; False (and dropped) if the queue is full."""
        if self.queued + len(packet) > PACE_QUEUE_LIMIT:
            self.dropped += 1
            return False
        self._queue.append(packet)
        self.queued += len(packet)
        return True

    def due(self, now: float) -> list[bytes]:
        """The packets that may leave at ``now``, in order."""
        self._tokens = min(PACE_BURST, self._tokens + (now - self._at) * self.bytes_per_second)
        self._at = now
        out: list[bytes] = []
        queue = self._queue
        while queue and self._tokens + 0.01 >= min(len(queue[0]), PACE_BURST):  # (a timer's rounding)
            packet = queue.popleft()
            self.queued -= len(packet)
            self._tokens -= len(packet)
            out.append(packet)
        return out

    def wait(self) -> float | None:
        """Seconds from the last :meth:`due` until the next packet may leave; None if none waits."""
        if not self._queue:
            return None
        return max(0.0, (min(len(self._queue[0]), PACE_BURST) - self._tokens) / self.bytes_per_second)


class Pacers:
    """The pacers of the subscribers being paced, each let out on a timer of the event loop."""

    def __init__(self) -> None:
        self._pacers: dict[int, tuple[Pacer, Link]] = {}
        self._timer: asyncio.TimerHandle | None = None

    def sender(self, link: Link, rate: float, now: float) -> Callable[[bytes, Sequence[Link]], None]:
        """What sends a packet to ``link`` through its pacer (made at ``rate`` bit/s if it has none)."""
        entry = self._pacers.get(link.id)
        if entry is None or entry[1] is not link:
            entry = self._pacers[link.id] = (Pacer(rate, now), link)
        pacer = entry[0]

        def send(packet: bytes, _links: Sequence[Link]) -> None:
            pacer.push(packet)
            self._drain()

        return send

    def paced(self) -> list[int]:
        """The connections that have a pacer."""
        return list(self._pacers)

    def idle(self, cid: int) -> bool:
        """Whether ``cid``'s pacer holds nothing (or it has none)."""
        entry = self._pacers.get(cid)
        return entry is None or entry[0].queued == 0

    def drop(self, cid: int) -> None:
        """Forget ``cid``'s pacer (what it still holds is not sent)."""
        self._pacers.pop(cid, None)

    def _drain(self) -> None:
        """Send what each pacer lets out now; come back when the next packet may leave."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = time.monotonic()
        soonest: float | None = None
        for pacer, link in self._pacers.values():
            for packet in pacer.due(now):
                link.send_media(packet)
            wait = pacer.wait()
            if wait is not None and (soonest is None or wait < soonest):
                soonest = wait
        if soonest is not None:
            self._timer = asyncio.get_running_loop().call_later(soonest, self._drain)
