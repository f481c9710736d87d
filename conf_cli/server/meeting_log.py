"""Log lines for the life of meetings, with structured fields (``meeting``, ``participant``, ``role``,
``reason``, ``peer``) that ``--log-format json`` writes as they are.

The server's edge shows :class:`MeetingLog` what it sends and which links close; from the ``joined``,
``left``, ``kicked`` and ``meeting_closed`` messages it knows who is in which meeting, and it logs at
INFO when a meeting is created and ends and when someone joins and leaves.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Container, Iterable
from typing import Any

log = logging.getLogger("conf.meeting")

_LEAVING = {"left": "left", "kicked": "kicked", "meeting_closed": "ended"}


class MeetingLog:
    def __init__(self, open_meetings: Container[str], peer_of: Callable[[int], str]) -> None:
        self.open_meetings = open_meetings
        self.peer_of = peer_of
        self.present: dict[int, tuple[str, str]] = {}
        """connection -> (meeting, name), for each connection in a meeting"""
        self.sizes: Counter[str] = Counter()
        """meeting -> how many of :attr:`present` are in it"""

    def sent(self, message: dict[str, Any], to: Iterable[int]) -> None:
        """The server sent ``message`` to ``to``: log it if it tells of a meeting's life."""
        kind = message.get("type")
        if kind == "meeting_created":
            for cid in to:
                meeting = str(message.get("meeting"))
                log.info("meeting %s created", meeting, extra={"meeting": meeting, "peer": self.peer_of(cid)})
        elif kind == "joined":
            meeting, name = str(message.get("meeting")), str(message.get("name"))
            for cid in to:
                if cid in self.present:
                    self.gone(cid, "rejoined")
                self.present[cid] = (meeting, name)
                self.sizes[meeting] += 1
                log.info(
                    "%s joined meeting %s",
                    name,
                    meeting,
                    extra={
                        "meeting": meeting,
                        "participant": name,
                        "role": message.get("role"),
                        "peer": self.peer_of(cid),
                    },
                )
        elif kind in _LEAVING:
            reason = message.get("reason") if kind == "left" else _LEAVING[str(kind)]
            for cid in to:
                self.gone(cid, str(reason))

    def gone(self, cid: int, reason: str) -> None:
        """``cid`` left its meeting (or closed its link) for ``reason``."""
        entry = self.present.pop(cid, None)
        if entry is None:
            return
        meeting, name = entry
        self.sizes[meeting] -= 1
        if self.sizes[meeting] <= 0:
            del self.sizes[meeting]
        log.info(
            "%s left meeting %s (%s)",
            name,
            meeting,
            reason,
            extra={"meeting": meeting, "participant": name, "reason": reason},
        )
        if meeting not in self.open_meetings and meeting not in self.sizes:
            log.info("meeting %s ended", meeting, extra={"meeting": meeting})
