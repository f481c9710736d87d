"""The impairment relay as a bottleneck: a client's datagrams leave at the limited rate, what does not fit
its queue is dropped, and lifting the limit lets them through at once; TCP is paced the same way."""

from __future__ import annotations

import socket
import threading
import time

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
