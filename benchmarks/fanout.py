"""Fan-out capacity of one conf server per transport (tcp, zmq, rtp), in one run.

For each transport and each publisher rate, ``conf bench`` (in this process) starts a server, puts N
publishers and M subscribers in one meeting, and reports packets/s delivered, loss, latency and the
server's CPU. Every packet reaches the other N + M - 1 members. The host's two cores are shared with the
load generator, so the figure to compare is the server's CPU time per delivered packet and the capacity
per core it implies; "best at zero loss" is the highest delivered rate among the tried rates that lost
nothing. Every row names its encryption (``--encryption on``, the default: TLS, CURVE or TLS + SRTP;
``none``: plain). Figures are printed, never asserted.

Run: ``.venv/bin/python benchmarks/fanout.py [--publishers 4] [--subscribers 16] [--rates 250,500,1000]``
"""

from __future__ import annotations

import argparse
import asyncio

from conf_cli.bench.display import encryption_name
from conf_cli.bench.plan import BenchConfig
from conf_cli.bench.runner import run_bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transports", default="tcp,zmq,rtp")
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument("--subscribers", type=int, default=16)
    parser.add_argument("--rates", default="250,500,1000", help="packets/s per publisher, comma-separated")
    parser.add_argument("--payload", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--procs", type=int, default=2, help="load-generator processes")
    parser.add_argument("--encryption", choices=["on", "none"], default="on")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    print(
        f"{args.publishers} publishers x {args.subscribers} subscribers in one meeting, "
        f"{args.payload} B payloads, {args.duration:g} s per point"
    )
    print(
        f"{'transport':10}{'encryption':>31}{'rate':>7}{'in pkt/s':>10}{'out pkt/s':>11}{'loss %':>9}"
        f"{'p50 ms':>9}{'p99 ms':>9}{'CPU %':>8}{'us/pkt':>8}"
    )
    summary: list[str] = []
    for transport in args.transports.split(","):
        mode = encryption_name(transport, args.encryption)
        best = 0.0
        per_packet: list[float] = []
        for rate in rates:
            config = BenchConfig(
                transport=transport,
                publishers=args.publishers,
                subscribers=args.subscribers,
                rate=rate,
                payload=args.payload,
                duration=args.duration,
                procs=args.procs,
                encryption=args.encryption,
            )
            figures = asyncio.run(run_bench(config)).as_dict()
            rates_, packets, server = figures["rates"], figures["packets"], figures["server"]
            latency = figures["latency_ms"] or {"p50": float("nan"), "p99": float("nan")}
            us = server["cpu_us_per_packet_out"]
            if us:
                per_packet.append(us)
            if packets["loss"] == 0:
                best = max(best, rates_["out_pps"])
            print(
                f"{transport:10}{mode:>31}{rate:>7g}{rates_['in_pps']:>10,.0f}{rates_['out_pps']:>11,.0f}"
                f"{100 * packets['loss']:>9.3f}{latency['p50']:>9.3f}{latency['p99']:>9.3f}"
                f"{server['cpu_pct'] or 0:>8.1f}{us or 0:>8.2f}",
                flush=True,
            )
        low = min(per_packet) if per_packet else 0.0
        capacity = f"~{1e6 / low:,.0f} pkt/s per core" if low else "n/a"
        summary.append(
            f"{transport} ({mode}): best at zero loss {best:,.0f} pkt/s out; "
            f"CPU {low:.2f} us/pkt -> {capacity}"
        )
    print()
    for line in summary:
        print(line)


if __name__ == "__main__":
    main()
