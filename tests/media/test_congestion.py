"""The publisher's estimators, sans-I/O, on synthetic paths: a bottleneck queue, delay ramps, loss."""

from __future__ import annotations

import random

from conf_cli.media.congestion import (
    MAX_BITRATE,
    MIN_BITRATE,
    BitrateController,
    DelayBasedEstimator,
    LossBasedEstimator,
    PacketResult,
    QueueEstimator,
    SentHistory,
    Usage,
)

PACKET = 1200


class Bottleneck:
    """A FIFO link of ``capacity`` bit/s (None: unlimited) with a 20 ms base delay, and loss."""

    def __init__(self, capacity: float | None, loss: float = 0.0, seed: int = 1) -> None:
        self.capacity = capacity
        self.loss = loss
        self.free_at = 0.0
        self.rng = random.Random(seed)

    def arrival(self, send: float, size: int) -> float | None:
        if self.rng.random() < self.loss:
            return None
        if self.capacity is None:
            return send + 0.02
        start = max(send, self.free_at)
        self.free_at = start + size * 8 / self.capacity
        return self.free_at + 0.02


def run(
    controller: BitrateController, link: Bottleneck, seconds: float, start: float = 0.0
) -> list[tuple[float, float]]:
    """Send at the controller's target for ``seconds``, feedback every 50 ms; (time, target) samples."""
    now = start
    seq = 0
    pending: list[tuple[int, int, float | None]] = []
    next_feedback = start + 0.05
    trace = []
    while now < start + seconds:
        size = PACKET
        controller.on_sent(1, seq, size, now)
        arrival = link.arrival(now, size + 40)
        pending.append((1, seq, arrival))
        seq = (seq + 1) & 0xFFFF
        now += size * 8 / controller.target
        if now >= next_feedback:
            # a report covers what arrived by now (and whatever was lost), like the server's
            due = [p for p in pending if p[2] is None or p[2] <= now]
            pending = [p for p in pending if not (p[2] is None or p[2] <= now)]
            controller.on_feedback(due, now)
            next_feedback = now + 0.05
            trace.append((now, controller.target))
    return trace


def first_time_below(trace: list[tuple[float, float]], limit: float) -> float | None:
    return next((t for t, target in trace if target < limit), None)


def test_a_bottleneck_brings_the_target_under_it_within_3_seconds_and_it_climbs_back_when_lifted() -> None:
    controller = BitrateController(start=1_500_000)
    link = Bottleneck(600_000)
    trace = run(controller, link, 10.0)
    below = first_time_below(trace, 600_000)
    assert below is not None and below < 3.0, trace[:80]
    # afterwards it stays near the capacity: never far over it, never starved
    late = [target for t, target in trace if t > 5.0]
    assert max(late) < 720_000 and min(late) > 250_000, late
    link.capacity = None
    after = run(controller, link, 12.0, start=10.0)
    climbed = next((t for t, target in after if target > 1_000_000), None)
    assert climbed is not None and climbed - 10.0 < 10.0, after[-5:]


def test_a_clean_path_lets_the_target_grow_to_its_maximum() -> None:
    controller = BitrateController(start=300_000)
    run(controller, Bottleneck(None), 30.0)
    assert controller.target > 1_900_000
    assert controller.target <= MAX_BITRATE


def test_a_delay_ramp_is_overuse_and_flat_delay_is_not() -> None:
    ramp = DelayBasedEstimator(start=1_000_000)
    flat = DelayBasedEstimator(start=1_000_000)
    for i in range(200):  # a packet every 10 ms; the ramp adds 2 ms of queueing per packet
        send = i * 0.01
        ramp.update([PacketResult(send, 1000, send + 0.02 + 0.002 * i)], send + 0.03)
        flat.update([PacketResult(send, 1000, send + 0.02)], send + 0.03)
    assert ramp.usage is Usage.OVERUSE
    assert ramp.target < 1_000_000
    assert flat.usage is Usage.NORMAL
    assert flat.target > 1_000_000


def test_a_draining_queue_is_underuse_and_holds_the_target() -> None:
    estimator = DelayBasedEstimator(start=1_000_000)
    for i in range(100):  # the delay falls 2 ms a packet
        send = i * 0.01
        estimator.update([PacketResult(send, 1000, send + 0.5 - 0.002 * i)], send + 0.5)
    assert estimator.usage is Usage.UNDERUSE


def test_heavy_loss_cuts_the_target_light_loss_does_not() -> None:
    heavy = LossBasedEstimator(start=1_000_000)
    light = LossBasedEstimator(start=1_000_000)
    for step in range(25):  # 2.5 s: two decisions
        now = step * 0.1
        heavy.update(
            [PacketResult(now, 1000, None if i % 4 == 0 else now) for i in range(40)], 1_000_000, now
        )
        light.update([PacketResult(now, 1000, None if i == 0 else now) for i in range(40)], 1_000_000, now)
    assert heavy.loss > 0.2 and heavy.target < 900_000
    assert light.loss < 0.05 and light.target == 1_000_000


def test_the_controller_follows_loss_on_a_lossy_path() -> None:
    controller = BitrateController(start=1_500_000)
    run(controller, Bottleneck(None, loss=0.3), 10.0)
    assert controller.target < 1_000_000


def test_without_feedback_the_target_halves() -> None:
    controller = BitrateController(start=1_000_000)
    controller.on_sent(1, 0, 1000, 0.0)
    controller.on_feedback([(1, 0, 0.02)], 0.05)
    before = controller.target
    for i in range(1, 40):  # 2 s of sending, no feedback
        controller.on_sent(1, i, 1000, i * 0.05)
    assert controller.target <= before / 2


def test_the_history_is_bounded_and_reports_each_packet_once() -> None:
    history = SentHistory(limit=100)
    for seq in range(70_000):
        history.sent(7, seq, 100, seq * 0.001)
    assert len(history) == 100
    results = history.results([(7, 69_999, 70.0), (7, 69_999, 70.0), (7, 5, 1.0), (8, 69_998, 1.0)])
    assert len(results) == 1 and results[0].arrival == 70.0


def test_a_growing_send_queue_cuts_the_target_under_the_drain_rate() -> None:
    estimator = QueueEstimator(start=1_500_000)
    queued = written = 0
    now = 0.0
    drain = 600_000 / 8  # bytes a second the link carries
    below = None
    for _ in range(400):  # 10 s, a sample every 25 ms
        now += 0.025
        write = estimator.target / 8 * 0.025
        written += int(write)
        queued = max(0, int(queued + write - drain * 0.025))
        estimator.update(queued, written, now)
        if below is None and estimator.target < 600_000:
            below = now
    assert below is not None and below < 3.0
    assert estimator.queue_delay < 0.5
    for _ in range(400):  # the link is fast again: the queue empties, the target climbs
        now += 0.025
        written += int(estimator.target / 8 * 0.025)
        estimator.update(0, written, now)
    assert estimator.target > 1_000_000


def test_a_full_queue_that_drops_packets_is_overuse() -> None:
    estimator = QueueEstimator(start=1_000_000)
    estimator.update(0, 0, 0.0)
    estimator.update(0, 1000, 0.1, dropped=3)
    assert estimator.usage is Usage.OVERUSE
    assert estimator.target < 1_000_000


def test_audio_keeps_priority_and_video_gets_what_is_left() -> None:
    controller = BitrateController(start=500_000)
    assert controller.audio_bitrate() == 32_000
    assert controller.video_bitrate() == int(500_000 * 0.95 - 32_000)
    controller.target = MIN_BITRATE
    assert controller.audio_bitrate() >= 16_000
    assert controller.video_bitrate() >= 50_000
