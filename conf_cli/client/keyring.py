"""End-to-end encryption keys of one participant: X25519 agreement, SFrame sender keys, security code.

Sans-I/O: the client's edge feeds a :class:`KeyRing` the meeting's events and sends the messages it
returns; media payloads go through :meth:`KeyRing.encrypt` and :meth:`KeyRing.decrypt`.

The scheme (docs/security.md, "End-to-end encryption"):

- Every participant makes an X25519 key pair for the meeting and sends the public half in its ``create``
  or ``join``; the server hands everyone's public keys round in the meeting's snapshot and in
  ``participant_joined``, and keeps no private key.
- Every participant encrypts what it sends with its own SFrame *sender key* (a random base key under a
  random 32-bit KID, suite AES_128_GCM_SHA256_128). It seals that key for each other participant apart: a
  pairwise key from X25519 and HKDF-SHA256 over both public keys, AES-256-GCM, the meeting ID and both
  public keys as additional data, and a sequence number that must rise so that an old sealed key cannot be
  replayed. The server relays each sealed key (``e2ee_keys`` in, ``e2ee_key`` out) to its one recipient.
- Whenever someone joins or leaves, every participant makes a new sender key and seals it for those
  present: a newcomer cannot read what was sent before it came, a leaver nothing sent after it left.
  A receiver retires a sender's older keys as soon as a frame under a newer one arrives.
- The security code is a hash of the meeting ID and every participant's name with its public key, in
  groups of digits: the same on every screen unless someone (the server) substituted a key or swapped
  whose key is whose.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Callable, Iterable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from conf_cli.errors import ProtocolError
from conf_cli.protocol.sframe import AES_128_GCM_SHA256_128, ReceiveContext, SendContext

Message = dict[str, Any]
RandomBytes = Callable[[int], bytes]

SUITE = AES_128_GCM_SHA256_128
PUBLIC_KEY_BYTES = 32
BASE_KEY_BYTES = 16
NONCE_BYTES = 12
KEYS_PER_SENDER = 4  # a sender's keys a receiver holds at once (the newest)
CODE_GROUPS = 6  # security code: groups of 5 digits
_PAIRWISE_INFO = b"conf e2ee pairwise v1"
_BOX_AAD = b"conf e2ee sender key v1"
_CODE_LABEL = b"conf e2ee security code v2"


class E2eeError(ProtocolError):
    """A public key, sealed key or media frame that cannot be used."""


def new_private_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def public_bytes(private: X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def encode_key(raw: bytes) -> str:
    """A public key as it travels in control messages: standard base64 of its 32 bytes."""
    return base64.b64encode(raw).decode()


def decode_key(text: object, where: str = "e2ee key") -> bytes:
    """The 32 bytes of a base64 public key; E2eeError with a one-line reason otherwise."""
    if not isinstance(text, str) or len(text) != 44:
        raise E2eeError(f"{where} must be 44 base64 characters (a 32-byte X25519 public key)")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise E2eeError(f"{where} is not valid base64") from None
    if len(raw) != PUBLIC_KEY_BYTES:
        raise E2eeError(f"{where} must decode to {PUBLIC_KEY_BYTES} bytes")
    return raw


def security_code(meeting: str, participants: Iterable[tuple[str, bytes]]) -> str:
    """Groups of five digits from the meeting ID and every participant's name with its public key
    (in any order): a server that gives anyone another key, or tells anyone that a key is someone
    else's, changes the code on that screen."""
    entries = sorted(_length_prefixed(name.encode()) + key for name, key in participants)
    digest = hashlib.sha256(_CODE_LABEL + _length_prefixed(meeting.encode()) + b"".join(entries)).digest()
    groups = [int.from_bytes(digest[5 * i : 5 * i + 5], "big") % 100_000 for i in range(CODE_GROUPS)]
    return " ".join(f"{g:05d}" for g in groups)


def _length_prefixed(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


class KeyRing:
    """One participant's keys in one end-to-end encrypted meeting."""

    def __init__(
        self,
        meeting: str,
        me: str,
        private: X25519PrivateKey,
        random_bytes: RandomBytes = os.urandom,
    ) -> None:
        self.meeting = meeting
        self.me = me
        self._private = private
        self.public = public_bytes(private)
        self._random = random_bytes
        self.peers: dict[str, bytes] = {}  # name -> public key
        self._pairwise: dict[str, AESGCM] = {}
        self._sent = 0  # sealed-key sequence number
        self._heard: dict[str, int] = {}  # name -> highest sequence number opened
        self._in_use: dict[str, int] = {}  # name -> the KID of its newest frame
        self.receive = ReceiveContext(SUITE)
        self.sender: SendContext | None = None
        self.rekeys = 0
        self.unusable: list[str] = []

    # -- membership ---------------------------------------------------------------------------------

    def start(self, participants: Iterable[Message]) -> Message | None:
        """Everyone already in the meeting (``joined``'s ``participants``): learn their keys, send ours.

        A participant whose key cannot be used is left out (and stays unreadable); :attr:`unusable` says why.
        """
        for participant in participants:
            name = participant.get("name")
            if isinstance(name, str) and name != self.me:
                try:
                    self._add_peer(name, participant.get("key"))
                except E2eeError as exc:
                    self.unusable.append(str(exc))
        return self.rekey()

    def peer_joined(self, name: str, key: object) -> Message | None:
        self._add_peer(name, key)
        return self.rekey()

    def peer_left(self, name: str) -> Message | None:
        """Forget ``name`` and its keys; a new sender key for those still here."""
        if self.peers.pop(name, None) is None:
            return None
        self._pairwise.pop(name, None)
        self._heard.pop(name, None)
        self._in_use.pop(name, None)
        for kid in self.receive.kids(name):
            self.receive.remove_key(kid)
        return self.rekey()

    def _add_peer(self, name: str, key: object) -> None:
        raw = decode_key(key, f"{name}'s e2ee key")
        if raw == self.public:
            raise E2eeError(f"{name}'s e2ee key is the same as ours")
        self.peers[name] = raw
        self._pairwise.pop(name, None)
        self._heard.pop(name, None)
        self._in_use.pop(name, None)
        try:
            self._box_key(name)
        except E2eeError:
            del self.peers[name]
            raise
        for kid in self.receive.kids(name):  # a name used again is a new participant
            self.receive.remove_key(kid)

    def security_code(self) -> str:
        return security_code(self.meeting, [(self.me, self.public), *self.peers.items()])

    # -- sender keys --------------------------------------------------------------------------------

    def rekey(self) -> Message | None:
        """A new sender key, sealed for every peer: the ``e2ee_keys`` request to send (None if alone)."""
        base_key = self._random(BASE_KEY_BYTES)
        kid = int.from_bytes(self._random(4), "big")
        while self.receive.owner(kid) is not None:  # a peer's KID: receivers would refuse ours
            kid = int.from_bytes(self._random(4), "big")
        self.sender = SendContext(SUITE, kid, base_key)
        self.rekeys += 1
        self._sent += 1
        keys = [
            {"to": name, "box": self._seal(name, self._sent, kid, base_key)} for name in sorted(self.peers)
        ]
        return {"type": "e2ee_keys", "keys": keys} if keys else None

    def _box_key(self, name: str) -> AESGCM:
        box = self._pairwise.get(name)
        if box is None:
            theirs = self.peers[name]
            try:
                shared = self._private.exchange(X25519PublicKey.from_public_bytes(theirs))
            except ValueError:  # a low-order point: no shared secret
                raise E2eeError(f"{name}'s e2ee key is not usable") from None
            low, high = sorted((self.public, theirs))
            key = HKDF(hashes.SHA256(), 32, None, _PAIRWISE_INFO + low + high).derive(shared)
            box = self._pairwise[name] = AESGCM(key)
        return box

    def _aad(self, sender: bytes, recipient: bytes) -> bytes:
        return _BOX_AAD + self.meeting.encode() + b"\0" + sender + recipient

    def _seal(self, name: str, seq: int, kid: int, base_key: bytes) -> str:
        nonce = self._random(NONCE_BYTES)
        plain = seq.to_bytes(8, "big") + kid.to_bytes(8, "big") + base_key
        sealed = self._box_key(name).encrypt(nonce, plain, self._aad(self.public, self.peers[name]))
        return base64.b64encode(nonce + sealed).decode()

    def open(self, sender: str, box: object) -> int:
        """Install the sender key ``sender`` sealed for us; return its KID. E2eeError if unusable."""
        if sender not in self.peers:
            raise E2eeError(f"a sealed key from {sender!r}, who is not in the meeting")
        if not isinstance(box, str) or len(box) > 256:
            raise E2eeError(f"the sealed key from {sender} is not a short string")
        try:
            raw = base64.b64decode(box, validate=True)
        except (binascii.Error, ValueError):
            raise E2eeError(f"the sealed key from {sender} is not valid base64") from None
        if len(raw) != NONCE_BYTES + 16 + BASE_KEY_BYTES + 16:
            raise E2eeError(f"the sealed key from {sender} has the wrong length")
        try:
            plain = self._box_key(sender).decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], self._aad(self.peers[sender], self.public)
            )
        except InvalidTag:
            raise E2eeError(f"the sealed key from {sender} does not open with our keys") from None
        seq, kid, base_key = int.from_bytes(plain[:8], "big"), int.from_bytes(plain[8:16], "big"), plain[16:]
        if seq <= self._heard.get(sender, 0):
            raise E2eeError(f"the sealed key from {sender} is older than one already received")
        owner = self.receive.owner(kid)
        if owner is not None and owner != sender:
            raise E2eeError(f"{sender}'s new key reuses the key ID of {owner}'s")
        self._heard[sender] = seq
        self.receive.add_key(kid, base_key, owner=sender)
        held = self.receive.kids(sender)
        for old in held[: max(0, len(held) - KEYS_PER_SENDER)]:
            self.receive.remove_key(old)
        return kid

    # -- media --------------------------------------------------------------------------------------

    def encrypt(self, payload: bytes, metadata: bytes = b"") -> bytes:
        if self.sender is None:
            raise E2eeError("no sender key yet")
        return self.sender.encrypt(payload, metadata)

    def decrypt(self, frame: bytes, metadata: bytes, sender: str) -> bytes:
        """The plaintext of a frame from ``sender``; UnknownKey while its key has not arrived."""
        result = self.receive.decrypt(frame, metadata)
        if result.owner != sender:
            raise E2eeError(f"a frame on {sender}'s track under {result.owner}'s key")
        if self._in_use.get(sender) != result.kid:  # the first frame under this key
            self._in_use[sender] = result.kid
            held = self.receive.kids(sender)
            for old in held[: held.index(result.kid)]:  # the sender has moved on from its older keys
                self.receive.remove_key(old)
        return result.plaintext
