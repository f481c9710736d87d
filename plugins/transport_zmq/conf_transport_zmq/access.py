"""Who may subscribe to the PUB socket under CURVE: only clients holding a live link on the ROUTER.

CURVE alone encrypts every connection, but the server's CURVE key is public, so anyone could make a
fresh key pair and subscribe. A ZAP handler (ZeroMQ's authentication protocol, RFC 27; pyzmq's
AsyncioAuthenticator, one per context) therefore admits any CURVE client on the ROUTER, which then
reports each message's client key as its ``User-Id``, and admits on the PUB only the keys of clients
that have greeted on the ROUTER and whose link is still open.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import zmq
import zmq.asyncio
from zmq.auth.asyncio import AsyncioAuthenticator

_authenticators: dict[int, tuple[asyncio.AbstractEventLoop, AsyncioAuthenticator]] = {}
_domains = itertools.count(1)


class _Provider:
    def __init__(self, allow: Callable[[bytes], bool]) -> None:
        self._allow = allow

    def callback(self, domain: str, key: bytes) -> bool:
        return self._allow(key)


def guard(
    context: zmq.asyncio.Context,
    router: zmq.Socket[Any],
    pub: zmq.Socket[Any],
    allowed: Callable[[bytes], bool],
) -> None:
    """Set ZAP domains on ``router`` (any CURVE client) and ``pub`` (z85 keys for which ``allowed``)."""
    loop = asyncio.get_running_loop()
    known = _authenticators.get(id(context))
    if known is not None and known[0] is loop:
        authenticator = known[1]
    else:  # the first listener of this context, or of this event loop
        if known is not None:
            known[1].stop()
        authenticator = AsyncioAuthenticator(context)
        authenticator.start()
        _authenticators[id(context)] = (loop, authenticator)
    number = next(_domains)
    router_domain, pub_domain = f"conf-router-{number}", f"conf-pub-{number}"
    authenticator.configure_curve_callback(router_domain, _Provider(lambda key: True))
    authenticator.configure_curve_callback(pub_domain, _Provider(allowed))
    router.zap_domain = router_domain.encode()
    pub.zap_domain = pub_domain.encode()
