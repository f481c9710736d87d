"""How benchmark clients connect: encrypted unless the run says ``--encryption none``."""

from __future__ import annotations

from conf_cli.plugin.registry import registry
from conf_cli.plugin.security import client_security
from conf_cli.plugin.transport import TransportOptions


def client_options(
    url: str, encryption: str, fingerprint: str | None, connect_timeout: float = 5.0
) -> TransportOptions:
    """A benchmark client's options: a server the run started is checked by its fingerprint, not pinned."""
    security = client_security(registry().ciphers, url, encryption, fingerprint, pin=fingerprint is None)
    return TransportOptions(connect_timeout=connect_timeout, security=security)
