"""The cost of ``--metrics-port`` on the forwarding path: `conf bench` with and without metrics, in one run.

For each transport, ``conf bench --json`` runs the same load several times, alternately on a server
without metrics and on one started with ``--metrics-port`` whose ``/metrics`` this script scrapes every
``--scrape`` seconds during the run (Prometheus' default is every 15 s: this is harsher). Printed per run:
packets/s in and out, loss, the server's CPU and CPU time per delivered packet; then, per transport, the
ratio with/without metrics of the median CPU time per packet and of delivered packets/s. On a shared
two-core host the load generator competes with the server, so CPU per packet is the figure to read.
Figures are printed, never asserted.

Run: ``.venv/bin/python benchmarks/metrics_cost.py [--transports tcp,rtp] [--rounds 3] [--encryption on]``
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from typing import Any

_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape_until(stop: threading.Event, url: str, every: float, counts: list[int]) -> None:
    while not stop.wait(every):
        try:
            with _direct.open(url, timeout=2.0) as response:
                response.read()
            counts[0] += 1
        except (OSError, urllib.error.URLError):
            pass  # the server is not up yet, or already gone


def bench(transport: str, metrics: bool, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        *(sys.executable, "-m", "conf_cli", "bench", "--json", "--transport", transport),
        *("--encryption", args.encryption, "--publishers", str(args.publishers)),
        *("--subscribers", str(args.subscribers), "--rate", str(args.rate)),
        *("--payload", str(args.payload), "--duration", str(args.duration), "--procs", str(args.procs)),
    ]
    stop, scrapes = threading.Event(), [0]
    scraper = None
    if metrics:
        port = free_port()
        command += ["--server-arg=--metrics-port", f"--server-arg={port}"]
        url = f"http://127.0.0.1:{port}/metrics"
        scraper = threading.Thread(target=scrape_until, args=(stop, url, args.scrape, scrapes), daemon=True)
        scraper.start()
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=args.duration * 10 + 120, check=False
        )
    finally:
        stop.set()
        if scraper is not None:
            scraper.join()
    if done.returncode != 0:
        raise SystemExit(f"conf bench failed ({transport}, metrics {metrics}): {done.stderr.strip()[-400:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    result["scrapes"] = scrapes[0]
    return result


def _median(runs: list[dict[str, Any]], part: str, figure: str) -> float:
    return float(statistics.median(run[part][figure] for run in runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transports", default="tcp,rtp")
    parser.add_argument("--encryption", default="on", choices=["on", "none"])
    parser.add_argument("--rounds", type=int, default=3, help="runs with and without metrics, alternating")
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument("--subscribers", type=int, default=8)
    parser.add_argument("--rate", type=float, default=500, help="packets/s per publisher")
    parser.add_argument("--payload", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--procs", type=int, default=1, help="load-generator processes")
    parser.add_argument("--scrape", type=float, default=1.0, help="seconds between scrapes")
    args = parser.parse_args()
    print(
        f"{args.publishers} publishers x {args.subscribers} subscribers, {args.rate:g} pkt/s each, "
        f"{args.payload} B payloads, {args.duration:g} s per run, encryption {args.encryption}, "
        f"/metrics scraped every {args.scrape:g} s when on"
    )
    print(
        f"{'transport':10}{'metrics':>8}{'scrapes':>8}{'in pkt/s':>10}{'out pkt/s':>11}{'loss %':>8}"
        f"{'CPU %':>8}{'us/pkt':>8}"
    )
    summary: list[str] = []
    for transport in args.transports.split(","):
        runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
        for round_ in range(args.rounds):
            for metrics in (False, True) if round_ % 2 == 0 else (True, False):
                result = bench(transport, metrics, args)
                runs[metrics].append(result)
                server, rates = result["server"], result["rates"]
                print(
                    f"{transport:10}{'on' if metrics else 'off':>8}{result['scrapes']:>8}"
                    f"{rates['in_pps']:>10.0f}{rates['out_pps']:>11.0f}"
                    f"{100 * result['packets']['loss']:>8.2f}{server['cpu_pct']:>8.1f}"
                    f"{server['cpu_us_per_packet_out']:>8.2f}"
                )

        cpu = _median(runs[True], "server", "cpu_us_per_packet_out") / _median(
            runs[False], "server", "cpu_us_per_packet_out"
        )
        out = _median(runs[True], "rates", "out_pps") / _median(runs[False], "rates", "out_pps")
        summary.append(f"{transport}: CPU per packet with/without metrics {cpu:.3f}, packets out {out:.3f}")
    print("medians over the rounds:")
    for line in summary:
        print("  " + line)


if __name__ == "__main__":
    main()
