"""Rate limits on failed passcode and login attempts. Sans-I/O: time is passed in as ``now``.

Two sliding windows count failures: one per *address* (the peer's host, without its port) and one per
*target* (a meeting, or an account). An attempt is refused, before any hashing, while either count is
at its limit, until the oldest failure in that window is ``window`` seconds old.

The target's window would let an attacker keep a meeting's door shut by failing on purpose from many
addresses. So an address that got into a target (created the meeting, joined it, logged in to the
account) is *trusted* for that target: only its own address window applies to it. The host who created
a meeting can therefore always get back into it from where they created it, whatever others try.
docs/security.md ("Who gets in") states the policy.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field

MAX_KEYS = 50_000
"""Failure windows, and targets with trusted addresses, kept at most; the stalest go first."""
MAX_TRUSTED_PER_TARGET = 256
TRUST_SECONDS = 24 * 3600.0


@dataclass(frozen=True)
class Limits:
    """At most ``per_address`` failures from one address and ``per_target`` at one target per ``window``."""

    per_address: int = 5
    per_target: int = 20
    window: float = 60.0


@dataclass
class AttemptLimiter:
    limits: Limits = field(default_factory=Limits)
    _failures: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)
    _trusted: OrderedDict[str, OrderedDict[str, float]] = field(default_factory=OrderedDict)
    """target -> address -> when it last got in"""

    def retry_after(self, address: str, target: str | None, now: float) -> float:
        """0 if an attempt from ``address`` at ``target`` may go ahead now, else seconds to wait."""
        wait = self._wait(f"a:{address}", self.limits.per_address, now)
        if target is not None and not self.trusted(address, target, now):
            wait = max(wait, self._wait(f"t:{target}", self.limits.per_target, now))
        return wait

    def failed(self, address: str, target: str | None, now: float) -> None:
        """Count a failed attempt (wrong passcode or password, unknown meeting or account)."""
        self._count(f"a:{address}", self.limits.per_address, now)
        if target is not None and not self.trusted(address, target, now):
            self._count(f"t:{target}", self.limits.per_target, now)

    def succeeded(self, address: str, target: str, now: float) -> None:
        """``address`` got into ``target``: from now on only its own address window applies there."""
        trusted = self._trusted.pop(target, None) or OrderedDict()
        self._trusted[target] = trusted  # the most recently used target goes last
        trusted.pop(address, None)
        trusted[address] = now
        if len(trusted) > MAX_TRUSTED_PER_TARGET:
            trusted.popitem(last=False)
        while len(self._trusted) > MAX_KEYS:
            self._trusted.popitem(last=False)

    def trusted(self, address: str, target: str, now: float) -> bool:
        trusted = self._trusted.get(target)
        since = trusted.get(address) if trusted is not None else None
        return since is not None and now - since < TRUST_SECONDS

    def forget(self, target: str) -> None:
        """The target is gone (a meeting ended): drop its window and its trusted addresses."""
        self._failures.pop(f"t:{target}", None)
        self._trusted.pop(target, None)

    def _window(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and now - times[0] >= self.limits.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def _wait(self, key: str, limit: int, now: float) -> float:
        times = self._window(key, now)
        if len(times) < limit:
            return 0.0
        return max(0.0, times[len(times) - limit] + self.limits.window - now)

    def _count(self, key: str, limit: int, now: float) -> None:
        times = self._window(key, now)
        if not times:
            self._failures[key] = times
        else:
            self._failures.move_to_end(key)
        times.append(now)
        while len(times) > limit:  # older failures no longer decide anything
            times.popleft()
        while len(self._failures) > MAX_KEYS:
            self._failures.popitem(last=False)


def seconds_text(seconds: float) -> str:
    """``retry_after`` for people: whole seconds, at least 1."""
    return f"{max(1, math.ceil(seconds))} s"
