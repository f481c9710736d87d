"""The web service's connections: websockets', made to hand any request but a GET to
:meth:`HttpOrWebSocket.http` (WHIP and WHEP).

websockets' HTTP parser takes GET requests only. This connection looks at a request's first bytes: a
GET goes on to websockets (the page's files and its WebSocket), anything else is read here (a head
of at most ``MAX_HEAD`` bytes and a body of at most ``MAX_SDP``, within ``READ_TIMEOUT``) and
answered by :meth:`http`, then the connection is closed. It overrides ``data_received``,
``eof_received``, ``connection_lost`` and ``handshake`` of websockets' (checked with 17.4)
``ServerConnection``, which the web tests exercise.
"""

from __future__ import annotations

import asyncio
import contextlib
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import ServerConnection

from conf_cli.addresses import address_group
from conf_web.whip import MAX_HEAD, MAX_SDP, READ_TIMEOUT, Request, Response, error, is_whip_path, parse_head

WS_OPEN_TIMEOUT = 10.0  # seconds for a page's WebSocket handshake


def address_of(connection: ServerConnection) -> str:
    """The address a connection counts under for the limit per address (an IPv6 client's /64)."""
    peer = connection.remote_address
    return address_group(str(peer[0])) if isinstance(peer, tuple) else "?"


class HttpOrWebSocket(ServerConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._first = bytearray()
        self._mode: str | None = None
        self._decided = asyncio.Event()
        self._reader = asyncio.StreamReader(limit=MAX_HEAD)
        self._lost = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        if self._mode == "ws":
            super().data_received(data)
            return
        if self._mode == "http":
            if len(self._reader._buffer) > MAX_HEAD + MAX_SDP:  # type: ignore[attr-defined]
                self.transport.abort()  # more than any request we take: not read
                return
            self._reader.feed_data(data)
            return
        self._first += data
        if len(self._first) < 4:
            return
        if bytes(self._first[:4]) == b"GET ":
            self._mode = "ws"
            super().data_received(bytes(self._first))
        else:
            self._mode = "http"
            self._reader.feed_data(bytes(self._first))
        self._decided.set()

    def eof_received(self) -> bool | None:  # type: ignore[override]
        if self._mode == "http":
            self._reader.feed_eof()
            return True
        return super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._reader.feed_eof()
        self._lost.set()
        self._decided.set()
        super().connection_lost(exc)

    async def handshake(self, *args: Any, **kwargs: Any) -> None:
        """A WebSocket's handshake within ``WS_OPEN_TIMEOUT`` (websockets' own default), or a WHIP/WHEP
        request read within ``READ_TIMEOUT`` and answered (the server's ``open_timeout`` bounds both)."""
        if self._mode != "http":
            async with asyncio.timeout(WS_OPEN_TIMEOUT):
                await self._decided.wait()
                if self._mode != "http":
                    await super().handshake(*args, **kwargs)
                    return
        response = await self._answer()
        self.transport.write(response.encode())
        self.transport.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await self._lost.wait()

    async def _answer(self) -> Response:
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                head = await self._reader.readuntil(b"\r\n\r\n")
                request = parse_head(head)
                if request.headers.get("transfer-encoding"):
                    return error(HTTPStatus.LENGTH_REQUIRED, "send a Content-Length, not chunks")
                length = int(request.headers.get("content-length") or 0)
                if not 0 <= length <= MAX_SDP:
                    return error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"a body has at most {MAX_SDP} bytes")
                request.body = await self._reader.readexactly(length)
        except TimeoutError:
            return error(HTTPStatus.REQUEST_TIMEOUT, f"send the request within {READ_TIMEOUT:g} s")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            return error(HTTPStatus.BAD_REQUEST, "a malformed request")
        if not request.path or not is_whip_path("/" + "/".join(request.path)):
            return error(HTTPStatus.NOT_FOUND, "not found")
        return await self.http(request, address_of(self))

    async def http(self, request: Request, address: str) -> Response:
        """The answer to a WHIP or WHEP request (a subclass gives it)."""
        raise NotImplementedError
