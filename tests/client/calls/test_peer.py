"""Two call sockets on loopback: checks reach each other, SRTP media arrives, strangers are refused; and
the relay binding against the server's call port."""

from __future__ import annotations

import asyncio
import socket

from conf_cli.client.calls.checks import Checks
from conf_cli.client.calls.crypto import KeyPair, SrtpPair
from conf_cli.client.calls.peer import CallSocket
from conf_cli.latch import Credentials
from conf_cli.plugin.registry import registry
from conf_cli.protocol.rtp import RtpPacket
from conf_cli.server.call_relay import PURPOSE, CallRelay

CIPHERS = registry().ciphers


async def wait_for(condition, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_checks_then_srtp_media_and_strangers_refused() -> None:
    caller, callee = KeyPair(), KeyPair()
    keys_a = caller.derive("c1", callee.public, caller=True)
    keys_b = callee.derive("c1", caller.public, caller=False)
    a, b = CallSocket(), CallSocket()
    port_a, port_b = await a.open(), await b.open()
    try:
        checks_a, checks_b = Checks("c1", keys_a.check), Checks("c1", keys_b.check)
        checks_a.add_target(("127.0.0.1", port_b))
        checks_b.add_target(("127.0.0.1", port_a))
        a.start_checks(checks_a)
        b.start_checks(checks_b)
        await wait_for(lambda: checks_a.reached is not None and checks_b.reached is not None)
        assert checks_a.reached == ("127.0.0.1", port_b)
        got: list[bytes] = []
        a.start_media(SrtpPair(keys_a, CIPHERS), checks_a.reached)
        b.start_media(SrtpPair(keys_b, CIPHERS), checks_b.reached)
        b.on_media = got.append
        packet = bytes(RtpPacket(96, 1, 0, 77, b"picture" * 20))
        assert a.send_media(packet)
        await wait_for(lambda: len(got) == 1)
        assert got == [packet]
        # Plain RTP, or SRTP under other keys, from anyone: refused, never delivered.
        stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            stranger.sendto(bytes(RtpPacket(96, 2, 0, 77, b"x" * 50)), ("127.0.0.1", port_b))
            other = KeyPair().derive("c1", callee.public, caller=True)
            stranger.sendto(
                SrtpPair(other, CIPHERS).protect(bytes(RtpPacket(96, 3, 0, 77, b"y" * 50))),
                ("127.0.0.1", port_b),
            )
            stranger.sendto(b"hello", ("127.0.0.1", port_b))
        finally:
            stranger.close()
        await wait_for(lambda: b.stats.media_refused == 2 and b.stats.malformed == 1)
        assert got == [packet] and b.stats.media_in == 1
    finally:
        a.close()
        b.close()


async def test_stun_and_relay_binding_against_a_relay() -> None:
    relay = CallRelay()
    loop = asyncio.get_running_loop()

    class Port(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple) -> None:
            for out, where in relay.datagram(data, addr, loop.time()):
                self.transport.sendto(out, where)  # type: ignore[attr-defined]

    transport, _ = await loop.create_datagram_endpoint(Port, local_addr=("127.0.0.1", 0))
    server = transport.get_extra_info("sockname")
    sock = CallSocket()
    port = await sock.open()
    try:
        assert await sock.binding(server, 2.0) == ("127.0.0.1", port)
        token, _ = relay.allocate("c1")
        # The old scheme (the token in hex as USERNAME, the token as key) is refused.
        assert await sock.binding(server, 0.5, token.hex(), token) is None
        assert relay.stats.stun_refused >= 1 and relay.stats.bindings == 0
        # The relay answers once the socket has answered its consent check: media may come here.
        credentials = Credentials.of(token, PURPOSE)
        assert await sock.relay_binding(server, credentials, 2.0) == ("127.0.0.1", port)
        assert sock.stats.consent_answered == 1 and relay.stats.bindings == 1
        assert relay.latches.lookup(("127.0.0.1", port)) is not None
        wrong = Credentials.of(b"another token 16", PURPOSE)
        assert await sock.relay_binding(server, wrong, 0.5) is None  # refused
    finally:
        sock.close()
        transport.close()
