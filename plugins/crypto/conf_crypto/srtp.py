"""SRTP and SRTCP (RFC 3711) through libsrtp (``pylibsrtp``), one key per link and direction.

The server makes each link's keys and sends them over the link's TLS control channel; the client
protects what it sends with the ``up`` key and checks what it receives with the ``down`` key. libsrtp's
replay window drops a packet whose index it has already accepted.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from typing import Any

import pylibsrtp

from conf_cli.errors import ConfError
from conf_cli.security import MediaCipher, MediaSession

PROFILES = {
    "AEAD_AES_128_GCM": (pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 16 + 12),
    "AES_CM_128_HMAC_SHA1_80": (pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 16 + 14),
}
DEFAULT_PROFILE = "AEAD_AES_128_GCM"
REPLAY_WINDOW = 1024
RESEND_WINDOW = 0x7FFF  # libsrtp's largest: a resend may be far behind the newest resend


def is_rtcp(packet: bytes) -> bool:
    """RTCP packet types 200-223 share the port with RTP (RFC 5761): their second byte is 192-223."""
    return len(packet) >= 2 and 192 <= packet[1] <= 223


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
        tx.allow_repeat_tx = True  # a packet resent on a NACK keeps its sequence number
        self._rx = pylibsrtp.Session(rx)
        self._resent = pylibsrtp.Session(resend)  # a second replay window, for packets asked for again
        self._tx = pylibsrtp.Session(tx)
        self.rejected = 0

    def protect(self, packet: bytes) -> bytes:
        if is_rtcp(packet):
            return self._tx.protect_rtcp(packet)
        return self._tx.protect(packet)

    def unprotect(self, packet: bytes, *, resent: bool = False) -> bytes | None:
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
