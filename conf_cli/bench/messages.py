"""What a load-generator process reports to the benchmark runner (pickled over a socket pair)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Tick:
    index: int
    sent: int
    sent_bytes: int
    send_failed: int
    received: int
    received_bytes: int
    latencies: bytes  # array("q") of nanoseconds


@dataclass
class Totals:
    sent: int
    send_failed: int
    expected: int  # deliveries the server owes: each packet sent times its meeting's audience
    gaps: int  # sequence-number holes seen by receivers
    media_thread_cpu_pct: float | None = None
    """CPU of the thread that sent and read the media (the event loop's, or the compiled loop's), percent of
    one core, from the start to the end of the drain: a packet that reached the generator waits in its
    socket's queue until this thread reads it, so the closer to 100 %, the more of the one-way time is the
    generator's own queueing."""
    media_thread_wait_pct: float | None = None
    """The time that thread was ready to run but waiting for a core (the host busy with other work), same
    span, percent: a packet that came meanwhile waited at least that long; its CPU share above counts only
    the time it ran."""
