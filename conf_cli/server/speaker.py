"""Who is speaking: the dominant speaker of a meeting, from the audio levels on its packets. Sans-I/O.

Each audio packet carries its level (RFC 6464, :mod:`conf_cli.media.audio_level`); :meth:`observe` takes
it with the time it arrived (``now`` is passed in). Every :data:`EVALUATE` seconds the detector scores each
participant: the mean loudness (``127 - level``, so 0 is silence) of the packets of the last
:data:`SMOOTHING` seconds, counting a packet that did not come (DTX sends none in silence) as silence.
A participant becomes the dominant speaker when their score is at least :data:`FLOOR` and beats the
current speaker's by :data:`MARGIN` at :data:`HOLD` evaluations in a row (the hysteresis that keeps two
people talking over each other from flapping), and no sooner than :data:`MIN_SWITCH_INTERVAL` after the
last switch (the bound on ``active_speaker`` messages). When everyone falls silent the last speaker stays.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

__all__ = ["FLOOR", "HOLD", "MARGIN", "SMOOTHING", "SpeakerDetector"]

EVALUATE = 0.05
"""Seconds between two evaluations."""
SMOOTHING = 0.2
"""Seconds of levels averaged into a score."""
PACKET_TIME = 0.02
"""The audio packet duration assumed when counting packets that did not come."""
MARGIN = 10.0
"""dB the challenger's score must beat the current speaker's by."""
FLOOR = 30.0
"""The least score (dB above silence, i.e. louder than -97 dBov on average) that can take the floor."""
HOLD = 2
"""Evaluations in a row the challenger must win."""
MIN_SWITCH_INTERVAL = 0.5
"""Seconds between two switches at least."""
MAX_LEVELS = 64  # levels kept per participant


@dataclass
class _Speaker:
    ssrc: int
    levels: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=MAX_LEVELS))


class SpeakerDetector:
    """The dominant speaker among a meeting's participants (keys: any hashable id, e.g. a connection)."""

    def __init__(
        self,
        *,
        evaluate: float = EVALUATE,
        smoothing: float = SMOOTHING,
        margin: float = MARGIN,
        floor: float = FLOOR,
        hold: int = HOLD,
        min_interval: float = MIN_SWITCH_INTERVAL,
    ) -> None:
        self.evaluate = evaluate
        self.smoothing = smoothing
        self.margin = margin
        self.floor = floor
        self.hold = hold
        self.min_interval = min_interval
        self.current: int | None = None
        """The dominant speaker, or None before anyone spoke."""
        self.switches = 0
        self._speakers: dict[int, _Speaker] = {}
        self._next = float("-inf")
        self._challenger: int | None = None
        self._wins = 0
        self._switched = float("-inf")

    def ssrc_of(self, who: int) -> int | None:
        speaker = self._speakers.get(who)
        return None if speaker is None else speaker.ssrc

    def observe(self, who: int, ssrc: int, level: int, now: float) -> int | None:
        """A packet of ``who``'s audio track ``ssrc`` with ``level`` (-dBov, 0..127) arrived at ``now``;
        returns the new dominant speaker when this evaluation switched to one, else None."""
        speaker = self._speakers.get(who)
        if speaker is None or speaker.ssrc != ssrc:
            speaker = self._speakers[who] = _Speaker(ssrc)
        speaker.levels.append((now, 127 - max(0, min(127, level))))
        if now < self._next:
            return None
        self._next = now + self.evaluate
        return self._evaluate(now)

    def forget(self, who: int) -> None:
        """``who`` left or stopped sending audio."""
        self._speakers.pop(who, None)
        if self.current == who:
            self.current = None
        if self._challenger == who:
            self._challenger, self._wins = None, 0

    def score(self, who: int, now: float) -> float:
        """``who``'s mean loudness over the last :attr:`smoothing` seconds (0 when silent)."""
        speaker = self._speakers.get(who)
        if speaker is None:
            return 0.0
        horizon = now - self.smoothing
        levels = speaker.levels
        while levels and levels[0][0] <= horizon:
            levels.popleft()
        expected = max(len(levels), round(self.smoothing / PACKET_TIME))
        return sum(loudness for _, loudness in levels) / expected

    def _evaluate(self, now: float) -> int | None:
        scores = {who: self.score(who, now) for who in self._speakers}
        best = max(scores, key=scores.__getitem__, default=None)
        if best is None or best == self.current or scores[best] < self.floor:
            self._challenger, self._wins = None, 0
            return None
        current = 0.0 if self.current is None else scores.get(self.current, 0.0)
        if scores[best] - current < self.margin:
            self._challenger, self._wins = None, 0
            return None
        if best != self._challenger:
            self._challenger, self._wins = best, 0
        self._wins += 1
        if self._wins < self.hold or now - self._switched < self.min_interval:
            return None
        self.current, self._challenger, self._wins = best, None, 0
        self._switched = now
        self.switches += 1
        return best
