"""ZeroMQ CURVE (CurveZMQ, RFC 26) keyed by the server's identity.

The server's CURVE key pair is the X25519 form of its Ed25519 identity key, so a client that knows the
identity (pinned, or fetched and checked against ``--fingerprint``) knows the CURVE server key too. A
client uses one fresh CURVE key pair per connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import zmq
import zmq.utils.z85

from conf_cli import ConfError, MessageCipher
from conf_cli.identity import Identity, curve_public_from_ed25519


class CurveCipher(MessageCipher):
    name = "curve"
    description = "ZeroMQ CURVE; the server key is the X25519 form of the server's identity key"

    @staticmethod
    def _available() -> None:
        if not zmq.has("curve"):
            raise ConfError("this libzmq has no CURVE support; use --encryption none or another transport")

    def secure_server(self, sock: Any, identity: Identity) -> None:
        self._available()
        sock.curve_secretkey = zmq.utils.z85.encode(identity.curve_secret())
        sock.curve_publickey = zmq.utils.z85.encode(identity.curve_public())
        sock.curve_server = True

    def secure_client(self, socks: Sequence[Any], server_key: bytes) -> None:
        self._available()
        public, secret = zmq.curve_keypair()  # one fresh key pair for all of this connection's sockets
        server = zmq.utils.z85.encode(curve_public_from_ed25519(server_key))
        for sock in socks:
            sock.curve_serverkey = server
            sock.curve_publickey = public
            sock.curve_secretkey = secret
