"""A token bucket: a rate with a burst, for budgets of resends and messages and for pacing. Sans-I/O: time
is passed in."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up (full at the start); :meth:`take` spends them if
    there are enough."""

    rate: float
    burst: float
    tokens: float | None = None
    stamp: float = 0.0

    def _fill(self, now: float) -> float:
        tokens = self.burst if self.tokens is None else self.tokens + max(0.0, now - self.stamp) * self.rate
        self.tokens = min(self.burst, tokens)
        self.stamp = now
        return self.tokens

    def take(self, cost: float, now: float, need: float | None = None) -> bool:
        """Spend ``cost`` tokens if at least ``need`` (default: ``cost``) are saved; a cost over what is
        saved leaves the bucket in debt, to be paid back before the next take."""
        tokens = self._fill(now)
        if tokens < (cost if need is None else need):
            return False
        self.tokens = tokens - cost
        return True

    def wait(self, need: float, now: float) -> float:
        """Seconds from ``now`` until ``need`` tokens are saved."""
        return max(0.0, (need - self._fill(now)) / self.rate)
