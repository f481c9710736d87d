"""The TCP stream that tcp://, rtp:// and the worker front share (conf_cli.plugin.stream), over loopback."""

from __future__ import annotations

import asyncio

import pytest

from conf_cli import ConfError, Security, StreamLink, TransportOptions, open_stream, server_tls
from conf_cli.protocol.framing import frame


def test_no_tls_without_encryption_and_none_without_a_key() -> None:
    assert server_tls(None) is None
    with pytest.raises(ConfError, match="identity"):
        server_tls(Security({}))


async def test_frames_reach_the_right_callbacks_and_a_close_is_reported() -> None:
    received: list[tuple[str, bytes]] = []
    closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def server_link() -> StreamLink:
        link = StreamLink(
            lambda data: received.append(("control", data)),
            lambda packet: received.append(("media", packet)),
            lambda: received.append(("keepalive", b"")),
            lambda reason: closed.set_result(reason),
        )
        link.refuse_tls = True  # a plaintext server: only a TLS handshake would be refused
        return link

    server = await asyncio.get_running_loop().create_server(server_link, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = StreamLink(lambda data: None, lambda packet: None, lambda: None, lambda reason: None)
    try:
        await open_stream(client, "127.0.0.1", port, TransportOptions(connect_timeout=5), "tcp")
        assert client.transport is not None and not client.is_closing
        media = bytes([0x80, 96]) + bytes(10)  # the first two bits 10: RTP
        client.send_control(b'{"type":"ping"}')
        client.send_media(media)
        client.send_keepalive()
        client.close("done")
        assert await asyncio.wait_for(closed, 10) == "closed by peer"
        assert received == [("control", b'{"type":"ping"}'), ("media", media), ("keepalive", b"")]
        assert client.stats.control_out == 1 and client.stats.media_out == 1
    finally:
        server.close()


async def test_a_plaintext_server_closes_a_tls_handshake_at_once() -> None:
    closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    controls: list[bytes] = []

    def server_link() -> StreamLink:
        link = StreamLink(
            controls.append, lambda p: None, lambda: None, lambda reason: closed.set_result(reason)
        )
        link.refuse_tls = True
        return link

    server = await asyncio.get_running_loop().create_server(server_link, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x16\x03\x01" + frame(b"{}"))
        assert await asyncio.wait_for(closed, 10) == "TLS handshake to a plaintext server"
        assert await asyncio.wait_for(reader.read(), 10) == b""
        assert controls == []
        writer.close()
    finally:
        server.close()
