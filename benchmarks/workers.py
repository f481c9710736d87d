"""Fan-out of ``conf server --workers 2`` against one server process, in one run.

Both servers are loaded by ``conf bench --transport tcp --meetings 2`` with the same publishers,
subscribers and rate, alternately, ``--repeat`` times each. With two meetings the front process hands
each to its own worker, so the two meetings' forwarding runs on two cores. The load generator runs on the
same two cores, so the figures show what one host gains when the server may use both, not the server's
capacity alone; the server's CPU is that of the front and its workers together.

Run: ``.venv/bin/python benchmarks/workers.py [--rate 2000] [--repeat 2]``
"""

from __future__ import annotations

import argparse
import asyncio

from conf_cli.bench.plan import BenchConfig
from conf_cli.bench.runner import run_bench


def measure(args: argparse.Namespace, workers: int) -> dict[str, float]:
    config = BenchConfig(
        transport="tcp",
        publishers=args.publishers,
        subscribers=args.subscribers,
        meetings=2,
        rate=args.rate,
        payload=args.payload,
        duration=args.duration,
        procs=args.procs,
        server_args=("--workers", str(workers)),
    )
    return asyncio.run(run_bench(config)).headline()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument("--subscribers", type=int, default=16)
    parser.add_argument("--rate", type=float, default=2000.0, help="packets/s per publisher")
    parser.add_argument("--payload", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--procs", type=int, default=2, help="load-generator processes")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    print(
        f"tcp, 2 meetings, {args.publishers} publishers x {args.subscribers} subscribers in all, "
        f"{args.rate:g} pkt/s x {args.payload} B per publisher, {args.duration:g} s per run"
    )
    print(f"{'server':14}{'out pkt/s':>11}{'loss %':>9}{'p50 ms':>9}{'p99 ms':>9}{'CPU %':>8}{'us/pkt':>8}")
    totals: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(args.repeat):
        for workers in (1, 2):
            r = measure(args, workers)
            totals[workers].append(r["out_pps"])
            print(
                f"{f'--workers {workers}':14}{r['out_pps']:>11,.0f}{100 * r['loss']:>9.3f}{r['p50']:>9.3f}"
                f"{r['p99']:>9.3f}{r['cpu']:>8.1f}{r['us_per_packet']:>8.2f}"
            )
    one, two = sum(totals[1]) / len(totals[1]), sum(totals[2]) / len(totals[2])
    if one:
        print(f"delivered packets/s, --workers 2 / --workers 1 (mean of {args.repeat}): {two / one:.2f}")


if __name__ == "__main__":
    main()
