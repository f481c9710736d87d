"""Simulcast in the server, sans-I/O: which layer of a video track each subscriber receives, when it
switches, how the forwarded layer is rewritten into the track's one stream, and which layers the
publisher may pause (dynacast). Time is passed in as ``now``; nothing here does I/O.

A simulcast track is published as up to three :class:`Layer` s, lowest first, each with its own SSRC; the
track's SSRC (the one in the meeting's track list) is its highest layer's. Each subscriber has a
:class:`Subscription`: the layer it receives (``current``) and the one it should receive (``target``),
chosen by :func:`pick` from its budget: the smaller of what it asked for (``max_bitrate``) and what its
downlink carries (:class:`Downlink`, from the loss its receiver reports). A subscriber moves to its target
only at a keyframe of the target layer (the server asks the publisher for one with a PLI), so the picture
never breaks; until then it keeps receiving the old layer.

What a subscriber receives is one continuous RTP stream: the SSRC of every layer is rewritten to the
track's SSRC, and sequence numbers and timestamps are shifted at each switch so that they run on from
the last packet forwarded (:class:`Rewriter`). A subscriber on the highest layer that never switched gets
the publisher's packets unchanged (the common case costs nothing).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

SEQ_TS = struct.Struct("!HI")
"""An RTP header's sequence number and timestamp (bytes 2 to 8)."""
UP_MARGIN = 1.25
"""A subscriber climbs to a higher layer only when its budget is this many times the layer's bit rate."""
LOSS_HIGH = 0.10
"""A receiver report losing more than this fraction lowers the subscriber's downlink estimate ..."""
LOSS_CLEAN = 0.02
"""... and one losing less than this lets it grow again, by :data:`GROWTH` per report ..."""
GROWTH = 1.10
HOLD = 4.0
"""... but not before this many seconds have passed since it last fell (hysteresis)."""
BACKOFF = 0.85
"""On loss the estimate becomes what got through (the bit rate received times 1 - loss) times this."""
VIDEO_CLOCK = 90_000
MIN_BUDGET = 30_000
"""No estimate falls below this many bit/s: the lowest layer is always tried."""
TOLD_INTERVAL = 0.2
"""A subscriber's own estimate (``downlink``) is taken at most once per this many seconds; more often, it
is ignored (a subscriber cannot make the server work for it by flooding)."""
CONGESTED_FOR = 1.0
"""For this many seconds after a subscriber's estimate fell, a move down stops its old layer at once."""
KEYFRAME_RETRY = 0.4
"""A subscriber still waiting for its target layer's keyframe this many seconds after it was asked for
(the PLI or the keyframe lost, or the keyframe cut short on its way in) has it asked for again (the server
looks every :data:`~conf_cli.server.edge.RETRY_POLL` seconds, not just at its tick)."""


@dataclass(frozen=True)
class Layer:
    """One encoding of a simulcast track, as its publisher described it."""

    ssrc: int
    width: int
    height: int
    bitrate: int
    """Its nominal bit rate, bit/s."""

    def describe(self) -> dict[str, int]:
        return {"ssrc": self.ssrc, "width": self.width, "height": self.height, "bitrate": self.bitrate}


def pick(
    layers: tuple[Layer, ...],
    budget: float | None,
    current: int | None,
    max_height: int | None = None,
    stalled: frozenset[int] = frozenset(),
) -> int:
    """The index of the best layer (lowest first) within ``budget`` bit/s (None: no limit) and at most
    ``max_height`` lines (what the subscriber's view shows; None: any), leaving out the ``stalled`` ones
    (their publisher stopped sending them).

    Climbing above ``current`` needs :data:`UP_MARGIN` times the layer's bit rate, so that a budget near
    a layer's rate does not flip between two layers. The lowest layer that is not stalled when none
    fits (the lowest when all are)."""
    best: int | None = None
    for index, layer in enumerate(layers):
        if index in stalled:
            continue
        if best is None:
            best = index
        if max_height is not None and layer.height > max_height:
            break
        margin = UP_MARGIN if current is not None and index > current else 1.0
        if budget is None or layer.bitrate * margin <= budget:
            best = index
    return 0 if best is None else best


class Downlink:
    """What one subscriber's downlink carries, estimated from the loss its receiver reports."""

    __slots__ = ("estimate", "fell_at")

    def __init__(self) -> None:
        self.estimate: float | None = None
        """bit/s; None until loss was seen (no limit known)."""
        self.fell_at = float("-inf")

    def report(self, fraction_lost: float, receiving: float, now: float) -> bool:
        """A receiver report: ``fraction_lost`` (0..1) of what arrived at ``receiving`` bit/s (the
        nominal bit rate of what it receives). True if the estimate changed."""
        before = self.estimate
        if fraction_lost > LOSS_HIGH and receiving > 0:
            dropped = max(MIN_BUDGET, receiving * (1.0 - fraction_lost) * BACKOFF)
            if before is None or dropped < before:
                self.estimate = dropped
            self.fell_at = now
        elif fraction_lost < LOSS_CLEAN and before is not None and now - self.fell_at >= HOLD:
            self.estimate = before * GROWTH
        return self.estimate != before

    def told(self, bitrate: float, now: float) -> bool:
        """The subscriber's own estimate, sent when its delay-based detector saw a queue building on its
        downlink (the ``downlink`` request): the estimate falls to it at once, and only falls (a subscriber
        cannot raise its estimate this way; it grows again from clean reports after :data:`HOLD`). True
        if the estimate changed."""
        before = self.estimate
        lowered = max(MIN_BUDGET, bitrate)
        if before is None or lowered < before:
            self.estimate = lowered
        self.fell_at = now
        return self.estimate != before

    def congested(self, now: float) -> bool:
        """Whether the estimate fell in the last :data:`CONGESTED_FOR` seconds."""
        return now - self.fell_at < CONGESTED_FOR

    def forget_limit_above(self, top: float) -> None:
        """Once the estimate is well above the highest layer there is nothing left to guard: no limit."""
        if self.estimate is not None and self.estimate > 2 * top:
            self.estimate = None


QUEUE_FLOOR = 32_768
"""A stream link's send queue shorter than this (bytes) says nothing of its downlink (bursts, keyframes)."""


def queued_share(before: int, after: int, written: int) -> float:
    """Of ``written`` bytes sent to a stream link since its send queue held ``before`` bytes, the share
    still waiting now that it holds ``after``: what its downlink did not carry, a loss to be (the queue
    only counts once over :data:`QUEUE_FLOOR`)."""
    if after < QUEUE_FLOOR or written <= 0 or after <= before:
        return 0.0
    return min(1.0, (after - before) / written)


REORDERED = 1024
"""How many sequence numbers before a switch point a packet may be and still be taken for one of the
layer's from before the switch, reordered on the way (and dropped)."""


class Rewriter:
    """Maps the packets of the layer a subscriber receives into one stream: the track's SSRC, sequence
    numbers and timestamps continuing across switches. Immutable between switches, so subscribers that
    switched at the same packet share one (:attr:`key`) and each packet is rewritten once for them all.

    :meth:`switch` is called with the first packet (a keyframe's) of the new layer and where the stream
    stood (the last packet sent out); the packets of that layer from before it (reordered) are dropped:
    those at most :data:`REORDERED` sequence numbers before it whose timestamp is not after its. (Not
    every number "before" it in the 16-bit space: 32,768 packets on (14 minutes of the middle layer)
    every packet would be, and the subscriber would get nothing for as long again.)
    """

    __slots__ = ("_ssrc", "_start", "_start_ts", "key", "layer_ssrc", "seq_offset", "ts_offset")

    def __init__(self, ssrc: int) -> None:
        self._ssrc = ssrc.to_bytes(4, "big")
        self.layer_ssrc = -1
        self.seq_offset = 0
        self.ts_offset = 0
        self._start = 0
        self._start_ts = 0
        self.key: tuple[int, int, int, int] = (-1, 0, 0, 0)
        """What decides the rewriting: the layer, the offsets and the switch point."""

    @property
    def identity(self) -> bool:
        """Whether packets go out unchanged (the track's own layer, nothing shifted)."""
        return (
            self.seq_offset == 0
            and self.ts_offset == 0
            and self.layer_ssrc == int.from_bytes(self._ssrc, "big")
        )

    def switch(self, packet: bytes, now: float, last: tuple[int, int, float] | None) -> None:
        """Start forwarding the layer of ``packet`` (the first packet of one of its keyframes); ``last``
        is the stream's last packet sent out, ``(sequence number, timestamp, when)``, None at the start."""
        seq = packet[2] << 8 | packet[3]
        ts = int.from_bytes(packet[4:8], "big")
        self.layer_ssrc = int.from_bytes(packet[8:12], "big")
        self._start = seq
        self._start_ts = ts
        if last is None:  # the first layer: numbers as they come
            self.seq_offset = 0
            self.ts_offset = 0
        else:
            last_seq, last_ts, last_at = last
            self.seq_offset = (last_seq + 1 - seq) & 0xFFFF
            elapsed = max(1, round((now - last_at) * VIDEO_CLOCK))
            self.ts_offset = (last_ts + elapsed - ts) & 0xFFFFFFFF
        self.key = (self.layer_ssrc, self.seq_offset, self.ts_offset, seq)

    def out(self, seq: int, ts: int) -> tuple[int, int]:
        """The sequence number and timestamp a packet of the current layer goes out with."""
        return (seq + self.seq_offset) & 0xFFFF, (ts + self.ts_offset) & 0xFFFFFFFF

    def rewrite(self, packet: bytes) -> bytes | None:
        """``packet`` (of the current layer) as the subscriber receives it; None for one from before the
        switch point."""
        seq, ts = SEQ_TS.unpack_from(packet, 2)
        if 0 < (self._start - seq) & 0xFFFF <= REORDERED:  # (rare: a look at its timestamp decides)
            later = (ts - self._start_ts) & 0xFFFFFFFF
            if later == 0 or later >= 0x8000_0000:
                return None
        out = SEQ_TS.pack((seq + self.seq_offset) & 0xFFFF, (ts + self.ts_offset) & 0xFFFFFFFF)
        return b"".join((packet[:2], out, self._ssrc, packet[12:]))

    def original(self, seq: int) -> int:
        """The layer's sequence number of ``seq`` as the subscriber saw it (to pass a NACK on)."""
        return (seq - self.seq_offset) & 0xFFFF

    def since_switch(self, seq: int) -> bool:
        """Whether the layer's sequence number ``seq`` is from the switch point on (what :meth:`rewrite`
        passes, by its number alone); a packet from before it was another layer's for the subscriber, not
        to be resent."""
        return not 0 < (self._start - seq) & 0xFFFF <= REORDERED


class LastPacket:
    """The newest packet seen of one layer: where a subscriber's stream stands when it leaves it."""

    __slots__ = ("at", "seq", "ts")

    def __init__(self) -> None:
        self.seq: int | None = None
        self.ts = 0
        self.at = float("-inf")

    def note(self, packet: bytes, now: float) -> None:
        seq = packet[2] << 8 | packet[3]
        last = self.seq
        if last is None or 0 < (seq - last) & 0xFFFF < 0x8000:
            self.seq = seq
            self.ts = int.from_bytes(packet[4:8], "big")
            self.at = now


class Subscription:
    """One subscriber of one simulcast track."""

    __slots__ = ("asked", "current", "held", "hurry", "keyframe_asked", "rewriter", "target", "want")

    def __init__(self, ssrc: int, target: int, now: float = 0.0) -> None:
        self.current: int | None = None
        """The layer it receives; None until the first keyframe of its target."""
        self.target = target
        self.want = target
        """The layer it would receive if every layer were sent (its publisher may have stopped sending
        the one it wants for want of uplink: dynacast keeps that one asked for, so it comes back)."""
        self.asked = now
        """When its target last changed: it switches at a keyframe once its old layer was seen since."""
        self.keyframe_asked = now
        """When a keyframe of its target layer was last asked of the publisher for it."""
        self.rewriter = Rewriter(ssrc)
        self.hurry = False
        """Its move down is for want of downlink: stop sending its old layer at once (the packets queued
        at its bottleneck would hold back the new layer's keyframe), not at the new layer's keyframe."""
        self.held: tuple[int, int, float] | None = None
        """Where its stream stands (sequence number, timestamp, when) since its old layer was stopped for
        it; None while it receives one."""

    @property
    def pending(self) -> bool:
        return self.target != self.current or self.held is not None


def needed(layers: tuple[Layer, ...], subscriptions: Iterable[Subscription]) -> frozenset[int]:
    """Dynacast: the layers (indexes) someone receives, is switching to or wants; every layer while nobody
    subscribes (a publisher alone keeps encoding as before, so that the first to come sees a picture)."""
    wanted: set[int] = set()
    anyone = False
    for sub in subscriptions:
        anyone = True
        wanted.add(sub.target)
        wanted.add(sub.want)
        if sub.current is not None:
            wanted.add(sub.current)
    return frozenset(wanted) if anyone else frozenset(range(len(layers)))
