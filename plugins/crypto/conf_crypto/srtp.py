"""SRTP and SRTCP (RFC 3711) through libsrtp (``pylibsrtp``), one key per link and direction.

The server makes each link's keys and sends them over the link's TLS control channel; the client
protects what it sends with the ``up`` key and checks what it receives with the ``down`` key. libsrtp's
replay window drops a packet whose index it has already accepted.

A packet resent after a NACK keeps its sequence number, so the sending side must be allowed to protect an
index twice (libsrtp's ``allow_repeat_tx``). With AES-GCM (and AES-CM) the nonce is made of the SSRC and the
index, so protecting *different* bytes under an index already used would reuse a key stream: it reveals the
XOR of the two plaintexts and, for GCM, lets the authentication key be recovered. :class:`SentIndexes`
therefore remembers, per SSRC, the packet protected under each of the last :data:`SEND_WINDOW` indexes, and
:meth:`SrtpSession.protect` refuses (returns None) a packet whose index was used for other bytes; protecting
the very same bytes again gives the very same output, which reveals nothing new.

With the default profile (AEAD_AES_128_GCM, RFC 7714) the sending side of RTP runs in the compiled
:mod:`._srtp_gcm` (OpenSSL's AES-GCM; built by ``make setup``): the same session keys (derived here as
libsrtp derives them, RFC 3711 section 4.3), the same rollover counter and the same
:class:`SentIndexes` rules, so its output is byte for byte libsrtp's, and
:meth:`SrtpCipher.batch_protector` protects one packet for a whole fan-out in one call. Without the
compiled module (or with ``CONF_PURE_PYTHON=1`` in the environment) libsrtp protects each packet, as
before. Checking and decrypting RTP runs there too (``Receiver``: libsrtp's replay window and the second
window for packets asked for again, the same verdicts). SRTCP and the other profile always go through
libsrtp.

AES-GCM itself runs in the compiled module's best engine for this CPU (:data:`ENGINES`): ``vaes`` (AVX-512
VAES and VPCLMULQDQ, a key's schedule and GHASH powers computed once) or ``openssl`` (OpenSSL's EVP).
``CONF_SRTP_ENGINE=openssl`` chooses OpenSSL's (for comparing the two; the bytes are the same).
"""

from __future__ import annotations

import base64
import functools
import os
import secrets
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import pylibsrtp
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from conf_cli import BatchProtect, ConfError, MediaCipher, MediaSession
from conf_cli.protocol.rtp import is_rtcp

NativeSender: Any
NativeReceiver: Any
protect_many: Any
ENGINES: tuple[str, ...]
"""The compiled module's AES-GCM engines on this CPU, the best first (empty without the module)."""
try:
    from ._srtp_gcm import ENGINES, protect_many
    from ._srtp_gcm import Receiver as NativeReceiver
    from ._srtp_gcm import Sender as NativeSender
except ImportError:  # not built: libsrtp protects each packet (the same bytes, more CPU)
    NativeSender = NativeReceiver = protect_many = None
    ENGINES = ()
if os.environ.get("CONF_PURE_PYTHON"):
    NativeSender = NativeReceiver = protect_many = None
    ENGINES = ()
ENGINE = os.environ.get("CONF_SRTP_ENGINE", "")
"""The AES-GCM engine the compiled sender and receiver use: one of :data:`ENGINES`, or "" for the best."""
if ENGINE and ENGINES and ENGINE not in ENGINES:
    raise ConfError(f"CONF_SRTP_ENGINE={ENGINE!r}: this build and CPU have {', '.join(ENGINES)}")

PROFILES = {
    "AEAD_AES_128_GCM": (pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 16 + 12),
    "AES_CM_128_HMAC_SHA1_80": (pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 16 + 14),
}
DEFAULT_PROFILE = "AEAD_AES_128_GCM"
REPLAY_WINDOW = 1024
RESEND_WINDOW = 0x7FFF  # libsrtp's largest: a resend may be far behind the newest resend
SEND_WINDOW = 512
"""Indexes behind the newest one sent that may be sent again (a publisher keeps 512 packets to resend)."""
MAX_SENT_SSRCS = 1024
"""SSRCs whose sent indexes are remembered at once, least recently used first out (a meeting holds at most
100 participants of 3 tracks); a stream evicted is refused from then on."""
MAX_PROTECT = 1500 - (16 + 128)
"""The longest packet protected: pylibsrtp's 1,500-byte buffer less libsrtp's largest trailer."""
TAG_BYTES = 16
"""What AEAD_AES_128_GCM adds to an RTP packet."""
LABEL_RTP_KEY = 0x00
LABEL_RTP_SALT = 0x02
MAX_UNPROTECT = 1500
"""The longest packet checked: pylibsrtp's buffer."""


def derive(master_key: bytes, master_salt: bytes, label: int, length: int) -> bytes:
    """An SRTP session key or salt (RFC 3711 section 4.3.1, key derivation rate 0), as libsrtp derives it:
    the AES-CM key stream under the master key, from (master salt, zero-padded to 14 bytes, with ``label``
    XORed into byte 7) followed by a 16-bit block counter."""
    block = bytearray(master_salt.ljust(14, b"\0") + b"\0\0")
    block[7] ^= label
    encryptor = Cipher(algorithms.AES(master_key), modes.ECB()).encryptor()
    stream = b""
    counter = 0
    while len(stream) < length:
        block[14:16] = counter.to_bytes(2, "big")
        stream += encryptor.update(bytes(block))
        counter += 1
    return stream[:length]


class SentIndexes:
    """The packets one SSRC's last :data:`SEND_WINDOW` indexes were protected with, sans-I/O.

    :meth:`allow` says whether a packet may be protected: a new index yes; an index already used only
    with the same bytes; an index older than the window no (libsrtp would refuse it too)."""

    __slots__ = ("_highest", "_size", "_slots")

    def __init__(self, size: int = SEND_WINDOW) -> None:
        self._size = size
        self._slots: list[bytes | None] = [None] * size
        self._highest = -1  # extended sequence number of the newest packet protected

    def allow(self, packet: bytes) -> bool:
        seq = packet[2] << 8 | packet[3]
        size, slots, highest = self._size, self._slots, self._highest
        if highest < 0:
            self._highest = seq
            slots[seq % size] = packet
            return True
        delta = (seq - highest + 0x8000) % 0x10000 - 0x8000  # signed distance from the newest
        index = highest + delta
        if delta > 0:
            if delta >= size:
                slots[:] = [None] * size
            else:
                for skipped in range(highest + 1, index):
                    slots[skipped % size] = None
            self._highest = index
            slots[index % size] = packet
            return True
        if -delta >= size:
            return False
        previous = slots[index % size]
        if previous is None:
            slots[index % size] = packet
            return True
        return previous is packet or previous == packet


class _RefuseAll(SentIndexes):
    def allow(self, packet: bytes) -> bool:
        return False


_REFUSE_ALL = _RefuseAll(1)


class SrtpSession(MediaSession):
    def __init__(self, profile: str, inbound: bytes, outbound: bytes) -> None:
        kind, size = PROFILES[profile]
        if len(inbound) != size or len(outbound) != size:
            raise ConfError(f"SRTP keys for {profile} have {size} bytes")
        rx = pylibsrtp.Policy(key=inbound, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND, srtp_profile=kind)
        rx.window_size = REPLAY_WINDOW
        resend = pylibsrtp.Policy(key=inbound, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND, srtp_profile=kind)
        resend.window_size = RESEND_WINDOW
        tx = pylibsrtp.Policy(key=outbound, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=kind)
        tx.allow_repeat_tx = True  # a packet resent on a NACK keeps its sequence number (see SentIndexes)
        tx.window_size = SEND_WINDOW
        self._rx = pylibsrtp.Session(rx)
        self._resent = pylibsrtp.Session(resend)  # a second replay window, for packets asked for again
        self._tx = pylibsrtp.Session(tx)
        self._sent: OrderedDict[bytes, SentIndexes] = OrderedDict()
        self._retired: set[bytes] = set()  # SSRCs evicted from _sent: their indexes are no longer known
        self._last_ssrc = b""  # the SSRC protected last, and its indexes: most packets follow their own
        self._last: SentIndexes = _REFUSE_ALL
        self.native: Any = None
        """The compiled RTP sender (``_srtp_gcm.Sender``) when it protects this session's RTP, or None."""
        if NativeSender is not None and profile == "AEAD_AES_128_GCM":
            key, salt = outbound[:16], outbound[16:]
            self.native = NativeSender(
                derive(key, salt, LABEL_RTP_KEY, 16),
                derive(key, salt, LABEL_RTP_SALT, 12),
                SEND_WINDOW,
                MAX_SENT_SSRCS,
                MAX_PROTECT,
                engine=ENGINE,
            )
        self.native_rx: Any = None
        """The compiled RTP receivers (``_srtp_gcm.Receiver``: the replay window, and the one for packets
        asked for again) when they check this session's RTP, or None."""
        self._native_resent: Any = None
        if NativeReceiver is not None and profile == "AEAD_AES_128_GCM":
            key, salt = inbound[:16], inbound[16:]
            session_key, session_salt = (
                derive(key, salt, LABEL_RTP_KEY, 16),
                derive(key, salt, LABEL_RTP_SALT, 12),
            )
            self.native_rx = NativeReceiver(
                session_key, session_salt, REPLAY_WINDOW, MAX_UNPROTECT, engine=ENGINE
            )
            self._native_resent = NativeReceiver(
                session_key, session_salt, RESEND_WINDOW, MAX_UNPROTECT, engine=ENGINE
            )
        self.rejected = 0
        self._refused = 0

    @property
    def refused(self) -> int:
        """Packets :meth:`protect` refused: an index already used for other bytes, or too old."""
        return self._refused + (self.native.refused if self.native is not None else 0)

    def protect(self, packet: bytes) -> bytes | None:
        """The SRTP (SRTCP) packet, or None if it must not be sent: its index was protected before with
        other bytes, or libsrtp refuses it (an index too far behind the newest)."""
        try:
            if is_rtcp(packet):
                return self._tx.protect_rtcp(packet)  # SRTCP numbers each packet itself: no repeats
            if self.native is not None:
                return self.native.protect(packet if type(packet) is bytes else bytes(packet))
            ssrc = packet[8:12]
            sent = self._last if ssrc == self._last_ssrc else self._sent_indexes(ssrc)
            if not sent.allow(packet):
                self._refused += 1
                return None
            return self._tx.protect(packet)
        except (pylibsrtp.Error, ValueError):  # ValueError: longer than libsrtp's buffer
            self._refused += 1
            return None

    def _sent_indexes(self, ssrc: bytes) -> SentIndexes:
        """The sent indexes of ``ssrc`` (4 bytes, as in the header), most recently used last."""
        sent = self._sent.get(ssrc)
        if sent is not None:
            self._sent.move_to_end(ssrc)
        elif ssrc in self._retired or len(ssrc) != 4:
            sent = _REFUSE_ALL
        else:
            sent = self._sent[ssrc] = SentIndexes()
            if len(self._sent) > MAX_SENT_SSRCS:
                old, _ = self._sent.popitem(last=False)
                self._retired.add(old)
                if old == self._last_ssrc:
                    self._last_ssrc = b""
        self._last_ssrc, self._last = ssrc, sent
        return sent

    def unprotect(self, packet: bytes, *, resent: bool = False) -> bytes | None:
        if self.native_rx is not None and not is_rtcp(packet):
            data = packet if type(packet) is bytes else bytes(packet)
            clear: bytes | None = self.native_rx.unprotect(data)
            if clear is None and resent:
                clear = self._native_resent.unprotect(data)
            if clear is None:
                self.rejected += 1
            return clear
        try:
            if is_rtcp(packet):
                return self._rx.unprotect_rtcp(packet)
            return self._rx.unprotect(packet)
        except pylibsrtp.Error:
            if resent and not is_rtcp(packet):
                try:
                    return self._resent.unprotect(packet)
                except pylibsrtp.Error:
                    pass
            self.rejected += 1
            return None


class SrtpCipher(MediaCipher):
    name = "srtp"
    description = "SRTP/SRTCP via libsrtp (AEAD_AES_128_GCM), keyed over the TLS control channel"

    def __init__(self, profile: str = DEFAULT_PROFILE) -> None:
        self.profile = profile

    def new_keys(self) -> dict[str, str]:
        size = PROFILES[self.profile][1]
        return {
            "profile": self.profile,
            "up": base64.b64encode(secrets.token_bytes(size)).decode(),
            "down": base64.b64encode(secrets.token_bytes(size)).decode(),
        }

    def batch_protector(self, sessions: Sequence[MediaSession]) -> BatchProtect | None:
        """One compiled call for the whole fan-out when every session protects RTP natively; else None."""
        senders = []
        for session in sessions:
            native = session.native if isinstance(session, SrtpSession) else None
            if native is None or protect_many is None:
                return None
            senders.append(native)
        return functools.partial(protect_many, tuple(senders))

    def session(self, keys: Mapping[str, Any], *, server_side: bool) -> SrtpSession:
        profile = keys.get("profile")
        if profile not in PROFILES:
            raise ConfError(f"the server offers SRTP profile {profile!r}, which this client does not know")
        try:
            up = base64.b64decode(str(keys.get("up")), validate=True)
            down = base64.b64decode(str(keys.get("down")), validate=True)
        except ValueError:
            raise ConfError("the server sent SRTP keys that are not base64") from None
        if server_side:
            return SrtpSession(profile, inbound=up, outbound=down)
        return SrtpSession(profile, inbound=down, outbound=up)
