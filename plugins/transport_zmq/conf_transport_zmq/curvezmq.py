"""CurveZMQ (RFC 26), both sides, sans-I/O: the handshake, then each frame in a ``MESSAGE`` box.

The handshake, in ZMTP commands: the client's ``HELLO`` (its short-term key C' and a box only the holder
of the server's key S can open), the server's ``WELCOME`` (its short-term key S' and a cookie, C' and s'
sealed with a key that lives as long as the connection), the client's ``INITIATE`` (the cookie back; its
long-term key C, a vouch that C stands behind C', and its metadata, in a box from C' to S'), the
server's ``READY`` (its metadata). Then each side seals every frame with the key of C' and S', under a
nonce that grows by one per frame: a frame replayed, reordered or changed fails to open, and the
connection ends. Byte for byte what libzmq's CURVE does (tested against pyzmq's sockets both ways).

The boxes are libsodium's ``crypto_box`` (X25519, XSalsa20, Poly1305) through PyNaCl.
"""

from __future__ import annotations

import os

import nacl.bindings as sodium
import nacl.exceptions
import nacl.utils

from conf_cli import ProtocolError

from . import zmtp

HELLO_SIZE = 200
WELCOME_SIZE = 168
INITIATE_MIN = 257
"""An INITIATE with empty metadata: its name, the cookie, a short nonce and the box of C, the vouch."""
READY_MIN = 6 + 8 + 16
MESSAGE = b"\x07MESSAGE"
MESSAGE_HEADER = len(MESSAGE) + 8
BOX_OVERHEAD = 16
OVERHEAD = MESSAGE_HEADER + BOX_OVERHEAD + 1
"""Bytes a frame grows by in its ``MESSAGE`` box: the name, the short nonce, the MAC, the flags."""
TO_CLIENT = b"CurveZMQMESSAGES"
TO_SERVER = b"CurveZMQMESSAGEC"

try:  # the compiled frame (setup.py builds it); the same bytes through PyNaCl otherwise
    from ._seal import open_frame as _open_frame
    from ._seal import seal_frame as _seal_frame
except ImportError:  # pragma: no cover - a tree built without libsodium's headers
    _seal_frame = _open_frame = None
if os.environ.get("CONF_PURE_PYTHON"):  # to compare the two (benchmarks/README.md)
    _seal_frame = _open_frame = None

_box = sodium.crypto_box_easy
_open = sodium.crypto_box_open_easy
_seal_after = sodium.crypto_box_easy_afternm
_open_after = sodium.crypto_box_open_easy_afternm


class CurveSession:
    """What both sides do once the handshake is done: seal each frame sent, open each frame received,
    each under a short nonce that grows by one (one that does not grow is refused)."""

    __slots__ = ("_key", "_open_prefix", "_received", "_seal_prefix", "_sent")

    def __init__(self, seal_prefix: bytes, open_prefix: bytes) -> None:
        self._seal_prefix = seal_prefix
        self._open_prefix = open_prefix
        self._key = b""
        self._sent = 0
        self._received = 0

    def _peer_nonce(self, raw: bytes) -> bytes:
        """Check a short nonce from the peer grows (RFC 26); return it."""
        value = int.from_bytes(raw, "big")
        if value <= self._received:
            raise ProtocolError("a CURVE nonce that does not grow: a replayed or reordered frame")
        self._received = value
        return raw

    def _next_nonce(self) -> bytes:
        self._sent += 1
        return self._sent.to_bytes(8, "big")

    def seal(self, flags: int, body: bytes) -> bytes:
        """A whole ZMTP frame carrying ``body`` (a frame with ``flags``: MORE, COMMAND) in a MESSAGE box."""
        return self.seal_prefixed(bytes((flags >> 1 & 0x02 | flags & zmtp.MORE,)) + body)

    def seal_prefixed(self, plain: bytes) -> bytes:
        """As :meth:`seal` for ``plain`` already led by its flags byte (one packet sealed for many links
        is prefixed once): one call of the compiled helper where it is built."""
        self._sent += 1
        if _seal_frame is not None:
            return _seal_frame(self._key, self._sent, plain, self._seal_prefix)
        return self.seal_in_python(plain)

    def seal_in_python(self, plain: bytes) -> bytes:
        """:meth:`seal_prefixed`'s frame built in Python, after the nonce has been counted."""
        nonce = self._sent.to_bytes(8, "big")
        box = _seal_after(plain, self._seal_prefix + nonce, self._key)
        return zmtp.frame_header(MESSAGE_HEADER + len(box)) + MESSAGE + nonce + box

    def open(self, body: bytes) -> tuple[int, bytes]:
        """Open a frame from the peer: its flags (as a frame's: MORE, COMMAND) and its body.
        ProtocolError if it is not a MESSAGE, its nonce does not grow, or it fails to open."""
        if len(body) < OVERHEAD or body[:8] != MESSAGE:
            raise ProtocolError("a frame that is not a CURVE MESSAGE")
        nonce = self._peer_nonce(body[8:16])
        if _open_frame is not None:
            opened = _open_frame(self._key, self._open_prefix, body)
            if opened is None:
                raise ProtocolError("a CURVE MESSAGE that does not open")
            return opened
        try:
            plain = _open_after(body[16:], self._open_prefix + nonce, self._key)
        except nacl.exceptions.CryptoError:
            raise ProtocolError("a CURVE MESSAGE that does not open") from None
        flags = plain[0]
        return (flags & zmtp.MORE) | (flags & 0x02) << 1, plain[1:]


class CurveServer(CurveSession):
    """One connection's CURVE state on the server: the handshake (:meth:`hello`, :meth:`initiate`,
    :meth:`ready`), then :meth:`seal` and :meth:`open`."""

    __slots__ = (
        "_client_transient",
        "_cookie_key",
        "_server_public",
        "_server_secret",
        "_transient_public",
        "_transient_secret",
        "client_key",
    )

    def __init__(self, server_public: bytes, server_secret: bytes) -> None:
        super().__init__(TO_CLIENT, TO_SERVER)
        self._server_public = server_public
        self._server_secret = server_secret
        self._client_transient = b""
        self._transient_public, self._transient_secret = sodium.crypto_box_keypair()
        self._cookie_key = nacl.utils.random(32)
        self.client_key = b""
        """The client's long-term public key, once its INITIATE has been opened."""

    def hello(self, body: bytes) -> bytes:
        """Open the client's HELLO; the WELCOME command to answer with. ProtocolError if it is not one that
        was sealed for this server's key."""
        if len(body) != HELLO_SIZE or body[:6] != b"\x05HELLO":
            raise ProtocolError("not a CURVE HELLO")
        if body[6:8] != b"\x01\x00":
            raise ProtocolError(f"CURVE version {body[6]}.{body[7]}, this server speaks 1.0")
        self._client_transient = body[80:112]
        nonce = self._peer_nonce(body[112:120])
        try:
            signature = _open(
                body[120:200], b"CurveZMQHELLO---" + nonce, self._client_transient, self._server_secret
            )
        except nacl.exceptions.CryptoError:
            raise ProtocolError("a HELLO not sealed for this server's key") from None
        if signature != bytes(64):
            raise ProtocolError("a HELLO whose signature box is not zeros")
        cookie_nonce = nacl.utils.random(16)
        cookie = cookie_nonce + sodium.crypto_secretbox_easy(
            self._client_transient + self._transient_secret, b"COOKIE--" + cookie_nonce, self._cookie_key
        )
        welcome_nonce = nacl.utils.random(16)
        welcome = _box(
            self._transient_public + cookie,
            b"WELCOME-" + welcome_nonce,
            self._client_transient,
            self._server_secret,
        )
        return zmtp.command(b"WELCOME", welcome_nonce + welcome)

    def initiate(self, body: bytes) -> dict[str, bytes]:
        """Open the client's INITIATE: its metadata (then answer with :meth:`ready`). ProtocolError if the
        cookie, the box or the vouch does not open or does not match this connection."""
        if len(body) < INITIATE_MIN or body[:9] != b"\x08INITIATE":
            raise ProtocolError("not a CURVE INITIATE")
        try:
            cookie = sodium.crypto_secretbox_open_easy(
                body[25:105], b"COOKIE--" + body[9:25], self._cookie_key
            )
        except nacl.exceptions.CryptoError:
            raise ProtocolError("an INITIATE whose cookie is not this connection's") from None
        if cookie != self._client_transient + self._transient_secret:
            raise ProtocolError("an INITIATE whose cookie is not this connection's")
        nonce = self._peer_nonce(body[105:113])
        try:
            plain = _open(
                body[113:], b"CurveZMQINITIATE" + nonce, self._client_transient, self._transient_secret
            )
        except nacl.exceptions.CryptoError:
            raise ProtocolError("an INITIATE box that does not open") from None
        client_key = plain[:32]
        try:
            vouch = _open(plain[48:128], b"VOUCH---" + plain[32:48], client_key, self._transient_secret)
        except nacl.exceptions.CryptoError:
            raise ProtocolError("an INITIATE whose vouch does not open") from None
        if vouch[:32] != self._client_transient or vouch[32:64] != self._server_public:
            raise ProtocolError("an INITIATE whose vouch is for another key")
        self.client_key = client_key
        self._key = sodium.crypto_box_beforenm(self._client_transient, self._transient_secret)
        self._transient_secret = b""  # the cookie can no longer be opened: a replayed INITIATE fails
        return zmtp.read_properties(plain[128:])

    def ready(self, metadata: bytes) -> bytes:
        """The READY command, carrying ``metadata`` (properties)."""
        nonce = self._next_nonce()
        return zmtp.command(b"READY", nonce + _seal_after(metadata, b"CurveZMQREADY---" + nonce, self._key))


class CurveClient(CurveSession):
    """One connection's CURVE state on the client: :meth:`hello`, :meth:`welcome` (which answers with the
    INITIATE), :meth:`ready`, then :meth:`seal` and :meth:`open`. Its long-term key pair is fresh for each
    connection: the server authenticates no client by key (conf's own login does that)."""

    __slots__ = ("_public", "_secret", "_server_public", "_transient_public", "_transient_secret")

    def __init__(self, server_public: bytes) -> None:
        super().__init__(TO_SERVER, TO_CLIENT)
        self._server_public = server_public
        self._public, self._secret = sodium.crypto_box_keypair()
        self._transient_public, self._transient_secret = sodium.crypto_box_keypair()

    def hello(self) -> bytes:
        """The HELLO command: C', and a box of zeros only the holder of the server's key opens."""
        nonce = self._next_nonce()
        box = _box(bytes(64), b"CurveZMQHELLO---" + nonce, self._server_public, self._transient_secret)
        return zmtp.command(b"HELLO", b"\x01\x00" + bytes(72) + self._transient_public + nonce + box)

    def welcome(self, body: bytes, metadata: bytes) -> bytes:
        """Open the server's WELCOME; the INITIATE command carrying ``metadata`` (properties).
        ProtocolError if it was not sealed by the holder of the server's key."""
        if len(body) != WELCOME_SIZE or body[:8] != b"\x07WELCOME":
            raise ProtocolError("not a CURVE WELCOME")
        try:
            plain = _open(body[24:], b"WELCOME-" + body[8:24], self._server_public, self._transient_secret)
        except nacl.exceptions.CryptoError:
            raise ProtocolError("a WELCOME not from the holder of the server's key") from None
        server_transient, cookie = plain[:32], plain[32:128]
        vouch_nonce = nacl.utils.random(16)
        vouch = _box(
            self._transient_public + self._server_public,
            b"VOUCH---" + vouch_nonce,
            server_transient,
            self._secret,
        )
        nonce = self._next_nonce()
        box = _box(
            self._public + vouch_nonce + vouch + metadata,
            b"CurveZMQINITIATE" + nonce,
            server_transient,
            self._transient_secret,
        )
        self._key = sodium.crypto_box_beforenm(server_transient, self._transient_secret)
        return zmtp.command(b"INITIATE", cookie + nonce + box)

    def ready(self, body: bytes) -> dict[str, bytes]:
        """Open the server's READY: its metadata. ProtocolError if it does not open."""
        if len(body) < READY_MIN or body[:6] != b"\x05READY":
            raise ProtocolError("not a CURVE READY")
        nonce = self._peer_nonce(body[6:14])
        try:
            plain = _open_after(body[14:], b"CurveZMQREADY---" + nonce, self._key)
        except nacl.exceptions.CryptoError:
            raise ProtocolError("a READY that does not open") from None
        return zmtp.read_properties(plain)
