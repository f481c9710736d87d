"""Keep a server's memory from growing with the work it does: glibc's malloc, told not to adapt.

glibc maps a block of 128 KiB or more on its own and unmaps it when it is freed; but freeing such a block
also raises that threshold to the block's size (up to 32 MiB). A scrypt check (N=2^14, r=8) takes a
16 MiB block: after the first one, later checks got their 16 MiB from the arena of the thread that ran
them, and each arena kept it once freed: 16 MiB more for good for every thread that had hashed (asyncio's
default pool has up to 6). Measured under join churn before the meeting's key made checks rare: the
server's RSS went from 54 MiB idle to 151 MiB with the first joins, then on up in 16 MiB steps (156 to
238 MiB in 150 s) as checks landed on other threads' arenas. The raised threshold also put every smaller
block on the heap, such as the 256 KiB each TLS connection reads into. Setting the threshold once,
explicitly, turns the adjustment off: blocks of 128 KiB and more are mapped and unmapped every time.
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
