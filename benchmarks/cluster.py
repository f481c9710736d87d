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
- **Cascading**: two more nodes, h (the holder) and r, with ``--cascade always``: a meeting on h, 10
  subscribers connected to h directly and 10 to r (carried to h over r's one node link), and publishers on
  h sending synthetic RTP (conf_cli.bench.packets) at a moderate rate. Each packet carries its send time
  (one host, one monotonic clock), so each subscriber measures one-way latency: direct against behind one
  node-to-node hop, in the same run, both tcp:// with TLS 1.3 (client links and the node link alike).
  Printed: p50/p99 of each and the difference (target: the hop adds at most 3 ms at p99), and each node's
  CPU seconds per packet it forwarded (node h: per packet received from a publisher; node r: per packet
  received on its node link), with the node-link counters of ``server_stats.cascade``.
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
- **Placement and cascading**: in-process too: 1,000 meetings placed by ``place()``, each participant
  arriving at a random node and, once the holder is full, carried there (``should_cascade("full", ...)``)
  instead of redirected. Printed: participants carried, node pairs with a node link, and the fullest
  node's record (carried participants count on both nodes), for meetings of up to 40 and 80.
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
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from conf_cli.bench.links import client_options
from conf_cli.bench.packets import PacketMaker
from conf_cli.bench.packets import read as read_packet
from conf_cli.bench.proc import cpu_seconds
from conf_cli.client.link import Client
from conf_cli.plugin.registry import registry
from conf_cli.plugin.security import client_security
from conf_cli.plugin.transport import TransportOptions
from conf_cli.protocol.rtp import is_rtcp
from conf_cli.server.cascade import should_cascade
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


async def _cascade_figures(url_h: str, url_r: str, fingerprint: str, nodes: dict[str, ConfProcess]) -> None:
    subscribers, publishers, rate, seconds = 10, 4, 100.0, 10.0
    delays: dict[str, list[float]] = {"direct (on h)": [], "behind one hop (on r)": []}

    def receiver(group: str) -> object:
        def on_packet(packet: bytes) -> None:
            if len(packet) >= 20 and not is_rtcp(packet):
                delays[group].append((time.monotonic_ns() - read_packet(packet)[2]) / 1e6)

        return on_packet

    async def joined(url: str, name: str, meeting: str) -> Client:
        client = Client(registry(), parse_server_url(url), client_options(url, "on", fingerprint, 15.0))
        await client.connect()
        await client.join(meeting, name, PASSCODE)
        return client

    host = Client(registry(), parse_server_url(url_h), client_options(url_h, "on", fingerprint, 15.0))
    await host.connect()
    meeting = (await host.create("host", PASSCODE))[0]["meeting"]
    clients = [host]
    try:
        for group, url in (("direct (on h)", url_h), ("behind one hop (on r)", url_r)):
            for n in range(subscribers):
                client = await joined(url, f"{group[0]}{n}", meeting)
                client.media_handler = receiver(group)  # type: ignore[assignment]
                clients.append(client)
        senders = []
        for n in range(publishers):
            client = await joined(url_h, f"p{n}", meeting)
            client.send({"type": "publish", "kind": "video", "ssrc": 0x2000 + n, "codec": "H264"})
            senders.append((client, PacketMaker(0x2000 + n, 1000)))
            clients.append(client)
        await asyncio.sleep(1.5)
        for values in delays.values():
            values.clear()
        pids = {name: process.process.pid for name, process in nodes.items()}
        before = {name: cpu_seconds(pid) or 0.0 for name, pid in pids.items()}
        start = time.monotonic()
        sent = 0
        while time.monotonic() - start < seconds:
            due = int((time.monotonic() - start) * rate) + 1
            for client, maker in senders:
                while maker.sent < due and client.link is not None:
                    client.link.send_media(maker.make(time.monotonic_ns()))
                    sent += 1
            await asyncio.sleep(0.002)
        await asyncio.sleep(1.0)
        after = {name: cpu_seconds(pid) or 0.0 for name, pid in pids.items()}
        loop = asyncio.get_running_loop()
        h_stats, r_stats = await asyncio.gather(
            loop.run_in_executor(None, lambda: nodes["h"].expect("server_stats", _after(sent), timeout=10)),
            loop.run_in_executor(
                None, lambda: nodes["r"].expect("server_stats", _uplink_after(sent), timeout=10)
            ),
        )
    finally:
        for client in clients:
            await client.close()

    print(
        f"\nOne node-to-node hop (tcp://, encryption on: TLS 1.3 on client and node links), {publishers} "
        f"publishers x {rate:g} packets/s of 1,000 bytes for {seconds:g} s, {subscribers} subscribers on "
        "each side, one run:\n"
    )
    print("| subscriber | packets | p50 ms | p99 ms | max ms |")
    print("| --- | --- | --- | --- | --- |")
    p99: dict[str, float] = {}
    for group, values in delays.items():
        ordered = sorted(values)
        p99[group] = ordered[int(0.99 * (len(ordered) - 1))]
        print(
            f"| {group} | {len(ordered)} | {statistics.median(ordered):.2f} | {p99[group]:.2f} | "
            f"{ordered[-1]:.2f} |"
        )
    direct, hop = p99["direct (on h)"], p99["behind one hop (on r)"]
    medians = {group: statistics.median(values) for group, values in delays.items()}
    print(
        f"\nThe hop adds {hop - direct:.2f} ms at p99 ({hop / direct:.2f} x direct; target <= 3 ms) and "
        f"{medians['behind one hop (on r)'] - medians['direct (on h)']:.2f} ms at the median."
    )
    down = h_stats["cascade"]["links_in"]["r"]
    up = r_stats["cascade"]["links_out"]["h"]
    print(
        f"\nNode link r -> h: {down['packets_out']} frames down for {down['deliveries_out']} subscriber "
        f"copies ({down['deliveries_out'] / max(1, down['packets_out']):.1f} per frame); r handed out "
        f"{up['deliveries_in']} copies of {up['packets_in']} frames."
    )
    print("\nCPU per forwarded packet with cascading (process CPU over the sending window, one run):\n")
    print("| node | packets in | copies out | CPU s | CPU us per packet in | CPU us per copy out |")
    print("| --- | --- | --- | --- | --- | --- |")
    direct_out = sent * (subscribers + publishers - 1)  # to h's own participants (not the sender)
    rows = (
        ("h (holder)", "h", sent, direct_out + down["packets_out"]),
        ("r", "r", up["packets_in"], up["deliveries_in"]),
    )
    for label, name, packets_in, copies in rows:
        cpu = after[name] - before[name]
        print(
            f"| {label} | {packets_in} | {copies} | {cpu:.2f} | {cpu / max(1, packets_in) * 1e6:.1f} | "
            f"{cpu / max(1, copies) * 1e6:.2f} |"
        )


def _after(sent: int) -> Callable[[dict[str, Any]], bool]:
    def done(event: dict[str, Any]) -> bool:
        link = event.get("cascade", {}).get("links_in", {}).get("r", {})
        return int(link.get("packets_out", 0)) >= sent * 0.99

    return done


def _uplink_after(sent: int) -> Callable[[dict[str, Any]], bool]:
    def done(event: dict[str, Any]) -> bool:
        link = event.get("cascade", {}).get("links_out", {}).get("h", {})
        return int(link.get("packets_in", 0)) >= sent * 0.99

    return done


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


def _simulate_cascading(
    meetings: int, nodes: int, capacity: int, largest: int, seed: int
) -> dict[str, float]:
    """Meetings placed as ``place()`` does; then each participant arrives at a random node and is
    redirected to the holder while it has room, else carried there (``should_cascade("full", ...)``)."""
    rng = random.Random(seed)
    truth = {
        f"n{i:02d}": NodeInfo(f"n{i:02d}", (f"tcp://n{i:02d}:7450",), capacity=capacity) for i in range(nodes)
    }

    def add(name: str, people: int) -> None:
        truth[name] = replace(truth[name], participants=truth[name].participants + people)

    carried = total = 0
    pairs: set[tuple[str, str]] = set()
    for _ in range(meetings):
        holder = place(truth, f"n{rng.randrange(nodes):02d}")
        truth[holder] = replace(truth[holder], meetings=truth[holder].meetings + 1)
        add(holder, 1)
        total += 1
        for _ in range(rng.randint(1, largest - 1)):
            reached = f"n{rng.randrange(nodes):02d}"
            total += 1
            if reached != holder and should_cascade("full", truth[holder]):
                carried += 1
                pairs.add((reached, holder))
                add(reached, 1)  # the node it reached carries it (its record counts it) ...
            add(holder, 1)  # ... and the holder's meeting has it
    return {
        "participants": total,
        "carried": carried,
        "pairs": len(pairs),
        "fullest": max(truth[name].participants / capacity for name in truth),
    }


def cascading_figures(seed: int) -> None:
    print("\nCascading, in process (place() and should_cascade('full')), 1,000 meetings over 20 nodes, seed")
    print(f"{seed}: each participant reaches a random node and is carried to the holder once it is full:\n")
    print(
        "| meetings of | capacity per node | participants | carried | node pairs linked "
        "| fullest node's record |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for largest, capacity in ((40, 1500), (80, 1500), (80, 1000)):
        f = _simulate_cascading(1000, 20, capacity, largest, seed)
        print(
            f"| 2-{largest} | {capacity} | {f['participants']:.0f} | {f['carried']:.0f} "
            f"({f['carried'] / f['participants']:.0%}) | {f['pairs']:.0f} of 380 | {f['fullest']:.0%} |"
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
        asyncio.run(_redirect_figures(urls["a"], urls["b"], fingerprint, args.joins))
        cascading = {}
        for name in "hr":
            process, url = start_server(
                "--cluster", directory.url, "--node", name, "--cascade", "always", "--stats-interval", "0.5"
            )
            nodes.append(process)
            urls[name] = url
            cascading[name] = process
        time.sleep(REFRESH_INTERVAL + 1.0)
        asyncio.run(_cascade_figures(urls["h"], urls["r"], fingerprint, cascading))

        if args.joins:
            asyncio.run(_redirect_figures(urls["a"], urls["b"], fingerprint, args.joins))
        if args.kills:
            failover_figures(directory.url, nodes, urls, args.kills)
    finally:
        for process in nodes.values():
            process.stop()
        directory.close()
    placement_figures(args.seed)
    cascading_figures(args.seed)


if __name__ == "__main__":
    main()
