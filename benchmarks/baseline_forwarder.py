"""A bare UDP forwarder (no meetings, no latching, no rules) against conf's rtp transport, in one run.

The bare forwarder is the ceiling Python reaches on this host: one asyncio UDP socket (uvloop when it is
installed), every datagram sent to every other registered address. It is loaded by the same synthetic
packets (:mod:`conf_cli.bench.packets`) and measured by the same receiver code as ``conf bench``; conf is
then loaded by ``conf bench --transport rtp`` with the same publishers, subscribers and rate. Because
the host's two cores are shared with the load generator (and whatever else runs), the comparison that
holds is server CPU time per delivered packet; the printed ratio is conf's capacity per core as a share
of the bare forwarder's.

Run: ``.venv/bin/python benchmarks/baseline_forwarder.py [--publishers 4] [--subscribers 16] [--rate 1000]``
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import socket
import subprocess
import sys
import time

import numpy as np

from conf_cli.bench.packets import PacketMaker
from conf_cli.bench.plan import BenchConfig
from conf_cli.bench.proc import cpu_seconds
from conf_cli.bench.recorder import Receiver, Recorder
from conf_cli.bench.runner import run_bench

JOIN = b"join"


def run_loop(main: object) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)  # type: ignore[arg-type]
    else:
        uvloop.run(main)  # type: ignore[arg-type]


# -- the forwarder (a child process) -----------------------------------------------------------------


class Forwarder(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.peers: list[tuple[str, int]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if data == JOIN:
            if addr not in self.peers:
                self.peers.append(addr)
            return
        sendto = self.transport.sendto  # type: ignore[union-attr]
        for peer in self.peers:
            if peer != addr:
                sendto(data, peer)


async def serve(port_out: int) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        sock.setsockopt(socket.SOL_SOCKET, option, 2 * 1024 * 1024)
    sock.bind(("127.0.0.1", 0))
    await loop.create_datagram_endpoint(Forwarder, sock=sock)
    print(sock.getsockname()[1], flush=True)
    await asyncio.sleep(3600)


# -- its load generator ------------------------------------------------------------------------------


class _Sink(asyncio.DatagramProtocol):
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.receiver(data)


async def load_bare(port: int, publishers: int, subscribers: int, rate: float, payload: int, seconds: float):
    loop = asyncio.get_running_loop()
    recorder = Recorder()
    receivers: list[Receiver] = []
    sockets: list[socket.socket] = []
    for _ in range(publishers + subscribers):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2 * 1024 * 1024)
        sock.connect(("127.0.0.1", port))
        sock.setblocking(False)
        receiver = Receiver(recorder)
        receivers.append(receiver)
        await loop.create_datagram_endpoint(functools.partial(_Sink, receiver), sock=sock)
        sock.send(JOIN)
        sockets.append(sock)
    await asyncio.sleep(0.3)
    makers = [PacketMaker(0x20000 + i, payload) for i in range(publishers)]
    sent = 0
    t0 = time.monotonic_ns()
    end = t0 + int(seconds * 1e9)
    while (now := time.monotonic_ns()) < end:
        due = int((now - t0) * rate / 1e9) + 1
        for sock, maker in zip(sockets, makers, strict=False):
            while maker.sent < due:
                try:
                    sock.send(maker.make(time.monotonic_ns()))
                    sent += 1
                except BlockingIOError:
                    pass
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.5)
    for sock in sockets:
        sock.close()
    received, _, _, latencies = recorder.take()
    return sent, received, np.frombuffer(latencies.tobytes(), dtype=np.int64)


def measure_bare(args: argparse.Namespace) -> dict[str, float]:
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        result: dict[str, float] = {}

        async def main() -> None:
            before = cpu_seconds(child.pid) or 0.0
            sent, received, latencies = await load_bare(
                port, args.publishers, args.subscribers, args.rate, args.payload, args.duration
            )
            used = (cpu_seconds(child.pid) or 0.0) - before  # set-up and drain are nearly idle
            expected = sent * (args.publishers + args.subscribers - 1)
            p50, p99 = np.percentile(latencies, [50, 99]) / 1e6 if len(latencies) else (0.0, 0.0)
            result.update(
                out_pps=received / args.duration,
                loss=max(0, expected - received) / expected if expected else 0.0,
                p50=float(p50),
                p99=float(p99),
                cpu=100 * used / args.duration,
                us_per_packet=used / received * 1e6 if received else 0.0,
            )

        run_loop(main())
        return result
    finally:
        child.terminate()
        child.wait(10)


def measure_conf(args: argparse.Namespace) -> dict[str, float]:
    config = BenchConfig(
        transport="rtp",
        publishers=args.publishers,
        subscribers=args.subscribers,
        rate=args.rate,
        payload=args.payload,
        duration=args.duration,
        procs=args.procs,
    )
    return asyncio.run(run_bench(config)).headline()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument("--subscribers", type=int, default=16)
    parser.add_argument("--rate", type=float, default=1000.0, help="packets/s per publisher")
    parser.add_argument("--payload", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--procs", type=int, default=2, help="load-generator processes for conf")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        run_loop(serve(0))
        return
    print(
        f"{args.publishers} publishers x {args.subscribers} subscribers, one meeting, "
        f"{args.rate:g} pkt/s x {args.payload} B per publisher, {args.duration:g} s each"
    )
    rows = [("bare UDP forwarder", measure_bare(args)), ("conf rtp transport", measure_conf(args))]
    print(f"{'':22}{'out pkt/s':>11}{'loss %':>9}{'p50 ms':>9}{'p99 ms':>9}{'CPU %':>8}{'us/pkt':>8}")
    for name, r in rows:
        print(
            f"{name:22}{r['out_pps']:>11,.0f}{100 * r['loss']:>9.3f}{r['p50']:>9.3f}{r['p99']:>9.3f}"
            f"{r['cpu']:>8.1f}{r['us_per_packet']:>8.2f}"
        )
    bare, conf = rows[0][1]["us_per_packet"], rows[1][1]["us_per_packet"]
    if bare and conf:
        print(
            f"conf/bare capacity per core (CPU per packet, inverted): {bare / conf:.2f}  "
            f"(bare ~{1e6 / bare:,.0f} pkt/s per core, conf ~{1e6 / conf:,.0f})"
        )


if __name__ == "__main__":
    main()
