"""A bare UDP forwarder (no meetings, no latching, no rules) against conf's rtp transport, like with like.

The bare forwarder is the ceiling Python reaches on this host without conf's work: one asyncio UDP
socket (uvloop when it is installed), every datagram sent to every other registered address with one
``sendto`` each. It runs in the same encryption mode as conf in each comparison:

- ``none``: plaintext bare forwarder against ``conf bench --encryption none`` (plain RTP);
- ``srtp``: a bare forwarder that does SRTP's AES-GCM work (RFC 7714 layout: the 12-byte header in clear
  as associated data, the payload encrypted, a 16-byte tag; a key per peer): it decrypts each packet with
  its sender's key and encrypts it again for every receiver with the receiver's key, through the
  ``cryptography`` package's AES-GCM, against ``conf bench --encryption on`` (SRTP AEAD_AES_128_GCM,
  per-link keys, plus conf's replay and index-reuse checks).

Both are loaded by the same synthetic packets (:mod:`conf_cli.bench.packets`) and measured by the same
receiver code as ``conf bench``. The host's two cores are shared with the load generator, so the figure
that holds is server CPU time per delivered packet; the printed ratio is conf's capacity per core as a
share of the bare forwarder's, in the same mode and the same run.

Run: ``.venv/bin/python benchmarks/baseline_forwarder.py [--encryption both] [--rate 1500]``
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import socket
import subprocess
import sys
import time
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from conf_cli.bench.packets import PacketMaker
from conf_cli.bench.plan import BenchConfig
from conf_cli.bench.proc import cpu_seconds
from conf_cli.bench.recorder import Receiver, Recorder
from conf_cli.bench.runner import run_bench

JOIN = b"join"
TAG = 16
MODES = {"none": "none", "srtp": "on"}
"""Bare forwarder mode -> the matching ``conf bench --encryption``."""
NAMES = {
    "none": "none (plain RTP on both)",
    "srtp": "AES-128-GCM per receiver (bare, RFC 7714 layout) / SRTP AEAD_AES_128_GCM (conf)",
}


def run_loop(main: Any) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def peer_key(index: int) -> tuple[AESGCM, int]:
    """Peer ``index``'s AES-128-GCM key and 96-bit salt (both ends derive them from the index)."""
    digest = hashlib.sha256(b"bare forwarder peer %d" % index).digest()
    return AESGCM(digest[:16]), int.from_bytes(digest[16:28], "big")


def nonce(packet: bytes, salt: int) -> bytes:
    """RFC 7714's IV: 00 00, SSRC, rollover counter (0 here), sequence number, XORed with the salt."""
    return ((int.from_bytes(packet[8:12], "big") << 48 | int.from_bytes(packet[2:4], "big")) ^ salt).to_bytes(
        12, "big"
    )


# -- the forwarder (a child process) -----------------------------------------------------------------


class Forwarder(asyncio.DatagramProtocol):
    def __init__(self, encrypted: bool) -> None:
        self.encrypted = encrypted
        self.peers: list[tuple[str, int]] = []
        self.keys: dict[tuple[str, int], tuple[AESGCM, int]] = {}
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if data.startswith(JOIN):
            if addr not in self.peers:
                self.peers.append(addr)
                self.keys[addr] = peer_key(int(data[len(JOIN) :]))
            return
        sendto = self.transport.sendto  # type: ignore[union-attr]
        if not self.encrypted:
            for peer in self.peers:
                if peer != addr:
                    sendto(data, peer)
            return
        keys = self.keys.get(addr)
        if keys is None:
            return
        header = data[:12]
        aead, salt = keys
        try:
            plain = aead.decrypt(nonce(data, salt), data[12:], header)
        except Exception:  # a forged or damaged packet
            return
        for peer in self.peers:
            if peer != addr:
                aead, salt = self.keys[peer]
                sendto(header + aead.encrypt(nonce(data, salt), plain, header), peer)


async def serve(encrypted: bool) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        sock.setsockopt(socket.SOL_SOCKET, option, 2 * 1024 * 1024)
    sock.bind(("127.0.0.1", 0))
    await loop.create_datagram_endpoint(lambda: Forwarder(encrypted), sock=sock)
    print(sock.getsockname()[1], flush=True)
    await asyncio.sleep(3600)


# -- its load generator ------------------------------------------------------------------------------


class _Sink(asyncio.DatagramProtocol):
    def __init__(self, receiver: Receiver, keys: tuple[AESGCM, int] | None) -> None:
        self.receiver = receiver
        self.keys = keys

    def datagram_received(self, data: bytes, addr: object) -> None:
        if self.keys is not None:
            aead, salt = self.keys
            data = data[:12] + aead.decrypt(nonce(data, salt), data[12:], data[:12])
        self.receiver(data)


async def load_bare(args: argparse.Namespace, port: int, encrypted: bool) -> tuple[int, int, np.ndarray]:
    loop = asyncio.get_running_loop()
    recorder = Recorder()
    sockets: list[socket.socket] = []
    keys = [peer_key(i) for i in range(args.publishers + args.subscribers)]
    for index in range(args.publishers + args.subscribers):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2 * 1024 * 1024)
        sock.connect(("127.0.0.1", port))
        sock.setblocking(False)
        sink = functools.partial(_Sink, Receiver(recorder), keys[index] if encrypted else None)
        await loop.create_datagram_endpoint(sink, sock=sock)
        sock.send(JOIN + str(index).encode())
        sockets.append(sock)
    await asyncio.sleep(0.3)
    makers = [PacketMaker(0x20000 + i, args.payload) for i in range(args.publishers)]
    sent = 0
    t0 = time.monotonic_ns()
    end = t0 + int(args.duration * 1e9)
    while (now := time.monotonic_ns()) < end:
        due = int((now - t0) * args.rate / 1e9) + 1
        for index, (sock, maker) in enumerate(zip(sockets, makers, strict=False)):
            while maker.sent < due:
                packet = maker.make(time.monotonic_ns())
                if encrypted:
                    aead, salt = keys[index]
                    packet = packet[:12] + aead.encrypt(nonce(packet, salt), packet[12:], packet[:12])
                try:
                    sock.send(packet)
                    sent += 1
                except BlockingIOError:
                    pass
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.5)
    for sock in sockets:
        sock.close()
    received, _, _, latencies = recorder.take()
    return sent, received, np.frombuffer(latencies.tobytes(), dtype=np.int64)


def measure_bare(args: argparse.Namespace, mode: str) -> dict[str, float]:
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", mode],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        result: dict[str, float] = {}

        async def main() -> None:
            before = cpu_seconds(child.pid) or 0.0
            sent, received, latencies = await load_bare(args, port, mode == "srtp")
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


def measure_conf(args: argparse.Namespace, mode: str) -> dict[str, float]:
    config = BenchConfig(
        transport="rtp",
        publishers=args.publishers,
        subscribers=args.subscribers,
        rate=args.rate,
        payload=args.payload,
        duration=args.duration,
        procs=args.procs,
        encryption=MODES[mode],
    )
    return asyncio.run(run_bench(config)).headline()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encryption", choices=["none", "srtp", "both"], default="both")
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument("--subscribers", type=int, default=16)
    parser.add_argument("--rate", type=float, default=1500.0, help="packets/s per publisher")
    parser.add_argument("--payload", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--procs", type=int, default=2, help="load-generator processes for conf")
    parser.add_argument("--serve", choices=["none", "srtp"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        run_loop(serve(args.serve == "srtp"))
        return
    print(
        f"{args.publishers} publishers x {args.subscribers} subscribers, one meeting, "
        f"{args.rate:g} pkt/s x {args.payload} B per publisher, {args.duration:g} s each"
    )
    modes = ["none", "srtp"] if args.encryption == "both" else [args.encryption]
    for mode in modes:
        print(f"\nencryption: {NAMES[mode]}")
        rows = [
            ("bare UDP forwarder", measure_bare(args, mode)),
            ("conf rtp transport", measure_conf(args, mode)),
        ]
        print(f"{'':22}{'out pkt/s':>11}{'loss %':>9}{'p50 ms':>9}{'p99 ms':>9}{'CPU %':>8}{'us/pkt':>8}")
        for name, r in rows:
            print(
                f"{name:22}{r['out_pps']:>11,.0f}{100 * r['loss']:>9.3f}{r['p50']:>9.3f}{r['p99']:>9.3f}"
                f"{r['cpu']:>8.1f}{r['us_per_packet']:>8.2f}",
                flush=True,
            )
        bare, conf = rows[0][1]["us_per_packet"], rows[1][1]["us_per_packet"]
        if bare and conf:
            print(
                f"conf/bare capacity per core ({mode}): {bare / conf:.2f}  "
                f"(bare ~{1e6 / bare:,.0f} pkt/s per core, conf ~{1e6 / conf:,.0f})"
            )


if __name__ == "__main__":
    main()
