"""A socket's STUN Binding transactions over real UDP on loopback: retransmitted with a doubling timeout
until answered, only a correctly signed answer counts when the request was signed, and a transaction
nobody answers ends with None at its deadline."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from typing import Any

from conf_cli.protocol.stun import CLASS_REQUEST, StunMessage, binding_request, binding_success
from conf_cli.stun_transactions import FIRST_RTO, REQUEST_SIZE, StunTransactions, unsigned_binding

KEY = b"k" * 16


class Server(asyncio.DatagramProtocol):
    """Answers the ``answer_on``-th copy of each request (signed with ``key``), recording when each came."""

    def __init__(self, answer_on: int, key: bytes | None) -> None:
        self.answer_on, self.key = answer_on, key
        self.arrivals: list[float] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.arrivals.append(time.monotonic())
        request = StunMessage.parse(data)
        assert request.message_class == CLASS_REQUEST
        if len(self.arrivals) == self.answer_on and self.transport is not None:
            self.transport.sendto(bytes(binding_success(request.transaction_id, *addr, self.key)), addr)


class Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transactions = StunTransactions()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transactions.answer(StunMessage.parse(data))


async def exchange(
    request_key: bytes | None, answer_key: bytes | None, answer_on: int, timeout: float
) -> Any:
    loop = asyncio.get_running_loop()
    server_transport, server = await loop.create_datagram_endpoint(
        lambda: Server(answer_on, answer_key), local_addr=("127.0.0.1", 0), family=socket.AF_INET
    )
    address = server_transport.get_extra_info("sockname")
    client_transport, client = await loop.create_datagram_endpoint(
        Client, local_addr=("127.0.0.1", 0), family=socket.AF_INET
    )
    transaction = bytes(range(12))
    if request_key is None:
        request = unsigned_binding(transaction)
    else:
        request = bytes(binding_request(transaction, "user", request_key, "test"))

    def send(data: bytes) -> bool:
        client_transport.sendto(data, address)
        return True

    try:
        mapped = await client.transactions.run(send, transaction, request, request_key, timeout)
    finally:
        client_transport.close()
        server_transport.close()
    return mapped, client_transport.get_extra_info("sockname"), server.arrivals


def test_a_request_is_sent_again_with_a_doubling_timeout_until_answered() -> None:
    mapped, local, arrivals = asyncio.run(exchange(None, None, answer_on=3, timeout=5.0))
    assert mapped == local[:2], "the answer's mapped address is the client's own"
    assert len(arrivals) == 3
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert gaps[0] >= FIRST_RTO * 0.9 and gaps[1] >= 2 * FIRST_RTO * 0.9, gaps


def test_an_unsigned_request_is_padded_so_a_stun_port_may_answer_it() -> None:
    assert len(unsigned_binding(bytes(12))) == REQUEST_SIZE
    assert StunMessage.parse(unsigned_binding(bytes(12))).username is None


def test_an_answer_signed_with_another_key_does_not_count() -> None:
    """A forged answer to a signed request is ignored: the transaction runs to its deadline."""
    mapped, _, arrivals = asyncio.run(exchange(KEY, b"x" * 16, answer_on=1, timeout=0.8))
    assert mapped is None
    assert len(arrivals) >= 3, "the request kept being sent after the forged answer"


def test_a_correctly_signed_answer_ends_a_signed_request() -> None:
    mapped, local, arrivals = asyncio.run(exchange(KEY, KEY, answer_on=1, timeout=5.0))
    assert mapped == local[:2] and len(arrivals) == 1


def test_a_transaction_that_nobody_answers_ends_with_none_at_its_deadline() -> None:
    started = time.monotonic()
    mapped, _, arrivals = asyncio.run(exchange(None, None, answer_on=0, timeout=0.5))
    assert mapped is None and arrivals
    assert time.monotonic() - started < 3.0


def test_a_send_that_reports_the_socket_gone_ends_the_transaction() -> None:
    async def run() -> Any:
        return await StunTransactions().run(
            lambda data: False, bytes(12), unsigned_binding(bytes(12)), None, 30
        )

    started = time.monotonic()
    assert asyncio.run(run()) is None
    assert time.monotonic() - started < 1.0
