"""The cost of link encryption: `conf bench` per transport with and without encryption, in one run.

For each transport (tcp: TLS 1.3; zmq: CURVE; rtp: TLS control and SRTP media), ``conf bench --json``
runs twice with the same load, once with ``--encryption on`` and once with ``--encryption none``,
alternating which goes first from one transport to the next so neither always meets a warmer or busier
machine. Printed: packets/s in and out, loss, latency p50, the server's CPU and CPU time per delivered
packet, then the ratios encrypted/plain of CPU per packet and of delivered packets/s. On a shared
two-core host the load generator competes with the server, so the CPU per packet is the figure to read.
Figures are printed, never asserted.

Run: ``.venv/bin/python benchmarks/encryption_cost.py [--rate 500] [--publishers 4] [--subscribers 16]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any


def bench(transport: str, encryption: str, args: argparse.Namespace) -> dict[str, Any]:
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
        str(args.rate),
        "--payload",
        str(args.payload),
        "--duration",
        str(args.duration),
        "--procs",
        str(args.procs),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=args.duration * 10 + 120, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"conf bench failed ({transport}, {encryption}): {done.stderr.strip()[-400:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transports", default="tcp,zmq,rtp")
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument("--subscribers", type=int, default=16)
    parser.add_argument("--rate", type=float, default=500, help="packets/s per publisher")
    parser.add_argument("--payload", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--procs", type=int, default=2, help="load-generator processes")
    args = parser.parse_args()
    print(
        f"{args.publishers} publishers x {args.subscribers} subscribers in one meeting, {args.rate:g} pkt/s "
        f"each, {args.payload} B payloads, {args.duration:g} s per run"
    )
    print(
        f"{'transport':10}{'encryption':>11}{'in pkt/s':>10}{'out pkt/s':>11}{'loss %':>8}{'p50 ms':>8}"
        f"{'CPU %':>8}{'us/pkt':>8}"
    )
    ratios: list[str] = []
    for index, transport in enumerate(args.transports.split(",")):
        order = ("on", "none") if index % 2 == 0 else ("none", "on")
        figures: dict[str, dict[str, Any]] = {}
        for encryption in order:
            result = bench(transport, encryption, args)
            figures[encryption] = result
            rates, packets, server = result["rates"], result["packets"], result["server"]
            latency = result["latency_ms"] or {"p50": float("nan")}
            print(
                f"{transport:10}{encryption:>11}{rates['in_pps']:>10,.0f}{rates['out_pps']:>11,.0f}"
                f"{100 * packets['loss']:>8.3f}{latency['p50']:>8.2f}{server['cpu_pct'] or 0:>8.1f}"
                f"{server['cpu_us_per_packet_out'] or 0:>8.2f}",
                flush=True,
            )
        on, off = figures["on"], figures["none"]
        us_on, us_off = on["server"]["cpu_us_per_packet_out"], off["server"]["cpu_us_per_packet_out"]
        pps_on, pps_off = on["rates"]["out_pps"], off["rates"]["out_pps"]
        cpu = f"{us_on / us_off:.2f}" if us_on and us_off else "n/a"
        rate = f"{pps_on / pps_off:.3f}" if pps_off else "n/a"
        ratios.append(f"{transport}: encrypted/plain CPU per packet {cpu}, packets/s out {rate}")
    print()
    for line in ratios:
        print(line)


if __name__ == "__main__":
    main()
