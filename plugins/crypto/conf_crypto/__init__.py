"""Link encryption for conf: TLS 1.3 for TCP, CURVE for ZeroMQ, SRTP for RTP over UDP.

Each is a cipher plugin registered through ``conf_register_ciphers`` (see :mod:`conf_cli.plugin.security` for
the interface), from the ``conf`` entry-point group like any third-party plugin. Every one of them presents
the server's one identity key, so a client pins one fingerprint whatever the transport.
"""

from __future__ import annotations

from collections.abc import Callable

from conf_cli import Cipher, hookimpl

from .curve import CurveCipher
from .srtp import SrtpCipher, SrtpSession
from .tls import TlsCipher

__all__ = ["CurveCipher", "SrtpCipher", "SrtpSession", "TlsCipher"]


@hookimpl
def conf_register_ciphers(register: Callable[[Cipher], None]) -> None:
    register(TlsCipher())
    register(CurveCipher())
    register(SrtpCipher())
