"""The server's own TLS certificate for the web page: self-signed, made once and kept.

It is not the server identity of conf's own links (conf_cli/identity.py): that key is Ed25519, which
browsers do not accept in TLS certificates, so the page has an ECDSA P-256 key of its own beside it.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from conf_cli import ConfError
from conf_cli.paths import private_dir, server_dir

VALID_DAYS = 825


def own_certificate(host_names: list[str], directory: Path | None = None) -> tuple[Path, Path]:
    """Return ``(certificate, key)`` PEM files of the server's self-signed certificate.

    Made on first use under ``server_dir()/web`` (an ECDSA P-256 key, names ``host_names`` as DNS names or
    IP addresses); reused afterwards while it names every one of ``host_names`` and has not expired.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = private_dir(directory or server_dir() / "web")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    now = datetime.datetime.now(datetime.UTC)
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(host_names):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    if cert_path.exists() and key_path.exists():
        try:
            existing = x509.load_pem_x509_certificate(cert_path.read_bytes())
            have = existing.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            if existing.not_valid_after_utc > now + datetime.timedelta(days=1) and all(
                n in have for n in names
            ):
                return cert_path, key_path
        except (ValueError, x509.ExtensionNotFound):
            pass  # unreadable or old: make a new one
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host_names[0] if host_names else "conf")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    try:
        descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    except OSError as exc:
        raise ConfError(f"cannot write the web certificate into {folder}: {exc.strerror or exc}") from None
    return cert_path, key_path
