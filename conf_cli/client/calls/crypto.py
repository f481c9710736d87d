"""End-to-end keys of a call: X25519, HKDF-SHA256, SRTP (AEAD AES-128-GCM, RFC 7714) and a SAS.

Each end makes a fresh X25519 key pair per call. The caller first sends only a *commitment* to its public
key (``call``: SHA-256 of ``conf call commitment v1`` and the key); the callee answers with its public key
(``call_accept``); only then does the caller reveal its key (``call_reveal``), which the callee checks
against the commitment (:func:`check_reveal`) before using it, as ZRTP's hash commitment does. Both then
compute the same shared secret and expand it with HKDF-SHA256 (salt: the
call ID; info: ``conf call v1`` and both public keys, the caller's first) into 80 bytes:

- 28 bytes: the SRTP master key and salt for media from the caller to the callee,
- 28 bytes: the same for media from the callee to the caller,
- 20 bytes: the key of the connectivity checks' STUN MESSAGE-INTEGRITY,
- 4 bytes: the short authentication string, shown as six digits at both ends.

The server relays signalling, so it could swap the public keys; the two people then see different
digits. Reading the digits to each other proves that nobody is in the middle. The commitment is what makes
six digits enough: someone in the middle must fix the key it hands the callee before it sees the callee's
key, and the key it hands the caller before it sees the caller's, so it cannot try keys until both ends
show the same digits (about 113 µs a try would find a match among 10^6 in two minutes); it gets one
guess, right once in a million.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from conf_cli.errors import ConfError, ProtocolError
from conf_cli.plugin.security import MediaCipher

MASTER_BYTES = 28  # AEAD_AES_128_GCM: 16-byte key + 12-byte salt
CHECK_KEY_BYTES = 20
SAS_BYTES = 4
INFO = b"conf call v1"
COMMITMENT_INFO = b"conf call commitment v1"


def encode_key(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_key(text: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise ProtocolError("a call key is not base64url") from None
    if len(raw) != 32:
        raise ProtocolError(f"a call key is {len(raw)} bytes, not 32")
    return raw


def commitment(public: str) -> str:
    """The commitment to a call public key: base64url (unpadded) of SHA-256(COMMITMENT_INFO || key)."""
    return encode_key(hashlib.sha256(COMMITMENT_INFO + decode_key(public)).digest())


def check_reveal(committed: str, public: str) -> None:
    """ProtocolError unless ``public`` is the key ``committed`` commits to."""
    if not hmac.compare_digest(commitment(public).encode(), committed.encode()):
        raise ProtocolError("the caller's key does not match the commitment it sent with its call")


class KeyPair:
    """One end's X25519 key pair for one call."""

    def __init__(self) -> None:
        self._private = X25519PrivateKey.generate()
        self.public = encode_key(self._private.public_key().public_bytes_raw())
        self.commitment = commitment(self.public)

    def derive(self, call_id: str, peer_public: str, *, caller: bool) -> CallKeys:
        """The call's keys, from our private key and the peer's public key (ProtocolError if it is bad)."""
        peer_raw = decode_key(peer_public)
        try:
            shared = self._private.exchange(X25519PublicKey.from_public_bytes(peer_raw))
        except ValueError:
            raise ProtocolError("the peer's call key is not a usable X25519 key") from None
        ours = decode_key(self.public)
        first, second = (ours, peer_raw) if caller else (peer_raw, ours)
        length = 2 * MASTER_BYTES + CHECK_KEY_BYTES + SAS_BYTES
        okm = HKDF(hashes.SHA256(), length, call_id.encode(), INFO + first + second).derive(shared)
        to_callee, to_caller = okm[:MASTER_BYTES], okm[MASTER_BYTES : 2 * MASTER_BYTES]
        check = okm[2 * MASTER_BYTES : 2 * MASTER_BYTES + CHECK_KEY_BYTES]
        sas = int.from_bytes(okm[-SAS_BYTES:], "big") % 1_000_000
        return CallKeys(
            send=to_callee if caller else to_caller,
            receive=to_caller if caller else to_callee,
            check=check,
            sas=f"{sas:06d}",
        )


@dataclass(frozen=True)
class CallKeys:
    send: bytes
    receive: bytes
    check: bytes
    sas: str


class SrtpPair:
    """Protects what we send and unprotects what we receive (RTP and RTCP), through the ``srtp`` cipher
    plugin that protects rtp:// links too; the call's own keys go in where a server's would."""

    PROFILE = "AEAD_AES_128_GCM"

    def __init__(self, keys: CallKeys, ciphers: Mapping[str, object]) -> None:
        cipher = ciphers.get("srtp")
        if not isinstance(cipher, MediaCipher):
            raise ConfError(
                "calls are encrypted with SRTP, and no 'srtp' cipher plugin is loaded (conf plugins)"
            )
        material = {"profile": self.PROFILE, "up": _b64(keys.send), "down": _b64(keys.receive)}
        self._session = cipher.session(material, server_side=False)  # up: what we send

    def protect(self, packet: bytes) -> bytes:
        """SRTP or SRTCP of a plain packet; ProtocolError if it cannot be protected."""
        try:
            protected = self._session.protect(packet)
        except Exception as exc:  # libsrtp's own error type stays inside the cipher plugin
            raise ProtocolError(f"cannot protect a media packet: {exc}") from None
        if protected is None:
            raise ProtocolError("cannot protect a media packet: its index was used for other bytes")
        return protected

    def unprotect(self, packet: bytes) -> bytes:
        """The plain packet; ProtocolError if it is not authentic (or a replay)."""
        plain = self._session.unprotect(packet)
        if plain is None:
            raise ProtocolError("media packet refused: not authentic, or a replay")
        return plain


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
