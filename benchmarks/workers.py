"""Fan-out of ``conf server --workers 2`` against one server process, in one run.

Both servers are loaded by ``conf bench --transport tcp --meetings 2`` (or ``--transport zmq|rtp``)
with the same publishers, subscribers and rate, alternately, ``--repeat`` times each, with conf's
default encryption (TLS 1.3 on tcp://, CURVE on zmq://, SRTP on rtp://). With two meetings the public
port places one on each worker, so the two meetings' forwarding runs on two cores; each client is
redirected once and then talks to its worker directly. The load generator runs on the same two cores,
so the figures show what one host gains when the server may use both, not the server's capacity alone;
the server's CPU is that of the parent and its workers together.

``--previous CONF`` also measures, in the same run, ``CONF server --workers 2`` of another conf (say, a
checkout from before the workers became local nodes, whose front relayed every TLS byte).

Run: ``.venv/bin/python benchmarks/workers.py [--rate 2000] [--repeat 2] [--previous /old/.venv/bin/conf]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from conf_cli.bench.plan import BenchConfig
from conf_cli.bench.runner import BENCH_ATTEMPTS, run_bench


def measure(
    args: argparse.Namespace, workers: int, server: tuple[str, int] | None = None
) -> dict[str, float]:
    config = BenchConfig(
        transport=args.transport,
        publishers=args.publishers,
        subscribers=args.subscribers,
        meetings=2,
        rate=args.rate,
        payload=args.payload,
        duration=args.duration,
        procs=args.procs,
        server_args=("--workers", str(workers)),
        server_url=server[0] if server else None,
        server_pid=server[1] if server else None,
    )
    return asyncio.run(run_bench(config)).headline()


@contextmanager
def previous_server(conf: str) -> Iterator[tuple[str, int]]:
    """``conf server --workers 2`` of another conf, on a free loopback port; stopped by its PID."""
    attempts = str(BENCH_ATTEMPTS)
    command = [conf, "server", "--json", "--host", "127.0.0.1", "--port", "0", "--workers", "2"]
    process = subprocess.Popen(
        [*command, "--transport", "tcp", "--max-failures", attempts, "--max-creates", attempts],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=tempfile.gettempdir(),  # its workers import its own conf_cli, not this folder's
    )
    try:
        assert process.stdout is not None
        started = json.loads(process.stdout.readline())
        yield started["urls"][0], process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument("--subscribers", type=int, default=16)
    parser.add_argument("--rate", type=float, default=2000.0, help="packets/s per publisher")
    parser.add_argument("--payload", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--procs", type=int, default=2, help="load-generator processes")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--transport", choices=("tcp", "zmq", "rtp"), default="tcp")
    parser.add_argument("--previous", help="another conf executable whose --workers 2 (tcp) is measured too")
    args = parser.parse_args()
    os.environ.setdefault("CONF_HOME", tempfile.mkdtemp(prefix="conf-bench-"))  # one identity for all
    if args.previous and args.transport != "tcp":
        parser.error("--previous measures a tcp:// server (the only transport --workers had before)")
    encryption = {"tcp": "TLS 1.3", "zmq": "CURVE", "rtp": "SRTP media, TLS 1.3 control"}[args.transport]
    print(
        f"{args.transport} ({encryption}), 2 meetings, {args.publishers} publishers x "
        f"{args.subscribers} subscribers in all, "
        f"{args.rate:g} pkt/s x {args.payload} B per publisher, {args.duration:g} s per run"
    )
    print(f"{'server':22}{'out pkt/s':>11}{'loss %':>9}{'p50 ms':>9}{'p99 ms':>9}{'CPU %':>8}{'us/pkt':>8}")
    rows = ["--workers 1", "--workers 2"] + (["previous --workers 2"] if args.previous else [])
    totals: dict[str, list[dict[str, float]]] = {row: [] for row in rows}
    for _ in range(args.repeat):
        for row in rows:
            if row.startswith("previous"):
                with previous_server(args.previous) as server:
                    r = measure(args, 2, server)
            else:
                r = measure(args, int(row[-1]))
            totals[row].append(r)
            print(
                f"{row:22}{r['out_pps']:>11,.0f}{100 * r['loss']:>9.3f}{r['p50']:>9.3f}"
                f"{r['p99']:>9.3f}{r['cpu']:>8.1f}{r['us_per_packet']:>8.2f}"
            )

    def mean(row: str, key: str) -> float:
        return sum(r[key] for r in totals[row]) / len(totals[row])

    one = "--workers 1"
    for row in rows[1:]:
        if mean(one, "out_pps") and mean(one, "us_per_packet"):
            print(
                f"{row} / {one} (mean of {args.repeat}): delivered packets/s "
                f"{mean(row, 'out_pps') / mean(one, 'out_pps'):.2f}, server CPU per packet "
                f"{mean(row, 'us_per_packet') / mean(one, 'us_per_packet'):.2f}"
            )


if __name__ == "__main__":
    main()
