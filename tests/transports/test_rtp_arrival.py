"""rtp:// times each datagram by the kernel's receive stamp, not by when the process read it."""

from __future__ import annotations

import socket
import sys
import time

import pytest
from conf_transport_udp_rtp.arrival import arrival, start_stamping

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIOCGSTAMPNS is Linux's")


def test_a_datagram_read_late_keeps_the_time_it_arrived() -> None:
    """A process that reads 0.3 s after the datagram came (it waited for a core) learns when it came."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        receiver.bind(("127.0.0.1", 0))
        assert start_stamping(receiver)
        sender.connect(receiver.getsockname())
        time.sleep(0.05)  # the kernel turns stamping on a moment after it is asked
        for late in (0.3, 0.0):
            sent = time.monotonic()
            sender.send(b"rtp")
            time.sleep(late)
            assert receiver.recv(16) == b"rtp"
            read = time.monotonic()
            came = arrival(receiver)
            assert came is not None
            assert sent - 0.005 <= came <= sent + 0.05, (late, came - sent)
            assert read - came >= late - 0.01
    finally:
        receiver.close()
        sender.close()


def test_a_socket_that_read_nothing_stamped_gives_no_time() -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        receiver.bind(("127.0.0.1", 0))
        assert arrival(receiver) is None  # nothing read yet
    finally:
        receiver.close()
