"""The server's side of a publisher's congestion control, sans-I/O: RFC 8888 feedback about its uplink.

The server is the first hop of a publisher's media, so it is where the publisher's uplink ends: when a
publisher asks for it (``"feedback": "ccfb"`` in ``publish``), the server notes when each RTP packet of that
track arrives (:meth:`UplinkFeedback.arrived`) and, at most every :data:`REPORT_INTERVAL` seconds (or when
:data:`MAX_REPORTED` packets wait), answers with an RFC 8888 report
(:class:`~conf_cli.protocol.rtcp.CongestionFeedback`) for the publisher alone: which sequence numbers since
the last report arrived and when, and which did not. A simulcast track's report has a block for each of its
layers' SSRCs. Reports ride on arrivals (no timer): a publisher whose
packets stop arriving hears nothing, and backs off for that (:mod:`conf_cli.media.congestion`).

Times are the server's ``now`` (any monotonic clock): the report timestamp is ``now`` in 1/65536 s (as a
compact NTP time), arrival offsets count 1/1024 s before it; only differences matter to the publisher.
"""

from __future__ import annotations

from conf_cli.protocol.rtcp import CCFB_ATO_UNKNOWN, CcfbBlock, CongestionFeedback

__all__ = ["LATE", "MAX_REPORTED", "REPORT_INTERVAL", "UplinkFeedback"]
REPORT_INTERVAL = 0.05
"""Seconds between reports about one track (RFC 8888 suggests one per frame to one per RTT)."""
MAX_REPORTED = 256
"""Sequence numbers one report covers (about 550 bytes; a simulcast track's layers share them, so each
layer's SSRC gets an equal part): more waiting sends the report at once, and a packet this far or further
past the first not yet reported starts afresh from itself (the ones between are not reported). This bounds
the report, one datagram well under the MTU, and the state."""
LATE = 1024
"""A packet this far behind the first not yet reported is late (already reported as lost), and ignored."""


class _Stream:
    """The arrivals of one SSRC's packets since the last report."""

    __slots__ = ("arrivals", "begin", "ssrc")

    def __init__(self, ssrc: int) -> None:
        self.ssrc = ssrc
        self.begin: int | None = None  # the first sequence number the next report covers
        self.arrivals: dict[int, float] = {}  # offset from begin -> arrival time

    def block(self, now: float) -> CcfbBlock | None:
        """The report block for what arrived since the last one (None: nothing did); starts afresh."""
        arrivals = self.arrivals
        begin = self.begin
        if not arrivals or begin is None:
            return None
        count = max(arrivals) + 1
        offsets: list[int | None] = []
        for offset in range(count):
            when = arrivals.get(offset)
            offsets.append(None if when is None else min(CCFB_ATO_UNKNOWN, round((now - when) * 1024)))
        self.arrivals = {}
        self.begin = (begin + count) & 0xFFFF
        return CcfbBlock.received(self.ssrc, begin, offsets)


class UplinkFeedback:
    """The arrivals of one track's RTP packets since the last report, and the report when it is due.

    A simulcast track's layers share one (``ssrcs``: every layer's SSRC): one report carries a block for
    each layer that sent something, so the publisher's estimate covers all it sends."""

    __slots__ = ("_last_report", "_limit", "_streams", "reports", "ssrc")

    def __init__(self, ssrc: int, ssrcs: tuple[int, ...] = ()) -> None:
        self.ssrc = ssrc
        self._streams = {s: _Stream(s) for s in (*ssrcs, ssrc)}
        self._limit = MAX_REPORTED // len(self._streams)
        """Sequence numbers per SSRC a report covers: all of them together stay within MAX_REPORTED."""
        self._last_report: float | None = None
        self.reports = 0

    def arrived(self, packet: bytes, now: float) -> bytes | None:
        """Note RTP ``packet``'s arrival; the report to send to its publisher if one is due, else None."""
        stream = self._streams.get(int.from_bytes(packet[8:12], "big"))
        if stream is None:
            return None
        seq = packet[2] << 8 | packet[3]
        if stream.begin is None:
            stream.begin = seq
            if self._last_report is None:
                self._last_report = now
        offset = (seq - stream.begin) & 0xFFFF
        if offset >= self._limit:
            if offset > 0xFFFF - LATE:  # late: already reported (as lost); RFC 8888 allows no update
                return None
            report = self._report(now)  # a jump: report what we have, then start from here
            stream.begin = seq
            stream.arrivals[0] = now
            return report
        stream.arrivals.setdefault(offset, now)
        if (
            offset == self._limit - 1
            or self._last_report is None
            or now - self._last_report >= REPORT_INTERVAL
        ):
            return self._report(now)
        return None

    def _report(self, now: float) -> bytes | None:
        self._last_report = now
        blocks = [block for stream in self._streams.values() if (block := stream.block(now)) is not None]
        if not blocks:
            return None
        self.reports += 1
        timestamp = int(now * 65536) & 0xFFFFFFFF
        return bytes(CongestionFeedback(0, blocks, timestamp))
