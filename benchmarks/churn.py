"""Joins under churn: ``conf bench --churn`` per transport and encryption mode, in one run, and a memory run.

For each transport (tcp, rtp) and encryption mode (on: TLS; none), 300 joins with the passcode, 30 clients
at once, each chatting then leaving or (every fourth) dropping its connection: joins/s, join latency
p50/p95/p99, the server's CPU per join, and how many passcodes it hashed. Then, with ``--soak SECONDS``,
100 clients churning for that long against one server: its RSS after the warm-up (2 minutes, or a quarter
of the run) and at the end, and its open files before and after.

Run: ``.venv/bin/python benchmarks/churn.py [--joins 300] [--clients 30] [--soak 180]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any


def bench(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "conf_cli", "bench", "--churn", "0", "--json", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"conf bench failed: {done.stderr.strip().splitlines()[-1:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--joins", type=int, default=300)
    parser.add_argument("--clients", type=int, default=30)
    parser.add_argument("--soak", type=float, default=0.0, help="seconds of 100 clients churning (0: none)")
    args = parser.parse_args()

    print(f"{args.joins} joins with the passcode, {args.clients} at once (chat, then leave or drop)")
    print("| transport | encryption | joins/s | join p50 ms | p95 ms | p99 ms | server CPU/join | hashed |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for transport in ("tcp", "rtp"):
        for encryption in ("on", "none"):
            f = bench(
                "--transport", transport, "--encryption", encryption,
                "--joins", str(args.joins), "--clients", str(args.clients),
            )  # fmt: skip
            ms, server = f["join_ms"], f["server"]
            mode = "TLS" if encryption == "on" else "none"
            print(
                f"| {transport} | {mode} | {f['joins_per_s']:.0f} | {ms['p50']:.1f} | {ms['p95']:.1f} | "
                f"{ms['p99']:.1f} | {server['cpu_ms_per_join']:.2f} ms | {server['passcode_hashed']} |"
            )
    if args.soak > 0:
        f = bench(
            "--joins", "0", "--duration", str(args.soak), "--clients", "100", "--meetings", "2",
            "--procs", "2", "--interval", "5",
        )  # fmt: skip
        warm = min(120.0, args.soak / 4)
        samples = [s for s in f["samples"] if s["rss_bytes"] is not None]
        reference = next(s for s in samples if s["t"] >= warm)
        end = samples[-1]
        server = f["server"]
        print(
            f"\n{args.soak:g} s of 100 clients churning (tcp, TLS): {f['joins']['joined']:,} joins "
            f"({f['joins_per_s']:.0f}/s), {f['joins']['failed']} failed; "
            f"server RSS {reference['rss_bytes'] / 2**20:.1f} MiB "
            f"at {reference['t']:.0f} s, {end['rss_bytes'] / 2**20:.1f} MiB at {end['t']:.0f} s "
            f"(ratio {end['rss_bytes'] / reference['rss_bytes']:.3f}); open files {server['fds_idle']} idle, "
            f"{server['fds_end']} at the end of the run"
        )


if __name__ == "__main__":
    main()
