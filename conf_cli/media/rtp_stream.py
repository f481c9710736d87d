"""Per-stream RTP state, sans-I/O: the sending side, reception statistics and rate meters.

:class:`RtpSender` numbers and timestamps outgoing packets from a random start (RFC 3550 section 5.1), counts
them for sender reports (6.4.1) and keeps the last few hundred so a NACK (RFC 4585 6.2.1) can be answered by
sending them again. :class:`ReceiverStats` is the receiving side of RFC 3550 appendix A: source validation
and the extended highest sequence number (A.1), expected and lost packets and the fraction lost (A.3), and
the interarrival jitter (A.8); it fills the :class:`~conf_cli.protocol.rtcp.ReportBlock` of a receiver
report. :class:`RateMeter` measures frames per second and bits per second over a sliding window;
:func:`track_stats` combines both into the figures of a ``track_stats`` event.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from conf_cli.protocol.rtcp import Nack, ReportBlock, SenderReport, ntp_from_unix, ntp_middle
from conf_cli.protocol.rtp import RtpPacket

__all__ = ["RateMeter", "ReceiverStats", "RtpSender", "TrackStats", "track_stats"]

RTP_SEQ_MOD = 1 << 16
MAX_DROPOUT = 3000
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2


class RtpSender:
    """Builds the RTP packets of one outgoing stream (one SSRC) and remembers them for retransmission."""

    def __init__(
        self,
        ssrc: int,
        payload_type: int,
        clock_rate: int,
        *,
        rng: random.Random | None = None,
        history: int = 512,
    ) -> None:
        rng = rng if rng is not None else random.SystemRandom()
        self.ssrc = ssrc
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        self.sequence_number = rng.randrange(RTP_SEQ_MOD)
        """The sequence number of the next packet."""
        self.timestamp_offset = rng.randrange(1 << 32)
        self.packet_count = 0
        self.octet_count = 0
        self._history_size = history
        self._history: dict[int, bytes] = {}

    def ticks(self, seconds: float) -> int:
        """Media time in seconds as clock ticks (e.g. 90 kHz for video, 48 kHz for Opus)."""
        return round(seconds * self.clock_rate)

    def rtp_timestamp(self, ticks: int) -> int:
        return (self.timestamp_offset + ticks) & 0xFFFFFFFF

    def packetize(
        self,
        payloads: Sequence[bytes],
        ticks: int,
        *,
        marker: bool,
        extension: tuple[int, bytes] | None = None,
        payload_type: int | None = None,
    ) -> list[bytes]:
        """One RTP packet per payload, all with the media time ``ticks``; ``marker`` goes on the last one.

        For video the marker ends a frame (RFC 6184); for audio it starts a talkspurt (RFC 7587).
        ``extension`` (``(profile, data)``) goes on every packet; ``payload_type`` replaces the stream's
        for these packets (RED, RFC 2198).
        """
        timestamp = self.rtp_timestamp(ticks)
        packets: list[bytes] = []
        last = len(payloads) - 1
        for index, payload in enumerate(payloads):
            seq = self.sequence_number
            data = bytes(
                RtpPacket(
                    payload_type=self.payload_type if payload_type is None else payload_type,
                    sequence_number=seq,
                    timestamp=timestamp,
                    ssrc=self.ssrc,
                    payload=payload,
                    marker=marker and index == last,
                    extension=extension,
                )
            )
            packets.append(data)
            self.sequence_number = (seq + 1) & 0xFFFF
            self.packet_count += 1
            self.octet_count += len(payload)
            self._history.pop(seq, None)
            self._history[seq] = data
            if len(self._history) > self._history_size:
                del self._history[next(iter(self._history))]
        return packets

    def remember(self, packet: bytes) -> None:
        """Keep ``packet`` (as sent: e.g. end-to-end encrypted) as what a NACK for its sequence number gets:
        a resend must be byte for byte what was sent, or SRTP would protect other bytes under its index."""
        seq = packet[2] << 8 | packet[3]
        if seq in self._history:
            self._history[seq] = packet

    def retransmit(self, seqs: Iterable[int]) -> list[bytes]:
        """The packets still in the history among ``seqs``, unchanged, each once, in the order asked."""
        history = self._history
        return [history[seq] for seq in dict.fromkeys(s & 0xFFFF for s in seqs) if seq in history]

    def handle_nack(self, nack: Nack) -> list[bytes]:
        """The packets to send again for a NACK about this stream."""
        return self.retransmit(nack.lost) if nack.media_ssrc == self.ssrc else []

    def sender_report(self, now: float, ticks: int, reports: Sequence[ReportBlock] = ()) -> SenderReport:
        """An SR stating that wall-clock time ``now`` (Unix seconds) is media time ``ticks``."""
        return SenderReport(
            ssrc=self.ssrc,
            ntp_timestamp=ntp_from_unix(now),
            rtp_timestamp=self.rtp_timestamp(ticks),
            packet_count=self.packet_count & 0xFFFFFFFF,
            octet_count=self.octet_count & 0xFFFFFFFF,
            reports=list(reports),
        )


class ReceiverStats:
    """Reception statistics for one source, as in RFC 3550 appendix A.1, A.3 and A.8.

    A new source is on probation until ``min_sequential`` packets arrive in sequence (A.1); the run that
    validates it is then counted. Duplicates count as received, as in A.1, so ``packets_lost`` can be
    negative. ``bytes_received`` counts payload octets.
    """

    def __init__(self, ssrc: int, clock_rate: int, *, min_sequential: int = MIN_SEQUENTIAL) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.min_sequential = max(1, min_sequential)
        self.packets_received = 0
        self.bytes_received = 0
        self.jitter = 0.0
        """Interarrival jitter in timestamp units (A.8), before truncation to an integer."""
        self.fraction_lost = 0
        """The fraction lost (out of 256) of the last report block."""
        self._started = False
        self._probation = 0
        self._run = 0
        self._run_bytes = 0
        self._max_seq = 0
        self._cycles = 0
        self._base_seq = 0
        self._bad_seq = RTP_SEQ_MOD + 1
        self._expected_prior = 0
        self._received_prior = 0
        self._last_arrival: float | None = None
        self._last_ts = 0
        self._lsr = 0
        self._sr_arrival = 0.0

    @property
    def valid(self) -> bool:
        """True once the source passed probation."""
        return self._started and self._probation == 0

    @property
    def extended_highest(self) -> int:
        return self._cycles + self._max_seq

    @property
    def expected(self) -> int:
        return self.extended_highest - self._base_seq + 1 if self.valid else 0

    @property
    def packets_lost(self) -> int:
        return self.expected - self.packets_received

    @property
    def loss_rate(self) -> float:
        """Packets lost over packets expected since the start, between 0 and 1."""
        expected = self.expected
        return max(0, self.packets_lost) / expected if expected > 0 else 0.0

    @property
    def jitter_ms(self) -> float:
        return self.jitter * 1000 / self.clock_rate

    def update(self, packet: RtpPacket, now: float) -> bool:
        """Account for a packet that arrived at ``now`` (seconds); False if it is not counted."""
        seq = packet.sequence_number
        if not self._started:
            self._started = True
            self._max_seq = (seq - 1) & 0xFFFF
            self._probation = self.min_sequential
            self._run = 0
            self._run_bytes = 0
        on_probation = self._probation > 0
        counted = self._update_seq(seq, len(packet.payload))
        if counted or on_probation:
            self._update_jitter(packet.timestamp, now)
        return counted

    def _init_seq(self, seq: int) -> None:
        self._base_seq = seq
        self._max_seq = seq
        self._bad_seq = RTP_SEQ_MOD + 1
        self._cycles = 0
        self.packets_received = 0
        self.bytes_received = 0
        self._received_prior = 0
        self._expected_prior = 0

    def _update_seq(self, seq: int, size: int) -> bool:
        udelta = (seq - self._max_seq) & 0xFFFF
        if self._probation:
            if udelta == 1:
                self._probation -= 1
                self._max_seq = seq
                self._run += 1
                self._run_bytes += size
                if self._probation == 0:
                    run, run_bytes = self._run, self._run_bytes
                    self._init_seq(seq)
                    self._base_seq = seq - run + 1
                    self.packets_received = run
                    self.bytes_received = run_bytes
                    return True
            else:
                self._probation = self.min_sequential - 1
                self._max_seq = seq
                self._run = 1
                self._run_bytes = size
            return False
        if udelta < MAX_DROPOUT:
            if seq < self._max_seq:
                self._cycles += RTP_SEQ_MOD
            self._max_seq = seq
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            if seq != self._bad_seq:
                self._bad_seq = (seq + 1) & 0xFFFF
                return False
            self._init_seq(seq)  # two sequential packets after a big jump: the sender restarted
        self.packets_received += 1
        self.bytes_received += size
        return True

    def _update_jitter(self, timestamp: int, now: float) -> None:
        arrival = now * self.clock_rate
        if self._last_arrival is not None:
            elapsed_ts = ((timestamp - self._last_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000
            d = abs((arrival - self._last_arrival) - elapsed_ts)
            self.jitter += (d - self.jitter) / 16
        self._last_arrival = arrival
        self._last_ts = timestamp

    def on_sender_report(self, report: SenderReport, now: float) -> None:
        """Remember the source's last SR, for the LSR and DLSR of the next report block."""
        self._lsr = ntp_middle(report.ntp_timestamp)
        self._sr_arrival = now

    def report_block(self, now: float) -> ReportBlock:
        """The report block for this source; starts a new interval for the fraction lost (A.3)."""
        expected = self.expected
        expected_interval = expected - self._expected_prior
        received_interval = self.packets_received - self._received_prior
        self._expected_prior = expected
        self._received_prior = self.packets_received
        lost_interval = expected_interval - received_interval
        if expected_interval <= 0 or lost_interval <= 0:
            self.fraction_lost = 0
        else:
            self.fraction_lost = min(255, (lost_interval << 8) // expected_interval)
        dlsr = 0
        if self._lsr:
            dlsr = min(max(0, int((now - self._sr_arrival) * 65536)), 0xFFFFFFFF)
        return ReportBlock(
            ssrc=self.ssrc,
            fraction_lost=self.fraction_lost,
            packets_lost=max(-0x800000, min(0x7FFFFF, self.packets_lost)),
            highest_sequence=self.extended_highest & 0xFFFFFFFF,
            jitter=min(int(self.jitter), 0xFFFFFFFF),
            lsr=self._lsr,
            dlsr=dlsr,
        )


class FreezeMeter:
    """How long a received video's picture stood still: the longest wait between two decoded pictures
    since the last :meth:`take` (the wait still going on included); and, apart, the wait that ended at a
    picture of another size than the one before (a simulcast layer switch: the last picture of the old
    layer to the first of the new), since the last :meth:`take_switch`."""

    __slots__ = ("_last", "_longest", "_size", "_switch")

    def __init__(self) -> None:
        self._last: float | None = None
        self._longest = 0.0
        self._size: tuple[int, int] | None = None
        self._switch: float | None = None

    def picture(self, now: float, size: tuple[int, int] | None = None) -> None:
        """A picture (of ``size``, if known) was decoded at ``now``."""
        last = self._last
        if last is not None:
            wait = now - last
            self._longest = max(self._longest, wait)
            if size is not None and self._size is not None and size != self._size:
                self._switch = wait if self._switch is None else max(self._switch, wait)
        self._last = now
        if size is not None:
            self._size = size

    def take_switch(self) -> float | None:
        """The longest wait (seconds) that ended at a picture of a new size since the last call; None if
        the size did not change."""
        switch, self._switch = self._switch, None
        return switch

    def take(self, now: float) -> float | None:
        """The longest wait (seconds) since the last call; None before the first picture."""
        if self._last is None:
            return None
        longest, self._longest = max(self._longest, now - self._last), 0.0
        return longest


class RateMeter:
    """Frames per second and bits per second over the last ``window`` seconds, from recorded events.

    Rates are totals over the window divided by the window, so they ramp up over the first window. At most
    ``max_events`` events are kept; beyond that the oldest leave early.
    """

    def __init__(self, window: float = 1.0, max_events: int = 4096) -> None:
        if window <= 0:
            raise ValueError(f"rate window {window} must be positive")
        self.window = window
        self.frames = 0
        self.bytes = 0
        self._events: deque[tuple[float, int, int]] = deque()
        self._max_events = max_events
        self._window_frames = 0
        self._window_bytes = 0

    def record(self, now: float, nbytes: int, frames: int = 1) -> None:
        """Count ``frames`` frames of ``nbytes`` bytes in all at time ``now``."""
        self.frames += frames
        self.bytes += nbytes
        self._events.append((now, nbytes, frames))
        self._window_bytes += nbytes
        self._window_frames += frames
        if len(self._events) > self._max_events:
            self._forget_oldest()
        self._expire(now)

    def fps(self, now: float) -> float:
        self._expire(now)
        return self._window_frames / self.window

    def bitrate(self, now: float) -> float:
        """Bits per second."""
        self._expire(now)
        return self._window_bytes * 8 / self.window

    def _expire(self, now: float) -> None:
        horizon = now - self.window
        while self._events and self._events[0][0] <= horizon:
            self._forget_oldest()

    def _forget_oldest(self) -> None:
        _, nbytes, frames = self._events.popleft()
        self._window_bytes -= nbytes
        self._window_frames -= frames


@dataclass(frozen=True, slots=True)
class TrackStats:
    """The figures of a ``track_stats`` event."""

    frames: int
    fps: float
    bytes: int
    bitrate: float
    packets_lost: int
    loss_rate: float
    jitter_ms: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def track_stats(now: float, meter: RateMeter, receiver: ReceiverStats | None = None) -> TrackStats:
    """Combine a rate meter and (on the receiving side) reception statistics."""
    return TrackStats(
        frames=meter.frames,
        fps=meter.fps(now),
        bytes=meter.bytes,
        bitrate=meter.bitrate(now),
        packets_lost=max(0, receiver.packets_lost) if receiver else 0,
        loss_rate=receiver.loss_rate if receiver else 0.0,
        jitter_ms=receiver.jitter_ms if receiver else 0.0,
    )
