"""RTCP abuse over real sockets: a hostile participant on rtp:// (with real SRTP, and without) against
a real server and real clients.

- A NACK naming one sequence number hundreds of times, and a flood of NACKs, make the publisher resend
  each packet once per request at most, the resends reach the one who asked and nobody else, and what it
  gets stays within its byte budget.
- A sender report forged for another participant's track is not forwarded.
- Congestion feedback (RFC 8888) forged about a publisher's track never reaches the publisher.
- A publisher that "resends" other bytes under a sequence number already sent: no receiver ever gets two
  different SRTP packets under one (SSRC, index), which with AES-GCM would reuse a key stream.
"""

from __future__ import annotations

import struct
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest

from conf_cli.protocol.rtcp import CcfbBlock, CongestionFeedback, Nack, SenderReport, parse_compound
from conf_cli.protocol.rtp import RtpPacket, is_rtcp
from conf_cli.server.feedback import RESEND_BURST, RESEND_RATE
from conf_cli.testing.hostile import RtpRawLink, raw_join, srtp_join
from conf_cli.testing.processes import ClientPool, ConfProcess, start_server

FORGED_COUNT = 0xDEADBEEF  # the packet count of the forged sender report, to recognise it
NACKER_SSRC = 0x4D414C4C
MALLORY_SSRC = 0x4D414C4D  # the forger's own (unpublished) SSRC


class Tap:
    """Everything one raw participant receives, kept as it came off its UDP socket and decrypted."""

    def __init__(self, link: RtpRawLink) -> None:
        self.link = link
        self.rtp: dict[tuple[int, int], list[bytes]] = defaultdict(list)
        """(SSRC, sequence number) -> the SRTP datagrams that came with them (the RTP header is in clear;
        a second copy fails the receiver's replay check, so it is kept as it came)."""
        self.rtcp: list[bytes] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._raw: list[bytes] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        link = self.link
        link.udp.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data = link.udp.recv(2048)
            except OSError:
                continue
            if not data or data[0] >> 6 != 2:
                continue
            if not is_rtcp(data) and len(data) >= 12:
                key = (int.from_bytes(data[8:12], "big"), int.from_bytes(data[2:4], "big"))
                with self._lock:
                    self.rtp[key].append(data)
                continue
            srtp = getattr(link, "srtp", None)  # None: a server running --encryption none
            plain = data if srtp is None else srtp.unprotect(data)
            if plain is None:
                continue
            with self._lock:
                self.rtcp.append(plain)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def packets_of(self, ssrc: int) -> dict[int, list[bytes]]:
        with self._lock:
            return {seq: list(got) for (s, seq), got in self.rtp.items() if s == ssrc}

    def newest(self, ssrc: int) -> int | None:
        got = self.packets_of(ssrc)
        return max(got) if got else None  # fine away from a wrap; the tests retry on a wrap

    def copies(self, ssrc: int) -> tuple[int, int]:
        """Packets of ``ssrc`` received more than once: (extra copies, their bytes)."""
        extra = size = 0
        for got in self.packets_of(ssrc).values():
            extra += len(got) - 1
            size += sum(len(datagram) for datagram in got[1:])
        return extra, size

    def sender_reports(self) -> list[SenderReport]:
        with self._lock:
            packets = list(self.rtcp)
        return [
            part for packet in packets for part in parse_compound(packet) if isinstance(part, SenderReport)
        ]


def raw_nack(media_ssrc: int, entries: list[tuple[int, int]]) -> bytes:
    """A generic NACK with exactly these (PID, BLP) entries, repeats and all (conf's encoder folds them)."""
    fci = b"".join(struct.pack("!HH", pid, blp) for pid, blp in entries)
    body = struct.pack("!II", NACKER_SSRC, media_ssrc) + fci
    return struct.pack("!BBH", 0x81, 205, len(body) // 4) + body


def server_stats(server: ConfProcess) -> dict[str, Any]:
    """The server's newest ``server_stats`` (it writes one every 0.5 s)."""
    events = [e for e in server.drain(1.2) if e.get("type") == "server_stats"]
    assert events, "the server wrote no server_stats"
    return events[-1]


def wait_for(what: str, check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


Meeting = tuple[ConfProcess, str, ClientPool, ConfProcess, str]


@pytest.fixture(params=["srtp", "none"])
def rtp_meeting(request: pytest.FixtureRequest) -> Iterator[Meeting]:
    """A server on rtp:// (SRTP, or --encryption none) and a meeting its host created."""
    plain = ("--encryption", "none") if request.param == "none" else ()
    server, url = start_server("--stats-interval", "0.5", *plain, transport="rtp")
    clients = ClientPool(url, extra=plain)
    try:
        host, meeting = clients.create("host")
        yield server, url, clients, host, meeting
    finally:
        clients.stop_all()
        server.stop()


def join(url: str, meeting: str, name: str, clients: ClientPool) -> RtpRawLink:
    """A raw participant: with real SRTP, unless the server runs --encryption none."""
    if "none" in clients.extra:
        link = raw_join(url, meeting, name, clients.passcode)
        assert isinstance(link, RtpRawLink)
        return link
    return srtp_join(url, meeting, name, clients.passcode)


def test_a_nack_flood_gets_each_packet_resent_once_to_the_requester_alone(
    rtp_meeting: Meeting,
) -> None:
    server, url, clients, host, meeting = rtp_meeting
    mallory = join(url, meeting, "mallory", clients)
    carol = join(url, meeting, "carol", clients)
    dave = join(url, meeting, "dave", clients)
    taps = {name: Tap(link) for name, link in (("mallory", mallory), ("carol", carol), ("dave", dave))}
    try:
        host.send("/share pattern width=320 height=240 fps=15")
        ssrc = int(host.expect("publish_started", timeout=30)["ssrc"])
        wait_for("video at every receiver", lambda: all(len(t.packets_of(ssrc)) > 60 for t in taps.values()))
        started = time.monotonic()

        # One NACK as long as SRTCP lets it be (1,332 bytes): the same packet and the 16 after it, 330
        # times over (5,610 resends before the fix).
        newest = taps["mallory"].newest(ssrc)
        assert newest is not None
        target = (newest - 40) & 0xFFFF
        big = raw_nack(ssrc, [(target, 0xFFFF)] * 330)
        assert len(big) == 1332
        mallory.send_media(big)
        time.sleep(1.0)

        # Then 300 NACKs as fast as they go, each naming one recent packet 16 times.
        nacks = 0
        for _ in range(300):
            newest = taps["mallory"].newest(ssrc) or newest
            mallory.send_media(raw_nack(ssrc, [((newest - 20) & 0xFFFF, 0)] * 16))
            nacks += 1
            time.sleep(0.002)

        # And a sender report forged for the host's track.
        mallory.send_media(bytes(SenderReport(ssrc, 1 << 32, 1234, FORGED_COUNT, 5678)))
        time.sleep(2.0)
        elapsed = time.monotonic() - started
        host.send("/unshare video")
        stopped = host.expect("publish_stopped", timeout=15)
        hub = server_stats(server)["hub"]
    finally:
        for tap in taps.values():
            tap.stop()
        for link in (mallory, carol, dave):
            link.close()

    # Nobody who did not ask gets a resend: no packet reaches carol or dave twice.
    assert taps["carol"].copies(ssrc) == (0, 0)
    assert taps["dave"].copies(ssrc) == (0, 0)
    # The one who asked gets each packet at most once per request, within its byte budget.
    extra, extra_bytes = taps["mallory"].copies(ssrc)
    assert 1 <= extra <= 17 + nacks
    assert extra_bytes <= RESEND_BURST + RESEND_RATE * elapsed
    # The publisher resent about as much (the host's own NACKs for real losses may add a few).
    assert 1 <= stopped["resent"] <= 17 + nacks + 50
    assert hub["nack_duplicates"] >= 330 * 17 - 17
    assert hub["feedback_limited"] > 0  # 300 NACKs at once is past the rate limit
    assert hub["resends_out"] <= hub["resends_in"] + 50
    # Whatever was resent is byte for byte what was first sent: one SRTP packet per (SSRC, index).
    for name, tap in taps.items():
        assert all(len(set(got)) == 1 for got in tap.packets_of(ssrc).values()), name
    # The forged sender report went nowhere.
    for name in ("carol", "dave"):
        assert not [sr for sr in taps[name].sender_reports() if sr.packet_count == FORGED_COUNT], name
    assert [sr for sr in taps["carol"].sender_reports() if sr.ssrc == ssrc], "the host's own reports"
    assert hub["rtcp_forged"] >= 1


def rtp(ssrc: int, seq: int, payload: bytes) -> bytes:
    return bytes(
        RtpPacket(payload_type=96, sequence_number=seq, timestamp=seq * 6000, ssrc=ssrc, payload=payload)
    )


@pytest.mark.parametrize("rtp_meeting", ["srtp"], indirect=True)
def test_no_receiver_gets_two_different_packets_under_one_srtp_index(
    rtp_meeting: Meeting,
) -> None:
    """A publisher that answers a NACK with other bytes under the same sequence number: forwarded, each
    receiver's SRTP would encrypt two plaintexts with one key stream. The tap on each receiver's socket
    (what the server sent it) must hold one SRTP packet per (SSRC, index), or the very same one twice."""
    server, url, clients, _, meeting = rtp_meeting
    mallory = join(url, meeting, "mallory", clients)
    carol = join(url, meeting, "carol", clients)
    publisher = join(url, meeting, "pub", clients)
    taps = {"mallory": Tap(mallory), "carol": Tap(carol)}
    ssrc = 0x51515151
    try:
        publisher.send_control({"type": "publish", "kind": "video", "ssrc": ssrc, "codec": "H264"})
        publisher.expect("share_started", lambda e: e["ssrc"] == ssrc)
        for seq in range(100, 140):
            publisher.send_media(rtp(ssrc, seq, b"original %d " % seq * 40))
            time.sleep(0.005)
        wait_for(
            "the packets at both receivers", lambda: all(len(t.packets_of(ssrc)) == 40 for t in taps.values())
        )
        mallory.send_media(bytes(Nack(NACKER_SSRC, ssrc, [120, 121])))
        time.sleep(0.5)  # the NACK reaches the publisher; the server expects the two resends
        publisher.send_media(rtp(ssrc, 120, b"something else " * 40))  # other bytes, same index
        publisher.send_media(rtp(ssrc, 121, b"original 121 " * 40))  # a faithful resend
        time.sleep(0.5)
        udp = server_stats(server)["listeners"]
    finally:
        for tap in taps.values():
            tap.stop()
        for link in (mallory, carol, publisher):
            link.close()

    for name, tap in taps.items():
        for seq, got in tap.packets_of(ssrc).items():
            assert len(set(got)) == 1, f"{name} got {len(set(got))} different packets under index {seq}"
    assert len(taps["mallory"].packets_of(ssrc)[121]) == 2  # the faithful resend did reach who asked
    assert len(taps["carol"].packets_of(ssrc)[121]) == 1  # and only who asked
    assert next(iter(udp.values()))["protect_refused"] >= 1


@pytest.mark.parametrize("rtp_meeting", ["srtp"], indirect=True)
def test_a_sender_report_forged_for_another_participants_track_is_not_forwarded(
    rtp_meeting: Meeting,
) -> None:
    server, url, clients, _, meeting = rtp_meeting
    mallory = join(url, meeting, "mallory", clients)
    carol = join(url, meeting, "carol", clients)
    publisher = join(url, meeting, "pub", clients)
    tap = Tap(carol)
    ssrc = 0x52525252
    try:
        publisher.send_control({"type": "publish", "kind": "video", "ssrc": ssrc, "codec": "H264"})
        publisher.expect("share_started", lambda e: e["ssrc"] == ssrc)
        mallory.send_media(bytes(SenderReport(ssrc, 1 << 32, 1234, FORGED_COUNT, 5678)))
        publisher.send_media(bytes(SenderReport(ssrc, 1 << 32, 1234, 10, 5678)))  # the owner's own
        wait_for(
            "the publisher's report at carol",
            lambda: any(sr.packet_count == 10 for sr in tap.sender_reports()),
        )
        time.sleep(0.5)
        hub = server_stats(server)["hub"]
    finally:
        tap.stop()
        for link in (mallory, carol, publisher):
            link.close()
    assert [sr.packet_count for sr in tap.sender_reports()] == [10]
    assert hub["rtcp_forged"] == 1


@pytest.mark.parametrize("rtp_meeting", ["srtp"], indirect=True)
def test_congestion_feedback_forged_about_a_publishers_track_never_reaches_it(rtp_meeting: Meeting) -> None:
    # A publisher that asked for RFC 8888 feedback trusts every report it gets: a participant that could
    # send one naming the publisher's track as "lost" would throttle it. Only the server sends them.
    server, url, clients, _, meeting = rtp_meeting
    mallory = join(url, meeting, "mallory", clients)
    publisher = join(url, meeting, "pub", clients)
    tap = Tap(publisher)
    ssrc = 0x43434342
    forged = CongestionFeedback(MALLORY_SSRC, [CcfbBlock.received(ssrc, 100, [None] * 64)], 1234)

    def feedback_at_the_publisher() -> list[CongestionFeedback]:
        with tap._lock:
            packets = list(tap.rtcp)
        return [p for packet in packets for p in parse_compound(packet) if isinstance(p, CongestionFeedback)]

    try:
        publish = {"type": "publish", "kind": "video", "ssrc": ssrc, "codec": "H264", "feedback": "ccfb"}
        publisher.send_control(publish)
        publisher.expect("share_started", lambda e: e["ssrc"] == ssrc)
        for _ in range(5):
            mallory.send_media(bytes(forged))
        forged_count = 0

        def settled() -> bool:
            nonlocal forged_count
            forged_count = server_stats(server)["hub"]["rtcp_forged"]
            return forged_count >= 5 or bool(feedback_at_the_publisher())

        wait_for("the forged reports to be refused or delivered", settled)
        time.sleep(0.5)
    finally:
        tap.stop()
        for link in (mallory, publisher):
            link.close()
    assert feedback_at_the_publisher() == []  # the publisher sent no RTP: no report of the server's either
    assert forged_count >= 5
