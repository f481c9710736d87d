"""A receive-side RTP jitter buffer, sans-I/O: reorders packets and reports losses.

``push(packet, now)`` packets as they arrive; ``pop(now)`` returns them in sequence order once they are due,
with a :class:`Gap` in place of each run of packets that did not arrive in time. An audio receiver conceals a
gap, a video receiver (:class:`~conf_cli.media.h264.H264Depacketizer`) drops the damaged picture and asks for
a keyframe; ``missing(now)`` lists the sequence numbers to ask for again with a NACK (RFC 4585 6.2.1).

Timing. A packet's playout time is its RTP timestamp mapped to local time through the smallest transit time
(arrival - timestamp, RFC 3550 A.8) seen over the last one or two ``window`` periods, plus ``target_delay``:
packets that came fast wait, packets that came slow leave at once, and the mapping follows clock drift. A
packet is never held longer than ``target_delay`` after it arrives. A hole in the sequence is reported as
lost ``target_delay`` after it was noticed, which leaves that long for a reordered or retransmitted packet.
``hold`` (default: ``target_delay``) replaces the target for packets that are present: a video receiver,
which needs no smoothing, passes 0 so that packets in order leave at once and only a hole waits (for a
resend); on an ordered transport a receiver passes a ``target_delay`` of 0 too, as there is nothing to wait
for. :func:`adaptive_delay` is the audio receiver's target on a path that may reorder: a small multiple of
the measured interarrival jitter, within bounds.

Bounds. The buffer spans at most ``max_packets`` sequence numbers; beyond that the oldest are dropped and
reported as a gap. Duplicates and packets older than what was already handed out are dropped and counted.
A jump of more than ``max_packets`` forward is a discontinuity (nothing to NACK); two consecutive packets
far behind restart the buffer at the new sequence numbers (a restarted sender, as in RFC 3550 A.1).
"""

from __future__ import annotations

from dataclasses import dataclass

from conf_cli.protocol.rtp import RtpPacket

__all__ = ["Gap", "JitterBuffer", "adaptive_delay"]

_MAX_PENDING = 16
_SLACK = 1e-6  # seconds: float rounding must not hold a packet that is due now (transit minus itself)


@dataclass(frozen=True, slots=True)
class Gap:
    """``count`` consecutive packets, starting at sequence number ``seq``, that were lost."""

    seq: int
    count: int

    @property
    def seqs(self) -> list[int]:
        return [(self.seq + i) & 0xFFFF for i in range(self.count)]


def _signed16(value: int) -> int:
    return ((value + 0x8000) & 0xFFFF) - 0x8000


def _signed32(value: int) -> int:
    return ((value + 0x80000000) & 0xFFFFFFFF) - 0x80000000


class JitterBuffer:
    """Orders the RTP packets of one source and times their release; see the module docstring."""

    def __init__(
        self,
        clock_rate: int,
        target_delay: float = 0.05,
        *,
        max_packets: int = 2048,
        window: float = 2.0,
        hold: float | None = None,
    ) -> None:
        if clock_rate <= 0:
            raise ValueError(f"clock rate {clock_rate} must be positive")
        if max_packets < 1:
            raise ValueError(f"max_packets {max_packets} must be positive")
        self.clock_rate = clock_rate
        self.target_delay = target_delay
        self.hold = hold
        """How long a packet that is present may wait past its due time (None: ``target_delay``)."""
        self.max_packets = max_packets
        self.window = window
        self.received = 0
        self.late = 0
        self.duplicates = 0
        self.lost = 0
        self.dropped = 0
        # Sequence numbers are extended past 16 bits so that they compare across wrap-around.
        self._entries: dict[int, tuple[RtpPacket, float]] = {}
        self._missing: dict[int, float] = {}  # ascending, sequence -> when it was noticed missing
        self._next: int | None = None
        self._released = False
        self._highest = 0
        self._pending: list[Gap] = []  # losses decided in push(), handed out by the next pop()
        self._bad_seq = -1
        self._ts_raw = 0
        self._ts_ext = 0
        self._min_prev = 0.0
        self._min_cur = 0.0
        self._window_start = 0.0

    def __len__(self) -> int:
        return len(self._entries)

    def push(self, packet: RtpPacket, now: float) -> bool:
        """Add a packet that arrived at ``now``; False when it is dropped (duplicate, late or stale)."""
        seq = packet.sequence_number
        if self._next is None:
            self._restart(packet, now)
            return True
        ext = self._highest + _signed16(seq - self._highest)
        if ext < self._next and not self._released and self._highest - ext < self.max_packets:
            # Nothing was handed out yet: an earlier packet that overtook the first one still has its place.
            self._missing = {missing: now for missing in range(ext + 1, self._next)} | self._missing
            self._next = ext
        if ext < self._next:
            if self._next - ext > self.max_packets:
                if seq == self._bad_seq:
                    self._discard_all()
                    self._restart(packet, now)
                    return True
                self._bad_seq = (seq + 1) & 0xFFFF
            self.late += 1
            return False
        if ext in self._entries:
            self.duplicates += 1
            return False
        self._bad_seq = -1
        if ext > self._highest:
            if ext - self._highest <= self.max_packets:
                for missing in range(max(self._highest + 1, ext - self.max_packets + 1), ext):
                    self._missing[missing] = now
            self._highest = ext
            if ext - self._next >= self.max_packets:
                self._drop_before(ext - self.max_packets + 1)
        else:
            self._missing.pop(ext, None)
        self._entries[ext] = (packet, self._media_time(packet.timestamp, now))
        self.received += 1
        return True

    def pop(self, now: float) -> list[RtpPacket | Gap]:
        """The packets due at ``now`` in sequence order, with a Gap for each overdue run of missing ones."""
        out: list[RtpPacket | Gap] = [*self._pending]
        self._pending.clear()
        if self._next is None:
            return out
        release = min(self._min_prev, self._min_cur) + self._hold()
        start = self._next
        while self._entries:
            entry = self._entries.get(self._next)
            if entry is not None:
                if entry[1] + release > now + _SLACK:
                    break
                del self._entries[self._next]
                out.append(entry[0])
                self._next += 1
                continue
            noticed = self._missing.get(self._next)
            if noticed is not None and noticed + self.target_delay > now:
                break
            first = min(self._entries)
            out.append(Gap(self._next & 0xFFFF, first - self._next))
            self.lost += first - self._next
            self._next = first
            self._forget_missing_before(first)
        if self._next != start:
            self._released = True
        return out

    def deadline(self) -> float | None:
        """When ``pop`` will next return something (maybe already past), or None while nothing is pending."""
        if self._pending:
            return float("-inf")
        if self._next is None or not self._entries:
            return None
        entry = self._entries.get(self._next)
        if entry is not None:
            return entry[1] + min(self._min_prev, self._min_cur) + self._hold()
        noticed = self._missing.get(self._next)
        return float("-inf") if noticed is None else noticed + self.target_delay

    def due(self, now: float) -> bool:
        """Whether :meth:`pop` at ``now`` would return something."""
        deadline = self.deadline()
        return deadline is not None and deadline <= now + _SLACK

    def _hold(self) -> float:
        return self.target_delay if self.hold is None else self.hold

    def missing(self, now: float, min_age: float = 0.0) -> list[int]:
        """Sequence numbers noticed missing at least ``min_age`` seconds ago and not yet reported lost."""
        return [seq & 0xFFFF for seq, noticed in self._missing.items() if now - noticed >= min_age]

    def _media_time(self, timestamp: int, now: float) -> float:
        """The packet's timestamp in seconds on an unwrapped axis; updates the smallest transit time."""
        self._ts_ext += _signed32(timestamp - self._ts_raw)
        self._ts_raw = timestamp
        media = self._ts_ext / self.clock_rate
        transit = now - media
        if now - self._window_start >= self.window:
            self._min_prev, self._min_cur, self._window_start = self._min_cur, transit, now
        elif transit < self._min_cur:
            self._min_cur = transit
        return media

    def _restart(self, packet: RtpPacket, now: float) -> None:
        seq = packet.sequence_number
        self._next = self._highest = seq
        self._released = False
        self._bad_seq = -1
        self._ts_raw = packet.timestamp
        self._ts_ext = packet.timestamp
        media = packet.timestamp / self.clock_rate
        self._min_prev = self._min_cur = now - media
        self._window_start = now
        self._entries[seq] = (packet, media)
        self.received += 1

    def _queue_gap(self, start: int, end: int) -> None:
        if end <= start:
            return
        self.lost += end - start
        last = self._pending[-1] if self._pending else None
        if last is not None and (last.seq + last.count - start) & 0xFFFF == 0:
            self._pending[-1] = Gap(last.seq, last.count + end - start)
        else:
            self._pending.append(Gap(start & 0xFFFF, end - start))
            del self._pending[:-_MAX_PENDING]

    def _drop_before(self, new_next: int) -> None:
        """Give up on everything older than ``new_next``: buffered packets are dropped, all reported lost."""
        assert self._next is not None
        stale = [seq for seq in self._entries if seq < new_next]
        for seq in stale:
            del self._entries[seq]
        self.dropped += len(stale)
        self._queue_gap(self._next, new_next)
        self._next = new_next
        self._released = True
        self._forget_missing_before(new_next)

    def _discard_all(self) -> None:
        assert self._next is not None
        self._drop_before(self._highest + 1)
        self._missing.clear()

    def _forget_missing_before(self, seq: int) -> None:
        while self._missing:
            first = next(iter(self._missing))
            if first >= seq:
                break
            del self._missing[first]


AUDIO_DELAY_FACTOR = 2.0
"""Audio waits this many times the measured interarrival jitter (RFC 3550 A.8; for normally distributed
transit times that covers about 99 % of packets: the estimate is about 1.13 standard deviations) ..."""
AUDIO_DELAY_MIN = 0.01
"""... but at least this long (seconds: what scheduling on a loaded host costs) ..."""
AUDIO_DELAY_MAX = 0.3
"""... and at most this long."""


def adaptive_delay(
    jitter: float,
    *,
    factor: float = AUDIO_DELAY_FACTOR,
    minimum: float = AUDIO_DELAY_MIN,
    maximum: float = AUDIO_DELAY_MAX,
) -> float:
    """The target delay for audio on a path whose interarrival jitter is ``jitter`` seconds:
    ``factor * jitter`` within ``[minimum, maximum]``. A clean path gets the minimum; the target grows only
    as far as the measured jitter requires, and falls back as the jitter estimate (smoothed over about 16
    packets) does."""
    return max(minimum, min(maximum, factor * max(0.0, jitter)))
