"""The impairment relay as a bottleneck: a client's datagrams leave at the limited rate, what does not fit
its queue is dropped, and lifting the limit lets them through at once; TCP is paced the same way."""

from __future__ import annotations

import socket
import threading
import time

from conf_cli.plugin.stream import NOTSENT_LOWAT
from conf_cli.testing.relay import start_relay

SIZE = 1000


def udp_sink() -> tuple[socket.socket, list[float]]:
    """A UDP socket on loopback noting when each datagram arrives (in a thread)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.5)
    arrivals: list[float] = []

    def read() -> None:
        while True:
            try:
                sock.recv(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            arrivals.append(time.monotonic())

    threading.Thread(target=read, daemon=True).start()
    return sock, arrivals


def test_udp_leaves_at_the_limited_rate_and_what_overflows_the_queue_is_dropped() -> None:
    sink, arrivals = udp_sink()
    try:
        with start_relay("127.0.0.1", sink.getsockname()[1], rate_up=400_000, queue=20_000) as relay:
            client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for _ in range(100):  # 100 kB at once: 20 kB fit the queue
                client.sendto(bytes(SIZE), ("127.0.0.1", relay.port))
            time.sleep(1.5)
            stats = relay.stats()["upstream"]
            assert 18 <= stats["forwarded"] <= 22
            assert stats["queue_dropped"] == stats["received"] - stats["forwarded"] > 50
            assert len(arrivals) == stats["forwarded"]
            spread = arrivals[-1] - arrivals[0]  # at 400 kbit/s, 1,000 bytes take 20 ms each
            assert 0.2 < spread < 0.9, spread
            relay.set_rate(None)
            time.sleep(0.1)
            before = len(arrivals)
            for _ in range(100):
                client.sendto(bytes(SIZE), ("127.0.0.1", relay.port))
            time.sleep(0.5)
            assert (
                len(arrivals) - before >= 80
            )  # no limit, no queue: nearly all (a loaded loopback may drop some)
            client.close()
    finally:
        sink.close()


def test_tcp_through_a_limited_relay_is_paced() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    received = bytearray()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(65536):
                received.extend(data)

    threading.Thread(target=serve, daemon=True).start()
    try:
        with start_relay("127.0.0.1", server.getsockname()[1], rate_up=800_000) as relay:
            with socket.create_connection(("127.0.0.1", relay.port)) as client:
                client.settimeout(10)
                started = time.monotonic()
                client.sendall(bytes(200_000))  # 1.6 Mbit at 800 kbit/s: about 2 s
                deadline = started + 10
                while len(received) < 200_000 and time.monotonic() < deadline:
                    time.sleep(0.05)
                took = time.monotonic() - started
            assert len(received) == 200_000
            assert 1.5 < took < 6.0, took
    finally:
        server.close()


def test_a_tcp_stream_through_a_limited_relay_queues_about_what_its_datagram_queue_holds() -> None:
    """A sender that keeps a 400 kbit/s relay busy with timestamped records (its unsent bytes kept small,
    as conf's tcp:// server keeps them: ``NOTSENT_LOWAT``): the oldest record a receiver gets is about a
    second old (the relay's ~32 kB of kernel buffer and read-ahead, and the sender's 16 kB), not the 2.8 s
    the relay's earlier buffers made it. A bottleneck holds what its queue holds, on TCP as on UDP."""
    server = socket.create_server(("127.0.0.1", 0))
    ages: list[tuple[float, float]] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            pending = b""
            while data := conn.recv(65536):
                pending += data
                while len(pending) >= SIZE:
                    record, pending = pending[:SIZE], pending[SIZE:]
                    now = time.monotonic()
                    ages.append((now, now - float(record.split(b" ")[0])))

    threading.Thread(target=serve, daemon=True).start()
    try:
        with start_relay("127.0.0.1", server.getsockname()[1], rate_up=400_000) as relay:
            client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, NOTSENT_LOWAT)
            client.connect(("127.0.0.1", relay.port))
            client.settimeout(10)
            with client:
                started = time.monotonic()
                while time.monotonic() - started < 5.0:  # 2 Mbit/s offered: the relay always has more
                    record = f"{time.monotonic():.6f} ".encode().ljust(SIZE, b".")
                    client.sendall(record)
                    time.sleep(SIZE * 8 / 2_000_000)
            settled = [age for when, age in ages if when >= started + 3.0]
    finally:
        server.close()
    assert settled, ages[-5:]
    # 400 kbit/s carries 50 kB a second: 0.9 s measured, 2.8 s with the earlier buffers
    assert max(settled) < 1.5, max(settled)
