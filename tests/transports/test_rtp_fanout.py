"""The rtp:// server's fan-out: one sendmmsg for many receivers (compiled), and the sendto loop it replaces.

Unit tests of the compiled sender on real loopback sockets, then a meeting on an in-process server, with
and without encryption, through the compiled path and through the pure-Python fallback: every receiver
gets every packet, byte for byte.
"""

from __future__ import annotations

import asyncio
import socket
from array import array
from collections.abc import Iterator

import pytest
from conf_transport_udp_rtp import server as rtp_server
from conf_transport_udp_rtp.server import SLOT, pack_sockaddr, send_many

from conf_cli.client.link import Client
from conf_cli.identity import Identity
from conf_cli.plugin.registry import create_registry
from conf_cli.plugin.security import Security, client_security
from conf_cli.plugin.transport import TransportOptions
from conf_cli.protocol.rtp import RtpPacket
from conf_cli.server.edge import Endpoint, Server
from conf_cli.urls import parse_server_url


@pytest.fixture
def receivers() -> Iterator[list[socket.socket]]:
    socks = []
    for _ in range(3):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(2.0)
        socks.append(sock)
    yield socks
    for sock in socks:
        sock.close()


def test_the_compiled_sender_is_built() -> None:
    """`make setup` builds it; the fallback below is what runs without it."""
    assert send_many is not None


def test_one_packet_to_many_addresses(receivers: list[socket.socket]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        out.setblocking(False)
        addresses = tuple(pack_sockaddr(socket.AF_INET, r.getsockname()) for r in receivers)
        status = array("i", [7] * 4)
        assert send_many(out.fileno(), b"the same datagram", 0, status, addresses) == 3
        assert [r.recv(100) for r in receivers] == [b"the same datagram"] * 3
        assert list(status) == [17, 17, 17, 7]  # each one's length; past the batch untouched


def test_slots_of_a_buffer_with_some_skipped(receivers: list[socket.socket]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        out.setblocking(False)
        addresses = tuple(pack_sockaddr(socket.AF_INET, r.getsockname()) for r in receivers)
        buffer = bytearray(3 * SLOT)
        for index, text in enumerate([b"first", b"second", b"third"]):
            buffer[index * SLOT : index * SLOT + len(text)] = text
        status = array("i", [5, -1, 5])  # the second was refused: not sent
        assert send_many(out.fileno(), buffer, SLOT, status, addresses) == 2
        assert receivers[0].recv(100) == b"first" and receivers[2].recv(100) == b"third"
        receivers[1].settimeout(0.2)
        with pytest.raises(TimeoutError):
            receivers[1].recv(100)
        with pytest.raises(ValueError):  # a length past its slot is refused before anything is sent
            send_many(out.fileno(), buffer, SLOT, array("i", [SLOT + 1, 1, 1]), addresses)


def test_a_datagram_the_kernel_refuses_is_dropped_and_the_others_go(receivers: list[socket.socket]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        out.setblocking(False)
        good = [pack_sockaddr(socket.AF_INET, r.getsockname()) for r in receivers]
        wrong = pack_sockaddr(socket.AF_INET6, ("::1", 9, 0, 0))  # an IPv6 address on an IPv4 socket
        status = array("i", [0] * 4)
        assert send_many(out.fileno(), b"x" * 10, 0, status, (good[0], wrong, good[1], good[2])) == 3
        assert status[1] == -2 and [status[0], status[2], status[3]] == [10, 10, 10]
        assert [r.recv(100) for r in receivers] == [b"x" * 10] * 3


def test_ipv6_addresses_are_packed_for_the_kernel() -> None:
    with (
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as inbox,
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as out,
    ):
        inbox.bind(("::1", 0))
        inbox.settimeout(2.0)
        status = array("i", [0])
        assert (
            send_many(out.fileno(), b"v6", 0, status, (pack_sockaddr(socket.AF_INET6, inbox.getsockname()),))
            == 1
        )
        assert inbox.recv(10) == b"v6"


@pytest.mark.parametrize("path", ["compiled", "pure"])
@pytest.mark.parametrize("encryption", ["on", "none"])
async def test_every_receiver_gets_every_packet(
    path: str, encryption: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A meeting of one publisher and four receivers on an in-process rtp:// server."""
    if path == "pure":
        from conf_crypto import srtp

        monkeypatch.setattr(rtp_server, "send_many", None)
        monkeypatch.setattr(srtp, "NativeSender", None)
        monkeypatch.setattr(srtp, "protect_many", None)
    registry = create_registry()
    identity = Identity.generate()
    server = Server(registry)
    security = Security(registry.ciphers, identity) if encryption == "on" else None
    [url] = await server.start([Endpoint("rtp", "127.0.0.1", 0)], TransportOptions(security=security))
    fingerprint = identity.fingerprint if encryption == "on" else None
    client_side = client_security(registry.ciphers, url, encryption, fingerprint, pin=False)
    clients = [
        Client(registry, parse_server_url(url), TransportOptions(security=client_side)) for _ in range(5)
    ]
    got: dict[int, list[bytes]] = {i: [] for i in range(1, 5)}
    try:
        publisher, *audience = clients
        await publisher.connect()
        created, _ = await publisher.create("pub", "pass-123")
        for index, client in enumerate(audience, start=1):
            await client.connect()
            await client.join(created["meeting"], f"r{index}", "pass-123")
            client.media_handler = got[index].append
        await publisher.request(
            {"type": "publish", "kind": "video", "ssrc": 0x77, "codec": "H264"}, {"share_started"}
        )
        await asyncio.sleep(0.3)
        sent = [
            bytes(
                RtpPacket(
                    payload_type=96, sequence_number=seq, timestamp=seq, ssrc=0x77, payload=bytes([seq]) * 900
                )
            )
            for seq in range(1, 41)
        ]
        for packet in sent:
            assert publisher.link is not None and publisher.link.send_media(packet)
            await asyncio.sleep(0.005)
        for _ in range(60):
            await asyncio.sleep(0.05)
            if all(len(packets) >= len(sent) for packets in got.values()):
                break
        assert all(packets == sent for packets in got.values())
        listener = server.listeners[0]
        assert listener.stats()["send_dropped"] == 0 and listener.stats()["protect_refused"] == 0
        assert bool(listener._plans) == (path == "compiled")  # type: ignore[attr-defined]  # the path taken
    finally:
        for client in clients:
            await client.close()
        await server.close()
