"""A hostile server for call tests: it relays call signalling but substitutes the keys in it.

The server introduces the two ends of a call and relays their keys, so whoever runs it (or breaks into
it) is the man in the middle the call's security code is there to catch. Run as
``python -m conf_cli.testing.calls MODE``; it prints ``server_started`` (``urls``, ``fingerprint``) as
``conf server --json`` does, on a free loopback port, and serves until stopped. MODE:

- ``swap``: the attack done properly: the callee gets the commitment to a key of the server's, the caller
  gets another key of the server's in place of the callee's, and the callee gets the committed key when
  the caller reveals its own. Both ends accept; their security codes differ (unless the one guess the
  server gets is right, once in a million).
- ``reveal``: the caller's commitment goes through untouched, and a key of the server's replaces the
  caller's when it is revealed (what a server that tried keys after seeing both would have to do). The
  callee refuses the call.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass, field
from typing import Any

from conf_cli.client.calls.crypto import KeyPair
from conf_cli.protocol.control import Message
from conf_cli.server.call_board import CallBoard
from conf_cli.server.meeting import Send

MODES = ("swap", "reveal")


@dataclass
class KeySwappingBoard(CallBoard):
    """A call board that substitutes keys in the signalling it relays (see the module's MODE)."""

    mode: str = "swap"
    to_callee: KeyPair = field(default_factory=KeyPair)
    to_caller: KeyPair = field(default_factory=KeyPair)

    def handle(self, cid: int, message: Message, now: float, **kw: Any) -> list[Send]:
        kind = message["type"]
        if kind == "call" and self.mode == "swap":
            message = {**message, "commitment": self.to_callee.commitment}
        elif kind == "call_accept":
            message = {**message, "key": self.to_caller.public}
        elif kind == "call_reveal":
            message = {**message, "key": self.to_callee.public}
        return super().handle(cid, message, now, **kw)


async def serve(mode: str) -> None:
    from conf_cli.plugin.registry import registry
    from conf_cli.plugin.security import server_security
    from conf_cli.plugin.transport import TransportOptions
    from conf_cli.server.edge import Endpoint, Server
    from conf_cli.server.hub import Hub

    security = server_security(registry().ciphers, "on", None)
    server = Server(registry(), Hub(calls=KeySwappingBoard(mode=mode)), call_port=0)
    urls = await server.start([Endpoint("tcp", "127.0.0.1", 0)], TransportOptions(security=security))
    fingerprint = security.identity.fingerprint if security and security.identity else None
    print(json.dumps({"type": "server_started", "urls": urls, "fingerprint": fingerprint}), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.close()


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in MODES:
        sys.exit(f"usage: python -m conf_cli.testing.calls {'|'.join(MODES)}")
    asyncio.run(serve(sys.argv[1]))
