"""What the load generator's receivers saw, sans-I/O: packets, bytes, sequence gaps, one-way latency.

One :class:`Recorder` per worker process gathers the counters of all its clients; each client has its own
:class:`Receiver` (its media handler), which tracks the extended sequence number of every SSRC it hears.
"""

from __future__ import annotations

import struct
import time
from array import array
from dataclasses import dataclass, field

from conf_cli.bench.packets import HEADER_BYTES, MIN_PAYLOAD
from conf_cli.protocol.rtp import is_rtcp

_SEQ_SSRC_STAMP = struct.Struct("!H4xIQ")
_MIN_BYTES = HEADER_BYTES + MIN_PAYLOAD


@dataclass
class Recorder:
    """Counters since the last :meth:`take`, and the latencies (ns) of the packets received since then."""

    received: int = 0
    received_bytes: int = 0
    ignored: int = 0  # RTCP (the server's keyframe requests) and packets too short to be ours
    latencies: array[int] = field(default_factory=lambda: array("q"))

    def take(self) -> tuple[int, int, int, array[int]]:
        """Return and reset (received, bytes, ignored, latencies)."""
        taken = (self.received, self.received_bytes, self.ignored, self.latencies)
        self.received = self.received_bytes = self.ignored = 0
        self.latencies = array("q")
        return taken


class Receiver:
    """The media handler of one client: per SSRC, [first extended seq, highest extended seq, received]."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.tracks: dict[int, list[int]] = {}

    def __call__(self, packet: bytes) -> None:
        now = time.monotonic_ns()
        recorder = self.recorder
        if len(packet) < _MIN_BYTES or is_rtcp(packet):  # short, or RTCP (RFC 5761)
            recorder.ignored += 1
            return
        seq, ssrc, stamp = _SEQ_SSRC_STAMP.unpack_from(packet, 2)
        recorder.received += 1
        recorder.received_bytes += len(packet)
        recorder.latencies.append(now - stamp)
        state = self.tracks.get(ssrc)
        if state is None:
            self.tracks[ssrc] = [seq, seq, 1]
            return
        delta = (seq - state[1]) & 0xFFFF
        if delta < 0x8000:
            state[1] += delta
        state[2] += 1

    def gaps(self) -> int:
        """Packets missing between the first and the highest sequence number of every SSRC heard."""
        return sum(max(0, high - first + 1 - got) for first, high, got in self.tracks.values())
