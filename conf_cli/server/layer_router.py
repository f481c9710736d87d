"""Simulcast routing for a hub, sans-I/O: each subscriber's layer of each simulcast track, kept in step
with the meetings (:meth:`LayerRouter.sync`) and applied to each packet (:meth:`LayerRouter.route`).

The choice is made when routes are computed, not per packet: :meth:`route` answers one layer's packet with
who receives it unchanged and who receives it rewritten (:class:`~conf_cli.server.simulcast.Rewriter`),
and says the answer may be cached (:mod:`conf_cli.server.forwarding`) unless a subscriber of the track
waits for a keyframe to switch. A switch bumps the hub's route version, so cached routes are rebuilt.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from conf_cli.media.congestion import Transit
from conf_cli.media.h264 import opens_keyframe
from conf_cli.protocol.events import LayersActive, LayerSwitched
from conf_cli.protocol.rtp import payload_offset
from conf_cli.server.meeting import Meeting, RouteVersion, Send, Track
from conf_cli.server.simulcast import (
    KEYFRAME_RETRY,
    SEQ_TS,
    TOLD_INTERVAL,
    Downlink,
    LastPacket,
    Layer,
    Rewriter,
    Subscription,
    needed,
    pick,
)

MAX_TRANSITS = 65_536
"""Simulcast layers whose uplink queueing is followed (each a few numbers; the meetings bound them first)."""
MAX_PENDING_REPORTS = 4096
"""Receiver reports kept between two ticks (the oldest go first; the hub limits each sender's RTCP)."""
UPSTREAM_TICKS = 4
"""Ticks over which the loss on a publisher's uplink is measured (about two receiver report intervals)."""
STALL = 0.4
"""A layer the publisher was asked to send is stalled when it forwarded nothing for this many seconds while
a lower layer of the track did (its publisher paused it for want of uplink): its subscribers move down."""

UPSTREAM_QUEUE = 0.075
"""Seconds of queueing before the server (on the publisher's uplink) over which a subscriber's ``downlink``
request is not taken: what it saw queue was (at least half of it) not its downlink's ..."""

CONFIRM_WITHIN = 1.0
"""A ``downlink`` request is acted on only when another came at most this many seconds before it ..."""
STRONG_QUEUE = 0.2
"""... or when it says its newest packet queued at least this many seconds (``queued_ms``) while the
server saw no more than :data:`STRONG_UPSTREAM` of it on the publisher's uplink: a queue that long is no
host's hiccup, and waiting for the next request (a quarter of a second later) lets the bottleneck's queue
overflow with the old layer, whose lost tail then holds the picture still until the new layer's keyframe
gets through (docs/media.md, "The freeze at a switch")."""
STRONG_UPSTREAM = 0.05
"""Seconds of the queueing the server itself saw on the publisher's uplink under which a lone strong
``downlink`` request is taken (the queue is the subscriber's own)."""
IN_FLIGHT_GRACE = 0.1
"""Seconds after the last picture of a simulcast track reached the server (the server notes each at its
last packet) beyond which the wait counts as queueing on the publisher's uplink: a large picture (a 720p
keyframe is 30-45 kB, half a second at 600 kbit/s) is still crossing it, and a subscriber sees its first
packets queue before the server sees its last."""
UPSTREAM_LOSS = 0.02
"""... nor while more than this share of a layer's packets was lost on the way in."""

PACE_SHARE = 0.7
"""While a subscriber moves down for want of downlink, the video sent to it is paced at this share of its
downlink estimate (:mod:`conf_cli.server.pacing`) ..."""
PACE_FOR = 2.0
"""... from the move's decision for at most this many seconds while its new layer's keyframe is awaited ..."""
PACE_AFTER = 0.5
"""... and for this many seconds after the switch (the keyframe let out)."""
Rewrites = tuple[tuple[Rewriter, tuple[int, ...]], ...]
"""Who receives a packet rewritten, grouped by how: one rewriting serves each group."""


@dataclass
class LayerRouter:
    version: RouteVersion
    subscriptions: dict[int, dict[int, Subscription]] = field(default_factory=dict)
    """Track SSRC -> subscriber -> its subscription."""
    caps: dict[int, int] = field(default_factory=dict)
    """Subscriber -> the most bit/s it wants per video track (``receive``'s ``max_bitrate``)."""
    heights: dict[int, int] = field(default_factory=dict)
    """Subscriber -> the most lines its view shows (``receive``'s ``max_height``)."""
    downlinks: dict[int, Downlink] = field(default_factory=dict)
    rates: dict[int, tuple[int, ...]] = field(default_factory=dict)
    """Track SSRC -> its layers' nominal bit rates, lowest first."""
    tracks: dict[int, Track] = field(default_factory=dict)
    """Track SSRC -> the simulcast track (as of the last :meth:`sync`)."""
    last: dict[int, LastPacket] = field(default_factory=dict)
    """Layer SSRC -> its newest packet the hub saw (while routes are not cached: a switch is pending)."""
    dirty: bool = False
    """Something changed that :meth:`sync` should look at (a switch, a downlink estimate)."""
    switches: int = 0
    switched: dict[tuple[int, int], int] = field(default_factory=dict)
    """(subscriber, track SSRC) -> the layer it moved to, for :meth:`sync` to tell it."""
    synced: int = -1
    """The route version last synced at."""
    progress: dict[int, tuple[int, float]] = field(default_factory=dict)
    """Layer SSRC -> (its newest sequence number forwarded, when that was seen to move on)."""
    upstream: dict[int, deque[tuple[int, int]]] = field(default_factory=dict)
    """Layer SSRC -> (packets expected, packets that arrived) over its last :data:`UPSTREAM_TICKS` ticks:
    loss on the publisher's uplink, which its subscribers see too and which is not their downlink's."""
    stalled: dict[int, frozenset[int]] = field(default_factory=dict)
    """Track SSRC -> its layers (indexes) not to pick: while its publisher stopped sending one it was asked
    for, every layer not seen moving lately (:meth:`watch`); else none."""
    reports: list[tuple[int, Track, float, float]] = field(default_factory=list)
    """Receiver reports not yet applied: (subscriber, track, fraction lost, when)."""
    told_at: dict[int, float] = field(default_factory=dict)
    """Subscriber -> when its own estimate (``downlink``) was last taken."""
    told_ignored: int = 0
    """``downlink`` requests ignored for coming sooner than :data:`TOLD_INTERVAL` after the last one ..."""
    told_before: dict[int, float] = field(default_factory=dict)
    """Subscriber -> when its previous ``downlink`` request (taken or not) came."""
    told_upstream: int = 0
    """... and for coming while the queue was on the publisher's uplink (:data:`UPSTREAM_QUEUE`)."""
    transits: dict[int, Transit] = field(default_factory=dict)
    """Layer SSRC -> how long its packets queued before they reached the server (:meth:`arrived`)."""
    paced: dict[int, tuple[float, float]] = field(default_factory=dict)
    """Subscriber -> (bit/s, until when) its video is to be paced at: it moves down for want of downlink
    (:meth:`pace_rate`)."""
    retry_at: float | None = None
    """The earliest time a keyframe asked for a subscriber's switch may be overdue (:meth:`overdue`);
    None while nobody waits for one."""

    def watch(self, meetings: list[Meeting], now: float) -> None:
        """Called every tick: note which layers of each simulcast track move on, from what the hub
        forwarded (nothing on the forwarding path). A layer the publisher was asked for that stopped
        while a lower one went on is stalled (:data:`STALL`), and no longer picked until it moves again
        (a publisher's congestion control pauses its upper layers when its uplink narrows)."""
        progress = self.progress
        live: set[int] = set()
        for meeting in meetings:
            for track in meeting.tracks.values():
                if not track.layers:
                    continue
                moved_below = False
                stalled: set[int] = set()
                quiet: set[int] = set()  # not seen moving lately
                for index, layer in enumerate(track.layers):
                    ssrc = layer.ssrc
                    source = track if ssrc == track.ssrc else meeting.layer_tracks.get(ssrc)
                    if source is None:
                        continue
                    live.add(ssrc)
                    before = progress.get(ssrc)
                    newest, arrived = source.feedback.progress(None if before is None else before[0])
                    if newest is None:
                        quiet.add(index)
                        continue
                    counts = self.upstream.get(ssrc)
                    if counts is None:
                        counts = self.upstream[ssrc] = deque(maxlen=UPSTREAM_TICKS)
                    expected = 0 if before is None else (newest - before[0]) & 0xFFFF
                    counts.append((expected, min(expected, arrived)))
                    if before is None or newest != before[0]:
                        progress[ssrc] = (newest, now)
                        moved_below = True
                        continue
                    if now - before[1] < STALL:
                        continue
                    quiet.add(index)
                    if moved_below and (track.active is None or index in track.active):
                        stalled.add(index)  # asked for (dynacast), yet it stopped while one below went on
                # a layer stalled: its subscribers go to a layer that is sent (maybe one standing in for
                # it though dynacast paused it), not to one that is not
                frozen = frozenset(stalled | quiet) if stalled else frozenset()
                if frozen != self.stalled.get(track.ssrc, frozenset()):
                    self.stalled[track.ssrc] = frozen
                    self.dirty = True
        for ssrc in [ssrc for ssrc in progress if ssrc not in live]:
            del progress[ssrc]
        for ssrc in [ssrc for ssrc in self.upstream if ssrc not in live]:
            del self.upstream[ssrc]
        for ssrc in [ssrc for ssrc in self.transits if ssrc not in live]:
            del self.transits[ssrc]
        for transit in self.transits.values():
            transit.roll()
        reports, self.reports = self.reports, []
        for report in reports:
            self._report(*report)

    def arrived(self, ssrc: int, packet: bytes, now: float) -> None:
        """The last packet of a picture (its marker bit set) of simulcast layer ``ssrc`` reached the server
        (first seen; cached routes too): note how long it queued on its publisher's uplink. Once a picture,
        not once a packet: it costs the forwarding path a test of one bit per packet."""
        transit = self.transits.get(ssrc)
        if transit is None:
            if len(self.transits) >= MAX_TRANSITS:
                return
            transit = self.transits[ssrc] = Transit()
        transit.note(int.from_bytes(packet[4:8], "big"), now)

    def upstream_queue(self, track: Track, now: float | None = None) -> float:
        """The most a layer of simulcast ``track`` queued before the server lately (seconds); with ``now``,
        at least the time since its last picture arrived less :data:`IN_FLIGHT_GRACE` (one still
        crossing the publisher's uplink)."""
        transits = [transit for layer in track.layers if (transit := self.transits.get(layer.ssrc))]
        queued = max((transit.recent for transit in transits), default=0.0)
        if now is not None:
            last = max((transit.at for transit in transits if transit.at is not None), default=None)
            if last is not None:
                queued = max(queued, now - last - IN_FLIGHT_GRACE)
        return queued

    def upstream_trouble(self, track: Track, now: float | None = None) -> bool:
        """Whether simulcast ``track``'s publisher's uplink is congested lately: its packets queued
        :data:`UPSTREAM_QUEUE` or more on the way in, some were lost there, or a layer it was asked for
        stalled (its congestion control paused it)."""
        return (
            self.upstream_queue(track, now) >= UPSTREAM_QUEUE
            or bool(self.stalled.get(track.ssrc))
            or any(self.upstream_loss(layer.ssrc) > UPSTREAM_LOSS for layer in track.layers)
        )

    def upstream_loss(self, ssrc: int) -> float:
        """The share of layer ``ssrc``'s packets lost on the way in: the most in one of the last few
        ticks (loss on a congested uplink comes in bursts, which a receiver report's interval may hold
        most of)."""
        counts = self.upstream.get(ssrc)
        if not counts:
            return 0.0
        return max((1.0 - arrived / expected for expected, arrived in counts if expected), default=0.0)

    def budget(self, cid: int) -> float | None:
        """What ``cid`` may receive per video track, bit/s; None: no limit known."""
        cap = self.caps.get(cid)
        downlink = self.downlinks.get(cid)
        estimate = downlink.estimate if downlink is not None else None
        if cap is None:
            return estimate
        return cap if estimate is None else min(cap, estimate)

    def pace_rate(self, cid: int, now: float) -> float | None:
        """The rate (bit/s) to pace the video sent to ``cid`` at now; None: not paced."""
        paced = self.paced.get(cid)
        if paced is None:
            return None
        if now >= paced[1]:
            del self.paced[cid]
            return None
        return paced[0]

    def forget(self, cid: int) -> None:
        self.paced.pop(cid, None)
        self.caps.pop(cid, None)
        self.heights.pop(cid, None)
        self.downlinks.pop(cid, None)
        self.told_at.pop(cid, None)
        self.told_before.pop(cid, None)
        for subs in self.subscriptions.values():
            subs.pop(cid, None)

    def subscription(self, ssrc: int, cid: int) -> Subscription | None:
        subs = self.subscriptions.get(ssrc)
        return subs.get(cid) if subs is not None else None

    def report(self, cid: int, track: Track, fraction_lost: float, now: float) -> None:
        """A receiver report from ``cid`` about simulcast ``track``: its downlink estimate follows, at the
        next :meth:`watch` (which first counts what the publisher's uplink lost meanwhile)."""
        reports = self.reports
        reports.append((cid, track, fraction_lost, now))
        if len(reports) > MAX_PENDING_REPORTS:
            del reports[0]

    def _report(self, cid: int, track: Track, fraction_lost: float, now: float) -> None:
        sub = self.subscription(track.ssrc, cid)
        if sub is None or sub.current is None:
            return
        downlink = self.downlinks.get(cid)
        if downlink is None:
            downlink = self.downlinks[cid] = Downlink()
        layer = track.layers[sub.current]
        # what was lost before the server (on the publisher's uplink, which all its layers share) says
        # nothing of this downlink
        upstream = max(self.upstream_loss(each.ssrc) for each in track.layers)
        own = max(0.0, (fraction_lost - upstream) / (1.0 - upstream)) if upstream < 1.0 else 0.0
        if downlink.report(own, layer.bitrate, now):
            downlink.forget_limit_above(track.layers[-1].bitrate)
            self.dirty = True

    def told(self, cid: int, bitrate: int, now: float, queued: float | None = None) -> bool:
        """``cid``'s own estimate of its downlink (the ``downlink`` request, bit/s per video track, and
        how long its newest packet queued, ``queued`` seconds, if it said): its budget falls to it at once
        (:meth:`Downlink.told`) when the request before came within :data:`CONFIRM_WITHIN` (a queue that
        lasts) or this one's queue is strong evidence (:data:`STRONG_QUEUE`, not the publisher's uplink's:
        :data:`STRONG_UPSTREAM`), no publisher's uplink it receives from is in trouble
        (:meth:`upstream_trouble`), at most once per :data:`TOLD_INTERVAL` (sooner ones are ignored). It
        moves only ``cid``'s own layers. True if the estimate changed (sync now)."""
        if now - self.told_at.get(cid, float("-inf")) < TOLD_INTERVAL:
            self.told_ignored += 1
            return False
        self.told_at[cid] = now
        before, self.told_before[cid] = self.told_before.get(cid, float("-inf")), now
        receiving = [ssrc for ssrc, subs in self.subscriptions.items() if cid in subs]
        if not receiving:
            return False  # it receives no simulcast track: nothing to choose
        tracks = self.tracks
        if now - before > CONFIRM_WITHIN:
            strong = (
                queued is not None
                and queued >= STRONG_QUEUE
                and all(
                    self.upstream_queue(track, now) < STRONG_UPSTREAM
                    for ssrc in receiving
                    if (track := tracks.get(ssrc)) is not None
                )
            )
            if not strong:
                return False  # one alone may be a hiccup of its host: a queue that lasts says so again
        if any(
            self.upstream_trouble(track, now) for ssrc in receiving if (track := tracks.get(ssrc)) is not None
        ):
            self.told_upstream += 1  # a publisher's uplink queues: every subscriber sees it, not theirs
            return False
        downlink = self.downlinks.get(cid)
        if downlink is None:
            downlink = self.downlinks[cid] = Downlink()
        if downlink.told(bitrate, now):
            self.dirty = True
            return True
        return False

    def stream_report(self, cid: int, dropped: float, now: float) -> None:
        """On a stream transport (tcp://, which never loses packets), the share of the media for ``cid``
        that its full send queue made the server drop: its downlink estimate follows, as it does the loss
        a receiver reports on rtp://."""
        receiving = [
            self.rates[ssrc][sub.current]
            for ssrc, subs in self.subscriptions.items()
            if (sub := subs.get(cid)) is not None and sub.current is not None and ssrc in self.rates
        ]
        if not receiving:
            return
        downlink = self.downlinks.get(cid)
        if downlink is None:
            downlink = self.downlinks[cid] = Downlink()
        if downlink.report(dropped, max(receiving), now):
            self.dirty = True

    def sync(self, meetings: list[Meeting], now: float) -> tuple[list[tuple[int, int]], list[Send]]:
        """Bring every subscription in line with the meetings and budgets: ``(keyframe requests as
        (publisher, layer SSRC), dynacast messages)``."""
        self.dirty = False
        self.synced = self.version.value
        asks: list[tuple[int, int]] = []
        sends: list[Send] = []
        live: set[int] = set()
        changed = False
        for meeting in meetings:
            for track in meeting.tracks.values():
                if not track.layers:
                    continue
                live.add(track.ssrc)
                self.rates[track.ssrc] = tuple(layer.bitrate for layer in track.layers)
                self.tracks[track.ssrc] = track
                subs = self.subscriptions.setdefault(track.ssrc, {})
                audience = meeting.audience(track.owner)
                for cid in [cid for cid in subs if cid not in audience]:
                    del subs[cid]
                stalled = self.stalled.get(track.ssrc, frozenset())
                for cid in audience:
                    sub = subs.get(cid)
                    current = None if sub is None else sub.current
                    budget, height = self.budget(cid), self.heights.get(cid)
                    want = pick(track.layers, budget, current, height)
                    target = pick(track.layers, budget, current, height, stalled) if stalled else want
                    if sub is None:
                        sub = subs[cid] = Subscription(track.ssrc, target, now)
                        sub.want = want
                        self._retry_by(now + KEYFRAME_RETRY)
                        asks.append((track.owner, track.layers[target].ssrc))
                        changed = True
                    elif want != sub.want:
                        sub.want = want
                        changed = True
                    if target != sub.target:
                        sub.target = target
                        sub.asked = sub.keyframe_asked = now
                        self._retry_by(now + KEYFRAME_RETRY)
                        downlink = self.downlinks.get(cid)
                        sub.hurry = (
                            sub.current is not None
                            and target < sub.current
                            and downlink is not None
                            and downlink.congested(now)
                        )
                        if sub.hurry and downlink is not None and downlink.estimate is not None:
                            self.paced[cid] = (PACE_SHARE * downlink.estimate, now + PACE_FOR)
                        if sub.pending:
                            asks.append((track.owner, track.layers[target].ssrc))
                        changed = True
                active = needed(track.layers, subs.values())
                if active != track.active:
                    track.active = active
                    ssrcs = [track.layers[index].ssrc for index in sorted(active)]
                    told_active = LayersActive(ssrc=track.ssrc, active=tuple(ssrcs))
                    sends.append(Send((track.owner,), told_active.to_message()))
        for (cid, ssrc), index in self.switched.items():
            sub = self.subscription(ssrc, cid)
            told_of = next((t for m in meetings if (t := m.tracks.get(ssrc)) is not None), None)
            if sub is None or told_of is None or sub.current != index:
                continue
            layer = told_of.layers[index]
            told = LayerSwitched(ssrc=ssrc, layer=index, width=layer.width, height=layer.height)
            sends.append(Send((cid,), told.to_message()))
        self.switched.clear()
        for ssrc in [ssrc for ssrc in self.subscriptions if ssrc not in live]:
            del self.subscriptions[ssrc]
            self.stalled.pop(ssrc, None)
        for ssrc in [ssrc for ssrc in self.rates if ssrc not in live]:
            del self.rates[ssrc]
        for ssrc in [ssrc for ssrc in self.tracks if ssrc not in live]:
            del self.tracks[ssrc]
        layers = {layer.ssrc for meeting in meetings for t in meeting.tracks.values() for layer in t.layers}
        for ssrc in [ssrc for ssrc in self.last if ssrc not in layers]:
            del self.last[ssrc]
        if changed:
            self.version.bump()
            self.synced = self.version.value
        return list(dict.fromkeys(asks)), sends

    def overdue(self, now: float) -> list[tuple[int, int]]:
        """Keyframe requests to send again, as (publisher, layer SSRC): for each subscriber that still
        waits for its target layer's keyframe :data:`KEYFRAME_RETRY` seconds after it was asked. Cheap
        until one is due (:attr:`retry_at`), so that it can be called far more often than the tick."""
        if self.retry_at is None or now < self.retry_at:
            return []
        self.retry_at = None
        asks: list[tuple[int, int]] = []
        for ssrc, subs in self.subscriptions.items():
            track = self.tracks.get(ssrc)
            if track is None:
                continue
            for sub in subs.values():
                if not sub.pending:
                    continue
                if now >= sub.keyframe_asked + KEYFRAME_RETRY:  # as the due time was reckoned
                    sub.keyframe_asked = now
                    asks.append((track.owner, track.layers[sub.target].ssrc))
                self._retry_by(sub.keyframe_asked + KEYFRAME_RETRY)
        return list(dict.fromkeys(asks))

    def _retry_by(self, when: float) -> None:
        if self.retry_at is None or when < self.retry_at:
            self.retry_at = when

    def route(
        self, track: Track, index: int, packet: bytes, now: float
    ) -> tuple[tuple[int, ...], Rewrites, bool]:
        """Who receives this first-seen packet of layer ``index`` of simulcast ``track``: ``(unchanged,
        rewritten, cacheable)``. A subscriber waiting for this layer switches to it at its keyframe."""
        subs = self.subscriptions.get(track.ssrc)
        if not subs:
            return (), (), True
        layers = track.layers
        ssrc = layers[index].ssrc
        last = self.last.get(ssrc)
        if last is None:
            last = self.last[ssrc] = LastPacket()
        plain: list[int] = []
        rewritten: dict[tuple[int, int, int, int], tuple[Rewriter, list[int]]] = {}
        settled = True
        keyframe: bool | None = None
        for cid, sub in subs.items():
            if sub.target == index and (sub.current != index or sub.held is not None):
                if keyframe is None:
                    keyframe = opens_keyframe(packet[payload_offset(packet) :])
                if keyframe:
                    self._switch(cid, sub, layers, index, packet, now)
            if sub.pending:
                settled = False
            if sub.current == index:
                if sub.held is not None:
                    continue  # stopped for it: it waits for its target's keyframe
                if sub.hurry and sub.target < index:
                    # it moves down for want of downlink: nothing more of this layer, so the new layer's
                    # keyframe does not queue behind it at the bottleneck; its stream stands just before
                    # this packet (the routes were cached until now: what was noted of the layer is old)
                    seq, ts = SEQ_TS.unpack_from(packet, 2)
                    sub.held = (*sub.rewriter.out((seq - 1) & 0xFFFF, ts), now)
                    continue
                rewriter = sub.rewriter
                if rewriter.identity:
                    plain.append(cid)
                else:
                    group = rewritten.get(rewriter.key)
                    if group is None:
                        rewritten[rewriter.key] = (rewriter, [cid])
                    else:
                        group[1].append(cid)
        last.note(packet, now)
        if packet[1] & 0x80:
            self.arrived(ssrc, packet, now)
        return tuple(plain), tuple((r, tuple(cids)) for r, cids in rewritten.values()), settled

    def _switch(
        self, cid: int, sub: Subscription, layers: tuple[Layer, ...], index: int, packet: bytes, now: float
    ) -> None:
        """Move ``sub`` to layer ``index`` at ``packet``, continuing its stream from where it stands: the
        last packet of its old layer seen since it was asked to move (until one is, it waits for the next
        keyframe)."""
        ending: tuple[int, int, float] | None = None
        if sub.held is not None:
            ending = sub.held
        elif sub.current is not None:
            old_ssrc = layers[sub.current].ssrc
            old = self.last.get(old_ssrc)
            if old is None or old.seq is None:
                return
            if old.at < sub.asked:
                moved = self.progress.get(old_ssrc)
                if sub.current not in self.stalled.get(layers[-1].ssrc, ()) or moved is None:
                    return
                # its old layer stopped: go on from the last packet forwarded of it, the timestamp where
                # the publisher's clock stands now (the one noted is older; it ran on since)
                ending = (*sub.rewriter.out(moved[0], old.ts), old.at)
            else:
                ending = (*sub.rewriter.out(old.seq, old.ts), old.at)
        sub.rewriter.switch(packet, now, ending)
        if sub.held is not None and cid in self.paced:  # the new keyframe goes out paced
            self.paced[cid] = (self.paced[cid][0], now + PACE_AFTER)
        sub.held = None
        sub.hurry = False
        sub.current = index
        self.switched[(cid, layers[-1].ssrc)] = index
        self.switches += 1
        self.dirty = True
        self.version.bump()
