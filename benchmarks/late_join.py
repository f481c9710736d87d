"""How soon a late joiner sees a picture: from sending ``join`` to the first decoded video frame.

A ``conf share pattern`` process (1280x720@30 by default, a keyframe every 2 s) publishes into a meeting
on a real ``conf server``; then, several times, a fresh in-process client joins, and the time from its
join request to the first picture its decoder hands to a sink is taken. Without the server's keyframe
request on join, a joiner would wait for the next periodic keyframe (up to 2 s).

    .venv/bin/python benchmarks/late_join.py --transport tcp --joins 10

With ``--e2ee`` the meeting is end-to-end encrypted: the joiner must also receive the sharer's new sender
key (made because it joined) before the keyframe it asked for can be decrypted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import threading
import time

from conf_cli.client.link import Client
from conf_cli.client.media.manager import MediaManager
from conf_cli.media.source import Frame, Sink
from conf_cli.plugin.registry import registry
from conf_cli.protocol.control import Message
from conf_cli.testing.processes import ClientPool, start_server, test_home
from conf_cli.urls import parse_server_url


class FirstPicture(Sink):
    """Notes when the first decoded picture arrives (written from the decoder's thread)."""

    def __init__(self) -> None:
        self.seen = threading.Event()
        self.at = 0.0

    def write(self, frame: Frame) -> None:
        if not self.seen.is_set():
            self.at = time.monotonic()
            self.seen.set()

    def close(self) -> None:
        pass


async def one_join(url: str, meeting: str, passcode: str, name: str) -> float:
    sink = FirstPicture()

    def sinks(info: Message) -> list[Sink]:
        return [sink] if info.get("kind") != "audio" else []

    client = Client(registry(), parse_server_url(url))
    await client.connect()
    started = time.monotonic()
    joined = await client.join(meeting, name, passcode)
    media = MediaManager(client, lambda event: None, None, sinks)
    media.handle_event(joined)
    try:
        deadline = time.monotonic() + 10
        while not sink.seen.is_set() and time.monotonic() < deadline:
            try:
                async with asyncio.timeout(0.01):
                    media.handle_event(await client.events.get())
            except TimeoutError:
                pass
        if not sink.seen.is_set():
            raise RuntimeError("no picture within 10 s")
        return sink.at - started
    finally:
        await media.close()
        await client.close()


def main() -> None:
    os.environ["CONF_HOME"] = test_home()  # the servers it starts have throwaway keys: pin them there
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transport", default="tcp")
    parser.add_argument("--joins", type=int, default=10)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--e2ee", action="store_true", help="an end-to-end encrypted meeting")
    args = parser.parse_args()
    width, height = args.size.split("x")
    server, url = start_server(transport=args.transport)
    pool = ClientPool(url)
    try:
        _, meeting = pool.create("host", *(["--e2ee"] if args.e2ee else []))
        sharer = pool.share(meeting, "pat", "pattern", "--width", width, "--height", height, "--fps", "30")
        sharer.expect("publish_started")
        time.sleep(1.0)
        times = [
            asyncio.run(one_join(url, meeting, pool.passcode, f"late{i}")) * 1000 for i in range(args.joins)
        ]
    finally:
        pool.stop_all()
        server.stop()
    times.sort()
    what = "E2EE meeting" if args.e2ee else "meeting"
    print(f"late join to first picture over {args.transport}, {what}, {args.size}@30, {len(times)} joins:")
    print(
        f"  median {statistics.median(times):.0f} ms, min {times[0]:.0f} ms, max {times[-1]:.0f} ms"
        f" (periodic keyframes alone: up to 2000 ms)"
    )


if __name__ == "__main__":
    main()
