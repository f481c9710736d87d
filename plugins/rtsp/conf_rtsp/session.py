"""RTSP session state (RFC 2326 appendix A.2), sans-I/O: which method is valid in which state, and expiry.

A session starts in ``init``; SETUP makes it ``ready``; PLAY makes it ``playing`` and RECORD
``recording``; PAUSE brings either back to ``ready``; TEARDOWN ends it. Any request naming the session
(GET_PARAMETER included) and any RTCP its client sends keep it alive; it expires after ``timeout``
seconds without one.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

INIT, READY, PLAYING, RECORDING = "init", "ready", "playing", "recording"

_NEXT: dict[str, dict[str, str]] = {
    "SETUP": {INIT: READY, READY: READY},
    "PLAY": {READY: PLAYING, PLAYING: PLAYING},
    "RECORD": {READY: RECORDING, RECORDING: RECORDING},
    "PAUSE": {READY: READY, PLAYING: READY, RECORDING: READY},
    "TEARDOWN": {INIT: INIT, READY: INIT, PLAYING: INIT, RECORDING: INIT},
    "GET_PARAMETER": {INIT: INIT, READY: READY, PLAYING: PLAYING, RECORDING: RECORDING},
}


class StateError(Exception):
    """A method not valid in the session's state (answered 455)."""


def next_state(state: str, method: str) -> str:
    """The state after ``method``; raise StateError if it is not valid now."""
    after = _NEXT.get(method, {}).get(state)
    if after is None:
        raise StateError(f"{method} is not valid while the session is {state}")
    return after


@dataclass
class SessionTrack:
    """One stream of a session: its control name and where its packets go."""

    control: str
    index: int
    delivery: Any
    """A :class:`conf_rtsp.delivery.Delivery`."""


@dataclass
class Session:
    """An RTSP session: an ID, a state, its streams, and when its client was last heard from."""

    timeout: float
    last_seen: float
    resource: Any = None
    """What it plays or records (a viewer, a file stream, a publisher)."""
    state: str = INIT
    id: str = field(default_factory=lambda: secrets.token_hex(8).upper())
    tracks: dict[str, SessionTrack] = field(default_factory=dict)
    owner: Any = None
    """The connection that made it (interleaved streams end with it)."""

    def touch(self, now: float) -> None:
        self.last_seen = now

    def expired(self, now: float) -> bool:
        return now - self.last_seen > self.timeout

    def apply(self, method: str) -> str:
        self.state = next_state(self.state, method)
        return self.state

    @property
    def header(self) -> str:
        return f"{self.id};timeout={round(self.timeout)}"
