"""Capturing loopback traffic with tcpdump in tests, and reading back what travelled.

tcpdump is started and stopped by PID; it captures only the ports a test names, on ``lo``.
:func:`payloads` turns the capture into what the applications sent: each TCP flow's bytes joined in
order (so text split over two segments is found whole) and each UDP datagram.
"""

from __future__ import annotations

import contextlib
import functools
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path

READY_TIMEOUT = 10.0
PROBE_ATTEMPTS = 3


def free_port_pair() -> int:
    """A port P such that TCP and UDP P and P + 1 are free on 127.0.0.1 (P + 1: zmq's media port before
    protocol version 2, which tests still watch and probe)."""
    chooser = random.Random()
    for _ in range(200):
        port = chooser.randrange(20_000, 60_000, 2)
        socks: list[socket.socket] = []
        try:
            for number in (port, port + 1):
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    sock = socket.socket(socket.AF_INET, kind)
                    socks.append(sock)
                    sock.bind(("127.0.0.1", number))
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
        return port
    raise RuntimeError("no free pair of ports found")


@functools.cache
def capture_unavailable() -> str | None:
    """Why a loopback capture cannot be made here, or None if it can: a real capture is tried, since
    tcpdump being installed does not mean this user may capture."""
    why = ""
    for _ in range(PROBE_ATTEMPTS):  # a loaded machine may stall one probe; a missing permission fails all
        with tempfile.TemporaryDirectory() as folder:
            try:
                with capture(Path(folder) / "probe.pcap", [free_port_pair()], settle=0.0):
                    pass
            except (OSError, RuntimeError) as error:
                why = f"cannot capture on lo: {error}"
                continue
        return None
    return why


@contextlib.contextmanager
def capture(
    path: Path,
    ports: list[int],
    settle: float = 1.0,
    *,
    interface: str = "lo",
    expression: str | None = None,
    inside: Sequence[str] = (),
) -> Iterator[Path]:
    """tcpdump on ``interface`` for TCP and UDP ``ports`` (or a tcpdump ``expression``) into ``path``
    (pcap) while the block runs, and ``settle`` seconds after it, so that the last packets reach the
    file. ``inside`` prefixes the command (``NetLab.inside(ns)``: capture in a network namespace)."""
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        raise RuntimeError("tcpdump is not installed (scripts/setup-system.sh installs it)")
    if expression is None:
        expression = " or ".join(f"port {port}" for port in ports)
    # --immediate-mode: without it packets wait in the kernel's ring for up to a second, and those of the
    # last second (a meeting's final chat line, say) would be lost when tcpdump is stopped.
    process = subprocess.Popen(
        [
            *inside,
            tcpdump,
            "-i",
            interface,
            "-n",
            "-U",
            "--immediate-mode",
            "-B",
            "16384",
            "-s",
            "0",
            "-w",
            str(path),
            expression,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + READY_TIMEOUT
        line = ""
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            if "listening on" in line or not line:
                break
        if "listening on" not in line:
            raise RuntimeError(f"tcpdump did not start: {line.strip()}")
        yield path
        time.sleep(settle)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if process.stderr is not None:
            summary = process.stderr.read()
            process.stderr.close()
            if not re.search(r"^0 packets dropped by kernel", summary, re.MULTILINE):
                raise RuntimeError(f"tcpdump lost packets: {summary.strip()}")


def payloads(path: Path) -> list[bytes]:
    """Every TCP flow's payload, joined, and every UDP payload, from an Ethernet/IPv4 pcap file."""
    data = path.read_bytes()
    if len(data) < 24 or data[:4] not in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4"):
        raise ValueError(f"{path} is not a pcap file")
    order = "<" if data[:4] == b"\xd4\xc3\xb2\xa1" else ">"
    record = struct.Struct(order + "IIII")
    flows: dict[tuple[int, int], bytearray] = defaultdict(bytearray)
    datagrams: list[bytes] = []
    offset = 24
    while offset + record.size <= len(data):
        _, _, captured, _ = record.unpack_from(data, offset)
        frame = data[offset + record.size : offset + record.size + captured]
        offset += record.size + captured
        if len(frame) < 34 or frame[12:14] != b"\x08\x00":  # IPv4 only: the tests use 127.0.0.1
            continue
        ip = frame[14:]
        header = (ip[0] & 0x0F) * 4
        total = int.from_bytes(ip[2:4], "big")
        protocol, body = ip[9], ip[header:total]
        if protocol == 6 and len(body) >= 20:
            ports = (int.from_bytes(body[0:2], "big"), int.from_bytes(body[2:4], "big"))
            flows[ports] += body[(body[12] >> 4) * 4 :]
        elif protocol == 17 and len(body) >= 8:
            datagrams.append(body[8:])
    return [bytes(flow) for flow in flows.values()] + datagrams


def contains(chunks: list[bytes], needle: bytes) -> bool:
    return any(needle in chunk for chunk in chunks)
