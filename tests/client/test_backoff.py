"""The backoff of a client reconnecting to resume its seat (conf_cli.client.backoff)."""

from __future__ import annotations

import random

from conf_cli.client.backoff import GIVE_UP_SECONDS, MAX_ATTEMPTS, MAX_DELAY, Backoff


def test_backoff_grows_with_jitter_and_gives_up_in_bounded_time() -> None:
    backoff = Backoff(0.0, rng=random.Random(1))
    now, delays = 0.0, []
    while (delay := backoff.next_delay(now)) is not None:
        delays.append(delay)
        now += delay + 1.0  # each try takes a second to fail
    assert delays[0] <= 0.25 and delays[1] <= 0.5 and max(delays) <= MAX_DELAY
    assert delays[-1] >= MAX_DELAY / 2  # it reached the ceiling
    assert now - 1.0 <= GIVE_UP_SECONDS + MAX_DELAY and len(delays) <= MAX_ATTEMPTS
    spread = {round(Backoff(0.0, rng=random.Random(seed)).next_delay(0.0) or 0, 6) for seed in range(20)}
    assert len(spread) > 10  # clients of one meeting do not all come back at the same instant


def test_backoff_stops_after_its_attempts_even_when_tries_are_quick() -> None:
    backoff = Backoff(0.0, max_attempts=3)
    assert [backoff.next_delay(0.0) is not None for _ in range(4)] == [True, True, True, False]
