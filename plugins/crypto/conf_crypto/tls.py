"""TLS 1.3 (the standard library's ``ssl``) with a certificate self-signed by the server's identity key.

No certificate authority is involved: the client accepts any certificate in the handshake, then checks
the Ed25519 key in it against its pin (:class:`conf_cli.plugin.security.Trust`). The handshake's
CertificateVerify proves the server holds that key's secret, so a relay presenting another key is caught
by the pin, and one presenting this key cannot finish the handshake.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from pathlib import Path

from conf_cli import ConfError, StreamCipher
from conf_cli.identity import Identity, public_key_of_certificate


class TlsCipher(StreamCipher):
    name = "tls"
    description = "TLS 1.3 over TCP, server certificate self-signed with the server's identity key"

    def __init__(self) -> None:
        self._server_contexts: dict[bytes, ssl.SSLContext] = {}
        self._client_context: ssl.SSLContext | None = None

    def server_context(self, identity: Identity) -> ssl.SSLContext:
        cached = self._server_contexts.get(identity.public_key)
        if cached is not None:
            return cached
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        # Clients open a new session every time (nothing resumes one), so tickets would be work for nothing
        # in every handshake.
        context.num_tickets = 0
        certificate, key = identity.certificate_pem()
        # load_cert_chain reads files only: write them where only we can read, load, and remove them.
        with tempfile.TemporaryDirectory(prefix="conf-tls-") as folder:
            cert_path, key_path = Path(folder) / "cert.pem", Path(folder) / "key.pem"
            for path, data in ((cert_path, certificate), (key_path, key)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
            context.load_cert_chain(cert_path, key_path)
        self._server_contexts[identity.public_key] = context
        return context

    def client_context(self) -> ssl.SSLContext:
        """One context for every connection (making one costs more than a handshake); it holds no key and
        checks nothing of the server: :meth:`peer_key` and the pin do, per connection."""
        context = self._client_context
        if context is None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.minimum_version = ssl.TLSVersion.TLSv1_3
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # no CA: the key is pinned instead (see module docstring)
            self._client_context = context
        return context

    def peer_key(self, ssl_object: ssl.SSLObject | ssl.SSLSocket) -> bytes:
        der = ssl_object.getpeercert(binary_form=True)
        if not der:
            raise ConfError("the server presented no certificate")
        return public_key_of_certificate(der)
