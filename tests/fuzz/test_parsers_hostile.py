"""Every parser of bytes from the network, over random, mutated and boundary input (hypothesis).

The checks are the fuzz targets' own (fuzz/targets.py): only the documented exception type may
escape, an encoder gives back what was parsed, and bounds hold. Here hypothesis drives them, so a
failure shrinks to a small input; ``python -m fuzz`` drives the same targets for longer.
"""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fuzz

NAMES = fuzz.names()
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


def _check(name: str, data: bytes) -> None:
    """Run a target; an undocumented exception (or a broken round trip) propagates and fails the test."""
    fuzz.get(name).check(data)


# An edit: (operation, position, value); positions wrap around the input, so edits shrink well.
edits = st.lists(
    st.tuples(st.integers(0, 6), st.integers(0, 1 << 16), st.integers(0, (1 << 32) - 1)), max_size=5
)
BOUNDARY_16 = (0, 1, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF)
BOUNDARY_32 = (0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


def mutate(seed: bytes, changes: list[tuple[int, int, int]]) -> bytes:
    out = bytearray(seed)
    for op, pos, value in changes:
        at = pos % (len(out) + 1)
        if op == 0 and out:
            out[at % len(out)] = value & 0xFF
        elif op == 1 and len(out) >= 2:
            at = at % (len(out) - 1)
            out[at : at + 2] = BOUNDARY_16[value % len(BOUNDARY_16)].to_bytes(2, "big")
        elif op == 2 and len(out) >= 4:
            at = at % (len(out) - 3)
            out[at : at + 4] = BOUNDARY_32[value % len(BOUNDARY_32)].to_bytes(4, "big")
        elif op == 3:
            del out[at:]
        elif op == 4:
            out[at:at] = value.to_bytes(4, "big")[: 1 + value % 4]
        elif op == 5:
            del out[at : at + 1 + value % 32]
        elif op == 6 and out:
            out[at % len(out)] ^= 1 << (value % 8)
    return bytes(out)


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(data=st.binary(max_size=1600))
def test_random_bytes(name: str, data: bytes) -> None:
    _check(name, data)


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(data=st.data(), changes=edits)
def test_mutated_real_input(name: str, data: st.DataObject, changes: list[tuple[int, int, int]]) -> None:
    seed = data.draw(st.sampled_from(list(fuzz.get(name).seeds())))
    _check(name, mutate(seed, changes))


@pytest.mark.parametrize("name", NAMES)
def test_every_field_of_every_seed_at_its_bounds(name: str) -> None:
    """Each 16- and 32-bit big-endian field (at every offset of the first 256 bytes of every seed) set to
    0 and to all ones, and each seed truncated at every length: lengths, counts and sizes at both ends."""
    for seed in fuzz.get(name).seeds():
        for at in range(min(len(seed), 256)):
            for width, values in ((2, (0, 0xFFFF)), (4, (0, 0xFFFFFFFF))):
                if at + width <= len(seed):
                    for value in values:
                        _check(name, seed[:at] + value.to_bytes(width, "big") + seed[at + width :])
            _check(name, seed[:at])


@pytest.mark.parametrize("name", NAMES)
def test_no_allocation_from_length_fields(name: str) -> None:
    """Whatever a length field claims, parsing allocates in proportion to the input, never to the claim."""
    target = fuzz.get(name)
    cases = []
    for seed in target.seeds():
        for at in range(0, min(len(seed), 64)):
            if at + 4 <= len(seed):
                cases.append(seed[:at] + b"\xff\xff\xff\xff" + seed[at + 4 :])
    tracemalloc.start()
    try:
        for data in cases:
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            target.check(data)
            peak = tracemalloc.get_traced_memory()[1] - before
            assert peak < 1_000_000 + 400 * len(data), (name, len(data), peak)
    finally:
        tracemalloc.stop()
