"""The front-to-worker channel: a Unix ``SOCK_SEQPACKET`` pair, one record per message.

Front to worker: a hand-off record carries one client socket (as ancillary data) and
``b"H" + 4-byte header length + JSON header + bytes already read``; the header holds the client's
address and, for a ``create``, the meeting ID the front chose. Worker to front: ``b"R" + JSON`` reports
(its PID, live meeting IDs and open connections).
"""

from __future__ import annotations

import json
import socket
from typing import Any

MAX_RECORD = 1 << 17  # the front hands on at most 64 KiB already read, plus a small header


def channel_pair() -> tuple[socket.socket, socket.socket]:
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def handoff_record(header: dict[str, Any], already_read: bytes) -> bytes:
    encoded = json.dumps(header).encode()
    return b"H" + len(encoded).to_bytes(4, "big") + encoded + already_read


def parse_handoff(record: bytes) -> tuple[dict[str, Any], bytes]:
    if record[:1] != b"H" or len(record) < 5:
        raise ValueError("not a hand-off record")
    size = int.from_bytes(record[1:5], "big")
    header = json.loads(record[5 : 5 + size])
    if not isinstance(header, dict):
        raise ValueError("hand-off header is not an object")
    return header, record[5 + size :]


def report_record(report: dict[str, Any]) -> bytes:
    return b"R" + json.dumps(report).encode()


def parse_report(record: bytes) -> dict[str, Any]:
    if record[:1] != b"R":
        raise ValueError("not a report record")
    report = json.loads(record[1:])
    if not isinstance(report, dict):
        raise ValueError("report is not an object")
    return report
