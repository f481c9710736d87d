"""What a join-churn benchmark (``conf bench --churn``) does, and what each load generator reports."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from conf_cli.server.meeting import MAX_PARTICIPANTS

CHURN_PASSCODE = "churn-pass-7"


@dataclass(frozen=True)
class ChurnConfig:
    rate: float = 0.0
    """Joins started per second, over all load generators (0: as fast as ``clients`` allow)."""
    joins: int = 300
    """Joins to run in all; 0: keep going for ``duration`` seconds."""
    clients: int = 30
    """Clients at once: each joins, chats, leaves or drops, then the next one starts in its place."""
    meetings: int = 1
    duration: float = 60.0
    """Seconds to run when ``joins`` is 0."""
    drop_every: int = 4
    """Every this many clients drop their connection instead of leaving (0: none drop)."""
    stay: float = 0.0
    """Seconds each client stays in the meeting after its chat."""
    chat: bool = True
    transport: str = "tcp"
    encryption: str = "on"
    procs: int = 1
    interval: float = 1.0
    """Seconds between samples of the server's CPU, memory and open files."""
    server_url: str | None = None
    server_pid: int | None = None
    server_args: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def check(self) -> None:
        """ValueError if the run cannot be done as asked."""
        if self.joins == 0 and self.duration <= 0:
            raise ValueError("--joins 0 runs for --duration seconds: give a duration above 0")
        per_meeting = -(-self.clients // self.meetings)
        if per_meeting + 1 > MAX_PARTICIPANTS:  # each meeting also holds the client that keeps it open
            raise ValueError(
                f"{self.clients} clients in {self.meetings} meeting(s) is {per_meeting} a meeting at once, "
                f"and a meeting holds {MAX_PARTICIPANTS} with its host; add --meetings"
            )


@dataclass(frozen=True)
class ChurnPlan:
    """One load generator's share of a churn run."""

    index: int
    url: str
    meetings: list[str]
    passcode: str
    joins: int
    clients: int
    rate: float
    duration: float
    drop_every: int
    stay: float
    chat: bool
    encryption: str
    fingerprint: str | None


@dataclass
class ChurnTotals:
    """What one load generator did: counts, and latencies in ns as ``array('q')`` bytes."""

    started: int
    joined: int
    left: int
    dropped: int
    errors: dict[str, int] = field(default_factory=dict)
    join_ns: bytes = b""
    """From opening the connection to ``joined``: TLS handshake, hello, the passcode check."""
    connect_ns: bytes = b""
    """From opening the connection to ``welcome``."""
    chat_ns: bytes = b""
    """From ``joined`` to one's own chat message coming back."""
    seconds: float = 0.0


def shares(total: int, parts: int) -> list[int]:
    """``total`` split over ``parts`` as evenly as whole numbers allow."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]
