"""The cost of link encryption: `conf bench` per transport with and without encryption, in one run.

For each transport (tcp: TLS 1.3; zmq: CURVE; rtp: TLS control and SRTP media), ``conf bench --json``
runs with the same load once with ``--encryption on`` and once with ``--encryption none``, ``--rounds``
times, alternating which goes first from one round (and one transport) to the next so neither always
meets a warmer or busier machine. Printed: packets/s in and out, loss, latency p50/p99, the server's CPU
and CPU time per delivered packet for each run, then per transport the ratio encrypted/plain of CPU per
delivered packet of each round (the two runs next to each other) and their median. On a shared two-core
host the load generator competes with the server, so the CPU per packet is the figure to read. Figures
are printed, never asserted.

``--srtp-engines vaes,openssl`` runs rtp:// with SRTP once per AES-GCM engine of the compiled SRTP module
in each round (``CONF_SRTP_ENGINE``, server and clients), so the engines and plaintext are compared in one
run. ``--generator compiled`` drives rtp:// with conf bench's compiled load generator.

Run: ``.venv/bin/python benchmarks/encryption_cost.py [--rate 1500] [--rounds 3] [--transports rtp]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from typing import Any

from conf_cli.bench.display import encryption_name

ATTEMPTS = 2
"""A run that fails (a load generator lost on a crowded machine) is run once more before giving up."""


def bench(
    transport: str,
    encryption: str,
    args: argparse.Namespace,
    pure: bool = False,
    rate: float | None = None,
    engine: str | None = None,
) -> dict[str, Any]:
    """One ``conf bench --json`` run at ``rate`` packets/s per publisher (``args.rate`` unless given);
    ``pure``: server and clients without the compiled modules; ``engine``: the SRTP AES-GCM engine."""
    command = [
        sys.executable,
        "-m",
        "conf_cli",
        "bench",
        "--json",
        "--transport",
        transport,
        "--encryption",
        encryption,
        "--publishers",
        str(args.publishers),
        "--subscribers",
        str(args.subscribers),
        "--rate",
        f"{args.rate if rate is None else rate:.1f}",
        "--payload",
        str(args.payload),
        "--duration",
        str(args.duration),
        "--procs",
        str(args.procs),
    ]
    if getattr(args, "generator_nice", 0):
        command += ["--generator-nice", str(args.generator_nice)]
    generator = getattr(args, "generator", "python")
    if generator != "python" and transport == "rtp":
        command += ["--generator", generator]
    env = {**os.environ, "CONF_PURE_PYTHON": "1"} if pure else None
    if engine:
        env = {**(env or os.environ), "CONF_SRTP_ENGINE": engine}
    for attempt in range(ATTEMPTS):
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=args.duration * 10 + 120, check=False, env=env
        )
        if done.returncode == 0:
            break
        why = done.stderr.strip()[-400:]
        if attempt + 1 == ATTEMPTS:
            raise SystemExit(f"conf bench failed ({transport}, {encryption}): {why}")
        print(f"conf bench failed ({transport}, {encryption}), once more: {why.splitlines()[-1]}", flush=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transports", default="tcp,zmq,rtp")
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument("--subscribers", type=int, default=16)
    parser.add_argument("--rate", type=float, default=1500, help="packets/s per publisher")
    parser.add_argument("--payload", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--procs", type=int, default=2, help="load-generator processes")
    parser.add_argument("--rounds", type=int, default=1, help="encrypted/plain pairs per transport")
    parser.add_argument(
        "--srtp-engines",
        default="",
        help="rtp: one SRTP run per AES-GCM engine (vaes,openssl); default the best",
    )
    parser.add_argument(
        "--generator", choices=["python", "compiled"], default="python", help="rtp's load generator"
    )
    args = parser.parse_args()
    print(
        f"{args.publishers} publishers x {args.subscribers} subscribers in one meeting, {args.rate:g} pkt/s "
        f"each, {args.payload} B payloads, {args.duration:g} s per run"
    )
    print(
        f"{'transport':10}{'encryption':>31}{'in pkt/s':>10}{'out pkt/s':>11}{'loss %':>8}{'p50 ms':>8}"
        f"{'p99 ms':>8}{'CPU %':>8}{'us/pkt':>8}"
    )
    summary: list[str] = []
    turn = 0
    for transport in args.transports.split(","):
        engines: list[str | None] = [None]
        if transport == "rtp" and args.srtp_engines:
            engines = list(args.srtp_engines.split(","))
        modes = [("none", None)] + [("on", engine) for engine in engines]
        ratios: dict[str | None, list[float]] = {engine: [] for engine in engines}
        delivered: dict[str | None, list[float]] = {engine: [] for engine in engines}
        for _ in range(args.rounds):
            shift = turn % len(modes)
            order = modes[shift:] + modes[:shift]  # each mode first in turn
            if turn % 2:
                order.reverse()
            turn += 1
            figures: dict[tuple[str, str | None], dict[str, Any]] = {}
            for encryption, engine in order:
                result = bench(transport, encryption, args, engine=engine)
                figures[(encryption, engine)] = result
                rates, packets, server = result["rates"], result["packets"], result["server"]
                latency = result["latency_ms"] or {"p50": float("nan"), "p99": float("nan")}
                mode = encryption_name(transport, encryption) + (f" [{engine}]" if engine else "")
                print(
                    f"{transport:10}{mode:>31}{rates['in_pps']:>10,.0f}{rates['out_pps']:>11,.0f}"
                    f"{100 * packets['loss']:>8.3f}{latency['p50']:>8.2f}{latency['p99']:>8.2f}"
                    f"{server['cpu_pct'] or 0:>8.1f}{server['cpu_us_per_packet_out'] or 0:>8.2f}",
                    flush=True,
                )
            off = figures[("none", None)]
            for engine in engines:
                on = figures[("on", engine)]
                us_on, us_off = on["server"]["cpu_us_per_packet_out"], off["server"]["cpu_us_per_packet_out"]
                if us_on and us_off:
                    ratios[engine].append(us_on / us_off)
                if off["rates"]["out_pps"]:
                    delivered[engine].append(on["rates"]["out_pps"] / off["rates"]["out_pps"])
        for engine in engines:
            each = ", ".join(f"{r:.2f}" for r in ratios[engine]) or "n/a"
            median = f"{statistics.median(ratios[engine]):.2f}" if ratios[engine] else "n/a"
            out = f"{statistics.median(delivered[engine]):.3f}" if delivered[engine] else "n/a"
            name = encryption_name(transport, "on") + (f", AES-GCM engine {engine}" if engine else "")
            summary.append(
                f"{transport} ({name} / none): CPU per delivered packet "
                f"encrypted/plain {each} (median {median}); packets/s out {out}"
            )
    print()
    for line in summary:
        print(line)


if __name__ == "__main__":
    main()
