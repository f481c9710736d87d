"""Latency through the server at half its measured capacity, per transport, in one run.

For each transport, two ``conf bench`` runs (4 publishers x 16 subscribers in one meeting by default):

1. a probe at ``--probe-rate`` packets/s per publisher gives the server's CPU time per delivered packet,
   hence its capacity: the packets/s out that would keep one core busy (``1e6 / us_per_packet``);
2. a run at half that capacity (the publisher rate that makes it, spread over the same clients) gives
   one-way latency percentiles from each publisher's send to each subscriber's receive, through the
   server (the probe's p99 is printed too).

The latency is measured in the load generator's clients, on the same host, so it is an upper bound of what
the server adds. rtp:// runs with ``conf bench --generator compiled`` (``--generator``): sendmmsg and
recvmmsg in C, the clients' SRTP in the compiled module, a packet's arrival the kernel's time stamp (when it
reached the client's socket, not when the generator got a core to read it), so that half of the server's
capacity (about 200,000 packets/s out) can be offered at all; Python clients cannot drive that. tcp:// and
zmq:// have only the Python generator. zmq:// clients read their DEALER from the event loop's reader callback
in batches (no future per message), so one generator process takes in tens of thousands of messages a second
on a fraction of a core; a packet's arrival is the time the client's reader handed it on, a microsecond or so
after it left libzmq. libzmq reads a TCP stream in its I/O thread and gives no per-message kernel time
stamp, so the zmq:// (and tcp://) one-way time includes the time a packet waited in the generator for its
reader: "gen media %" (the busiest generator process's media thread, as a share of one core) says how busy
that reader was, and "media wait %" how long it was ready to run but had no core (the host busy: a packet
that came then waited for it). "srv wait %" is the same for the server's threads, summed: the share of the
run the server could not run for want of a core. On a two-core host the generator and the server share
the cores: the generator's CPU (all threads, summed over processes) is printed next to the figures, with
the load average before each transport. ``--generator-nice N`` runs the generator N nicer, so that the
server gets a core first, as it would with its clients on other machines (for rtp:// that leaves the
measure as it is, its arrival times being the kernel's). Every table line names its encryption mode.
Figures are printed, never asserted.

Run: ``.venv/bin/python benchmarks/latency_half_capacity.py [--transports tcp,zmq,rtp] [--encryption on]``
"""

from __future__ import annotations

import argparse
import os

from encryption_cost import bench

from conf_cli.bench.display import encryption_name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transports", default="tcp,zmq,rtp")
    parser.add_argument("--encryption", choices=["on", "none"], default="on")
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument("--subscribers", type=int, default=16)
    parser.add_argument("--probe-rate", type=float, default=1500, help="packets/s per publisher in the probe")
    parser.add_argument("--payload", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--procs", type=int, default=2, help="load-generator processes")
    parser.add_argument(
        "--generator", choices=["python", "compiled"], default="compiled", help="rtp's load generator"
    )
    parser.add_argument("--rounds", type=int, default=1, help="probe + half-capacity runs per transport")
    parser.add_argument(
        "--generator-nice",
        type=int,
        default=0,
        help="niceness added to the load generator, so that the server gets a core first (rtp's arrival "
        "times are the kernel's; tcp's and zmq's are taken in the generator, which then waits longer)",
    )
    args = parser.parse_args()
    audience = args.publishers + args.subscribers - 1
    print(
        f"{args.publishers} publishers x {args.subscribers} subscribers in one meeting, {args.payload} B "
        f"payloads, {args.duration:g} s per run; probe at {args.probe_rate:g} pkt/s per publisher; "
        f"load generator niceness +{args.generator_nice}"
    )
    print(
        f"{'transport':10}{'encryption':>31}{'probe p99':>10}{'probe us/pkt':>13}{'capacity/core':>14}"
        f"{'half: out pkt/s':>16}"
        f"{'loss %':>8}{'p50 ms':>8}{'p99 ms':>8}{'CPU %':>7}{'srv wait %':>11}{'gen CPU %':>10}"
        f"{'gen media %':>12}{'media wait %':>13}{'load avg':>9}  generator"
    )
    for transport in args.transports.split(",") * args.rounds:
        generator = args.generator if transport == "rtp" else "python"
        load = os.getloadavg()[0]
        probe = bench(transport, args.encryption, args, rate=args.probe_rate)
        us = probe["server"]["cpu_us_per_packet_out"]
        if not us:
            print(f"{transport:10} the probe delivered nothing or the server's CPU could not be read")
            continue
        probe_p99 = (probe["latency_ms"] or {"p99": float("nan")})["p99"]
        capacity = 1e6 / us
        rate = capacity / 2 / (args.publishers * audience)
        half = bench(transport, args.encryption, args, rate=rate)
        latency = half["latency_ms"] or {"p50": float("nan"), "p99": float("nan")}
        print(
            f"{transport:10}{encryption_name(transport, args.encryption):>31}{probe_p99:>10.2f}{us:>13.2f}"
            f"{capacity:>14,.0f}"
            f"{half['rates']['out_pps']:>16,.0f}{100 * half['packets']['loss']:>8.3f}{latency['p50']:>8.2f}"
            f"{latency['p99']:>8.2f}{half['server']['cpu_pct'] or 0:>7.1f}"
            f"{half['server'].get('runqueue_wait_pct') or 0:>11.1f}"
            f"{sum(c or 0 for c in half.get('generator_cpu_pct') or []):>10.1f}"
            f"{max((c or 0 for c in half.get('generator_media_thread_cpu_pct') or []), default=0):>12.1f}"
            f"{max((c or 0 for c in half.get('generator_media_thread_wait_pct') or []), default=0):>13.1f}"
            f"{load:>9.2f}  {generator}",
            flush=True,
        )


if __name__ == "__main__":
    main()
