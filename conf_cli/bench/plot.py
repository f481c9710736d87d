"""``conf bench --plot FILE.png``: latency and throughput over the run (needs matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conf_cli.errors import ConfError


def write_plot(figures: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfError("--plot needs matplotlib: pip install matplotlib") from None
    points = figures["intervals"]
    t = [p["t"] for p in points]
    fig, (rates, latency) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    rates.plot(t, [p["in_pps"] for p in points], label="in (published)")
    rates.plot(t, [p["out_pps"] for p in points], label="out (delivered)")
    rates.set_ylabel("packets/s")
    rates.legend(loc="lower right")
    rates.grid(alpha=0.3)
    cpu = [p["server_cpu_pct"] for p in points]
    if any(c is not None for c in cpu):
        load = rates.twinx()
        load.plot(t, [c if c is not None else float("nan") for c in cpu], color="grey", linestyle=":")
        load.set_ylabel("server CPU %", color="grey")
    nan = float("nan")
    latency.plot(t, [p["p50_ms"] if p["p50_ms"] is not None else nan for p in points], label="p50")
    latency.plot(t, [p["p99_ms"] if p["p99_ms"] is not None else nan for p in points], label="p99")
    latency.set_ylabel("one-way latency (ms)")
    latency.set_xlabel("seconds")
    latency.legend(loc="upper right")
    latency.grid(alpha=0.3)
    config = figures["config"]
    fig.suptitle(
        f"conf bench: {config['transport']}, {config['publishers']}x{config['subscribers']}, "
        f"{config['rate']:g} pkt/s per publisher"
    )
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise ConfError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
