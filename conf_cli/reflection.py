"""What a UDP answerer may send back, so that a forged source address cannot aim it at a victim. Sans-I/O.

UDP's source address is the sender's word: whoever sends a request with a victim's address as its
source makes the answerer send its answer to the victim. Two rules take the profit and the volume out
of that (the SSDP announcer and the call port's STUN answerer both follow them):

- **No answer larger than its request**: a reflected answer carries no more bytes than the attacker
  spent, so reflecting through conf amplifies nothing. A request too small for its answer gets none
  (conf's own requests are padded to fit: :mod:`conf_cli.protocol.ssdp`'s search, and the STUN Binding
  request's SOFTWARE attribute).
- **At most ``per_source`` answers per ``window`` seconds to one source host**, so one victim receives a
  trickle however fast requests naming it arrive. The table is bounded (:data:`MAX_SOURCES`, the
  stalest go first).

Time is passed in as ``now``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

MAX_SOURCES = 4096


@dataclass
class ReflectionGuard:
    per_source: int = 10
    window: float = 10.0
    refused_size: int = 0
    """Requests left unanswered because the answer would be larger."""
    refused_rate: int = 0
    """Requests left unanswered because their source had its answers for this window."""
    _sources: OrderedDict[str, tuple[float, int]] = field(default_factory=OrderedDict)
    """source host -> (start of its window, answers sent in it)"""

    def allow(self, source: str, request_size: int, answer_size: int, now: float) -> bool:
        """Whether ``source`` may get an answer of ``answer_size`` bytes to a request of ``request_size``;
        True counts the answer as sent."""
        if answer_size > request_size:
            self.refused_size += 1
            return False
        start, count = self._sources.pop(source, (now, 0))
        if now - start >= self.window:
            start, count = now, 0
        if count >= self.per_source:
            self._sources[source] = (start, count)
            self.refused_rate += 1
            return False
        self._sources[source] = (start, count + 1)
        while len(self._sources) > MAX_SOURCES:
            self._sources.popitem(last=False)
        return True
