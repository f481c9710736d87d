"""Keep a server's memory from growing with the passcode checks it runs in threads (glibc's malloc).

A scrypt check (N=2^14, r=8) takes a 16 MiB block. glibc maps a block that large on its own at first,
and unmaps it when freed; but freeing it also raises glibc's mmap threshold to the block's size (it does
so up to 32 MiB), so every later check gets its 16 MiB from the arena of the thread that runs it, and an
arena keeps what was freed at its top. Each hashing thread then held 16 MiB more, for good, and more
threads meant more of it. Setting the threshold once, explicitly, turns that adjustment off: blocks of
1 MiB and more are mapped and unmapped every time (a few microseconds beside a 50 ms hash).
"""

from __future__ import annotations

import ctypes
import sys

M_MMAP_THRESHOLD = -3
"""mallopt's parameter number (malloc.h)."""
LARGE_BLOCK = 1 << 20
"""Blocks of at least this many bytes are mapped on their own and returned when freed."""


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
