"""Publisher congestion control, sans-I/O: how many bits a second the uplink carries, and who gets them.

Time is always passed in (``now``, seconds on any monotonic clock); nothing here does I/O or reads a clock.

Two ways to learn about the uplink, one per kind of transport:

- **Feedback (rtp://, zmq://)**: the server, the first hop, tells the publisher when each RTP packet arrived
  (RFC 8888 congestion control feedback, :class:`~conf_cli.protocol.rtcp.CongestionFeedback`). The
  publisher matches the reports with what it sent (:class:`SentHistory`) and feeds the results
  (:class:`PacketResult`) to a :class:`DelayBasedEstimator` (Google Congestion Control's trendline filter and
  over-use detector, draft-ietf-rmcat-gcc-02) and a :class:`LossBasedEstimator`.
- **Send queue (tcp://)**: the bytes waiting in the link's send queue say the same thing sooner: a
  queue that grows means the link drains slower than we write. :class:`QueueEstimator` is fed queue
  samples and measures the drain rate.

Both drive the same :class:`AimdRate` (multiplicative increase, multiplicative decrease: back off to 85 % of
what got through on over-use, hold while the queue drains, then grow :data:`INCREASE_PER_SECOND` a second,
faster the longer nothing is over-used: how the estimate probes back up once congestion ends).

:class:`BitrateController` is what a publisher holds: one estimate (``target``), and the share of it each
track gets: audio first (:meth:`BitrateController.audio_bitrate`), video what audio leaves
(:meth:`BitrateController.video_bitrate`). Whoever splits video into layers splits
:meth:`~BitrateController.video_bitrate`.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

__all__ = [
    "AimdRate",
    "BitrateController",
    "DelayBasedEstimator",
    "DownlinkMonitor",
    "LayerAllocator",
    "LossBasedEstimator",
    "PacketResult",
    "QueueEstimator",
    "SentHistory",
    "Transit",
    "Usage",
    "split_target",
]

MIN_BITRATE = 80_000
"""The estimate never goes below this (bit/s): audio and a small picture still fit."""
MAX_BITRATE = 2_500_000
"""... nor above this."""
START_BITRATE = 1_500_000
INCREASE_PER_SECOND = 0.08
"""Multiplicative increase while nothing is over-used: 8 % a second (GCC's rate control) ..."""
INCREASE_DOUBLING = 2.0
"""... and the increase itself doubles for every this many seconds without over-use (a probe back up once
congestion has ended, instead of GCC's padding probes) ..."""
MAX_INCREASE_PER_SECOND = 0.6
"""... up to this much a second."""
DECREASE_FACTOR = 0.85
"""On over-use the target becomes this share of the rate that got through."""
HOLD_AFTER_DECREASE = 0.3
"""Seconds the target holds after a decrease before it may grow again (about a round trip plus a report)."""
AUDIO_BITRATE = 32_000
"""What audio keeps, first."""
AUDIO_MIN_BITRATE = 16_000
"""What audio falls to when the estimate leaves less than audio plus the smallest video."""
VIDEO_MIN_BITRATE = 50_000
PACKET_OVERHEAD = 40
"""Bytes per packet beyond the RTP payload that the uplink carries too (IP, UDP, SRTP tag), on average."""

# trendline filter (draft-ietf-rmcat-gcc-02 section 5.3, as in libwebrtc's TrendlineEstimator)
GROUP_SPAN = 0.005
"""Packets sent within this many seconds of a group's first form one group (a burst)."""
TRENDLINE_WINDOW = 20
SMOOTHING = 0.9
TREND_GAIN = 4.0
THRESHOLD_START = 12.5
"""The over-use threshold before it adapts, in the units of the modified trend: the delay's slope (seconds of
queueing per second) times min(groups, 60) times :data:`TREND_GAIN` (as libwebrtc's, in milliseconds)."""
THRESHOLD_MIN = 6.0
THRESHOLD_MAX = 600.0
THRESHOLD_SPIKE = 15.0
"""A modified trend further than this over the threshold does not move it (a spike, not a new normal)."""
K_UP = 0.0087
K_DOWN = 0.039
"""How fast the threshold follows the trend up and down, per millisecond."""
OVERUSE_TIME = 0.01
"""Seconds the trend must stay over the threshold before it is over-use."""

# loss (draft-ietf-rmcat-gcc-02 section 6)
LOSS_HIGH = 0.10
LOSS_LOW = 0.02
LOSS_WINDOW = 1.0
"""Seconds between the loss-based controller's decisions (about a receiver report's interval)."""

# queue (streams)
QUEUE_HIGH = 0.15
"""Seconds of send queue (queued bytes over the drain rate) that count as over-use."""
QUEUE_LOW = 0.03
"""... and below which the link keeps up (the target may grow)."""
QUEUE_DRAIN_WAIT = 2.0
"""After a decrease, a long queue is not over-use again until it has had its own length in seconds (at
most this many) to drain."""
QUEUE_MIN_BYTES = 4_000
"""A queue this small is never congestion, whatever the rate (one video frame's burst)."""

MAX_HISTORY = 4096
"""Packets a publisher remembers to match with feedback (about 3 s of 1.5 Mbit/s video and audio)."""
FEEDBACK_TIMEOUT = 1.0
"""Seconds of sending without any feedback after which the estimate halves (and again each such span)."""


class Usage(Enum):
    """The over-use detector's verdict on the path."""

    NORMAL = "normal"
    OVERUSE = "overuse"
    UNDERUSE = "underuse"


@dataclass(frozen=True, slots=True)
class PacketResult:
    """One sent packet as the feedback saw it: ``arrival`` is None if it was reported lost."""

    send_time: float
    size: int
    arrival: float | None


class SentHistory:
    """What a publisher sent, by (SSRC, sequence number), until feedback reports on it (bounded)."""

    def __init__(self, limit: int = MAX_HISTORY) -> None:
        self.limit = limit
        self._sent: OrderedDict[tuple[int, int], tuple[float, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sent)

    def sent(self, ssrc: int, seq: int, size: int, now: float) -> None:
        key = (ssrc, seq & 0xFFFF)
        sent = self._sent
        sent.pop(key, None)
        sent[key] = (now, size + PACKET_OVERHEAD)
        while len(sent) > self.limit:
            sent.popitem(last=False)

    def results(self, reports: Iterable[tuple[int, int, float | None]]) -> list[PacketResult]:
        """Match ``(ssrc, seq, arrival or None)`` reports with what was sent; each packet is reported once
        (an arrival is final; a loss may be reported again later, and is forgotten once reported)."""
        out: list[PacketResult] = []
        sent = self._sent
        for ssrc, seq, arrival in reports:
            entry = sent.pop((ssrc, seq & 0xFFFF), None)
            if entry is not None:
                out.append(PacketResult(entry[0], entry[1], arrival))
        out.sort(key=lambda r: r.send_time)
        return out


class AimdRate:
    """Additive-increase, multiplicative-decrease rate control shared by every estimator.

    :meth:`update` takes the detector's verdict and the rate that got through (``acked``, bit/s): on
    over-use the target drops to :data:`DECREASE_FACTOR` of ``acked`` (or of itself, whichever is lower);
    on under-use (a queue draining) it holds; otherwise it grows :data:`INCREASE_PER_SECOND` a second, after
    :data:`HOLD_AFTER_DECREASE` seconds without a decrease.
    """

    def __init__(self, start: float, low: float = MIN_BITRATE, high: float = MAX_BITRATE) -> None:
        self.low = low
        self.high = high
        self.target = min(high, max(low, start))
        self._last_update: float | None = None
        self._last_decrease = -math.inf

    def update(self, usage: Usage, acked: float | None, now: float) -> float:
        dt = 0.0 if self._last_update is None else min(1.0, max(0.0, now - self._last_update))
        self._last_update = now
        if usage is Usage.OVERUSE:
            if now - self._last_decrease >= HOLD_AFTER_DECREASE:  # one decrease per reaction time
                base = self.target if acked is None else min(self.target, acked)
                self.target = DECREASE_FACTOR * base
                self._last_decrease = now
        elif usage is Usage.NORMAL and now - self._last_decrease >= HOLD_AFTER_DECREASE:
            self.target *= (1 + self.increase(now)) ** dt
        self.target = min(self.high, max(self.low, self.target))
        return self.target

    def increase(self, now: float) -> float:
        """The share the target grows per second now: :data:`INCREASE_PER_SECOND`, doubling every
        :data:`INCREASE_DOUBLING` seconds since the last decrease, at most :data:`MAX_INCREASE_PER_SECOND`."""
        calm = max(0.0, now - self._last_decrease - HOLD_AFTER_DECREASE)
        if calm > 60:
            return MAX_INCREASE_PER_SECOND
        return min(MAX_INCREASE_PER_SECOND, INCREASE_PER_SECOND * 2 ** (calm / INCREASE_DOUBLING))

    @property
    def last_decrease(self) -> float:
        """When the target last went down (-inf: never)."""
        return self._last_decrease

    def limit(self, target: float, now: float) -> None:
        """Another controller decreased the estimate to ``target``: start from there, as after a decrease."""
        if target < self.target:
            self.target = max(self.low, target)
            self._last_decrease = now

    def cut(self, factor: float, now: float) -> float:
        """Scale the target down by ``factor`` (loss, silence) and hold before growing again."""
        self.target = min(self.high, max(self.low, self.target * factor))
        self._last_decrease = now
        self._last_update = now
        return self.target


class _Throughput:
    """Bits per second delivered over a sliding window, from (time, bytes) samples."""

    def __init__(self, window: float = 0.5) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque(maxlen=2048)
        self._bytes = 0

    def add(self, when: float, size: int) -> None:
        samples = self._samples
        if len(samples) == samples.maxlen:
            self._bytes -= samples[0][1]
        samples.append((when, size))
        self._bytes += size
        while samples and samples[0][0] < when - self.window:
            self._bytes -= samples.popleft()[1]

    def rate(self) -> float | None:
        samples = self._samples
        if len(samples) < 2:
            return None
        span = samples[-1][0] - samples[0][0]
        if span < self.window / 4:
            return None
        return self._bytes * 8 / max(span, self.window / 2)


class DelayBasedEstimator:
    """GCC's delay-based controller: arrival-time filter (trendline), over-use detector, AIMD rate.

    Packets are grouped by send time (:data:`GROUP_SPAN`); for each new group the one-way delay variation
    (arrival spacing minus send spacing) is accumulated, smoothed, and a least-squares line fitted over the
    last :data:`TRENDLINE_WINDOW` groups. Its slope, scaled, is compared with an adaptive threshold: over
    it for :data:`OVERUSE_TIME` is over-use (a queue building on the path), under minus it is under-use (a
    queue draining).
    """

    def __init__(
        self, start: float = START_BITRATE, low: float = MIN_BITRATE, high: float = MAX_BITRATE
    ) -> None:
        self.rate = AimdRate(start, low, high)
        self.usage = Usage.NORMAL
        self.threshold = THRESHOLD_START
        self.trend = 0.0
        self.acked = _Throughput()
        self._group: tuple[float, float, float] | None = (
            None  # the open group's first and last send, last arrival
        )
        self._previous: tuple[float, float, float] | None = None  # the last closed group
        self._accumulated = 0.0
        self._smoothed = 0.0
        self._points: deque[tuple[float, float]] = deque(maxlen=TRENDLINE_WINDOW)
        self._first_arrival: float | None = None
        self._overuse_since: float | None = None
        self._previous_trend = 0.0
        self._last_threshold_update: float | None = None

    @property
    def target(self) -> float:
        return self.rate.target

    def update(self, results: Sequence[PacketResult], now: float) -> float:
        """Take one feedback report's results (lost packets are ignored here); return the target."""
        for result in results:
            if result.arrival is None:
                continue
            self.acked.add(result.arrival, result.size)
            self._packet(result.send_time, result.arrival)
        return self.rate.update(self.usage, self.acked.rate(), now)

    def _packet(self, send: float, arrival: float) -> None:
        group = self._group
        if group is None:
            self._group = (send, send, arrival)
            return
        if send - group[0] <= GROUP_SPAN:  # the same burst: its last send and arrival times count
            self._group = (group[0], max(group[1], send), max(group[2], arrival))
            return
        if self._previous is not None:
            send_delta = group[1] - self._previous[1]
            arrival_delta = group[2] - self._previous[2]
            self._delta(arrival_delta - send_delta, group[2])
        self._previous = group
        self._group = (send, send, arrival)

    def _delta(self, variation: float, arrival: float) -> None:
        if self._first_arrival is None:
            self._first_arrival = arrival
        self._accumulated += variation
        self._smoothed = SMOOTHING * self._smoothed + (1 - SMOOTHING) * self._accumulated
        self._points.append((arrival - self._first_arrival, self._smoothed))
        if len(self._points) >= TRENDLINE_WINDOW:
            slope = _slope(self._points)
            if slope is not None:
                self.trend = slope
        self._detect(arrival)

    def _detect(self, now: float) -> None:
        modified = min(len(self._points), 60) * self.trend * TREND_GAIN
        if modified > self.threshold:
            if self._overuse_since is None:
                self._overuse_since = now
            if now - self._overuse_since >= OVERUSE_TIME and self.trend >= self._previous_trend:
                self.usage = Usage.OVERUSE
        elif modified < -self.threshold:
            self._overuse_since = None
            self.usage = Usage.UNDERUSE
        else:
            self._overuse_since = None
            self.usage = Usage.NORMAL
        self._previous_trend = self.trend
        self._adapt_threshold(modified, now)

    def _adapt_threshold(self, modified: float, now: float) -> None:
        last = self._last_threshold_update
        self._last_threshold_update = now
        if last is None or abs(modified) > self.threshold + THRESHOLD_SPIKE:  # a spike: do not chase it
            return
        k = K_DOWN if abs(modified) < self.threshold else K_UP
        dt_ms = min(100.0, max(0.0, now - last) * 1000)
        self.threshold += min(1.0, k * dt_ms) * (abs(modified) - self.threshold)
        self.threshold = min(THRESHOLD_MAX, max(THRESHOLD_MIN, self.threshold))


def _slope(points: Sequence[tuple[float, float]]) -> float | None:
    n = len(points)
    mean_x = sum(p[0] for p in points) / n
    mean_y = sum(p[1] for p in points) / n
    numerator = sum((x - mean_x) * (y - mean_y) for x, y in points)
    denominator = sum((x - mean_x) ** 2 for x, _ in points)
    return numerator / denominator if denominator > 0 else None


class LossBasedEstimator:
    """GCC's loss-based controller, deciding once per :data:`LOSS_WINDOW` (as on a receiver report): more
    than :data:`LOSS_HIGH` of the packets reported on since the last decision lost cuts the target by half
    the loss; less than :data:`LOSS_LOW` lets it follow the delay-based one; in between it holds."""

    def __init__(
        self, start: float = START_BITRATE, low: float = MIN_BITRATE, high: float = MAX_BITRATE
    ) -> None:
        self.low = low
        self.high = high
        self.target = min(high, max(low, start))
        self.loss = 0.0
        """The loss fraction of the last decision."""
        self._lost = 0
        self._packets = 0
        self._since: float | None = None

    def update(self, results: Sequence[PacketResult], delay_target: float, now: float) -> float:
        if self._since is None:
            self._since = now
        self._lost += sum(1 for r in results if r.arrival is None)
        self._packets += len(results)
        if now - self._since >= LOSS_WINDOW and self._packets >= 20:
            self.loss = self._lost / self._packets
            self._lost = self._packets = 0
            self._since = now
            if self.loss > LOSS_HIGH:
                self.target = max(self.low, min(self.target, delay_target) * (1 - 0.5 * self.loss))
        if self.loss < LOSS_LOW:
            self.target = delay_target
        self.target = min(self.high, max(self.low, self.target))
        return self.target


class QueueEstimator:
    """The uplink of a stream transport, from its send queue: fed the bytes waiting in the queue and the
    bytes written so far, it measures the drain rate (written minus queue growth, per second) and calls
    over-use when the queue holds more than :data:`QUEUE_HIGH` seconds at that rate, under-use while a
    queue over :data:`QUEUE_LOW` seconds drains."""

    def __init__(
        self, start: float = START_BITRATE, low: float = MIN_BITRATE, high: float = MAX_BITRATE
    ) -> None:
        self.rate = AimdRate(start, low, high)
        self.usage = Usage.NORMAL
        self.queue_delay = 0.0
        self.drain_rate: float | None = None
        self._last: tuple[float, int, int] | None = None  # (when, queued, written)
        self._drained: deque[tuple[float, int]] = deque(maxlen=256)
        self._dropped = 0
        self._hold_until = -math.inf

    @property
    def target(self) -> float:
        return self.rate.target

    def update(self, queued: int, written: int, now: float, dropped: int = 0) -> float:
        """A sample: ``queued`` bytes waiting now, ``written`` bytes handed to the link since it opened,
        ``dropped`` packets the link refused since it opened (its queue was full)."""
        last = self._last
        self._last = (now, queued, written)
        if last is None or now <= last[0]:
            return self.rate.target
        drained = max(0, (written - last[2]) - (queued - last[1]))
        samples = self._drained
        samples.append((now, drained))
        while len(samples) > 2 and samples[1][0] < now - 1.0:
            samples.popleft()
        if len(samples) > 1:  # the bytes drained after the oldest sample, over the time since it
            rate = sum(d for _, d in list(samples)[1:]) * 8 / (now - samples[0][0])
            if rate > 0:
                self.drain_rate = rate
        drain = self.drain_rate or self.rate.target
        self.queue_delay = queued * 8 / drain
        full = dropped > self._dropped
        self._dropped = dropped
        if full or (queued > QUEUE_MIN_BYTES and self.queue_delay > QUEUE_HIGH):
            # after a decrease the queue needs time to drain at the lower rate: until then it is no news
            self.usage = Usage.OVERUSE if now >= self._hold_until else Usage.UNDERUSE
        elif queued > QUEUE_MIN_BYTES and self.queue_delay > QUEUE_LOW:
            self.usage = Usage.UNDERUSE
        else:
            self.usage = Usage.NORMAL
        before = self.rate.target
        target = self.rate.update(self.usage, self.drain_rate, now)
        if target < before:
            self._hold_until = now + min(QUEUE_DRAIN_WAIT, max(HOLD_AFTER_DECREASE, self.queue_delay))
        return target


class BitrateController:
    """A publisher's estimate of its uplink and the share each of its tracks gets (audio first).

    Feed it :meth:`on_feedback` (rtp://, zmq://: RFC 8888 feedback) or :meth:`on_queue` (tcp://: send-queue
    samples), and call :meth:`on_sent` for each packet sent (it notices when feedback stops
    coming). Read :attr:`target` (bit/s for everything), :meth:`audio_bitrate` and :meth:`video_bitrate`.
    """

    def __init__(
        self,
        start: float = START_BITRATE,
        low: float = MIN_BITRATE,
        high: float = MAX_BITRATE,
        *,
        audio: float = AUDIO_BITRATE,
    ) -> None:
        self.delay = DelayBasedEstimator(start, low, high)
        self.loss = LossBasedEstimator(start, low, high)
        self.queue = QueueEstimator(start, low, high)
        self.audio = audio
        self.target = self.delay.target
        self.history = SentHistory()
        self.feedback_reports = 0
        self.queue_samples = 0
        self._last_feedback: float | None = None
        self._sending_since: float | None = None

    def on_sent(self, ssrc: int, seq: int, size: int, now: float) -> None:
        """A packet went out (only needed with feedback)."""
        self.history.sent(ssrc, seq, size, now)
        if self._sending_since is None:
            self._sending_since = now
        last = self._last_feedback if self._last_feedback is not None else self._sending_since
        if self.feedback_reports and now - last > FEEDBACK_TIMEOUT:  # the feedback stopped: back off
            self._last_feedback = now
            self.target = self.delay.rate.cut(0.5, now)
            self.loss.target = min(self.loss.target, self.target)

    def on_feedback(self, reports: Iterable[tuple[int, int, float | None]], now: float) -> float:
        """One feedback report: ``(ssrc, seq, arrival or None if lost)`` per packet; arrivals may be on the
        reporter's clock (only their differences matter). Returns the new target."""
        self.feedback_reports += 1
        self._last_feedback = now
        results = self.history.results(reports)
        delay_target = self.delay.update(results, now)
        # packets sent before the last decrease were sent at the old rate: their loss is no news
        since = self.delay.rate.last_decrease
        recent = [r for r in results if r.send_time >= since]
        self.target = min(delay_target, self.loss.update(recent, delay_target, now))
        if self.target < delay_target:  # loss rules: the delay controller starts again from there
            self.delay.rate.limit(self.target, now)
        return self.target

    def on_queue(self, queued: int, written: int, now: float, dropped: int = 0) -> float:
        """A send-queue sample (see :meth:`QueueEstimator.update`). Returns the new target."""
        self.queue_samples += 1
        self.target = self.queue.update(queued, written, now, dropped)
        return self.target

    def audio_bitrate(self) -> int:
        """Audio's share: :attr:`audio` unless the estimate cannot also carry the smallest video."""
        if self.target >= self.audio + VIDEO_MIN_BITRATE:
            return int(self.audio)
        return int(max(AUDIO_MIN_BITRATE, min(self.audio, self.target - VIDEO_MIN_BITRATE)))

    def video_bitrate(self, audio_tracks: int = 1) -> int:
        """What video gets: the estimate less audio's share (per audio track) and packet overhead."""
        left = self.target * 0.95 - audio_tracks * self.audio_bitrate()
        return int(max(VIDEO_MIN_BITRATE, left))


def split_target(target: int, nominal: list[int], active: list[bool] | None = None) -> list[int]:
    """Share a video track's target bit rate (what its uplink carries, from congestion control) among
    its simulcast layers, lowest first: each active layer in turn gets up to its nominal rate, so when the
    uplink narrows the highest layers shrink first and the lowest keeps its picture; a paused layer gets
    nothing. What is left over stays unused (a layer never runs above its nominal rate)."""
    shares: list[int] = []
    left = max(0, target)
    for index, rate in enumerate(nominal):
        if active is not None and not active[index]:
            shares.append(0)
            continue
        share = min(rate, left)
        shares.append(share)
        left -= share
    return shares


PAUSE_SHARE = 0.25
"""A simulcast layer above the lowest pauses when its share of the target falls under this part of its
nominal rate (a 720p picture at a quarter of its rate is worth less than the bits it takes) ..."""
RESUME_SHARE = 0.5
"""... and resumes (with a keyframe) once its share would be at least this part again ..."""
RESUME_AFTER = 2.0
"""... but not sooner than this many seconds after it paused ..."""
RESUME_AFTER_MAX = 16.0
"""... a wait that doubles, up to this, each time a layer pauses again within :data:`FAILED_WITHIN`
seconds of resuming (its resumption was a probe the uplink could not carry)."""
FAILED_WITHIN = 4.0


class LayerAllocator:
    """A simulcast track's share of the estimate, split among its layers (lowest first).

    What the uplink carries is decided over every layer: each in turn gets up to its nominal rate
    (:func:`split_target`), so a narrowing uplink shrinks the highest layer first; a layer whose share
    falls under :data:`PAUSE_SHARE` of its nominal rate is paused (:attr:`paused`), and so is every layer
    above it, before the lowest one starves (it is never paused). A paused layer resumes when its share
    would be :data:`RESUME_SHARE` of its nominal rate again, after :data:`RESUME_AFTER` seconds (longer
    after a resumption that failed).

    What is sent follows what subscribers receive (dynacast, ``active``): each layer someone receives if
    the uplink carries it, else the best one under it that it carries (the server moves its subscribers
    there), so that nobody is left without a picture. The target is split among the layers sent.
    """

    def __init__(self, nominal: Sequence[int]) -> None:
        count = len(nominal)
        self.nominal = list(nominal)
        self.paused = [False] * count
        """Per layer: paused for want of uplink."""
        self.sent = [True] * count
        """Per layer: sent (after the last :meth:`allocate`)."""
        self._paused_at = [-math.inf] * count
        self._resumed_at = [-math.inf] * count
        self._wait = [RESUME_AFTER] * count

    def allocate(self, target: float, now: float, active: Sequence[bool] | None = None) -> list[int]:
        """Each layer's bit rate for a video target of ``target`` bit/s (0: not sent); :attr:`paused`
        and :attr:`sent` are updated."""
        left = max(0.0, target)
        top = 0  # the highest layer the uplink carries
        for index, nominal in enumerate(self.nominal):
            share = min(nominal, left)
            if index == 0:
                pass
            elif self.paused[index - 1]:
                self._pause(index, now)
            elif self.paused[index]:
                if share >= RESUME_SHARE * nominal and now - self._paused_at[index] >= self._wait[index]:
                    self.paused[index] = False
                    self._resumed_at[index] = now
            elif share < PAUSE_SHARE * nominal:
                self._pause(index, now)
            if not self.paused[index]:
                top = index
                left -= share
        wanted = range(len(self.nominal)) if active is None else [i for i, on in enumerate(active) if on]
        sent = {min(index, top) for index in wanted}
        self.sent = [index in sent for index in range(len(self.nominal))]
        return split_target(int(target), self.nominal, self.sent)

    def _pause(self, index: int, now: float) -> None:
        if self.paused[index]:
            return
        self.paused[index] = True
        failed = now - self._resumed_at[index] < FAILED_WITHIN
        self._wait[index] = min(RESUME_AFTER_MAX, 2 * self._wait[index]) if failed else RESUME_AFTER
        self._paused_at[index] = now


DOWNLINK_QUEUE = 0.15
"""Seconds of queueing on a subscriber's downlink (its pictures' transit over the least seen) that say a
bottleneck's queue is building (:class:`DownlinkMonitor`) ..."""
DOWNLINK_SUSTAIN = 0.08
"""... when every packet arriving over this many seconds saw it, and the queueing still grows (the delay
trend rises, or the newest packet saw more than the first: the packets of one large picture share a
timestamp, so the trend learns nothing from them). A host that stalled delivers what waited in one burst,
each packet with less queueing than the one before: not a queue."""
DOWNLINK_WINDOW = 0.2
"""Seconds over which a subscriber measures what its downlink delivers (what it reports; longer when it
arrives in bursts further apart: :class:`Delivered`)."""
DOWNLINK_REPORT_INTERVAL = 0.25
"""A subscriber tells the server its downlink estimate at most once per this many seconds."""


BURST_GAP = 0.002
"""Seconds within which arrivals count as one burst: what one read handed over (a stream transport's TLS
record of a few pictures' packets at once, a busy host's several datagrams)."""
DELIVERED_HISTORY = 1.0
"""Seconds of bursts :class:`Delivered` keeps: a window stretches back this far for bursts far apart."""
MAX_BURSTS = 4096


class Delivered:
    """The bit rate a path delivers, from arrivals that may come in bursts. On a datagram path each packet
    arrives as the bottleneck lets it out; on a stream, the packets of one TLS record arrive together once
    its last byte has crossed (a 16 kB record takes a third of a second at 400 kbit/s), so a burst's bytes
    were carried over the time since the burst before it, not at its instant. :meth:`rate` counts whole
    bursts only: from the end of the first (its bytes not counted) to the end of the last complete one (not
    the one arriving now, of which only the first packets may be in), over at least ``window`` seconds or,
    where bursts are further apart, over at least one gap between two."""

    __slots__ = ("_bursts", "window")

    def __init__(self, window: float) -> None:
        self.window = window
        self._bursts: deque[list[float]] = deque(maxlen=MAX_BURSTS)  # [first arrival, last, bytes]

    def add(self, when: float, size: int) -> None:
        bursts = self._bursts
        if bursts and when - bursts[-1][0] <= BURST_GAP:
            burst = bursts[-1]
            burst[1] = when
            burst[2] += size
        else:
            bursts.append([when, when, float(size)])
        while bursts[0][1] < when - DELIVERED_HISTORY:
            bursts.popleft()

    def rate(self) -> float | None:
        """bit/s over the complete bursts of the last :attr:`window` (at least one gap between two); None
        before two complete bursts, or when they span less than a quarter of the window."""
        bursts = self._bursts
        end = len(bursts) - 2  # the newest complete burst
        if end < 1:
            return None
        until = bursts[end][1]
        carried = 0.0
        index = end
        while index > 0:
            carried += bursts[index][2]
            index -= 1
            if until - bursts[index][1] >= self.window:
                break
        span = until - bursts[index][1]
        if span < self.window / 4:
            return None
        return carried * 8 / span


class Transit:
    """How long packets of one RTP stream queued on their way, from their timestamps: each packet's
    transit (arrival less its timestamp in seconds, unwrapped) over the least seen. The timestamp is the
    picture's capture time, so this counts every queue between the encoder and here. ``peak`` is the most
    seen since :meth:`roll` was last called, ``previous`` the most in each period before that, newest
    first."""

    __slots__ = ("_last", "_least", "_ts", "at", "clock_rate", "peak", "previous")

    KEPT = 4
    """:attr:`recent` covers this many :meth:`roll` periods."""

    def __init__(self, clock_rate: int = 90_000) -> None:
        self.clock_rate = clock_rate
        self._last: int | None = None
        self._ts = 0
        self._least: float | None = None
        self.peak = 0.0
        self.previous: tuple[float, ...] = ()
        self.at: float | None = None
        """When the last packet was noted."""

    def note(self, timestamp: int, now: float) -> tuple[float, float]:
        """A packet with RTP ``timestamp`` arrived at ``now``: ``(its send time in seconds, unwrapped from
        the first packet's timestamp; the seconds it queued)``."""
        last = self._last
        if last is None:
            self._ts = timestamp
        else:
            step = (timestamp - last) & 0xFFFFFFFF
            self._ts += step - 0x1_0000_0000 if step >= 0x8000_0000 else step
        self._last = timestamp
        self.at = now
        send = self._ts / self.clock_rate
        transit = now - send
        least = self._least
        if least is None or transit < least:
            least = self._least = transit
        queued = transit - least
        if queued > self.peak:
            self.peak = queued
        return send, queued

    def roll(self) -> None:
        self.previous, self.peak = (self.peak, *self.previous[: self.KEPT - 2]), 0.0

    @property
    def recent(self) -> float:
        """The most queueing seen over the last :data:`KEPT` :meth:`roll` periods."""
        return max((self.peak, *self.previous))


class DownlinkMonitor:
    """A subscriber's own view of its downlink, sans-I/O: the :class:`DelayBasedEstimator` fed with the
    video it receives, each packet's RTP timestamp (its picture's capture time; the publisher sends a
    picture at once and the server forwards it at once) standing for its send time, so that a queue
    building at a bottleneck on the way shows long before a packet is lost.

    A picture's packets share one timestamp, so the trendline gets one point per picture and at 15 pictures
    a second it is slow to see over-use (about a second); the queueing itself (each packet's transit over
    the least seen) is seen sooner. :meth:`arrived` returns the bit rate to tell the server when the
    estimator over-uses with at least :data:`DOWNLINK_QUEUE` of queueing, or when every packet over
    :data:`DOWNLINK_SUSTAIN` saw that much while it still grows: :data:`DECREASE_FACTOR`
    of what was delivered over the last :data:`DOWNLINK_WINDOW` (:class:`Delivered`: what the bottleneck
    carries while its queue grows), at most the estimator's target; at most once per
    :data:`DOWNLINK_REPORT_INTERVAL`. The server only lowers a subscriber's layer on it; growing back is
    its own (clean receiver reports, with hysteresis)."""

    def __init__(self, clock_rate: int = 90_000) -> None:
        self.clock_rate = clock_rate
        self.reports = 0
        self.reset()

    def reset(self) -> None:
        """Start over (the stream's timestamps moved: the server switched it to another layer)."""
        self.estimator = DelayBasedEstimator()
        self._recent = Delivered(DOWNLINK_WINDOW)
        self._transit = Transit(self.clock_rate)
        self._queued_since: float | None = None  # since when every packet saw DOWNLINK_QUEUE
        self._queued_from = 0.0  # ... and how much the first of them saw
        self._reported = -math.inf
        self.queued = 0.0
        """Seconds of queueing the newest packet saw (its transit over the least)."""

    def arrived(self, timestamp: int, size: int, now: float) -> int | None:
        """A video packet of ``size`` payload bytes with RTP ``timestamp`` arrived at ``now``: the bit
        rate to tell the server, or None."""
        send, queued = self._transit.note(timestamp, now)
        self.queued = queued
        if queued < DOWNLINK_QUEUE:
            self._queued_since = None
        elif self._queued_since is None:
            self._queued_since = now
            self._queued_from = queued
        wire = size + PACKET_OVERHEAD
        self._recent.add(now, wire)
        estimator = self.estimator
        estimator.update((PacketResult(send, wire, now),), now)
        since = self._queued_since
        building = since is not None and (
            estimator.usage is Usage.OVERUSE
            or (now - since >= DOWNLINK_SUSTAIN and (estimator.trend > 0 or queued > self._queued_from))
        )
        if not building or now - self._reported < DOWNLINK_REPORT_INTERVAL:
            return None
        recent = self._recent.rate()
        if recent is None:
            return None
        self._reported = now
        self.reports += 1
        return int(min(estimator.target, DECREASE_FACTOR * recent))
