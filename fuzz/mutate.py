"""A byte-level mutator for binary formats full of length fields (no coverage feedback needed).

Each call applies one to four edits drawn from what breaks parsers of packets: a flipped bit, a byte or a
16/32-bit big-endian field set to a boundary value (0, 1, all ones, the top bit, the input's own length
plus or minus a little), a run inserted, repeated or removed, a truncation, and a splice with another
input of the corpus. Everything is drawn from the ``random.Random`` given, so a run is reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

__all__ = ["Mutator"]

_BYTES = (0x00, 0x01, 0x02, 0x0F, 0x10, 0x1F, 0x20, 0x3F, 0x40, 0x7F, 0x80, 0x81, 0xC0, 0xFE, 0xFF)
_WORDS = (0, 1, 2, 3, 4, 0x7F, 0x80, 0xFF, 0x100, 0x3FFF, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF)
_LONGS = (0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF, 0x2112A442)


class Mutator:
    def __init__(self, rng: random.Random, max_size: int = 4096) -> None:
        self.rng = rng
        self.max_size = max_size

    def mutate(self, data: bytes, corpus: Sequence[bytes] = ()) -> bytes:
        """A mutated copy of ``data`` of at most ``max_size`` bytes."""
        out = bytearray(data)
        for _ in range(1 + self.rng.randrange(4) if self.rng.random() < 0.5 else 1):
            self._edit(out, corpus)
        del out[self.max_size :]
        return bytes(out)

    def _edit(self, out: bytearray, corpus: Sequence[bytes]) -> None:
        rng = self.rng
        size = len(out)
        choice = rng.randrange(12)
        if size == 0 or choice == 0:  # insert random bytes
            at = rng.randrange(size + 1)
            out[at:at] = rng.randbytes(rng.randrange(1, 17))
        elif choice == 1:
            at = rng.randrange(size)
            out[at] ^= 1 << rng.randrange(8)
        elif choice == 2:
            out[rng.randrange(size)] = rng.choice(_BYTES)
        elif choice == 3:
            at = rng.randrange(size)
            out[at] = (out[at] + rng.choice((-2, -1, 1, 2, 16))) & 0xFF
        elif choice == 4 and size >= 2:
            self._field(out, 2, (*_WORDS, size, size - 1, size + 1, size // 4, size // 4 - 1))
        elif choice == 5 and size >= 4:
            self._field(out, 4, (*_LONGS, size, size // 4))
        elif choice == 6:  # truncate
            del out[rng.randrange(size) :]
        elif choice == 7:  # remove a run
            at = rng.randrange(size)
            del out[at : at + rng.randrange(1, 33)]
        elif choice == 8:  # repeat a run
            at = rng.randrange(size)
            chunk = out[at : at + rng.randrange(1, 65)]
            out[at:at] = chunk * rng.randrange(1, 9)
        elif choice == 9 and corpus:  # splice with another input
            other = rng.choice(corpus)
            out[rng.randrange(size + 1) :] = other[rng.randrange(len(other) + 1) :]
        elif choice == 10:  # a run of a boundary byte
            at = rng.randrange(size + 1)
            out[at:at] = bytes((rng.choice(_BYTES),)) * rng.randrange(1, 65)
        else:  # copy bytes from one place over another (a length field copied onto a count)
            src, dst = rng.randrange(size), rng.randrange(size)
            length = rng.randrange(1, 9)
            out[dst : dst + length] = out[src : src + length]

    def _field(self, out: bytearray, width: int, values: Sequence[int]) -> None:
        at = self.rng.randrange(len(out) - width + 1)
        value = self.rng.choice(values) % (1 << 8 * width)
        out[at : at + width] = value.to_bytes(width, "big")
