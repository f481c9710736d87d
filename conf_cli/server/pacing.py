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
from conf_cli.token_bucket import TokenBucket

PACE_BURST = 1_500
"""Bytes a pacer may let out at once (one packet)."""
PACE_QUEUE_LIMIT = 256 * 1024
"""Bytes a pacer holds; a packet that would take it past this is dropped (counted)."""
ROUNDING = 0.01
"""Bytes a packet may lack in the bucket and still leave: a timer set for the moment it holds them may
come that little early."""


class Pacer:
    """One subscriber's paced packets, in order: each leaves once the bucket, filled at ``rate`` bit/s up
    to :data:`PACE_BURST` bytes, holds its size (a packet larger than that once the bucket is full, the
    bucket going into debt: the next waits the longer)."""

    __slots__ = ("_bucket", "_queue", "dropped", "queued")

    def __init__(self, rate: float, now: float) -> None:
        self._bucket = TokenBucket(max(1.0, rate / 8), PACE_BURST, stamp=now)
        self._queue: deque[bytes] = deque()
        self.queued = 0
        """Bytes waiting."""
        self.dropped = 0
        """Packets dropped because the queue was full."""

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
        out: list[bytes] = []
        queue, bucket = self._queue, self._bucket
        while queue and bucket.take(len(queue[0]), now, _need(queue[0]) - ROUNDING):
            packet = queue.popleft()
            self.queued -= len(packet)
            out.append(packet)
        return out

    def wait(self) -> float | None:
        """Seconds from the last :meth:`due` until the next packet may leave; None if none waits."""
        if not self._queue:
            return None
        return self._bucket.wait(_need(self._queue[0]), self._bucket.stamp)


def _need(packet: bytes) -> float:
    """What the bucket must hold for ``packet`` to leave."""
    return min(len(packet), PACE_BURST)


class _PacedLink:
    """A link's pacer and what sends to it through the pacer (:meth:`send`, a listener's signature)."""

    __slots__ = ("link", "owner", "pacer")

    def __init__(self, owner: Pacers, link: Link, pacer: Pacer) -> None:
        self.owner = owner
        self.link = link
        self.pacer = pacer

    def send(self, packet: bytes, _links: Sequence[Link]) -> None:
        self.pacer.push(packet)
        self.owner.drain()


class Pacers:
    """The pacers of the subscribers being paced, each let out on a timer of the event loop."""

    def __init__(self) -> None:
        self._paced: dict[int, _PacedLink] = {}
        self._timer: asyncio.TimerHandle | None = None

    def sender(self, link: Link, rate: float, now: float) -> Callable[[bytes, Sequence[Link]], None]:
        """What sends a packet to ``link`` through its pacer (made at ``rate`` bit/s if it has none)."""
        paced = self._paced.get(link.id)
        if paced is None or paced.link is not link:
            paced = self._paced[link.id] = _PacedLink(self, link, Pacer(rate, now))
        return paced.send

    def paced(self) -> list[int]:
        """The connections that have a pacer."""
        return list(self._paced)

    def idle(self, cid: int) -> bool:
        """Whether ``cid``'s pacer holds nothing (or it has none)."""
        paced = self._paced.get(cid)
        return paced is None or paced.pacer.queued == 0

    def drop(self, cid: int) -> None:
        """Forget ``cid``'s pacer (what it still holds is not sent)."""
        self._paced.pop(cid, None)

    def drain(self) -> None:
        """Send what each pacer lets out now; come back when the next packet may leave."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = time.monotonic()
        soonest: float | None = None
        for paced in self._paced.values():
            for packet in paced.pacer.due(now):
                paced.link.send_media(packet)
            wait = paced.pacer.wait()
            if wait is not None and (soonest is None or wait < soonest):
                soonest = wait
        if soonest is not None:
            self._timer = asyncio.get_running_loop().call_later(soonest, self.drain)
