"""A benchmark's figures: per-interval series and totals, built from the workers' reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conf_cli.bench.messages import Tick, Totals
from conf_cli.bench.plan import BenchConfig


@dataclass
class Interval:
    """One progress interval, merged over every worker."""

    index: int
    sent: int = 0
    sent_bytes: int = 0
    send_failed: int = 0
    received: int = 0
    received_bytes: int = 0
    latencies: list[np.ndarray] = field(default_factory=list)
    server_cpu: float | None = None
    server_rss: int | None = None

    def add(self, tick: Tick) -> None:
        self.sent += tick.sent
        self.sent_bytes += tick.sent_bytes
        self.send_failed += tick.send_failed
        self.received += tick.received
        self.received_bytes += tick.received_bytes
        if tick.latencies:
            self.latencies.append(np.frombuffer(tick.latencies, dtype=np.int64))

    def percentiles_ms(self) -> tuple[float, float] | None:
        """(p50, p99) latency in ms, or None without packets."""
        if not self.latencies:
            return None
        p50, p99 = np.percentile(np.concatenate(self.latencies), [50, 99]) / 1e6
        return float(p50), float(p99)


@dataclass
class BenchResult:
    config: BenchConfig
    server_url: str
    server_pid: int | None
    duration: float
    intervals: list[Interval]
    totals: list[Totals]
    generator_cpu: list[float | None]
    server_cpu: float | None
    server_rss: int | None
    server_wait: float | None = None
    """Percent of the run its threads, summed, were ready to run but waiting for a core."""
    generator_wait: list[float | None] = field(default_factory=list)
    """The same per load-generator process."""

    def latencies_ns(self) -> np.ndarray:
        parts = [part for interval in self.intervals for part in interval.latencies]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def as_dict(self) -> dict[str, Any]:
        received = sum(i.received for i in self.intervals)
        received_bytes = sum(i.received_bytes for i in self.intervals)
        sent = sum(t.sent for t in self.totals)
        sent_bytes = sum(i.sent_bytes for i in self.intervals)
        expected = sum(t.expected for t in self.totals)
        lost = max(0, expected - received)
        latencies = self.latencies_ns()
        latency: dict[str, float] | None = None
        if len(latencies):
            p50, p95, p99 = (float(v) / 1e6 for v in np.percentile(latencies, [50, 95, 99]))
            latency = {
                "p50": round(p50, 3),
                "p95": round(p95, 3),
                "p99": round(p99, 3),
                "max": round(float(latencies.max()) / 1e6, 3),
                "mean": round(float(latencies.mean()) / 1e6, 3),
            }
        seconds = self.duration
        rss_max = max((i.server_rss for i in self.intervals if i.server_rss is not None), default=None)
        cpu_max = max((i.server_cpu for i in self.intervals if i.server_cpu is not None), default=None)
        return {
            "type": "bench_result",
            "config": self.config.as_dict(),
            "server": {
                "url": self.server_url,
                "pid": self.server_pid,
                "cpu_pct": _round(self.server_cpu),
                # server CPU time per delivered packet: the efficiency figure least disturbed by a busy host
                "cpu_us_per_packet_out": (
                    round(self.server_cpu / 100 * seconds / received * 1e6, 3)
                    if self.server_cpu is not None and received
                    else None
                ),
                "cpu_pct_max": _round(cpu_max),
                "runqueue_wait_pct": _round(self.server_wait),
                "rss_bytes": self.server_rss,
                "rss_bytes_max": rss_max,
            },
            "seconds": round(seconds, 3),
            "packets": {
                "sent": sent,
                "send_failed": sum(t.send_failed for t in self.totals),
                "expected": expected,
                "received": received,
                "lost": lost,
                "loss": round(lost / expected, 6) if expected else 0.0,
                "seq_gaps": sum(t.gaps for t in self.totals),
            },
            "rates": {
                "in_pps": round(sent / seconds, 1),
                "out_pps": round(received / seconds, 1),
                "in_bitrate": round(sent_bytes * 8 / seconds),
                "out_bitrate": round(received_bytes * 8 / seconds),
            },
            "latency_ms": latency,
            "generator_cpu_pct": [_round(c) for c in self.generator_cpu],
            "generator_runqueue_wait_pct": [_round(w) for w in self.generator_wait],
            "generator_media_thread_cpu_pct": [_round(t.media_thread_cpu_pct) for t in self.totals],
            "generator_media_thread_wait_pct": [_round(t.media_thread_wait_pct) for t in self.totals],
            "intervals": [self._interval_dict(i) for i in self.intervals],
        }

    def headline(self) -> dict[str, float]:
        """The few figures a comparison table needs: packets/s out, loss, p50/p99, server CPU, us/packet."""
        figures = self.as_dict()
        latency = figures["latency_ms"] or {"p50": 0.0, "p99": 0.0}
        return {
            "out_pps": figures["rates"]["out_pps"],
            "loss": figures["packets"]["loss"],
            "p50": latency["p50"],
            "p99": latency["p99"],
            "cpu": figures["server"]["cpu_pct"] or 0.0,
            "us_per_packet": figures["server"]["cpu_us_per_packet_out"] or 0.0,
        }

    def _interval_dict(self, interval: Interval) -> dict[str, Any]:
        step = self.config.interval
        pct = interval.percentiles_ms()
        return {
            "t": round((interval.index + 1) * step, 3),
            "in_pps": round(interval.sent / step, 1),
            "out_pps": round(interval.received / step, 1),
            "p50_ms": round(pct[0], 3) if pct else None,
            "p99_ms": round(pct[1], 3) if pct else None,
            "server_cpu_pct": _round(interval.server_cpu),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
