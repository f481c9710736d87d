"""``conf bench --generator compiled``: a worker's clients' media sent and received in compiled code.

The clients join as usual (control link, SRTP keys, the STUN latch of their UDP socket); then
:class:`CompiledMedia` takes their media sockets (``detach_media``, rtp:// only) and hands them to
``conf_cli.bench._blast.Blaster`` (``_blast.c``), which sends each publisher's packets at the planned rate
with ``sendmmsg`` and reads every socket with ``recvmmsg``, recording what :mod:`conf_cli.bench.recorder`
records (a packet's arrival is the kernel's time stamp of when it reached the socket). SRTP stays each
link's own session (its compiled sender and receiver where it has them). The event loop keeps running the
control links (heartbeats) while the loop runs in a thread."""

from __future__ import annotations

from typing import Any

from conf_cli.bench.messages import Tick, Totals
from conf_cli.bench.plan import ClientSpec
from conf_cli.bench.proc import ThreadMeter
from conf_cli.client.link import Client
from conf_cli.errors import ConfError

GENERATORS = ("python", "compiled")


def _session_calls(session: Any) -> tuple[Any, Any]:
    """(protect, unprotect) of a link's media session: its compiled sender and receiver where it has them
    (conf_crypto's SRTP sessions), its own methods otherwise; (None, None) for plaintext."""
    if session is None:
        return None, None
    native, native_rx = getattr(session, "native", None), getattr(session, "native_rx", None)
    protect = native.protect if native is not None else session.protect
    unprotect = native_rx.unprotect if native_rx is not None else session.unprotect
    return protect, unprotect


class CompiledMedia:
    """The media of ``clients`` (joined, with their specs) in one compiled loop."""

    def __init__(
        self, clients: list[tuple[Client, ClientSpec]], payload: int, audience: dict[int, int]
    ) -> None:
        try:
            from conf_cli.bench._blast import Blaster
        except ImportError:
            raise ConfError("--generator compiled needs conf's compiled modules: run make setup") from None
        rows = []
        self._audiences = []
        self._sockets = []
        for client, spec in clients:
            link: Any = client.link
            detach = getattr(link, "detach_media", None)
            sock = detach() if detach is not None else None
            if sock is None:
                raise ConfError("--generator compiled needs rtp:// (a UDP media socket per client)")
            self._sockets.append(sock)
            protect, unprotect = _session_calls(getattr(link, "srtp", None))
            publisher = spec.ssrc is not None
            rows.append(
                (sock.fileno(), unprotect, link.datagram_received, protect if publisher else None, spec.ssrc)
            )
            self._audiences.append(audience.get(spec.meeting, 0) if publisher else 0)
        self.blaster = Blaster(rows, payload)
        self.thread_load: tuple[float, float | None] = (0.0, None)
        """(CPU %, waiting for a core %) of the thread that ran the loop (:meth:`run`)."""

    def run(self, t0: int, end: int, rate: float, drain_ns: int) -> None:
        """Send from ``t0`` to ``end`` (monotonic ns) and read until ``end + drain_ns``; blocks (a thread)."""
        meter = ThreadMeter()
        try:
            self.blaster.run(t0, end, rate, drain_ns)
        finally:
            self.thread_load = meter.stop()

    def stop(self) -> None:
        self.blaster.stop()

    def tick(self, index: int) -> Tick:
        """What was sent and received since the last tick."""
        sent, sent_bytes, failed, received, received_bytes, _ignored, latencies = self.blaster.take()
        return Tick(index, sent, sent_bytes, failed, received, received_bytes, latencies)

    def totals(self) -> Totals:
        sent, failed, gaps = self.blaster.totals()
        expected = sum(count * audience for count, audience in zip(sent, self._audiences, strict=True))
        return Totals(sent=sum(sent), send_failed=failed, expected=expected, gaps=gaps)
