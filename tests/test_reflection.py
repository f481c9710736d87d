"""The call port as a reflector (security review, Medium 14), with real datagrams to a real server."""

from __future__ import annotations

import socket
import time

from conf_cli.client.calls.peer import REQUEST_SIZE
from conf_cli.protocol.stun import BINDING, CLASS_REQUEST, StunMessage, pad_to
from conf_cli.server.call_relay import ANSWERS_PER_SOURCE
from conf_cli.testing.processes import spawn


def _answers(sock: socket.socket, seconds: float) -> list[bytes]:
    got = []
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        try:
            got.append(sock.recv(2048))
        except TimeoutError:
            break
    return got


def test_the_call_port_answers_no_more_bytes_than_asked_and_few_per_source() -> None:
    """A bare 20-byte Binding request (what a reflection attack sends with a victim's source address) gets
    no answer; conf's padded request gets one no larger than itself; a flood of padded requests from one
    host gets at most ANSWERS_PER_SOURCE answers."""
    server = spawn(["server", "--json", "--host", "127.0.0.1", "--port", "0"])
    try:
        port = server.expect("server_started")["call_port"]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            bare = bytes(StunMessage(BINDING, CLASS_REQUEST, b"b" * 12))
            sock.sendto(bare, ("127.0.0.1", port))
            assert _answers(sock, 1.0) == []
            padded = bytes(
                pad_to(StunMessage(BINDING, CLASS_REQUEST, b"p" * 12, fingerprint=True), REQUEST_SIZE)
            )
            sock.sendto(padded, ("127.0.0.1", port))
            (answer,) = _answers(sock, 2.0)
            assert StunMessage.parse(answer).xor_mapped_address == sock.getsockname()
            print(
                f"STUN answer / request: {len(answer)} / {len(padded)} bytes"
                f" = {len(answer) / len(padded):.2f}"
            )
            assert len(answer) <= len(padded)
            for n in range(200):
                request = pad_to(
                    StunMessage(BINDING, CLASS_REQUEST, n.to_bytes(12, "big"), fingerprint=True), REQUEST_SIZE
                )
                sock.sendto(bytes(request), ("127.0.0.1", port))
            flood = _answers(sock, 1.5)
            print(f"STUN flood of 200 requests from one host: {len(flood)} answers")
            assert len(flood) <= ANSWERS_PER_SOURCE - 1  # the padded request above had one
    finally:
        server.stop()
