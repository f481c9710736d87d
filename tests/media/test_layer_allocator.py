"""How a simulcast track's share of the uplink estimate is split among its layers
(:class:`conf_cli.media.congestion.LayerAllocator`), with synthetic targets over time."""

from __future__ import annotations

from conf_cli.media.congestion import FAILED_WITHIN, RESUME_AFTER, LayerAllocator

NOMINAL = [150_000, 500_000, 1_500_000]  # 320x180, 640x360, 1280x720


def test_a_wide_uplink_gives_every_layer_its_nominal_rate() -> None:
    allocator = LayerAllocator(NOMINAL)
    assert allocator.allocate(3_000_000, 0.0) == NOMINAL
    assert allocator.paused == [False, False, False]


def test_a_falling_target_shrinks_then_pauses_the_top_layers_before_the_lowest_starves() -> None:
    allocator = LayerAllocator(NOMINAL)
    assert allocator.allocate(1_500_000, 0.0) == [150_000, 500_000, 850_000]  # the top shrinks first
    assert allocator.allocate(1_100_000, 1.0) == [150_000, 500_000, 450_000]
    assert allocator.allocate(900_000, 2.0) == [150_000, 500_000, 0]  # under a quarter of 1.5 M: paused
    assert allocator.paused == [False, False, True]
    assert allocator.allocate(200_000, 3.0) == [150_000, 0, 0]  # the middle pauses too
    assert allocator.paused == [False, True, True]
    assert allocator.allocate(60_000, 4.0) == [60_000, 0, 0]  # the lowest is never paused
    assert allocator.paused == [False, True, True]


def test_a_paused_layer_comes_back_with_room_for_half_its_rate_after_a_wait() -> None:
    allocator = LayerAllocator(NOMINAL)
    allocator.allocate(600_000, 10.0)
    assert allocator.paused[2]
    # room for a third of the top layer: more than where it paused, not enough to resume (hysteresis)
    assert allocator.allocate(1_150_000, 10.0 + RESUME_AFTER + 1)[2] == 0
    # room for half of it, but too soon after pausing
    assert allocator.allocate(1_400_000, 10.5)[2] == 0
    assert allocator.allocate(1_400_000, 10.0 + RESUME_AFTER)[2] == 750_000
    assert allocator.paused == [False, False, False]


def test_a_layer_above_a_paused_one_stays_paused_even_with_room() -> None:
    allocator = LayerAllocator(NOMINAL)
    allocator.allocate(200_000, 0.0)
    assert allocator.paused == [False, True, True]
    # room for the middle at full rate and some of the top: the middle resumes first, the top later
    shares = allocator.allocate(1_000_000, RESUME_AFTER)
    assert shares == [150_000, 500_000, 0]
    assert allocator.paused == [False, False, True]


def test_a_resumption_the_uplink_cannot_carry_makes_the_next_wait_longer() -> None:
    allocator = LayerAllocator(NOMINAL)
    now = 0.0
    allocator.allocate(600_000, now)
    waits = []
    for _ in range(3):
        paused_at = now
        while allocator.allocate(2_500_000, now)[2] == 0:  # the estimate probes back up at once
            now += 0.1
        waits.append(round(now - paused_at, 1))
        now += 0.5  # the uplink could not carry it: over-use, the estimate falls back
        allocator.allocate(600_000, now)
        assert allocator.paused[2]
    assert waits[0] == RESUME_AFTER
    assert waits[1] >= 2 * RESUME_AFTER and waits[2] >= 4 * RESUME_AFTER
    # a resumption that held longer than FAILED_WITHIN resets the wait
    now += 20
    allocator.allocate(2_500_000, now)
    assert not allocator.paused[2]
    now += FAILED_WITHIN + 1
    allocator.allocate(600_000, now)
    paused_at = now
    while allocator.allocate(2_500_000, now)[2] == 0:
        now += 0.1
    assert round(now - paused_at, 1) == RESUME_AFTER


def test_layers_nobody_receives_get_nothing_and_a_paused_one_received_is_replaced_by_the_best_below() -> None:
    allocator = LayerAllocator(NOMINAL)
    # only the top layer is received: it alone is sent, with all the target
    assert allocator.allocate(3_000_000, 0.0, [False, False, True]) == [0, 0, 1_500_000]
    assert allocator.allocate(1_300_000, 1.0, [False, False, True]) == [0, 0, 1_300_000]
    # the uplink cannot carry it beside the layers below: the middle is sent instead (its subscribers
    # move there), and gets the target
    shares = allocator.allocate(900_000, 2.0, [False, False, True])
    assert shares == [0, 500_000, 0] and allocator.sent == [False, True, False]
    assert allocator.paused == [False, False, True]
    # narrower still: the lowest
    shares = allocator.allocate(200_000, 3.0, [False, False, True])
    assert shares == [150_000, 0, 0] and allocator.sent == [True, False, False]
    # the low and the top received, the top paused: the middle stands in for the top
    shares = allocator.allocate(700_000, 3.0 + RESUME_AFTER, [True, False, True])
    assert shares == [150_000, 500_000, 0] and allocator.sent == [True, True, False]
