"""How a ZeroMQ client learns the server's key before its CURVE handshake: a datagram on UDP ``PORT``.

CURVE needs the server's public key before the first byte. A client that has none pinned (first use, or
``--fingerprint``), or that wants to notice a changed key, asks the server's key service: a request
datagram ``CONF-KEY?`` padded with zeros to :data:`REQUEST_SIZE` bytes, to UDP at the ROUTER's port;
the answer is ``CONF-KEY`` and the 32-byte Ed25519 identity key (40 bytes, smaller than the request, so
the service cannot amplify a spoofed flood). The answer needs no protection: the client checks the key
against its pin or ``--fingerprint`` and derives the CURVE key from it, and a forged key cannot finish
the CURVE handshake with the real server.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from conf_cli.identity import KEY_BYTES

REQUEST = b"CONF-KEY?"
ANSWER = b"CONF-KEY"
REQUEST_SIZE = 64
RETRY_SECONDS = 0.25


def request() -> bytes:
    return REQUEST + bytes(REQUEST_SIZE - len(REQUEST))


def answer(public_key: bytes) -> bytes:
    return ANSWER + public_key


def read_answer(data: bytes) -> bytes | None:
    """The key in an answer datagram, or None if ``data`` is not one."""
    if len(data) != len(ANSWER) + KEY_BYTES or not data.startswith(ANSWER):
        return None
    return data[len(ANSWER) :]


class KeyService(asyncio.DatagramProtocol):
    """The server side: answers every well-formed request with the identity key."""

    def __init__(self, public_key: bytes) -> None:
        self._answer = answer(public_key)
        self.transport: asyncio.DatagramTransport | None = None
        self.answered = 0
        self.ignored = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) != REQUEST_SIZE or not data.startswith(REQUEST) or self.transport is None:
            self.ignored += 1
            return
        self.answered += 1
        self.transport.sendto(self._answer, addr)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_service(host: str, port: int, public_key: bytes) -> KeyService:
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    _, service = await loop.create_datagram_endpoint(
        lambda: KeyService(public_key), local_addr=(host, port), family=family
    )
    return service


class _Asker(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.key: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        key = read_answer(data)
        if key is not None and not self.key.done():
            self.key.set_result(key)

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable: keep trying until timeout
        pass


async def fetch_key(host: str, port: int, timeout: float) -> bytes | None:
    """Ask the key service at ``host:port``, retrying; the key, or None if no answer within ``timeout``."""
    loop = asyncio.get_running_loop()
    transport, asker = await loop.create_datagram_endpoint(_Asker, remote_addr=(host, port))
    try:
        async with asyncio.timeout(timeout):
            while True:
                with contextlib.suppress(OSError):
                    transport.sendto(request())
                done, _ = await asyncio.wait({asker.key}, timeout=RETRY_SECONDS)
                if done:
                    return asker.key.result()
    except TimeoutError:
        return None
    finally:
        transport.close()
