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
