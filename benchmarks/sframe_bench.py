"""SFrame cost per RTP packet on this machine: what end-to-end encryption adds to publishing and receiving.

Prints figures; asserts nothing. For each suite, with a 1,200-byte video payload and a 100-byte Opus
payload: SFrame encrypt and decrypt alone (``protocol/sframe.py``). Then the whole per-packet path of an
E2EE meeting (``media/e2ee.py``): parse the RTP packet, encrypt its payload bound to the header, write it;
parse, decrypt with the replay check. Run with ``.venv/bin/python benchmarks/sframe_bench.py``.
"""

from __future__ import annotations

import argparse
import os
import time

from conf_cli.client.keyring import KeyRing, encode_key, new_private_key
from conf_cli.client.media.e2ee import protect, unprotect
from conf_cli.protocol.rtp import RtpPacket
from conf_cli.protocol.sframe import SUITES, CipherSuite, ReceiveContext, SendContext

KID = 0x12345678
METADATA = b"m" * 11


def suite_figures(suite: CipherSuite, payload: bytes, count: int) -> tuple[float, float]:
    """Microseconds per SFrame encrypt and per decrypt, over ``count`` frames."""
    sender = SendContext(suite, KID, b"k" * 16)
    start = time.perf_counter()
    frames = [sender.encrypt(payload, METADATA) for _ in range(count)]
    encrypt = time.perf_counter() - start
    receiver = ReceiveContext(suite)
    receiver.add_key(KID, b"k" * 16)
    start = time.perf_counter()
    for frame in frames:
        receiver.decrypt(frame, METADATA)
    decrypt = time.perf_counter() - start
    return encrypt / count * 1e6, decrypt / count * 1e6


def packet_figures(size: int, count: int) -> tuple[float, float]:
    """Microseconds per RTP packet through protect() and through parse + unprotect()."""
    ada, bob = KeyRing("m", "ada", new_private_key()), KeyRing("m", "bob", new_private_key())
    ada.start([{"name": "bob", "key": encode_key(bob.public)}])
    sealed = bob.start([{"name": "ada", "key": encode_key(ada.public)}])
    assert sealed is not None
    ada.open("bob", sealed["keys"][0]["box"])
    packets = [bytes(RtpPacket(96, i & 0xFFFF, i, 7, os.urandom(size))) for i in range(count)]
    start = time.perf_counter()
    wire = [protect(bob, packet) for packet in packets]
    out = time.perf_counter() - start
    start = time.perf_counter()
    for data in wire:
        unprotect(ada, RtpPacket.parse(data), "bob")
    back = time.perf_counter() - start
    return out / count * 1e6, back / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=20_000, help="packets per figure")
    count = parser.parse_args().count
    print(f"{'suite':28} {'bytes':>6} {'us/encrypt':>11} {'us/decrypt':>11} {'encrypt/s':>11}")
    for size in (1200, 100):
        payload = os.urandom(size)
        for suite in SUITES.values():
            enc, dec = suite_figures(suite, payload, count)
            print(f"{suite.name:28} {size:6} {enc:11.2f} {dec:11.2f} {1e6 / enc:11,.0f}")
    for size in (1200, 100):
        out, back = packet_figures(size, count)
        print(f"RTP packet, {size:4}-byte payload: protect {out:6.2f} us, parse + unprotect {back:6.2f} us")


if __name__ == "__main__":
    main()
