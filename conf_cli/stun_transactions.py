"""A socket's outgoing STUN Binding transactions, over asyncio: each request is retransmitted with a
doubling timeout (RFC 5389 section 7.2.1) until its answer comes or its time is up.

Used wherever a client asks a server or a peer for its mapped address: the rtp:// link's binding to the
server's media port, a call's checks and its relay binding, and ``conf doctor``'s probes. The owner of the
socket passes every STUN success response it receives to :meth:`StunTransactions.answer`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from conf_cli.errors import ProtocolError
from conf_cli.protocol.stun import ATTR_USERNAME, CLASS_SUCCESS, StunMessage, binding_request, pad_to
from conf_cli.version import __version__

__all__ = ["FIRST_RTO", "MAX_RTO", "REQUEST_SIZE", "StunTransactions", "unsigned_binding"]

FIRST_RTO = 0.1
"""Seconds before a request is first sent again; doubled after each retransmission ..."""
MAX_RTO = 1.6
"""... up to this."""
REQUEST_SIZE = 64
"""Binding requests are padded to this size: a server's STUN port answers only a request at least as
large as its answer (it never amplifies a spoofed one)."""

Address = tuple  # (host, port), or longer as the socket reports it
_Waiter = asyncio.Future[Address | None]


def unsigned_binding(transaction: bytes) -> bytes:
    """A Binding request without USERNAME or MESSAGE-INTEGRITY, padded to :data:`REQUEST_SIZE`: what a
    server's STUN port answers for anyone."""
    request = binding_request(transaction, "", None, f"conf/{__version__}")
    request.attributes = [a for a in request.attributes if a[0] != ATTR_USERNAME]
    return bytes(pad_to(request, REQUEST_SIZE))


class StunTransactions:
    """The Binding transactions one socket has under way, by transaction id."""

    def __init__(self) -> None:
        self._pending: dict[bytes, tuple[_Waiter, bytes | None]] = {}

    async def run(
        self,
        send: Callable[[bytes], bool],
        transaction: bytes,
        request: bytes,
        key: bytes | None,
        timeout: float,
    ) -> Address | None:
        """Send ``request`` (its id ``transaction``) with ``send`` until it is answered: the mapped address
        the answer gives (None if that attribute is missing or malformed); None as well when nothing
        answered within ``timeout`` seconds or ``send`` says the socket is gone (returns False). With
        ``key`` only an answer signed with it counts."""
        loop = asyncio.get_running_loop()
        waiter: _Waiter = loop.create_future()
        self._pending[transaction] = (waiter, key)
        deadline = loop.time() + timeout
        rto = FIRST_RTO
        try:
            while (remaining := deadline - loop.time()) > 0:
                try:
                    if not send(request):
                        return None
                except OSError:
                    pass  # a refused or unreachable send: the retransmission tries again
                try:
                    async with asyncio.timeout(min(rto, remaining)):
                        return await asyncio.shield(waiter)
                except TimeoutError:
                    rto = min(rto * 2, MAX_RTO)
            return None
        finally:
            self._pending.pop(transaction, None)

    def answer(self, message: StunMessage) -> bool:
        """Settle the transaction a success response answers: True if ``message`` answered one of ours
        (whether or not it was accepted), False if it is about something else."""
        entry = self._pending.get(message.transaction_id)
        if entry is None or message.message_class != CLASS_SUCCESS:
            return False
        waiter, key = entry
        if waiter.done() or (key is not None and not message.check_integrity(key)):
            return True
        mapped: Address | None = None
        with contextlib.suppress(ProtocolError):
            mapped = message.xor_mapped_address
        waiter.set_result(mapped)
        return True
