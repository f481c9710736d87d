"""An E2EE meeting's server behind a tap, and the security code a client shows."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from conf_cli.plugin.registry import registry
from conf_cli.plugin.transport import Link
from conf_cli.protocol.rtp import RtpPacket, is_rtcp
from conf_cli.server.edge import Endpoint, Server
from conf_cli.testing.processes import ConfProcess


@contextlib.contextmanager
def tapped_server(transport: str) -> Iterator[Running]:
    loop = asyncio.new_event_loop()
    server = TappedServer()
    ready = threading.Event()
    urls: list[str] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        urls.extend(loop.run_until_complete(server.start([Endpoint(transport, "127.0.0.1", 0)])))
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="tapped-server", daemon=True)
    thread.start()
    assert ready.wait(10.0), "the tapped server did not start"
    try:
        yield Running(server, urls[0], loop, thread)
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(10.0)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10.0)


def code_for(client: ConfProcess, names: list[str]) -> str:
    return str(client.latest("security_code", lambda e: e["participants"] == names, timeout=20)["code"])


class TappedServer(Server):
    """A real server that keeps a copy of every RTP packet it is given to forward."""

    def __init__(self) -> None:
        super().__init__(registry())
        self.tapped: list[bytes] = []

    def media_received(self, link: Link, packet: bytes) -> None:
        if not is_rtcp(packet):
            self.tapped.append(bytes(packet))
        super().media_received(link, packet)


@dataclass
class Running:
    server: TappedServer
    url: str
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    packets: dict[int, list[RtpPacket]] = field(default_factory=dict)

    def by_ssrc(self) -> dict[int, list[RtpPacket]]:
        packets: dict[int, list[RtpPacket]] = {}
        for data in list(self.server.tapped):
            packet = RtpPacket.parse(data)
            packets.setdefault(packet.ssrc, []).append(packet)
        return packets
