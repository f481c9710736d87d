"""What the compiled fan-out buys: rtp:// with and without its compiled modules, in one run.

``conf bench --transport rtp --json`` runs alternately as installed (one SRTP call and one ``sendmmsg``
per fan-out, SRTP checked in C) and with ``CONF_PURE_PYTHON=1`` (libsrtp per packet and one ``sendto``
per datagram, in server and clients alike), ``--rounds`` pairs for each encryption mode (``on``: TLS +
SRTP AEAD_AES_128_GCM; ``none``: plain RTP). Printed: each run's figures, then per mode the ratio
compiled/pure of the server's CPU time per delivered packet in each round, and its median. Figures are
printed, never asserted.

Run: ``.venv/bin/python benchmarks/compiled_fanout.py [--rate 1500] [--rounds 2]``
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from encryption_cost import bench

from conf_cli.bench.display import encryption_name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encryption", default="on,none", help="modes to compare, comma-separated")
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument("--subscribers", type=int, default=16)
    parser.add_argument("--rate", type=float, default=1500, help="packets/s per publisher")
    parser.add_argument("--payload", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--procs", type=int, default=2, help="load-generator processes")
    parser.add_argument("--rounds", type=int, default=2, help="compiled/pure pairs per mode")
    args = parser.parse_args()
    print(
        f"rtp, {args.publishers} publishers x {args.subscribers} subscribers in one meeting, {args.rate:g} "
        f"pkt/s each, {args.payload} B payloads, {args.duration:g} s per run"
    )
    columns = ("out pkt/s", 11), ("loss %", 8), ("p50 ms", 8), ("p99 ms", 8), ("us/pkt", 8)
    print(f"{'encryption':>31}{'build':>10}" + "".join(f"{name:>{width}}" for name, width in columns))
    summary = []
    turn = 0
    for encryption in args.encryption.split(","):
        mode = encryption_name("rtp", encryption)
        ratios = []
        for _ in range(args.rounds):
            figures: dict[bool, dict[str, Any]] = {}
            for pure in (False, True) if turn % 2 == 0 else (True, False):
                result = figures[pure] = bench("rtp", encryption, args, pure=pure)
                latency = result["latency_ms"] or {"p50": float("nan"), "p99": float("nan")}
                print(
                    f"{mode:>31}{'pure' if pure else 'compiled':>10}{result['rates']['out_pps']:>11,.0f}"
                    f"{100 * result['packets']['loss']:>8.3f}{latency['p50']:>8.2f}{latency['p99']:>8.2f}"
                    f"{result['server']['cpu_us_per_packet_out'] or 0:>8.2f}",
                    flush=True,
                )
            turn += 1
            fast = figures[False]["server"]["cpu_us_per_packet_out"]
            slow = figures[True]["server"]["cpu_us_per_packet_out"]
            if fast and slow:
                ratios.append(fast / slow)
        each = ", ".join(f"{r:.2f}" for r in ratios) or "n/a"
        median = f"{statistics.median(ratios):.2f}" if ratios else "n/a"
        summary.append(f"{mode}: CPU per delivered packet compiled/pure {each} (median {median})")
    print()
    for line in summary:
        print(line)


if __name__ == "__main__":
    main()
