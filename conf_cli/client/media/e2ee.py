"""SFrame on RTP payloads: what the publisher encrypts and the receiver decrypts in an E2EE meeting.

Each RTP packet's payload (an Opus packet, or one H.264 RTP payload: a single NAL unit, a STAP-A or a FU-A
fragment) is replaced by its SFrame ciphertext; the RTP header stays in the clear, so the server still
routes on the SSRC and RTCP feedback (PLI, FIR, NACK, reports) is untouched. The SFrame metadata (the AEAD's
additional data after the SFrame header) is the marker bit, payload type, sequence number, timestamp and
SSRC, so a payload cannot be moved to another place in the stream, nor to another stream, unnoticed.
docs/protocol.md ("End-to-end encrypted media") says why per payload rather than per frame.
"""

from __future__ import annotations

from conf_cli.client.keyring import KeyRing
from conf_cli.protocol.rtp import RtpPacket
from conf_cli.protocol.sframe import rtp_metadata

__all__ = ["protect", "rtp_metadata", "unprotect"]


def protect(keys: KeyRing, data: bytes) -> bytes:
    """An RTP packet with its payload encrypted under our current sender key."""
    packet = RtpPacket.parse(data)
    packet.payload = keys.encrypt(packet.payload, rtp_metadata(packet))
    return bytes(packet)


def unprotect(keys: KeyRing, packet: RtpPacket, sender: str) -> RtpPacket:
    """``packet`` with its payload decrypted; raises SFrameError (UnknownKey while its key is missing)."""
    packet.payload = keys.decrypt(packet.payload, rtp_metadata(packet), sender)
    return packet
