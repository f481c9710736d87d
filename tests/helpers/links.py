"""An in-memory pair of :class:`conf_cli.plugin.transport.Link`: a client and the server's side of it, no
sockets.

Control messages are reliable and ordered, as on every transport; media packets may be lost by a
:class:`Loss`, a seeded random rate or a fixed pattern, so a test of loss recovery sees the same losses on
every run. Nothing is delivered from inside a send: deliveries wait in one queue, in the order they were
sent in both directions, until :meth:`LinkPair.flush` (a test without an event loop calls it) or the next
turn of the running event loop (scheduled by the send).

    pair = LinkPair(server_events, client_events, to_client=Loss(pattern="..x"))
    pair.client.send_control(b'{"type":"hello","protocol":1}')
    pair.flush()
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable

from conf_cli.plugin.transport import ClientEvents, Link, Listener, ServerEvents


class Loss:
    """Which media packets are lost on one direction of a :class:`LinkPair`.

    ``pattern`` (``"..x"``: every third packet lost) repeats over the packets in order; otherwise each
    packet is lost with probability ``rate``, drawn from a generator seeded with ``seed``."""

    def __init__(self, rate: float = 0.0, seed: int = 0, pattern: str | None = None) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"loss rate {rate} is not between 0 and 1")
        if pattern is not None and (not pattern or set(pattern) - {".", "x"}):
            raise ValueError(f"loss pattern {pattern!r}: use '.' (delivered) and 'x' (lost)")
        self.rate = rate
        self.pattern = pattern
        self._random = random.Random(seed)
        self.seen = 0
        self.lost = 0

    def drops(self) -> bool:
        """Decide the fate of the next packet: True if it is lost."""
        n, self.seen = self.seen, self.seen + 1
        if self.pattern is not None:
            lost = self.pattern[n % len(self.pattern)] == "x"
        else:
            lost = self._random.random() < self.rate
        self.lost += lost
        return lost


class MemoryLink(Link):
    """One end of a :class:`LinkPair`."""

    media_ordered = True  # lost packets never arrive late: what arrives is in order

    def __init__(self, pair: LinkPair, peer: str, listener: Listener | None = None) -> None:
        super().__init__(peer, listener)
        self._pair = pair
        self._closed = False
        self.other: MemoryLink | None = None
        self.loss: Loss | None = None  # what this end's media loses on the way to the other end
        self.on_control: Callable[[bytes], None] = lambda data: None
        self.on_media: Callable[[bytes], None] = lambda packet: None
        self.on_closed: Callable[[str], None] = lambda reason: None

    def send_control(self, data: bytes) -> None:
        if self._closed:
            return
        self.stats.control_out += 1
        self.stats.bytes_out += len(data)
        self._pair._queue(lambda: self._peer_end()._control_arrived(data))

    def send_media(self, packet: bytes) -> bool:
        if self._closed:
            self.stats.media_dropped += 1
            return False
        self.stats.media_out += 1
        self.stats.bytes_out += len(packet)
        if self.loss is None or not self.loss.drops():
            self._pair._queue(lambda: self._peer_end()._media_arrived(packet))
        return True

    def close(self, reason: str = "closed") -> None:
        """Close both ends, after what was already sent: this end hears ``reason``, the other
        ``closed by peer``."""
        if self._closed:
            return
        other = self._peer_end()
        self._closed = other._closed = True
        self._pair._queue(lambda: self.on_closed(reason))
        self._pair._queue(lambda: other.on_closed("closed by peer"))

    @property
    def is_closing(self) -> bool:
        return self._closed

    def _peer_end(self) -> MemoryLink:
        assert self.other is not None
        return self.other

    def _control_arrived(self, data: bytes) -> None:
        self.stats.control_in += 1
        self.stats.bytes_in += len(data)
        self.on_control(data)

    def _media_arrived(self, packet: bytes) -> None:
        self.stats.media_in += 1
        self.stats.bytes_in += len(packet)
        self.on_media(packet)


class LinkPair:
    """A client's link (``client``) and the server's side of it (``server``), joined in memory.

    ``server_events`` hear ``link_opened`` at once (as from a listener that accepted the link) and then
    what the client sends; ``client_events`` hear what the server sends. ``to_server`` and ``to_client``
    lose media on their way."""

    def __init__(
        self,
        server_events: ServerEvents,
        client_events: ClientEvents,
        *,
        to_server: Loss | None = None,
        to_client: Loss | None = None,
        listener: Listener | None = None,
        peer: str = "memory-client",
    ) -> None:
        self._pending: deque[Callable[[], None]] = deque()
        self._scheduled = False
        self.server = MemoryLink(self, peer, listener)
        self.client = MemoryLink(self, "memory-server")
        self.server.other, self.client.other = self.client, self.server
        self.client.loss, self.server.loss = to_server, to_client
        server = self.server
        server.on_control = lambda data: server_events.control_received(server, data)
        server.on_media = lambda packet: server_events.media_received(server, packet)
        server.on_closed = lambda reason: server_events.link_closed(server, reason)
        self.client.on_control = client_events.control_received
        self.client.on_media = client_events.media_received
        self.client.on_closed = client_events.closed
        server_events.link_opened(server)

    @property
    def pending(self) -> int:
        """Deliveries waiting for :meth:`flush`."""
        return len(self._pending)

    def flush(self) -> int:
        """Deliver everything sent so far, and what those deliveries send in turn; return how many."""
        self._scheduled = False
        done = 0
        while self._pending:
            self._pending.popleft()()
            done += 1
        return done

    def _queue(self, delivery: Callable[[], None]) -> None:
        self._pending.append(delivery)
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no event loop: the test calls flush()
        self._scheduled = True
        loop.call_soon(self.flush)


class RecordingLink(Link):
    """A server-side link that keeps the media sent to it (``got``) and drops control: for tests of the
    forwarder, which only sends."""

    def __init__(self, cid: int) -> None:
        super().__init__(peer=f"peer{cid}")
        self.id = cid
        self.got: list[bytes] = []

    def send_control(self, data: bytes) -> None:
        pass

    def send_media(self, packet: bytes) -> bool:
        self.got.append(packet)
        return True

    def close(self) -> None:
        pass

    @property
    def is_closing(self) -> bool:
        return False


class HeardClientEvents:
    """A client link's events (:class:`conf_cli.plugin.transport.ClientEvents`), kept in order."""

    def __init__(self) -> None:
        self.media: list[bytes] = []
        self.control: list[bytes] = []
        self.closed_reasons: list[str] = []

    def control_received(self, data: bytes) -> None:
        self.control.append(data)

    def media_received(self, packet: bytes) -> None:
        self.media.append(packet)

    def closed(self, reason: str) -> None:
        self.closed_reasons.append(reason)
