"""The server's rules for RTCP feedback and resends, sans-I/O: time is passed in as ``now``.

A receiver that misses video packets sends a generic NACK (RFC 4585 6.2.1) naming their sequence numbers;
the server passes it to the track's publisher, which sends those packets again, unchanged. Unchecked, one
NACK naming a sequence number hundreds of times would make the publisher resend it hundreds of times, and
the server would fan every copy out to the whole meeting. So, per track (:class:`TrackFeedback`):

- each RTP packet the publisher sends is forwarded to the meeting the *first* time its sequence number is
  seen (:meth:`TrackFeedback.first`, over the last :data:`WINDOW` sequence numbers); a packet seen before
  is a resend, and goes only to the participants who asked for it since it was last forwarded, or nowhere;
- a NACK is de-duplicated and cut to :data:`MAX_NACK_SEQUENCES` sequence numbers; a requester asking again
  for a packet it asked for less than a round trip ago (:meth:`TrackFeedback.interval`) is not heard; and
  the publisher is asked for a packet at most once per round trip, however many receivers ask for it;
- each requester has a byte budget for resends (:class:`TokenBucket`, :data:`RESEND_RATE` bytes a second),
  charged :data:`PACKET_ESTIMATE` bytes for each packet it asks for: what it asks for past that is dropped.

The round trip is what the server measures itself: from asking the publisher to the resend's arrival.
Feedback of any kind (NACK, PLI, FIR) is also limited per participant (:data:`FEEDBACK_RATE` packets a
second), in :mod:`conf_cli.server.hub`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from conf_cli.token_bucket import TokenBucket

WINDOW = 1024
"""Sequence numbers per track remembered as forwarded (a publisher keeps 512 packets to resend)."""
NEWEST_GAP = 64
"""Missing sequence numbers in a row :meth:`TrackFeedback.newest` steps over (lost on the way in)."""
MAX_NACK_SEQUENCES = 512
"""Distinct sequence numbers one NACK may ask for: as many as a publisher keeps."""
MAX_ASKED = 1024
"""Sequence numbers per track waiting for their resend at once."""
ASK_TTL = 2.0
"""Seconds a request waits for its resend; a resend later than that goes to nobody."""
MIN_INTERVAL = 0.05
MAX_INTERVAL = 1.0
FIRST_RTT = 0.1
"""The round trip assumed until a resend has been timed."""

FEEDBACK_RATE = 100.0
"""Feedback packets (NACK, PLI, FIR; each part of a compound counts) per participant per second ..."""
FEEDBACK_BURST = 200.0
"""... and at once."""
RESEND_RATE = 256_000.0
"""Bytes of resends a participant may ask for per second (2 Mbit/s) ..."""
RESEND_BURST = 256_000.0
"""... and at once."""
PACKET_ESTIMATE = 1_200
"""Bytes a requested packet is charged against the budget: conf's video packets carry at most 1,200."""


@dataclass
class FeedbackStats:
    """What happened to NACKs and resends, for ``server_stats`` (a part of :class:`HubStats`)."""

    nack_duplicates: int = 0  # sequence numbers named again in the same NACK, dropped
    nack_repeats: int = 0  # sequence numbers a requester asked for again within a round trip, dropped
    nack_over_budget: int = 0  # sequence numbers past a requester's resend budget, dropped
    nack_asked: int = 0  # sequence numbers passed on to publishers
    resends_in: int = 0  # RTP packets a publisher sent again
    resends_out: int = 0  # resends delivered (one per requester)
    resends_unrequested: int = 0  # resends nobody waited for, dropped


@dataclass
class _Ask:
    asked: float  # when the publisher was last asked for this packet
    requesters: dict[int, float] = field(default_factory=dict)  # who asked -> when


class TrackFeedback:
    """NACKs and resends of one published track."""

    __slots__ = ("_asks", "_seen", "rtt")

    def __init__(self) -> None:
        self._seen: list[int] = [-1] * WINDOW
        self._asks: dict[int, _Ask] = {}
        self.rtt: float | None = None
        """Smoothed time from asking the publisher for a packet to its resend arriving, in seconds."""

    def interval(self) -> float:
        """How long a request holds: one round trip (publisher side, as the server measures it)."""
        rtt = self.rtt if self.rtt is not None else FIRST_RTT
        return min(MAX_INTERVAL, max(MIN_INTERVAL, 1.5 * rtt))

    def newest(self, after: int | None = None) -> int | None:
        """The newest sequence number forwarded (None: none yet); see :meth:`progress`."""
        return self.progress(after)[0]

    def progress(self, after: int | None = None) -> tuple[int | None, int]:
        """The newest sequence number forwarded (None: none yet) and how many of those after ``after``
        were forwarded (the rest were lost on the way in), found without touching the forwarding path:
        walking on from ``after`` (the newest found last time; gaps of up to :data:`NEWEST_GAP` lost
        packets are stepped over), or by looking at the whole window when ``after`` is None or the walk
        finds nothing (a longer gap)."""
        seen = self._seen
        if after is not None:
            newest = after
            found = misses = 0
            for step in range(1, WINDOW):
                seq = (after + step) & 0xFFFF
                if seen[seq % WINDOW] == seq:
                    newest = seq
                    found += 1
                    misses = 0
                else:
                    misses += 1
                    if misses > NEWEST_GAP:
                        break
            if found:
                return newest, found
        known = [seq for seq in seen if seq >= 0]
        if not known:
            return None, 0
        ref = known[-1] if after is None else after
        ahead = [(seq - ref + 0x8000) & 0xFFFF for seq in known]
        newest = (ref + max(ahead) - 0x8000) & 0xFFFF
        if after is None:
            return newest, 0
        span = (newest - after) & 0xFFFF
        if span == 0 or span >= 0x8000:
            return after, 0
        return newest, sum(1 for seq in known if 0 < (seq - after) & 0xFFFF <= span)

    def first(self, packet: bytes) -> bool:
        """True the first time RTP ``packet``'s sequence number is forwarded (within the window)."""
        seq = packet[2] << 8 | packet[3]
        seen = self._seen
        slot = seq % WINDOW
        if seen[slot] == seq:
            return False
        seen[slot] = seq
        if self._asks:
            self._asks.pop(seq, None)  # it reaches everyone now, asked for or not
        return True

    def nack(
        self, requester: int, lost: Iterable[int], now: float, budget: TokenBucket, stats: FeedbackStats
    ) -> list[int]:
        """A NACK from ``requester``: the sequence numbers to ask the publisher for (maybe none)."""
        asks = self._asks
        interval = self.interval()
        wanted: dict[int, None] = {}
        named = 0
        for seq in lost:
            named += 1
            wanted[seq & 0xFFFF] = None
            if len(wanted) >= MAX_NACK_SEQUENCES:
                break
        stats.nack_duplicates += named - len(wanted)
        out: list[int] = []
        for seq in wanted:
            ask = asks.get(seq)
            if ask is not None:
                when = ask.requesters.get(requester)
                if when is not None and now - when < interval:
                    stats.nack_repeats += 1
                    continue
            if not budget.take(PACKET_ESTIMATE, now):
                stats.nack_over_budget += 1
                continue
            if ask is None:
                if len(asks) >= MAX_ASKED:
                    self.expire(now)
                    if len(asks) >= MAX_ASKED:
                        stats.nack_over_budget += 1
                        continue
                ask = asks[seq] = _Ask(now)
                out.append(seq)
            elif now - ask.asked >= interval:
                ask.asked = now
                out.append(seq)
            ask.requesters[requester] = now
        stats.nack_asked += len(out)
        return out

    def resend(self, packet: bytes, now: float, stats: FeedbackStats) -> tuple[int, ...]:
        """Who gets RTP ``packet``, seen before: those who asked for it in the last :data:`ASK_TTL` s."""
        stats.resends_in += 1
        ask = self._asks.pop(packet[2] << 8 | packet[3], None)
        if ask is None:
            stats.resends_unrequested += 1
            return ()
        delay = now - ask.asked
        if 0 <= delay <= ASK_TTL:
            self.rtt = delay if self.rtt is None else 0.875 * self.rtt + 0.125 * delay
        to = tuple(cid for cid, when in ask.requesters.items() if now - when <= ASK_TTL)
        if not to:
            stats.resends_unrequested += 1
        stats.resends_out += len(to)
        return to

    def expire(self, now: float) -> None:
        for seq in [s for s, ask in self._asks.items() if now - ask.asked > ASK_TTL]:
            del self._asks[seq]

    @property
    def asked(self) -> int:
        """Sequence numbers waiting for their resend."""
        return len(self._asks)
