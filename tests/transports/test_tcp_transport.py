"""The TCP transport plugin on its own, over real loopback sockets: RFC 4571 framing through the link,
TLS on and off, a connection closed in the middle of a frame, and the limits of what a link queues for a
peer that does not read."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from conf_transport_tcp import TcpLink, TcpListener, TcpTransport

from conf_cli import CONTROL_BUFFER_LIMIT, MEDIA_BUFFER_LIMIT
from conf_cli.errors import ConfError
from conf_cli.identity import Identity
from conf_cli.plugin.registry import registry
from conf_cli.plugin.security import Security, Trust
from conf_cli.plugin.stream import MEDIA_RECORD
from conf_cli.plugin.transport import Link, TransportOptions
from conf_cli.protocol.framing import MAX_FRAME_BYTES, frame
from conf_cli.protocol.rtp import RtpPacket

WAIT = 10.0  # generous: the machine is shared
HELLO = b'{"type":"hello","protocol":1}'


def rtp(seq: int, size: int = 100) -> bytes:
    return bytes(RtpPacket(96, seq, 1000, 0x1111, bytes(size)))


@dataclass
class ServerSide:
    """ServerEvents that queue what they are told, in order."""

    events: asyncio.Queue[tuple[str, Link, Any]] = field(default_factory=asyncio.Queue)

    def link_opened(self, link: Link) -> None:
        self.events.put_nowait(("opened", link, None))

    def control_received(self, link: Link, data: bytes) -> None:
        self.events.put_nowait(("control", link, data))

    def media_received(self, link: Link, packet: bytes) -> None:
        self.events.put_nowait(("media", link, packet))

    def keepalive_received(self, link: Link) -> None:
        self.events.put_nowait(("keepalive", link, None))

    def link_closed(self, link: Link, reason: str) -> None:
        self.events.put_nowait(("closed", link, reason))

    async def next(self) -> tuple[str, Link, Any]:
        async with asyncio.timeout(WAIT):
            return await self.events.get()


@dataclass
class ClientSide:
    """ClientEvents that queue what they are told, in order."""

    events: asyncio.Queue[tuple[str, Any]] = field(default_factory=asyncio.Queue)

    def control_received(self, data: bytes) -> None:
        self.events.put_nowait(("control", data))

    def media_received(self, packet: bytes) -> None:
        self.events.put_nowait(("media", packet))

    def closed(self, reason: str) -> None:
        self.events.put_nowait(("closed", reason))

    async def next(self) -> tuple[str, Any]:
        async with asyncio.timeout(WAIT):
            return await self.events.get()


@dataclass
class Setup:
    transport: TcpTransport
    listener: TcpListener
    server: ServerSide
    port: int
    server_options: TransportOptions
    identity: Identity | None

    def client_options(self, fingerprint: str | None = None) -> TransportOptions:
        """Plaintext if the server is; else TLS that expects the server's key (or ``fingerprint``)."""
        if self.identity is None:
            return TransportOptions(connect_timeout=WAIT)
        trust = Trust(f"tcp://127.0.0.1:{self.port}", fingerprint or self.identity.fingerprint, pin=False)
        return TransportOptions(connect_timeout=WAIT, security=Security(registry().ciphers, trust=trust))

    async def connect(self, fingerprint: str | None = None) -> tuple[Link, ClientSide, Link]:
        """A client link, what it is told, and the server's side of it."""
        client = ClientSide()
        link = await self.transport.connect("127.0.0.1", self.port, client, self.client_options(fingerprint))
        kind, server_link, _ = await self.server.next()
        assert kind == "opened"
        return link, client, server_link


async def listening(tls: bool) -> Setup:
    identity = Identity.generate() if tls else None
    options = TransportOptions(security=Security(registry().ciphers, identity=identity) if tls else None)
    server = ServerSide()
    transport = TcpTransport()
    listener = await transport.listen("127.0.0.1", 0, server, options)
    assert isinstance(listener, TcpListener)
    port = int(listener.url.rsplit(":", 1)[1])
    return Setup(transport, listener, server, port, options, identity)


@pytest.fixture(params=[False, True], ids=["plaintext", "tls"])
async def tcp(request: pytest.FixtureRequest) -> AsyncIterator[Setup]:
    setup = await listening(request.param)
    try:
        yield setup
    finally:
        await setup.listener.close()


@pytest.fixture
async def plain() -> AsyncIterator[Setup]:
    setup = await listening(False)
    try:
        yield setup
    finally:
        await setup.listener.close()


async def test_control_media_and_keepalives_cross_both_ways_in_order(tcp: Setup) -> None:
    link, client, server_link = await tcp.connect()
    assert link.media_ordered and server_link.media_ordered
    assert server_link.listener is tcp.listener and server_link in tcp.listener.links
    assert server_link.peer.startswith("127.0.0.1:")

    link.send_control(HELLO)
    assert link.send_media(rtp(1))
    assert isinstance(link, TcpLink)
    link.send_keepalive()
    link.send_control(b"{}")
    got = [await tcp.server.next() for _ in range(4)]
    assert [(kind, data) for kind, _, data in got] == [
        ("control", HELLO),
        ("media", rtp(1)),
        ("keepalive", None),
        ("control", b"{}"),
    ]
    assert all(source is server_link for _, source, _ in got)

    server_link.send_control(b'{"type":"welcome"}')
    assert server_link.send_media(rtp(2))
    assert [await client.next(), await client.next()] == [
        ("control", b'{"type":"welcome"}'),
        ("media", rtp(2)),
    ]

    assert (link.stats.control_out, link.stats.media_out) == (2, 1)
    assert (server_link.stats.control_in, server_link.stats.media_in) == (2, 1)
    assert (server_link.stats.control_out, server_link.stats.media_out) == (1, 1)
    assert (link.stats.control_in, link.stats.media_in) == (1, 1)
    link.close()


async def test_the_largest_frame_crosses_whole(tcp: Setup) -> None:
    link, client, server_link = await tcp.connect()
    big = rtp(1, MAX_FRAME_BYTES - 12)
    assert len(big) == MAX_FRAME_BYTES
    assert link.send_media(big)
    assert (await tcp.server.next())[2] == big
    control = b"{" + b" " * (MAX_FRAME_BYTES - 2) + b"}"
    server_link.send_control(control)
    assert await client.next() == ("control", control)
    link.close()


async def test_frames_split_anywhere_and_packed_together_are_cut_right(plain: Setup) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", plain.port)
    try:
        assert (await plain.server.next())[0] == "opened"
        payloads = [HELLO, rtp(1), b"", rtp(2, 3000), b'{"type":"who"}']
        stream = b"".join(frame(p) for p in payloads)
        for i in range(0, len(stream), 7):  # a few bytes at a time
            writer.write(stream[i : i + 7])
            await writer.drain()
            await asyncio.sleep(0)
        writer.write(stream)  # then all of them in one write
        await writer.drain()
        expected = [("control", HELLO), ("media", rtp(1)), ("keepalive", None), ("media", rtp(2, 3000))]
        expected.append(("control", b'{"type":"who"}'))
        for _ in range(2):
            assert [
                (kind, data) for kind, _, data in [await plain.server.next() for _ in payloads]
            ] == expected
    finally:
        writer.close()


async def test_a_connection_closed_mid_frame_delivers_nothing_of_that_frame(plain: Setup) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", plain.port)
    assert (await plain.server.next())[0] == "opened"
    writer.write(frame(HELLO) + frame(rtp(1, 500))[:100])  # one whole frame, then a fifth of one
    await writer.drain()
    writer.close()
    kind, _, data = await plain.server.next()
    assert (kind, data) == ("control", HELLO)
    kind, link, reason = await plain.server.next()
    assert (kind, reason) == ("closed", "closed by peer")
    assert link.is_closing and link not in plain.listener.links


async def test_closing_either_end_tells_the_other(tcp: Setup) -> None:
    link, client, server_link = await tcp.connect()
    link.close()
    assert link.is_closing
    kind, closed, _ = await tcp.server.next()
    assert (kind, closed) == ("closed", server_link)
    assert await client.next() == ("closed", "closed")  # the reason this end gave

    link, client, server_link = await tcp.connect()
    server_link.close()
    assert (await client.next())[0] == "closed"
    kind, _, reason = await tcp.server.next()
    assert (kind, reason) == ("closed", "closed")
    link.send_control(HELLO)  # a closed link sends nothing and raises nothing
    assert not link.send_media(rtp(1))


async def test_closing_the_listener_closes_its_links(tcp: Setup) -> None:
    _, client, _ = await tcp.connect()
    await tcp.listener.close()
    assert await client.next() == ("closed", "closed by peer")
    assert (await tcp.server.next())[2] == "server shutting down"


async def test_forwarded_media_is_gathered_and_written_to_each_link(tcp: Setup) -> None:
    first, first_events, first_on_server = await tcp.connect()
    second, second_events, second_on_server = await tcp.connect()
    packets = [rtp(seq) for seq in range(5)]
    for packet in packets:
        assert tcp.listener.forward_media(packet, [first_on_server, second_on_server]) == 2
    for events in (first_events, second_events):
        assert [await events.next() for _ in packets] == [("media", p) for p in packets]
    assert first_on_server.stats.media_out == second_on_server.stats.media_out == 5
    first.close()
    second.close()


TLS_APPLICATION_DATA = 0x17
TLS13_RECORD_OVERHEAD = 17  # the inner content type and the 16-byte AEAD tag


async def test_gathered_media_goes_out_over_tls_in_small_records() -> None:
    # A receiver reads nothing of a TLS record before its last byte has crossed: a keyframe's packets
    # written in one go made 16 kB records, a third of a second apiece on a 400 kbit/s downlink, holding back
    # the first packets (and the subscriber's sight of a queue building) that long. A proxy between client
    # and server reads the header of every record the server sends while a burst of 40 packets is forwarded.
    setup = await listening(True)
    sizes: list[tuple[int, int]] = []  # (record type, length) of what the server sent

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, parse: bool) -> None:
        pending = b""
        while data := await reader.read(65536):
            if parse:
                pending += data
                while len(pending) >= 5 and len(pending) >= 5 + int.from_bytes(pending[3:5], "big"):
                    length = int.from_bytes(pending[3:5], "big")
                    sizes.append((pending[0], length))
                    pending = pending[5 + length :]
            writer.write(data)
            await writer.drain()
        writer.close()

    async def proxied(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", setup.port)
        await asyncio.gather(pump(reader, up_writer, False), pump(up_reader, writer, True))

    proxy = await asyncio.start_server(proxied, "127.0.0.1", 0)
    try:
        client = ClientSide()
        port = proxy.sockets[0].getsockname()[1]
        link = await setup.transport.connect("127.0.0.1", port, client, setup.client_options())
        kind, on_server, _ = await setup.server.next()
        assert kind == "opened"
        await asyncio.sleep(0.1)  # the handshake's last records are counted apart from the media's
        handshake = len(sizes)
        packets = [rtp(seq, 1000) for seq in range(40)]
        for packet in packets:  # one event-loop turn: written together, as a keyframe's packets are
            setup.listener.forward_media(packet, [on_server])
        assert [await client.next() for _ in packets] == [("media", p) for p in packets]
        media = sizes[handshake:]
        assert {kind for kind, _ in media} == {TLS_APPLICATION_DATA}
        assert sum(length - TLS13_RECORD_OVERHEAD for _, length in media) == sum(len(p) + 2 for p in packets)
        assert max(length for _, length in media) <= MEDIA_RECORD + TLS13_RECORD_OVERHEAD, media
        # a few packets forwarded together (no more than MEDIA_RECORD_SPLIT) stay in one record: cutting
        # them costs the fan-out's latency and gains nothing a record that small holds back
        before = len(sizes)
        few = [rtp(seq, 1000) for seq in range(40, 50)]
        for packet in few:
            setup.listener.forward_media(packet, [on_server])
        assert [await client.next() for _ in few] == [("media", p) for p in few]
        assert [length for _, length in sizes[before:]] == [
            sum(len(p) + 2 for p in few) + TLS13_RECORD_OVERHEAD
        ]
        link.close()
    finally:
        proxy.close()
        await setup.listener.close()


async def test_tls_with_the_wrong_fingerprint_is_refused_before_anything_is_sent() -> None:
    setup = await listening(True)
    try:
        other = Identity.generate().fingerprint
        with pytest.raises(ConfError, match=re.escape(f"not {other}")):
            await setup.transport.connect("127.0.0.1", setup.port, ClientSide(), setup.client_options(other))
        kind, _, _ = await setup.server.next()
        assert kind == "opened"  # TLS completed; the client then hung up without a word
        kind, _, _ = await setup.server.next()
        assert kind == "closed"
    finally:
        await setup.listener.close()


async def test_a_tls_client_and_a_plaintext_server_fail_at_once_with_one_line(plain: Setup) -> None:
    tls = Setup(
        plain.transport, plain.listener, plain.server, plain.port, plain.server_options, Identity.generate()
    )
    with pytest.raises(ConfError, match="TLS handshake"):
        await tls.transport.connect("127.0.0.1", plain.port, ClientSide(), tls.client_options())
    assert (await plain.server.next())[0] == "opened"
    kind, _, reason = await plain.server.next()
    assert (kind, reason) == ("closed", "TLS handshake to a plaintext server")


async def test_a_plaintext_client_gets_nothing_from_a_tls_server() -> None:
    setup = await listening(True)
    try:
        client = ClientSide()
        link = await setup.transport.connect(
            "127.0.0.1", setup.port, client, TransportOptions(connect_timeout=WAIT)
        )
        link.send_control(HELLO)  # not a TLS record: the handshake fails and the server hangs up
        assert (await client.next())[0] == "closed"
        assert setup.server.events.empty()  # never opened: no link reached the server's events
    finally:
        await setup.listener.close()


async def test_a_port_in_use_and_a_port_without_a_server_are_one_line_errors(plain: Setup) -> None:
    with pytest.raises(ConfError, match="already in use"):
        await TcpTransport().listen("127.0.0.1", plain.port, ServerSide(), TransportOptions())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    with pytest.raises(ConfError, match="cannot reach server"):
        await TcpTransport().connect("127.0.0.1", free, ClientSide(), TransportOptions(connect_timeout=WAIT))


async def _silent_peer(port: int) -> socket.socket:
    """A client that connects and never reads, with a small receive buffer."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


async def test_media_for_a_peer_that_does_not_read_is_dropped_within_the_limit(plain: Setup) -> None:
    sock = await _silent_peer(plain.port)
    try:
        _, link, _ = await plain.server.next()
        assert isinstance(link, TcpLink)
        packet = rtp(1, 1000)
        sent = 0
        while link.send_media(packet):
            sent += 1
            assert sent < 50_000, "the link never stopped queueing media"
            if sent % 100 == 0:
                await asyncio.sleep(0)  # let the kernel take what it will
        transport = link._transport
        assert transport is not None
        assert transport.get_write_buffer_size() <= MEDIA_BUFFER_LIMIT + len(packet) + 2
        assert link.stats.media_dropped == 1 and link.stats.media_out == sent
        assert not link.is_closing  # media is dropped, the link stays
        assert plain.listener.forward_media(packet, [link]) == 1  # counted as handed on ...
        await asyncio.sleep(0.05)
        assert link.stats.media_dropped == 2  # ... and dropped at the gathered write
        link.send_control(HELLO)  # control still queues below its own, larger, limit
        assert link.stats.control_out == 1 and not link.is_closing
    finally:
        sock.close()


async def test_control_for_a_peer_that_does_not_read_closes_the_link_past_the_limit(plain: Setup) -> None:
    sock = await _silent_peer(plain.port)
    try:
        _, link, _ = await plain.server.next()
        assert isinstance(link, TcpLink)
        message = b"{" + b" " * 60_000 + b"}"
        for _ in range(2 * CONTROL_BUFFER_LIMIT // len(message) + 1000):
            link.send_control(message)
            if link.is_closing:
                break
            await asyncio.sleep(0)
        assert link.is_closing, "the link queued control messages without bound"
        transport = link._transport
        assert transport is not None
        assert transport.get_write_buffer_size() <= CONTROL_BUFFER_LIMIT + len(message) + 2
        sent = link.stats.control_out
        link.send_control(message)  # nothing more is queued
        assert link.stats.control_out == sent
    finally:
        sock.close()
    kind, _, _ = await plain.server.next()
    assert kind == "closed"
