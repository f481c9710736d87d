"""SSDP from the other side, for tests inside network namespaces (multicast must not leave the machine).

Run as ``python -m conf_cli.testing.ssdp COMMAND`` inside a namespace (:meth:`NetLab.python
<conf_cli.testing.netns.NetLab.python>`); each prints JSON lines:

- ``impostor --id ID --url URL --fingerprint FP --listen HOST:PORT``: what someone on the local network
  who wants a conf server's visitors does: answers every search for conf servers as if it were server
  ``ID``, naming its own URL and key, and listens on ``HOST:PORT`` for whoever comes (``{"type":
  "ready"}``, then ``{"type": "answered"}`` per answer and ``{"type": "connected"}`` per connection).
- ``probe --to ADDR --size N --count K [--target ST]``: sends K searches of N bytes to ADDR (the SSDP
  group or a host) from one socket, then prints ``{"type": "probe", "sent": N, "answers": [sizes]}``.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import threading
import time

from conf_cli.errors import ProtocolError
from conf_cli.protocol import ssdp


def _say(event: dict[str, object]) -> None:
    print(json.dumps(event), flush=True)


def impostor(server_id: str, url: str, fingerprint: str, listen: str) -> None:
    host, port = listen.rsplit(":", 1)
    listener = socket.create_server((host, int(port)))

    def accept() -> None:
        while True:
            conn, _ = listener.accept()
            _say({"type": "connected"})
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("", ssdp.PORT))
    membership = struct.pack("4s4s", socket.inet_aton(ssdp.GROUP), socket.inet_aton(host))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    answer = ssdp.response(ssdp.Announcement(server_id, (url,), (url.split("://")[0],), fingerprint))
    _say({"type": "ready"})
    while True:
        data, source = sock.recvfrom(ssdp.MAX_DATAGRAM + 1)
        try:
            if not ssdp.wanted(ssdp.parse_search(data)):
                continue
        except ProtocolError:
            continue
        sock.sendto(answer, source)
        _say({"type": "answered"})


def probe(to: str, size: int, count: int, target: str, listen: float) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
    sock.bind(("0.0.0.0", 0))
    message = ssdp.search(target, size=size)
    for _ in range(count):
        sock.sendto(message, (to, ssdp.PORT))
        time.sleep(0.002)
    answers = []
    sock.settimeout(0.2)
    deadline = time.monotonic() + listen
    while time.monotonic() < deadline:
        try:
            data, _ = sock.recvfrom(4096)
        except TimeoutError:
            continue
        answers.append(len(data))
    _say({"type": "probe", "sent": len(message), "answers": answers})


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m conf_cli.testing.ssdp")
    commands = parser.add_subparsers(dest="command", required=True)
    rogue = commands.add_parser("impostor")
    rogue.add_argument("--id", required=True)
    rogue.add_argument("--url", required=True)
    rogue.add_argument("--fingerprint", required=True)
    rogue.add_argument("--listen", required=True)
    prober = commands.add_parser("probe")
    prober.add_argument("--to", default=ssdp.GROUP)
    prober.add_argument("--size", type=int, default=ssdp.SEARCH_SIZE)
    prober.add_argument("--count", type=int, default=1)
    prober.add_argument("--target", default=ssdp.SEARCH_TARGET)
    prober.add_argument("--listen-seconds", type=float, default=1.5)
    args = parser.parse_args(argv)
    if args.command == "impostor":
        impostor(args.id, args.url, args.fingerprint, args.listen)
    else:
        probe(args.to, args.size, args.count, args.target, args.listen_seconds)


if __name__ == "__main__":
    main(sys.argv[1:])
