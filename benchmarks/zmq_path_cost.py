"""The CPU cost of zmq:// media on each side: the server's fan-out and a client's receive, per message.

In one process, a zmq:// listener (``ZmqTransport().listen``) and ``--clients`` client links
(``ZmqTransport().connect``) on loopback, with CURVE (``--encryption on``, the default) or without. Both
ends speak ZMTP on the event loop, so all of their work, CURVE's boxes included, is on this thread.
``--rounds`` times: ``listener.forward_media`` sends ``--batch`` packets of ``--payload`` bytes to every
client (the server's CPU per recipient, ``time.thread_time`` around the calls: the frames sealed and
gathered), then the event loop runs until every client link has handed every packet to its events (per
message received, the same clock: the server's writes at the end of the turn, the kernel's loopback
delivery, and the clients' reads, frames opened).

To compare two versions of the transport in one run, run this file with each version's interpreter in
turn (for instance a checkout of main's ``.venv/bin/python`` and this tree's), alternating. Figures are
printed, never asserted.

Run: ``.venv/bin/python benchmarks/zmq_path_cost.py [--clients 19] [--rounds 20] [--encryption none]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from conf_crypto import CurveCipher
from conf_transport_zmq import ZmqTransport

from conf_cli import Link, Security, TransportOptions
from conf_cli.identity import Identity
from conf_cli.plugin.security import Trust


class _ServerSide:
    def __init__(self) -> None:
        self.links: list[Link] = []

    def link_opened(self, link: Link) -> None:
        self.links.append(link)

    def control_received(self, link: Link, data: bytes) -> None:
        pass

    def media_received(self, link: Link, packet: bytes) -> None:
        pass

    def keepalive_received(self, link: Link) -> None:
        pass

    def link_closed(self, link: Link, reason: str) -> None:
        pass


class _ClientSide:
    def __init__(self) -> None:
        self.media = 0

    def control_received(self, data: bytes) -> None:
        pass

    def media_received(self, packet: bytes) -> None:
        self.media += 1

    def closed(self, reason: str) -> None:
        pass


async def measure(
    clients: int, rounds: int, batch: int, payload: int, encryption: str
) -> tuple[list[float], list[float]]:
    """Per round: (server us per recipient, client us per message received)."""
    transport = ZmqTransport()
    server = _ServerSide()
    identity = Identity.generate()
    ciphers = {"curve": CurveCipher()}
    secure = encryption == "on"
    options = TransportOptions(
        connect_timeout=5.0, security=Security(ciphers, identity=identity) if secure else None
    )
    listener = await transport.listen("127.0.0.1", 0, server, options)
    port = int(listener.url.rsplit(":", 1)[1])
    sides = [_ClientSide() for _ in range(clients)]
    trust = Trust(listener.url, identity.fingerprint, pin=False)
    client_options = TransportOptions(
        connect_timeout=5.0, security=Security(ciphers, trust=trust) if secure else None
    )
    links = [await transport.connect("127.0.0.1", port, side, client_options) for side in sides]
    async with asyncio.timeout(10):
        while len(server.links) < clients:
            await asyncio.sleep(0.01)
    packet = bytes([0x80, 96]) + bytes(10 + payload)
    sending: list[float] = []
    receiving: list[float] = []
    try:
        for _ in range(rounds):
            expected = [side.media + batch for side in sides]
            spent = 0.0
            for _ in range(batch):
                start = time.thread_time()
                listener.forward_media(packet, server.links)
                spent += time.thread_time() - start
            sending.append(spent / (batch * clients) * 1e6)
            start = time.thread_time()
            async with asyncio.timeout(10):
                while any(side.media < want for side, want in zip(sides, expected, strict=True)):
                    await asyncio.sleep(0)
            receiving.append((time.thread_time() - start) / (batch * clients) * 1e6)
            await asyncio.sleep(0.02)
    finally:
        for link in links:
            link.close()
        await listener.close()
    return sending, receiving


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=19, help="recipients of each packet")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--batch", type=int, default=50, help="packets fanned out per round")
    parser.add_argument("--payload", type=int, default=1000)
    parser.add_argument("--encryption", choices=("on", "none"), default="on")
    args = parser.parse_args()
    sending, receiving = asyncio.run(
        measure(args.clients, args.rounds, args.batch, args.payload, args.encryption)
    )
    mode = "CURVE" if args.encryption == "on" else "plaintext"
    print(
        f"zmq:// {mode}, {args.clients} recipients, {args.payload} B payloads, {args.rounds} rounds of "
        f"{args.batch} packets (median of rounds, event-loop thread CPU):"
    )
    print(f"  server forward_media: {statistics.median(sending):.3f} us per recipient")
    print(f"  write and receive:    {statistics.median(receiving):.3f} us per message")


if __name__ == "__main__":
    main()
