"""When a datagram reached this host: the kernel's receive time stamp, not when the process read it.

A receiver whose process waited for a core reads what queued in its socket in one burst; timed by the
process, those packets would seem to have queued on the network, and its downlink estimator would ask the
server for a lower layer the network never needed. Linux stamps each datagram as it arrives once a socket
asked for it; ``SIOCGSTAMPNS`` gives the stamp of the last datagram read (one read per event-loop callback).
The first call only switches stamping on. Elsewhere, or if the call fails, None: the caller times the
packet itself.
"""

from __future__ import annotations

import fcntl
import socket
import struct
import sys
import time

SIOCGSTAMPNS = 0x8907
"""Linux: the receive time of the last datagram read from the socket, a struct timespec (real time)."""
_TIMESPEC = struct.Struct("@qq")
_EMPTY = bytes(_TIMESPEC.size)
MAX_AGE = 5.0
"""A stamp older than this (seconds) is taken for a stale one (a datagram from before stamping began)."""


def start_stamping(sock: socket.socket) -> bool:
    """Ask the kernel to stamp every datagram ``sock`` receives from now on; False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        fcntl.ioctl(sock.fileno(), SIOCGSTAMPNS, _EMPTY)
    except FileNotFoundError:
        return True  # nothing read yet: stamping is on for what comes
    except OSError:
        return False
    return True


def arrival(sock: socket.socket) -> float | None:
    """When the datagram last read from ``sock`` arrived, in :func:`time.monotonic` seconds; None if
    the kernel did not say."""
    try:
        seconds, nanoseconds = _TIMESPEC.unpack(fcntl.ioctl(sock.fileno(), SIOCGSTAMPNS, _EMPTY))
    except OSError:
        return None
    age = time.time() - (seconds + nanoseconds * 1e-9)
    if not 0.0 <= age <= MAX_AGE:
        return None if age > MAX_AGE else time.monotonic()
    return time.monotonic() - age
