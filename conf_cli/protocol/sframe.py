"""SFrame (RFC 9605): the header, key and salt derivation, the AEAD suites, and per-sender contexts.

Sans-I/O: bytes in, bytes out. An SFrame ciphertext is ``header || AEAD(plaintext)``; the header carries
the key ID (KID) that picks the key and the counter (CTR) that makes the nonce. Both are encoded in the
fewest bytes (at most 8 each, as the format allows). The AEAD's additional data is the header followed by
the caller's *metadata* (conf binds the RTP header to each payload this way, see docs/protocol.md).

Every suite of RFC 9605 section 4.5 is here: ``AES_128_CTR_HMAC_SHA256_80/64/32`` (AES-CTR with a
truncated HMAC tag, section 4.5.1) and ``AES_128_GCM_SHA256_128`` / ``AES_256_GCM_SHA512_128``.

:class:`SendContext` encrypts with one key and a counter that never repeats; :class:`ReceiveContext`
holds a bounded number of keys and, per key (one key belongs to one sender), a window that refuses
replayed or duplicated counters. Bad input raises :class:`SFrameError` (a
:class:`~conf_cli.errors.ProtocolError`); a KID with no key raises its subclass :class:`UnknownKey`.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from conf_cli.errors import ProtocolError

if TYPE_CHECKING:
    from conf_cli.protocol.rtp import RtpPacket

MAX_KID = (1 << 64) - 1
MAX_CTR = (1 << 64) - 1
MAX_HEADER = 17  # config byte, 8 KID bytes, 8 CTR bytes
REPLAY_WINDOW = 256  # counters below the highest seen by more than this are refused
MAX_KEYS = 512  # keys a receive context holds at once (a full meeting: 99 senders, 4 keys each)


class SFrameError(ProtocolError):
    """An SFrame that cannot be parsed, decrypted or authenticated."""


class UnknownKey(SFrameError):
    """An SFrame whose KID has no key here (yet)."""

    def __init__(self, kid: int) -> None:
        super().__init__(f"no key for SFrame KID {kid}")
        self.kid = kid


@dataclass(frozen=True)
class CipherSuite:
    """One row of RFC 9605 section 8.1: sizes in bytes, HKDF hash, and whether the AEAD is AES-GCM."""

    id: int
    name: str
    nk: int  # key
    nn: int  # nonce
    nt: int  # tag
    hash: str  # hashlib's name: sha256, sha512
    gcm: bool

    @property
    def overhead(self) -> int:
        """The most bytes an SFrame adds to a plaintext (longest header and tag)."""
        return MAX_HEADER + self.nt


AES_128_CTR_HMAC_SHA256_80 = CipherSuite(1, "AES_128_CTR_HMAC_SHA256_80", 48, 12, 10, "sha256", False)
AES_128_CTR_HMAC_SHA256_64 = CipherSuite(2, "AES_128_CTR_HMAC_SHA256_64", 48, 12, 8, "sha256", False)
AES_128_CTR_HMAC_SHA256_32 = CipherSuite(3, "AES_128_CTR_HMAC_SHA256_32", 48, 12, 4, "sha256", False)
AES_128_GCM_SHA256_128 = CipherSuite(4, "AES_128_GCM_SHA256_128", 16, 12, 16, "sha256", True)
AES_256_GCM_SHA512_128 = CipherSuite(5, "AES_256_GCM_SHA512_128", 32, 12, 16, "sha512", True)
SUITES = {
    s.id: s
    for s in (
        AES_128_CTR_HMAC_SHA256_80,
        AES_128_CTR_HMAC_SHA256_64,
        AES_128_CTR_HMAC_SHA256_32,
        AES_128_GCM_SHA256_128,
        AES_256_GCM_SHA512_128,
    )
}
_CTR_KEY_BYTES = 16  # AES-128 in every CTR+HMAC suite; the rest of the key is the HMAC key


def suite(suite_id: int) -> CipherSuite:
    try:
        return SUITES[suite_id]
    except KeyError:
        raise SFrameError(f"unknown SFrame cipher suite {suite_id:#06x}") from None


# -- header (RFC 9605 section 4.3) -----------------------------------------------------------------------


def _min_bytes(value: int) -> int:
    return max(1, (value.bit_length() + 7) // 8)


def encode_header(kid: int, ctr: int) -> bytes:
    """The SFrame header for ``kid`` and ``ctr``: values below 8 inline, longer ones in 1..8 bytes."""
    if not 0 <= kid <= MAX_KID:
        raise SFrameError(f"SFrame KID {kid} is out of range 0..2^64-1")
    if not 0 <= ctr <= MAX_CTR:
        raise SFrameError(f"SFrame CTR {ctr} is out of range 0..2^64-1")
    config = 0
    tail = b""
    if kid < 8:
        config |= kid << 4
    else:
        n = _min_bytes(kid)
        config |= 0x80 | (n - 1) << 4
        tail += kid.to_bytes(n, "big")
    if ctr < 8:
        config |= ctr
    else:
        n = _min_bytes(ctr)
        config |= 0x08 | (n - 1)
        tail += ctr.to_bytes(n, "big")
    return bytes([config]) + tail


def parse_header(data: bytes | memoryview) -> tuple[int, int, int]:
    """``(kid, ctr, header length)`` of the SFrame at the start of ``data``."""
    if not data:
        raise SFrameError("SFrame is empty")
    config = data[0]
    at = 1
    if config & 0x80:
        n = ((config >> 4) & 0x07) + 1
        if len(data) < at + n:
            raise SFrameError(f"SFrame header is cut short: its KID needs {n} bytes")
        kid = int.from_bytes(data[at : at + n], "big")
        at += n
    else:
        kid = (config >> 4) & 0x07
    if config & 0x08:
        n = (config & 0x07) + 1
        if len(data) < at + n:
            raise SFrameError(f"SFrame header is cut short: its CTR needs {n} bytes")
        ctr = int.from_bytes(data[at : at + n], "big")
        at += n
    else:
        ctr = config & 0x07
    return kid, ctr, at


# -- key schedule (RFC 9605 section 4.4.2) ---------------------------------------------------------------


_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"sha256": hashes.SHA256, "sha512": hashes.SHA512}


def _hkdf_extract(algorithm: str, salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt or bytes(hashlib.new(algorithm).digest_size), ikm, algorithm).digest()


def _hkdf_expand(algorithm: str, prk: bytes, info: bytes, length: int) -> bytes:
    return HKDFExpand(_HASHES[algorithm](), length, info).derive(prk)


def derive_key_salt(cs: CipherSuite, kid: int, base_key: bytes) -> tuple[bytes, bytes]:
    """``(sframe_key, sframe_salt)`` for a base key assigned to ``kid``."""
    if not base_key:
        raise SFrameError("SFrame base key is empty")
    secret = _hkdf_extract(cs.hash, b"", base_key)
    context = kid.to_bytes(8, "big") + cs.id.to_bytes(2, "big")
    key = _hkdf_expand(cs.hash, secret, b"SFrame 1.0 Secret key " + context, cs.nk)
    salt = _hkdf_expand(cs.hash, secret, b"SFrame 1.0 Secret salt " + context, cs.nn)
    return key, salt


# -- AEAD (RFC 9605 section 4.5) -------------------------------------------------------------------------


class Aead:
    """One suite's AEAD with one key; the AES-GCM object is built once, not per frame."""

    def __init__(self, cs: CipherSuite, key: bytes) -> None:
        if len(key) != cs.nk:
            raise SFrameError(f"{cs.name} needs a {cs.nk}-byte key, not {len(key)} bytes")
        self.suite = cs
        self._gcm = AESGCM(key) if cs.gcm else None
        self._enc_key = key[:_CTR_KEY_BYTES]
        self._auth_key = key[_CTR_KEY_BYTES:]

    def _tag(self, nonce: bytes, aad: bytes, ct: bytes) -> bytes:
        nt = self.suite.nt
        lengths = len(aad).to_bytes(8, "big") + len(ct).to_bytes(8, "big") + nt.to_bytes(8, "big")
        mac = hmac.new(self._auth_key, lengths + nonce + aad + ct, self.suite.hash)
        return mac.digest()[:nt]

    def _ctr(self, nonce: bytes, data: bytes) -> bytes:
        crypt = Cipher(algorithms.AES(self._enc_key), modes.CTR(nonce + bytes(4))).encryptor()
        return crypt.update(data) + crypt.finalize()

    def encrypt(self, nonce: bytes, aad: bytes, plaintext: bytes) -> bytes:
        if self._gcm is not None:
            return self._gcm.encrypt(nonce, plaintext, aad)
        ct = self._ctr(nonce, plaintext)
        return ct + self._tag(nonce, aad, ct)

    def decrypt(self, nonce: bytes, aad: bytes, ciphertext: bytes) -> bytes:
        nt = self.suite.nt
        if len(ciphertext) < nt:
            raise SFrameError(f"SFrame ciphertext of {len(ciphertext)} bytes is shorter than its tag")
        if self._gcm is not None:
            try:
                return self._gcm.decrypt(nonce, ciphertext, aad)
            except InvalidTag:
                raise SFrameError("SFrame authentication failed") from None
        ct, tag = ciphertext[:-nt], ciphertext[-nt:]
        if not hmac.compare_digest(tag, self._tag(nonce, aad, ct)):
            raise SFrameError("SFrame authentication failed")
        return self._ctr(nonce, ct)


@dataclass
class _Key:
    kid: int
    aead: Aead
    salt: int
    owner: Any = None
    highest: int = -1  # highest counter accepted
    seen: int = 0  # bit i: counter highest - i was accepted

    def nonce(self, ctr: int) -> bytes:
        return (self.salt ^ ctr).to_bytes(self.aead.suite.nn, "big")


def _key(cs: CipherSuite, kid: int, base_key: bytes, owner: Any = None) -> _Key:
    key, salt = derive_key_salt(cs, kid, base_key)
    return _Key(kid, Aead(cs, key), int.from_bytes(salt, "big"), owner)


class SendContext:
    """Encrypts with one base key under one KID, counting up from ``ctr``."""

    def __init__(self, cs: CipherSuite, kid: int, base_key: bytes, ctr: int = 0) -> None:
        if not 0 <= kid <= MAX_KID:
            raise SFrameError(f"SFrame KID {kid} is out of range 0..2^64-1")
        self.suite = cs
        self.kid = kid
        self.ctr = ctr
        self._key = _key(cs, kid, base_key)

    def encrypt(self, plaintext: bytes, metadata: bytes = b"") -> bytes:
        ctr = self.ctr
        if ctr > MAX_CTR:
            raise SFrameError("SFrame counter exhausted: a new key is needed")
        self.ctr = ctr + 1
        header = encode_header(self.kid, ctr)
        return header + self._key.aead.encrypt(self._key.nonce(ctr), header + metadata, plaintext)


@dataclass
class Decrypted:
    plaintext: bytes
    kid: int
    ctr: int
    owner: Any


@dataclass
class ReceiveContext:
    """Keys by KID (at most :data:`MAX_KEYS`), each with its own replay window."""

    suite: CipherSuite
    _keys: dict[int, _Key] = field(default_factory=dict)

    def add_key(self, kid: int, base_key: bytes, owner: Any = None) -> None:
        """Accept frames under ``kid``; ``owner`` (say, a sender's name) is handed back with each one."""
        if not 0 <= kid <= MAX_KID:
            raise SFrameError(f"SFrame KID {kid} is out of range 0..2^64-1")
        if kid not in self._keys and len(self._keys) >= MAX_KEYS:
            raise SFrameError(f"more than {MAX_KEYS} SFrame keys at once")
        self._keys[kid] = _key(self.suite, kid, base_key, owner)

    def remove_key(self, kid: int) -> None:
        self._keys.pop(kid, None)

    def kids(self, owner: Any = None) -> list[int]:
        """The KIDs held (for ``owner`` only, when given), oldest first."""
        return [k.kid for k in self._keys.values() if owner is None or k.owner == owner]

    def owner(self, kid: int) -> Any:
        key = self._keys.get(kid)
        return None if key is None else key.owner

    def decrypt(self, data: bytes, metadata: bytes = b"") -> Decrypted:
        """Authenticate and decrypt one SFrame; a replayed or too old counter is refused."""
        kid, ctr, at = parse_header(data)
        key = self._keys.get(kid)
        if key is None:
            raise UnknownKey(kid)
        age = key.highest - ctr
        if age >= REPLAY_WINDOW:
            raise SFrameError(f"SFrame CTR {ctr} is older than the replay window")
        if age >= 0 and key.seen >> age & 1:
            raise SFrameError(f"SFrame CTR {ctr} was already received (a replay or duplicate)")
        header = bytes(data[:at])
        plaintext = key.aead.decrypt(key.nonce(ctr), header + metadata, bytes(data[at:]))
        if age < 0:  # a new highest counter: slide the window
            key.seen = ((key.seen << -age) | 1) & ((1 << REPLAY_WINDOW) - 1) if -age < REPLAY_WINDOW else 1
            key.highest = ctr
        else:
            key.seen |= 1 << age
        return Decrypted(plaintext, kid, ctr, key.owner)


# -- conf's binding of an SFrame to its RTP packet (docs/protocol.md, "End-to-end encrypted media") --------

RTP_METADATA = struct.Struct("!BHII")
"""The RTP header fields an SFrame payload is bound to: ``M << 7 | PT``, sequence number, timestamp, SSRC."""


def rtp_metadata(packet: RtpPacket) -> bytes:
    """The SFrame metadata (11 bytes) of an RTP packet whose payload is, or will be, an SFrame."""
    first = (0x80 if packet.marker else 0) | packet.payload_type
    return RTP_METADATA.pack(first, packet.sequence_number, packet.timestamp, packet.ssrc)
