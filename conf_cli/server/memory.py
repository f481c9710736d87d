"""Keep a server's memory from growing with the work it does: glibc's malloc, told not to adapt.

glibc maps a block of 128 KiB or more on its own and unmaps it when it is freed; but freeing such a block
also raises that threshold to the block's size (up to 32 MiB). A scrypt check (N=2^14, r=8) takes a
16 MiB block: after the first one, every block under 16 MiB came from the heap instead, among them the
256 KiB buffer each TLS connection reads into. Under join churn those buffers, each freed at a different
time among long-lived objects, left the heap ever more fragmented: the server's RSS rose steadily (from
61 to 68 MiB in 90 s of 100 clients joining and leaving) although every object was freed. And each hashing
thread's arena kept its own 16 MiB after its first check. Setting the threshold once, explicitly, turns
the adjustment off: blocks of 128 KiB and more are mapped and unmapped every time.
"""

from __future__ import annotations

import ctypes
import sys

M_MMAP_THRESHOLD = -3
"""mallopt's parameter number (malloc.h)."""
LARGE_BLOCK = 128 * 1024
"""Blocks of at least this many bytes are mapped on their own and returned when freed (glibc's default
threshold, kept)."""


def return_large_blocks() -> bool:
    """Have malloc give blocks of :data:`LARGE_BLOCK` and more back to the system when they are freed.

    True if it took effect (glibc); False where there is no such setting (another C library)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, LARGE_BLOCK))
