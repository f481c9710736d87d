"""The server's identity key, its fingerprint, and the client's pinned identities (known_hosts).

A server has one Ed25519 key, created on first start and kept in ``server_dir()/identity.key`` (mode
0600). Every transport presents it: TLS with a certificate self-signed by it, ZeroMQ CURVE with the
X25519 key that the same secret gives (the map libsodium's ``crypto_sign_ed25519_sk_to_curve25519``
uses), so the fingerprint ``SHA256:<base64>`` (SSH's notation, of the 32-byte public key) is the same
whichever transport a client uses. A client pins the key per server URL on first use, in
``known_hosts_path()``, one ``URL ed25519 BASE64KEY`` line each.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import fcntl
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.x509.oid import NameOID

from conf_cli.errors import ConfError
from conf_cli.paths import known_hosts_path, private_dir, server_dir

KEY_FILE = "identity.key"
KEY_BYTES = 32
_P = 2**255 - 19


def fingerprint(public_key: bytes) -> str:
    """``SHA256:<base64, unpadded>`` of a raw 32-byte Ed25519 public key, as SSH shows keys."""
    digest = hashlib.sha256(public_key).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def curve_public_from_ed25519(public_key: bytes) -> bytes:
    """The X25519 public key (Montgomery u) of an Ed25519 public key (Edwards y): u = (1 + y) / (1 - y)."""
    if len(public_key) != KEY_BYTES:
        raise ConfError(f"an Ed25519 public key has {KEY_BYTES} bytes, not {len(public_key)}")
    y = int.from_bytes(public_key, "little") & ((1 << 255) - 1)
    if y >= _P or y == 1:
        raise ConfError("not a valid Ed25519 public key")
    u = (1 + y) * pow(1 - y, _P - 2, _P) % _P
    return u.to_bytes(KEY_BYTES, "little")


def public_key_of_certificate(der: bytes) -> bytes:
    """The raw Ed25519 public key a DER certificate carries; ConfError if it carries another kind."""
    try:
        key = x509.load_der_x509_certificate(der).public_key()
    except ValueError as exc:
        raise ConfError(f"the server sent a certificate that does not parse: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfError("the server's certificate does not hold an Ed25519 key")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class Identity:
    """A server's Ed25519 key pair."""

    private: Ed25519PrivateKey
    path: Path | None = None

    @classmethod
    def generate(cls) -> Identity:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load_or_create(cls, path: Path | None = None) -> Identity:
        """Read the key at ``path`` (default ``server_dir()/identity.key``), creating it (0600) if absent."""
        path = path or server_dir() / KEY_FILE
        if path.exists():
            try:
                key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            except (ValueError, TypeError, OSError) as exc:
                raise ConfError(f"cannot read the server key {path}: {exc}") from None
            if not isinstance(key, Ed25519PrivateKey):
                raise ConfError(f"the server key {path} is not an Ed25519 key")
            return cls(key, path)
        identity = cls(Ed25519PrivateKey.generate(), path)
        pem = identity.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        try:
            private_dir(path.parent)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(pem)
        except FileExistsError:  # another server process created it first: use theirs
            return cls.load_or_create(path)
        except OSError as exc:
            raise ConfError(f"cannot create the server key {path}: {exc.strerror or exc}") from None
        return identity

    @property
    def public_key(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    def seed(self) -> bytes:
        """The 32-byte Ed25519 seed: what keys derived from the identity are derived from."""
        return self.private.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )

    def curve_secret(self) -> bytes:
        """The X25519 secret key for ZeroMQ CURVE: SHA-512 of the Ed25519 seed, first half, clamped."""
        scalar = bytearray(hashlib.sha512(self.seed()).digest()[:32])
        scalar[0] &= 248
        scalar[31] &= 127
        scalar[31] |= 64
        return bytes(scalar)

    def curve_public(self) -> bytes:
        secret = X25519PrivateKey.from_private_bytes(self.curve_secret())
        return secret.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def certificate_pem(self) -> tuple[bytes, bytes]:
        """A certificate self-signed with this key, and the key, both PEM (for TLS)."""
        now = datetime.datetime.now(datetime.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "conf server " + self.fingerprint)])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.private.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .sign(self.private, None)
        )
        key = self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return certificate.public_bytes(serialization.Encoding.PEM), key


# --------------------------------------------------------------------------------------------------
# The client's pins
# --------------------------------------------------------------------------------------------------


class KnownHosts:
    """``URL ed25519 BASE64KEY`` lines: the server keys a client has trusted."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or known_hosts_path()

    def entries(self) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return found
        except OSError as exc:
            raise ConfError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        for line in text.splitlines():
            parts = line.split()
            if len(parts) != 3 or parts[0].startswith("#") or parts[1] != "ed25519":
                continue
            try:
                key = base64.b64decode(parts[2], validate=True)
            except ValueError:
                continue
            if len(key) == KEY_BYTES:
                found[parts[0]] = key
        return found

    def get(self, url: str) -> bytes | None:
        return self.entries().get(url)

    def _write(self, entries: dict[str, bytes]) -> None:
        private_dir(self.path.parent)
        lines = "".join(f"{url} ed25519 {base64.b64encode(key).decode()}\n" for url, key in entries.items())
        temporary = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(lines)
        os.replace(temporary, self.path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold an exclusive lock beside the file, so clients pinning at once keep each other's lines."""
        private_dir(self.path.parent)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def add(self, url: str, key: bytes) -> None:
        try:
            with self._locked():
                entries = self.entries()
                entries[url] = key
                self._write(entries)
        except OSError as exc:
            raise ConfError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def forget(self, url: str) -> bool:
        try:
            with self._locked():
                entries = self.entries()
                if entries.pop(url, None) is None:
                    return False
                self._write(entries)
        except OSError as exc:
            raise ConfError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        return True
