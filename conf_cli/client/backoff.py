"""When a client whose link dropped tries again: exponential backoff with jitter, bounded. Sans-I/O.

The first try comes after about :data:`FIRST_DELAY` seconds, each later one after up to twice as long as
the one before, at most :data:`MAX_DELAY`; each delay is drawn between half and all of its ceiling
("equal jitter"), so that the participants of a meeting whose server restarted do not all come back in
the same instant. After :data:`GIVE_UP_SECONDS` seconds, or :data:`MAX_ATTEMPTS` tries, the client gives
up with a clear error.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

FIRST_DELAY = 0.25
MAX_DELAY = 4.0
GIVE_UP_SECONDS = 60.0
MAX_ATTEMPTS = 40


@dataclass
class Backoff:
    """The delays before each try to reconnect, from ``started`` (any monotonic clock) on."""

    started: float
    first: float = FIRST_DELAY
    most: float = MAX_DELAY
    give_up: float = GIVE_UP_SECONDS
    max_attempts: int = MAX_ATTEMPTS
    rng: random.Random = field(default_factory=random.SystemRandom)
    attempt: int = 0
    """Tries so far (the one a delay is for is ``attempt`` after :meth:`next_delay`)."""

    def next_delay(self, now: float) -> float | None:
        """Seconds to wait before the next try, or None: give up (too long, or too many tries)."""
        elapsed = now - self.started
        if self.attempt >= self.max_attempts or elapsed >= self.give_up:
            return None
        self.attempt += 1
        ceiling = min(self.most, self.first * 2 ** (self.attempt - 1))
        delay = ceiling / 2 + self.rng.random() * ceiling / 2
        return min(delay, self.give_up - elapsed)
