"""What breakout rooms cost the server's forwarding path, in one run: the hub and its forwarder in this
process (no sockets, no encryption: the routing decision and the fan-out calls only).

A meeting of N participants, P of them publishing video; each publisher sends the same packets with the
rooms closed, then with R breakout rooms open (everyone spread over them), then closed again. Printed:
the server's CPU time per packet in, per delivery, and the ratio of open rooms to closed. Every packet
reaches fewer people in a room, so the deliveries are counted, and a meeting as large as one room (no
rooms) is measured too: the time per delivery with rooms open against it is what the rooms cost.
Figures are printed, never asserted.

Run: ``.venv/bin/python benchmarks/breakout_routing.py [--participants 40] [--rooms 4] [--packets 20000]``
"""

from __future__ import annotations

import argparse
import time

from conf_cli.plugin.transport import Link
from conf_cli.protocol.control import encode
from conf_cli.protocol.rtp import RtpPacket
from conf_cli.server.forwarding import Forwarder
from conf_cli.server.hub import Deferred, Hub

PASSCODE = "pass-123"


class CountingLink(Link):
    """A server-side link that counts the media sent to it."""

    def __init__(self, cid: int) -> None:
        super().__init__(peer=f"peer{cid}")
        self.id = cid
        self.count = 0

    def send_control(self, data: bytes) -> None:
        pass

    def send_media(self, packet: bytes) -> bool:
        self.count += 1
        return True

    def close(self) -> None:
        pass

    @property
    def is_closing(self) -> bool:
        return False


def settle(hub: Hub, cid: int, message: dict[str, object]) -> None:
    actions = hub.received(cid, encode(message), 0.0)
    while actions:
        action = actions.pop(0)
        if isinstance(action, Deferred):
            actions += action.resume(action.work(), 0.0)


def meeting(participants: int, publishers: int) -> tuple[Hub, dict[int, CountingLink]]:
    hub = Hub(new_passcode=lambda: PASSCODE)
    for cid in range(1, participants + 1):
        hub.connected(cid, 0.0, f"10.0.{cid // 250}.{cid % 250}")
        settle(hub, cid, {"type": "hello", "protocol": 1})
        if cid == 1:
            settle(hub, cid, {"type": "create", "name": "p1", "passcode": PASSCODE})
        else:
            meeting_id = next(iter(hub.meetings))
            settle(hub, cid, {"type": "join", "meeting": meeting_id, "name": f"p{cid}", "passcode": PASSCODE})
    for cid in range(2, 2 + publishers):
        settle(hub, cid, {"type": "publish", "kind": "video", "ssrc": 1000 + cid, "codec": "H264"})
    return hub, {cid: CountingLink(cid) for cid in range(1, participants + 1)}


def run(
    forwarder: Forwarder, links: dict[int, CountingLink], publishers: int, packets: int, first: int
) -> tuple[float, int]:
    """Each publisher's ``packets`` packets (built beforehand) through the forwarder: CPU s, deliveries."""
    batch = [
        (links[cid], bytes(RtpPacket(96, seq & 0xFFFF, seq * 3000, 1000 + cid, b"\x65" + bytes(1000))))
        for seq in range(first, first + packets)
        for cid in range(2, 2 + publishers)
    ]
    before = sum(link.count for link in links.values())
    start = time.process_time()
    for link, packet in batch:
        forwarder.media(link, packet, 1.0)
    cpu = time.process_time() - start
    return cpu, sum(link.count for link in links.values()) - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=40)
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument("--rooms", type=int, default=4)
    parser.add_argument("--packets", type=int, default=5000, help="packets per publisher per phase")
    args = parser.parse_args()
    hub, links = meeting(args.participants, args.publishers)
    forwarder = Forwarder(hub, links)  # type: ignore[arg-type]
    n = args.packets
    phases = []
    closed_cpu, closed_out = run(forwarder, links, args.publishers, n, 1)
    phases.append(("closed", closed_cpu, closed_out))
    settle(hub, 1, {"type": "breakout_create", "rooms": args.rooms})
    settle(hub, 1, {"type": "breakout_shuffle"})
    settle(hub, 1, {"type": "breakout_open"})
    open_cpu, open_out = run(forwarder, links, args.publishers, n, n + 1)
    phases.append((f"{args.rooms} rooms open", open_cpu, open_out))
    settle(hub, 1, {"type": "breakout_close"})
    again_cpu, again_out = run(forwarder, links, args.publishers, n, 2 * n + 1)
    phases.append(("closed again", again_cpu, again_out))
    small_hub, small_links = meeting(args.participants // args.rooms, args.publishers)
    small_cpu, small_out = run(Forwarder(small_hub, small_links), small_links, args.publishers, n, 1)  # type: ignore[arg-type]
    phases.append((f"{args.participants // args.rooms} alone", small_cpu, small_out))
    packets_in = n * args.publishers
    print(
        f"{args.participants} participants, {args.publishers} publishing, {packets_in} packets in per phase"
    )
    print(f"{'rooms':16}{'us/pkt in':>11}{'deliveries':>12}{'us/delivery':>13}")
    for label, cpu, out in phases:
        print(f"{label:16}{cpu / packets_in * 1e6:11.2f}{out:12}{cpu / max(1, out) * 1e6:13.3f}")
    closed = (closed_cpu + again_cpu) / 2
    print(f"time per packet in, rooms open / closed: {open_cpu / closed:.2f}")
    ratio = (open_cpu / open_out) / (small_cpu / small_out)
    print(f"time per delivery, rooms open / a meeting the size of a room: {ratio:.2f}")


if __name__ == "__main__":
    main()
