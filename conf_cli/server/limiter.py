"""Rate limits on passcode and login attempts, and on creating meetings. Sans-I/O: time is passed in as
``now``.

Two sliding windows count attempts: one per *address* (the peer's host, without its port; for IPv6 its
/64, see :func:`address_key`) and one per *target* (a meeting, or an account). An attempt counts from
the moment it starts (:meth:`AttemptLimiter.begin`), before its hash is checked, so attempts still being
checked count too: however many connections an address opens at once, no more than ``per_address``
checks run for it per window. An attempt that succeeds is taken off the count again; a failed one stays.
An attempt is refused, before any hashing, while either count is at its limit, until the oldest attempt
in that window is ``window`` seconds old.

The target's window would let an attacker keep a meeting's door shut by failing on purpose from many
addresses. So an address that got into a target (created the meeting, joined it, logged in to the
account) is *trusted* for that target: only its own address window applies to it. The host who created
a meeting can therefore always get back into it from where they created it, whatever others try.

Creating a meeting costs a hash too: creates are counted in a third window per address,
``creates_per_address`` per ``window``, successful or not.
docs/security.md ("Who gets in") states the policy.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from functools import lru_cache

from conf_cli.addresses import address_group

MAX_KEYS = 50_000
"""Windows, and targets with trusted addresses, kept at most; the stalest go first."""
MAX_TRUSTED_PER_TARGET = 256
TRUST_SECONDS = 24 * 3600.0


ADDRESS_KEYS = 4_096
"""Addresses whose key :func:`address_key` remembers: parsing an address is a good part of a join's work."""


@lru_cache(maxsize=ADDRESS_KEYS)
def address_key(address: str) -> str:
    """What the limiter counts per: the address's group (:func:`conf_cli.addresses.address_group`: an
    IPv6 address as its /64, an IPv4-mapped one as its IPv4 address). A server service's participant
    (``web 2001:db8::7``, ``rtsp 10.0.0.7``) keeps its prefix. The last :data:`ADDRESS_KEYS` answers are
    remembered."""
    prefix, space, host = address.rpartition(" ")
    return f"{prefix}{space}{address_group(host.removeprefix('[').removesuffix(']'))}"


@dataclass(frozen=True)
class Limits:
    """At most ``per_address`` failures from one address and ``per_target`` at one target per ``window``;
    at most ``creates_per_address`` meetings created from one address per ``window``."""

    per_address: int = 5
    per_target: int = 20
    window: float = 60.0
    creates_per_address: int = 20


@dataclass(frozen=True)
class Attempt:
    """One attempt being checked: the windows it was counted in, and when."""

    address: str
    target: str | None
    started: float
    keys: tuple[str, ...]


@dataclass
class AttemptLimiter:
    limits: Limits = field(default_factory=Limits)
    _failures: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)
    _trusted: OrderedDict[str, OrderedDict[str, float]] = field(default_factory=OrderedDict)
    """target -> address key -> when it last got in"""
    failed_total: int = 0
    """Attempts that failed (a wrong secret, an unknown meeting) since the server started: a metric."""

    def retry_after(self, address: str, target: str | None, now: float) -> float:
        """0 if an attempt from ``address`` at ``target`` may go ahead now, else seconds to wait."""
        address = address_key(address)
        wait = self._wait(f"a:{address}", self.limits.per_address, now)
        if target is not None and not self._trusted_key(address, target, now):
            wait = max(wait, self._wait(f"t:{target}", self.limits.per_target, now))
        return wait

    def begin(self, address: str, target: str | None, now: float) -> Attempt:
        """Count an attempt that is about to be checked (call :meth:`retry_after` first). It counts as a
        failure until :meth:`got_in` or :meth:`void` takes it off."""
        address = address_key(address)
        self._count(f"a:{address}", self.limits.per_address, now)
        keys = [f"a:{address}"]
        if target is not None and not self._trusted_key(address, target, now):
            self._count(f"t:{target}", self.limits.per_target, now)
            keys.append(f"t:{target}")
        return Attempt(address, target, now, tuple(keys))

    def failed(self, address: str, target: str | None, now: float) -> None:
        """Count an attempt that failed without a check (a ``join`` naming no meeting)."""
        self.begin(address, target, now)
        self.failed_total += 1

    def wrong(self, attempt: Attempt) -> None:
        """The attempt was checked and was wrong (a wrong passcode or password): it keeps counting."""
        self.failed_total += 1

    def got_in(self, attempt: Attempt, now: float) -> None:
        """The attempt succeeded: it no longer counts, and from now on only the address's own window
        applies to it at the target."""
        self.void(attempt)
        if attempt.target is not None:
            self.succeeded(attempt.address, attempt.target, now)

    def void(self, attempt: Attempt) -> None:
        """Take an attempt off the count: it was neither a success nor a wrong guess (the server could
        not check it, or the meeting ended meanwhile)."""
        for key in attempt.keys:
            times = self._failures.get(key)
            if times is not None and attempt.started in times:
                times.remove(attempt.started)

    def succeeded(self, address: str, target: str, now: float) -> None:
        """``address`` got into ``target``: from now on only its own address window applies there."""
        address = address_key(address)
        trusted = self._trusted.pop(target, None) or OrderedDict()
        self._trusted[target] = trusted  # the most recently used target goes last
        trusted.pop(address, None)
        trusted[address] = now
        if len(trusted) > MAX_TRUSTED_PER_TARGET:
            trusted.popitem(last=False)
        while len(self._trusted) > MAX_KEYS:
            self._trusted.popitem(last=False)

    def trusted(self, address: str, target: str, now: float) -> bool:
        return self._trusted_key(address_key(address), target, now)

    def create_retry_after(self, address: str, now: float) -> float:
        """0 if ``address`` may create a meeting now, else seconds to wait."""
        return self._wait(f"c:{address_key(address)}", self.limits.creates_per_address, now)

    def created(self, address: str, now: float) -> None:
        """Count a create from ``address`` (as it starts: the hash is the cost)."""
        self._count(f"c:{address_key(address)}", self.limits.creates_per_address, now)

    def forget(self, target: str) -> None:
        """The target is gone (a meeting ended): drop its window and its trusted addresses."""
        self._failures.pop(f"t:{target}", None)
        self._trusted.pop(target, None)

    def prune(self, now: float) -> None:
        """Drop the windows every attempt has left, and the targets whose every trust has expired: the
        tables then hold only what still decides something, not every address ever seen."""
        failures = self._failures
        while failures:
            key, times = next(iter(failures.items()))  # the least recently counted first
            if times and now - times[-1] < self.limits.window:
                break
            del failures[key]
        trusted = self._trusted
        while trusted:
            target, addresses = next(iter(trusted.items()))  # the least recently trusted first
            if addresses and now - next(reversed(addresses.values())) < TRUST_SECONDS:
                break
            del trusted[target]

    def sizes(self) -> dict[str, int]:
        """Entries held: attempt windows, and targets with trusted addresses."""
        return {"attempt_windows": len(self._failures), "trusted_targets": len(self._trusted)}

    def _trusted_key(self, address: str, target: str, now: float) -> bool:
        trusted = self._trusted.get(target)
        since = trusted.get(address) if trusted is not None else None
        return since is not None and now - since < TRUST_SECONDS

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
        while len(times) > limit:  # older attempts no longer decide anything
            times.popleft()
        while len(self._failures) > MAX_KEYS:
            self._failures.popitem(last=False)


def seconds_text(seconds: float) -> str:
    """``retry_after`` for people: whole seconds, at least 1."""
    return f"{max(1, math.ceil(seconds))} s"
