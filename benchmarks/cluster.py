"""A cluster's figures: what a redirect adds to a join, how long a failover takes, and how placement
spreads meetings.

Run with ``.venv/bin/python benchmarks/cluster.py [--joins N] [--kills N] [--directory redis|nats]``;
prints figures and asserts nothing (docs/cluster.md says what they mean).

- **Redirect cost**: a real directory (Debian's redis-server or nats-server) and three real ``conf server
  --cluster`` nodes on loopback, tcp://, encryption on (TLS 1.3, the key checked against the fingerprint
  given or named). A meeting is created on node a; then, alternating in one run, a client joins it through
  node a (direct: connect, hello, join, ``joined``) and through node b (connect, hello, join, ``redirect``,
  connect to a, hello, join, ``joined``). Printed: p50/p95/max of each, and the difference of the medians,
  the time a join through a node that does not hold the meeting adds (target: at most 100 ms).
- **Failover**: a meeting of three ``conf`` clients (tcp://, encryption on: TLS 1.3) on the node holding
  it; that node is SIGKILLed, and each client's resumed ``joined`` is timed from the kill (as this process
  sees the client's line); then the node is started again under its name, and the next round kills the
  meeting's new holder. Printed: per round, when the first and the last client was back; over all rounds
  the median and max of every client's time, and of "everyone back" (the issue's target: 10 s).
- **Placement**: in-process, no I/O: 1,000 meetings (2 to 40 participants, seeded) arrive one by one at
  random nodes of 20 (capacity 1,500 participants each, so the cluster ends about 70 % full) and
  :func:`conf_cli.server.directory.place` picks each one's node, with a fresh view of the nodes and with
  a view refreshed only every 25 meetings (the 2 s lag of the records). Printed: participants per node
  (min, mean, max), meetings sent elsewhere, the fullest node's load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import time
from dataclasses import replace

from conf_cli.client.link import Client
from conf_cli.plugin.registry import registry
from conf_cli.plugin.security import client_security
from conf_cli.plugin.transport import TransportOptions
from conf_cli.server.directory import REFRESH_INTERVAL, NodeInfo, load, place
from conf_cli.testing.directories import start_directory
from conf_cli.testing.processes import ConfProcess, run_conf, start_client, start_server
from conf_cli.urls import parse_server_url

PASSCODE = "bench-pass-1"


async def _timed_join(url: str, fingerprint: str, meeting: str, name: str) -> tuple[float, int]:
    """Seconds from opening the connection to ``joined``, and the redirects followed."""
    reg = registry()
    security = client_security(reg.ciphers, url, "on", fingerprint, pin=False)
    client = Client(reg, parse_server_url(url), TransportOptions(security=security))
    started = time.perf_counter()
    try:
        await client.connect()
        await client.join(meeting, name, PASSCODE)
        return time.perf_counter() - started, len(client.redirects)
    finally:
        await client.close()


async def _redirect_figures(url_a: str, url_b: str, fingerprint: str, joins: int) -> None:
    reg = registry()
    host = Client(
        reg,
        parse_server_url(url_a),
        TransportOptions(security=client_security(reg.ciphers, url_a, "on", fingerprint, pin=False)),
    )
    await host.connect()
    created, _ = await host.create("host", PASSCODE)
    meeting = created["meeting"]
    direct: list[float] = []
    redirected: list[float] = []
    try:
        for n in range(joins):
            seconds, hops = await _timed_join(url_a, fingerprint, meeting, f"d{n}")
            assert hops == 0
            direct.append(seconds)
            seconds, hops = await _timed_join(url_b, fingerprint, meeting, f"r{n}")
            assert hops == 1
            redirected.append(seconds)
            await asyncio.sleep(0.05)  # the leaves settle
    finally:
        await host.close()

    def row(label: str, values: list[float]) -> str:
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        return (
            f"| {label} | {len(values)} | {statistics.median(values) * 1000:.1f} | {p95 * 1000:.1f} | "
            f"{max(values) * 1000:.1f} |"
        )

    print("\nJoin time, connect to `joined` (tcp://, encryption on: TLS 1.3), alternating, one run:\n")
    print("| join | runs | p50 ms | p95 ms | max ms |")
    print("| --- | --- | --- | --- | --- |")
    print(row("direct (node a holds it)", direct))
    print(row("through node b (one redirect)", redirected))
    added = (statistics.median(redirected) - statistics.median(direct)) * 1000
    ratio = statistics.median(redirected) / statistics.median(direct)
    print(f"\nA redirect adds {added:.1f} ms at the median ({ratio:.2f} x a direct join); target <= 100 ms.")


def _holder(directory_url: str, meeting: str) -> str | None:
    done = run_conf("cluster", "status", "--cluster", directory_url, "--json")
    return json.loads(done.stdout)["meetings"].get(meeting) if done.returncode == 0 else None


def failover_figures(
    directory_url: str, nodes: dict[str, ConfProcess], urls: dict[str, str], kills: int
) -> None:
    """Kill the meeting's node ``kills`` times; print how long its clients took to be back."""
    host = start_client(urls["a"], "host", None, PASSCODE)
    meeting = host.expect("meeting_created")["meeting"]
    host.expect("joined")
    clients = [host] + [start_client(urls["a"], f"member{n}", meeting, PASSCODE) for n in range(2)]
    rounds: list[list[float]] = []
    try:
        for process in clients[1:]:
            process.expect("joined")
        for _ in range(kills):
            holder = _holder(directory_url, meeting)
            assert holder is not None, "the meeting is held by no node"
            time.sleep(REFRESH_INTERVAL + 1.0)  # every client's welcome named the other nodes
            killed = time.time()
            os.kill(nodes[holder].pid, signal.SIGKILL)
            nodes[holder].wait()
            backs = []
            for process in clients:
                process.expect("joined", lambda e: e.get("resumed") is True, timeout=60)
                at = [t for t, e in process.timeline if e["type"] == "joined" and e.get("resumed")][-1]
                backs.append(at - killed)
            rounds.append(backs)
            print(f"kill of node {holder}: first back {min(backs):.2f} s, everyone back {max(backs):.2f} s")
            nodes[holder], urls[holder] = start_server("--cluster", directory_url, "--node", holder)
    finally:
        for process in clients:
            process.stop()
    every = [t for backs in rounds for t in backs]
    last = [max(backs) for backs in rounds]
    print(
        "\nFailover, SIGKILL of the meeting's node to each client's resumed `joined` (tcp://, encryption on:"
    )
    print(f"TLS 1.3), {len(rounds)} kills, 3 clients, one run:\n")
    print("| measured | runs | median s | max s |")
    print("| --- | --- | --- | --- |")
    print(f"| each client back | {len(every)} | {statistics.median(every):.2f} | {max(every):.2f} |")
    print(f"| everyone back | {len(last)} | {statistics.median(last):.2f} | {max(last):.2f} |")
    print("\nTarget: everyone back within 10 s of the kill.")


def _simulate(meetings: int, nodes: int, capacity: int, lag: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    truth = {
        f"n{i:02d}": NodeInfo(f"n{i:02d}", (f"tcp://n{i:02d}:7450",), capacity=capacity) for i in range(nodes)
    }
    view = dict(truth)
    elsewhere = 0
    for index in range(meetings):
        if lag and index % lag == 0:
            view = dict(truth)  # the records as they were last refreshed
        reached = f"n{rng.randrange(nodes):02d}"
        size = rng.randint(2, 40)
        chosen = place(view if lag else truth, reached)
        elsewhere += chosen != reached
        truth[chosen] = replace(
            truth[chosen], participants=truth[chosen].participants + size, meetings=truth[chosen].meetings + 1
        )
    people = [node.participants for node in truth.values()]
    return {
        "min": min(people),
        "mean": statistics.mean(people),
        "max": max(people),
        "elsewhere": elsewhere,
        "fullest": max(load(node) for node in truth.values()),
        "over": sum(node.participants > capacity for node in truth.values()),
    }


def placement_figures(seed: int) -> None:
    print(
        "\nPlacement of 1,000 meetings (2-40 participants) arriving at random nodes of 20 (capacity 1,500),"
    )
    print(f"in process (conf_cli.server.directory.place), seed {seed}:\n")
    print(
        "| view of the nodes | participants per node min / mean / max | sent elsewhere "
        "| fullest node's load | nodes over capacity |"
    )
    print("| --- | --- | --- | --- | --- |")
    for label, lag in (("fresh", 0), (f"refreshed every 25 meetings (~{REFRESH_INTERVAL:g} s lag)", 25)):
        f = _simulate(1000, 20, 1500, lag, seed)
        print(
            f"| {label} | {f['min']:.0f} / {f['mean']:.0f} / {f['max']:.0f} | {f['elsewhere']:.0f} | "
            f"{f['fullest']:.0%} | {f['over']:.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--joins", type=int, default=30, help="joins of each kind (alternating)")
    parser.add_argument("--directory", choices=("redis", "nats"), default="redis")
    parser.add_argument("--kills", type=int, default=3, help="failover rounds (0: none)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    directory = start_directory(args.directory)
    nodes: dict[str, ConfProcess] = {}
    try:
        urls = {}
        fingerprint = ""
        for name in "abc":
            process, url = start_server("--cluster", directory.url, "--node", name)
            nodes[name] = process
            urls[name] = url
            fingerprint = process.seen[-1]["fingerprint"]
        time.sleep(REFRESH_INTERVAL + 1.0)  # every node has read the others' records
        print(f"directory: {args.directory} ({directory.url}); nodes a, b, c on tcp://127.0.0.1")
        if args.joins:
            asyncio.run(_redirect_figures(urls["a"], urls["b"], fingerprint, args.joins))
        if args.kills:
            failover_figures(directory.url, nodes, urls, args.kills)
    finally:
        for process in nodes.values():
            process.stop()
        directory.close()
    placement_figures(args.seed)


if __name__ == "__main__":
    main()
