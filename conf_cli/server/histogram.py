"""A fixed-bucket histogram the sans-I/O hub fills (the join latency), read by the metrics collector."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

JOIN_SECONDS_BOUNDS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds, in seconds, of the join latency's buckets (a passcode hash takes tens of milliseconds)."""


@dataclass
class Histogram:
    """Observations counted per bucket (``counts[i]``: values at most ``bounds[i]`` and above the bound
    before; the last count is those above every bound), with their number and sum."""

    bounds: tuple[float, ...] = JOIN_SECONDS_BOUNDS
    counts: list[int] = field(default_factory=list)
    count: int = 0
    total: float = 0.0

    def __post_init__(self) -> None:
        if list(self.bounds) != sorted(set(self.bounds)):
            raise ValueError(f"histogram bounds must rise: {self.bounds}")
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.total += value

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations at most that)`` per bucket, ending with ``(inf, count)``."""
        running = 0
        out: list[tuple[float, int]] = []
        for bound, counted in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += counted
            out.append((bound, running))
        return out
