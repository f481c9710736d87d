"""Who does what in a benchmark run: the settings, and the clients each worker process runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PASSCODE = "bench-pass-1"
FIRST_SSRC = 0x10000


@dataclass(frozen=True)
class BenchConfig:
    transport: str = "tcp"
    publishers: int = 2
    subscribers: int = 4
    meetings: int = 1
    rate: float = 50.0
    """Packets per second per publisher."""
    payload: int = 1000
    """RTP payload bytes per packet (the first 8 hold the send time)."""
    duration: float = 10.0
    interval: float = 0.5
    """Seconds between progress reports (and points on the plot)."""
    procs: int = 1
    """Load-generator worker processes."""
    server_url: str | None = None
    server_pid: int | None = None
    server_args: tuple[str, ...] = ()
    """Extra arguments for a server this run starts (e.g. ``--workers 2``)."""
    encryption: str = "on"
    """``on`` (TLS, CURVE or SRTP as the transport needs) or ``none``."""
    generator: str = "python"
    """How the load generator sends and receives media: ``python`` (each client's link, in the event loop)
    or ``compiled`` (rtp:// only: conf_cli/bench/compiled.py)."""
    generator_nice: int = 0
    """Niceness added to the load-generator processes: on one machine, the server then gets a core before
    its load does, as it would with its clients on other machines."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ClientSpec:
    name: str
    meeting: int
    """Index into the run's meetings."""
    ssrc: int | None
    """The SSRC this client publishes, or None for a subscriber (which only receives)."""


@dataclass
class WorkerPlan:
    url: str
    meetings: list[str]
    passcode: str
    clients: list[ClientSpec]
    rate: float
    payload: int
    duration: float
    interval: float
    audience: dict[int, int] = field(default_factory=dict)
    """Per meeting index: how many receive each of its packets (its members less the sender)."""
    encryption: str = "on"
    fingerprint: str | None = None
    """The key of a server the run started itself: checked, not pinned. None: pin on first use."""
    generator: str = "python"


def assign(config: BenchConfig) -> list[list[ClientSpec]]:
    """Spread publishers and subscribers evenly over the meetings, and the clients over the workers."""
    specs = [ClientSpec(f"pub-{i}", i % config.meetings, FIRST_SSRC + i) for i in range(config.publishers)]
    specs += [ClientSpec(f"sub-{i}", i % config.meetings, None) for i in range(config.subscribers)]
    procs = max(1, min(config.procs, len(specs)))
    shares: list[list[ClientSpec]] = [[] for _ in range(procs)]
    for index, spec in enumerate(specs):
        shares[index % procs].append(spec)
    return shares


def audience(config: BenchConfig) -> dict[int, int]:
    """Receivers of each packet, per meeting: everyone in it but the sender."""
    members = [0] * config.meetings
    for i in range(config.publishers):
        members[i % config.meetings] += 1
    for i in range(config.subscribers):
        members[i % config.meetings] += 1
    return {index: count - 1 for index, count in enumerate(members)}
