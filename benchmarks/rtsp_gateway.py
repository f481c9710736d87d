"""The RTSP gateway: how soon a player's picture starts, and what many players of one track cost the server.

A ``conf share pattern`` process (1280x720@30 by default, a keyframe every 2 s) publishes into a meeting
on a real ``conf server --rtsp-port``. Then:

- **first keyframe**: several times, a fresh RTSP client (conf play's) DESCRIBEs, SETUPs and PLAYs the
  track, and the time from sending PLAY to the first packet of a keyframe is taken. The gateway asks the
  publisher for one (RTCP PLI) at PLAY; without that a player would wait for the next periodic keyframe.
- **fan-out**: N players receive the track interleaved on TCP for a while; the script prints the packets
  they received per second, the server's CPU use (read from /proc) and its CPU time per delivered packet,
  against the same meeting with no player.

    .venv/bin/python benchmarks/rtsp_gateway.py --players 1 10 40 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from conf_rtsp.player import Player, RtspClient

from conf_cli.bench.proc import cpu_seconds
from conf_cli.protocol.rtp import RtpPacket, is_rtcp
from conf_cli.testing.processes import ClientPool, start_server

PASSCODE = "pass-123"


def _starts_keyframe(data: bytes) -> bool:
    if is_rtcp(data):
        return False
    payload = RtpPacket.parse(data).payload
    if not payload:
        return False
    kind = payload[0] & 0x1F
    if kind == 28 and len(payload) > 1:  # FU-A: the fragmented NAL's type
        return bool(payload[1] & 0x80) and payload[1] & 0x1F == 5
    return kind in (5, 7, 24)  # IDR, SPS, or a STAP-A (the parameter sets before an IDR)


async def first_keyframe(url: str) -> float:
    client = RtspClient(url)
    seen = asyncio.Event()
    sent = 0.0
    arrived = 0.0

    def packet(channel: int, data: bytes) -> None:
        nonlocal arrived
        if channel == 0 and not seen.is_set() and _starts_keyframe(data):
            arrived = time.monotonic()
            seen.set()

    client.on_packet = packet
    await client.connect()
    try:
        described = await client.request("DESCRIBE")
        base = described.headers.get("Content-Base") or client.url + "/"
        setup = await client.request(
            "SETUP", base + "trackID=0", {"Transport": "RTP/AVP/TCP;interleaved=0-1"}
        )
        client.session = (setup.headers.get("Session") or "").split(";")[0]
        sent = time.monotonic()
        await client.request("PLAY")
        async with asyncio.timeout(10):
            await seen.wait()
        await client.request("TEARDOWN")
    finally:
        await client.close()
    return arrived - sent


async def fan_out(url: str, players: int, seconds: float, server_pid: int) -> dict[str, float]:
    started = [Player(url) for _ in range(players)]
    try:
        for player in started:
            await player.open()
            await player.play()
        await asyncio.sleep(1.0)  # settle: every player past its first keyframe
        before = [p.streams[0].packets for p in started]
        cpu_before = cpu_seconds(server_pid) or 0.0
        await asyncio.sleep(seconds)
        cpu = (cpu_seconds(server_pid) or 0.0) - cpu_before
        packets = sum(p.streams[0].packets - b for p, b in zip(started, before, strict=True))
        lost = sum(p.streams[0].as_dict(time.monotonic())["packets_lost"] for p in started)
    finally:
        for player in started:
            await player.close()
    return {
        "players": players,
        "pkt_s": packets / seconds,
        "cpu": cpu / seconds,
        "lost": lost,
        "packets": packets,
    }


async def idle_cpu(seconds: float, server_pid: int) -> float:
    before = cpu_seconds(server_pid) or 0.0
    await asyncio.sleep(seconds)
    return ((cpu_seconds(server_pid) or 0.0) - before) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--players", type=int, nargs="+", default=[1, 10, 40])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--joins", type=int, default=8, help="first-keyframe measurements")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--fps", default="30")
    args = parser.parse_args()
    width, height = args.size.split("x")

    server, url = start_server("--rtsp-port", "0")
    pool = ClientPool(url, PASSCODE)
    try:
        rtsp = next(u for u in server.seen[-1]["urls"] if u.startswith("rtsp://")).rstrip("/")
        _, meeting = pool.create("host")
        sharer = pool.share(
            meeting, "cam", "pattern", "--width", width, "--height", height, "--fps", args.fps
        )
        sharer.expect("publish_started")
        track = rtsp.replace("rtsp://", f"rtsp://bench:{PASSCODE}@") + f"/{meeting}/cam/video"

        async def run() -> None:
            waits = []
            for _ in range(args.joins):
                waits.append(await first_keyframe(track))
                await asyncio.sleep(0.3)
            print(
                f"first keyframe after PLAY ({args.joins} players, {args.size}@{args.fps}, "
                "keyframe every 2 s):"
            )
            print(
                f"  median {1000 * statistics.median(waits):.0f} ms, "
                f"max {1000 * max(waits):.0f} ms, min {1000 * min(waits):.0f} ms"
            )
            idle = await idle_cpu(args.seconds, server.pid)
            print(
                f"\nfan-out over interleaved TCP, {args.seconds:g} s each; "
                f"server CPU with no player {100 * idle:.0f} %"
            )
            print(f"{'players':>8} {'pkt/s out':>10} {'lost':>6} {'server CPU':>11} {'us/pkt':>8}")
            for count in args.players:
                row = await fan_out(track, count, args.seconds, server.pid)
                extra = max(0.0, row["cpu"] - idle)
                per_packet = 1e6 * extra * args.seconds / row["packets"] if row["packets"] else 0.0
                print(
                    f"{count:>8} {row['pkt_s']:>10.0f} {row['lost']:>6.0f} {100 * row['cpu']:>10.0f}% "
                    f"{per_packet:>8.1f}"
                )

        asyncio.run(run())
    finally:
        pool.stop_all()
        server.stop()


if __name__ == "__main__":
    main()
