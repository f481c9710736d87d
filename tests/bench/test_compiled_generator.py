"""``conf bench --generator compiled``: the compiled media loop on real sockets, and end to end through a
real server (rtp://, with SRTP and without). Figures are checked for consistency, never for speed."""

from __future__ import annotations

import json
import socket
import struct
import time
from array import array
from collections.abc import Iterator

import pytest

from conf_cli.bench._blast import Blaster
from conf_cli.bench.packets import PacketMaker
from conf_cli.testing.processes import run_conf

TRAILER = b"tag!"


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """Two UDP sockets on loopback, each connected to the other."""
    a, b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    b.bind(("127.0.0.1", 0))
    a.connect(b.getsockname())
    b.connect(a.getsockname())
    yield a, b
    a.close()
    b.close()


def test_the_loop_sends_at_the_rate_and_records_what_it_receives(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """b publishes at 200 packets/s for 0.5 s through its protect callable; a reads them through its
    unprotect callable (which refuses a forged one), hands a datagram that is not RTP to `other`, and
    counts the sequence gap of a stream that skipped four packets."""
    a, b = pair
    others: list[bytes] = []
    unprotected: list[int] = []

    def protect(packet: bytes) -> bytes:
        return packet + TRAILER

    def unprotect(packet: bytes) -> bytes | None:
        unprotected.append(len(packet))
        return packet[: -len(TRAILER)] if packet.endswith(TRAILER) else None

    stream = PacketMaker(0x77, 40)
    b.send(stream.make(time.monotonic_ns()) + TRAILER)
    stream.seq += 4  # four packets never sent: a gap of four
    b.send(stream.make(time.monotonic_ns()) + TRAILER)
    b.send(PacketMaker(0x78, 40).make(0) + b"forged")  # fails "authentication": not counted
    b.send(b"\x00\x01 a STUN consent check")
    blaster = Blaster(
        [
            (a.fileno(), unprotect, others.append, None, None),
            (b.fileno(), None, others.append, protect, 0x99),
        ],
        100,
    )
    t0 = time.monotonic_ns()
    blaster.run(t0, t0 + 500_000_000, 200.0, 200_000_000)
    sent, sent_bytes, failed, received, received_bytes, ignored, latencies = blaster.take()
    assert 95 <= sent <= 102 and failed == 0  # 0.5 s at 200/s (the first at t0)
    assert sent_bytes == sent * (12 + 100 + len(TRAILER))
    assert received == sent + 2 and received_bytes == sent * 112 + 2 * 52
    assert ignored == 1  # the forged packet
    assert len(unprotected) == received + 1
    assert others == [b"\x00\x01 a STUN consent check"]
    stamps = array("q", latencies)
    assert len(stamps) == received and all(0 <= ns < 5_000_000_000 for ns in stamps)
    per_client, failed_total, gaps = blaster.totals()
    assert per_client == [0, sent] and failed_total == 0 and gaps == 4
    assert blaster.take()[:6] == (0, 0, 0, 0, 0, 0)  # taken: reset


def test_the_packets_carry_the_send_time_and_consecutive_numbers(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    blaster = Blaster([(b.fileno(), None, print, None, 0xABCD)], 16)
    t0 = time.monotonic_ns()
    blaster.run(t0, t0 + 100_000_000, 100.0, 0)
    got = []
    a.setblocking(False)
    while True:
        try:
            got.append(a.recv(2048))
        except BlockingIOError:
            break
    assert len(got) == blaster.totals()[0][0] >= 9
    for index, packet in enumerate(got):
        first, pt, seq, _ts, ssrc, stamp = struct.unpack_from("!BBHIIQ", packet)
        assert (first, pt, seq, ssrc, len(packet)) == (0x80, 96, index, 0xABCD, 12 + 16)
        assert t0 <= stamp <= time.monotonic_ns()


def test_a_blaster_refuses_bad_settings(pair: tuple[socket.socket, socket.socket]) -> None:
    a, _ = pair
    with pytest.raises(ValueError):
        Blaster([(a.fileno(), None, print, None, None)], 4)  # no room for the send time
    with pytest.raises(ValueError):
        Blaster([], 100)
    with pytest.raises(TypeError):
        Blaster([(a.fileno(), None, "not callable", None, None)], 100)
    with pytest.raises(ValueError):
        Blaster([(a.fileno(), None, print, None, 1 << 40)], 100)  # an SSRC has 32 bits


@pytest.mark.parametrize("encryption", ["on", "none"])
def test_bench_with_the_compiled_generator_delivers_everything(encryption: str) -> None:
    done = run_conf(
        "bench", "--transport", "rtp", "--generator", "compiled", "--encryption", encryption,
        "--duration", "2", "--publishers", "2", "--subscribers", "4", "--rate", "100", "--procs", "2",
        "--json", timeout=90,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["config"]["generator"] == "compiled"
    packets = figures["packets"]
    assert 2 * 2 * 100 - 4 <= packets["sent"] <= 2 * 2 * 100 + 4  # the fixed rate, 2 s
    # every packet reaches the 5 other members: 1 other publisher and 4 subscribers
    assert packets["expected"] == packets["sent"] * 5 == packets["received"]
    assert packets["loss"] == 0 and packets["seq_gaps"] == 0
    latency = figures["latency_ms"]
    assert 0 < latency["p50"] <= latency["p99"]
    assert all(0 < busy <= 105 for busy in figures["generator_media_thread_cpu_pct"])  # the loop's thread
    assert len(figures["generator_media_thread_cpu_pct"]) == 2


def test_the_compiled_generator_needs_rtp() -> None:
    done = run_conf("bench", "--transport", "tcp", "--generator", "compiled", "--duration", "1", timeout=90)
    assert done.returncode != 0
    assert "--generator compiled needs rtp://" in done.stderr


def test_latency_is_taken_when_the_datagram_arrives_not_when_it_is_read(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """A packet that waits 300 ms in the socket before the loop reads it counts its arrival (the kernel's
    time stamp), so the latency is what the path added, not how long the reader was away."""
    a, b = pair
    blaster = Blaster([(a.fileno(), None, print, None, None)], 16)
    t0 = time.monotonic_ns()
    blaster.run(t0, t0, 0.0, 1_000_000)  # turns the kernel's time stamps on
    b.send(PacketMaker(0x55, 16).make(time.monotonic_ns()))
    time.sleep(0.3)
    t0 = time.monotonic_ns()
    blaster.run(t0, t0, 0.0, 50_000_000)
    received, latencies = blaster.take()[3::3]
    assert received == 1
    (latency,) = array("q", latencies)
    assert 0 <= latency < 100_000_000  # it arrived within a few microseconds of being sent
