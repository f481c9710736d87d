"""Which RTP packets a publisher may send twice through SRTP, sans-I/O: those a receiver asked for again.

A receiver that misses a packet sends a generic NACK (RFC 4585); the publisher resends the packet with
its original sequence number. Under SRTP the server has already accepted that index from the publisher
(the loss was on the way to the receiver), so libsrtp's replay check would drop the resend. The server
therefore notes the sequence numbers in every NACK it forwards to a publisher over this transport, and a
packet that fails the replay check is given one more try, through a second session kept for resends, only
if its (SSRC, sequence number) was asked for in the last :data:`TTL` seconds; the note is used up then.
A replay of any packet nobody asked for stays dropped.
"""

from __future__ import annotations

from conf_cli import ProtocolError
from conf_cli.protocol.rtcp import Nack, parse_compound

TTL = 3.0
LIMIT = 8192
RTCP_RTPFB = 205


class Resends:
    def __init__(self, limit: int = LIMIT, ttl: float = TTL) -> None:
        self.limit = limit
        self.ttl = ttl
        self._asked: dict[tuple[int, int], float] = {}

    def __len__(self) -> int:
        return len(self._asked)

    def forwarded(self, packet: bytes, now: float) -> None:
        """An RTCP packet on its way to a publisher: note the sequence numbers its NACKs ask for."""
        if RTCP_RTPFB not in packet[1::4]:  # each part's type is at 4k + 1: no feedback, no NACK
            return
        try:
            parts = parse_compound(packet)
        except ProtocolError:
            return
        for part in parts:
            if isinstance(part, Nack):
                for seq in part.lost:
                    if len(self._asked) >= self.limit:
                        self.expire(now)
                        if len(self._asked) >= self.limit:
                            return
                    self._asked[(part.media_ssrc, seq)] = now + self.ttl

    def take(self, packet: bytes, now: float) -> bool:
        """True (once) if RTP ``packet`` (its header in clear, as in SRTP) was asked for again."""
        if len(packet) < 12:
            return False
        key = (int.from_bytes(packet[8:12], "big"), int.from_bytes(packet[2:4], "big"))
        expiry = self._asked.pop(key, None)
        return expiry is not None and expiry >= now

    def expire(self, now: float) -> None:
        for key, expiry in list(self._asked.items()):
            if expiry < now:
                del self._asked[key]
