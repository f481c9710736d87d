"""What a passcode guess costs the server, with and without the rate limit.

A guess that goes ahead costs one scrypt hash (in a worker thread); a guess the limiter refuses costs a
dictionary look-up and an error message, with no hashing at all. This prints both, measured on the
sans-I/O hub (no sockets), so the figures are the server's own work per attempt.

Run: ``.venv/bin/python benchmarks/attempts.py [--guesses 20000]``
"""

from __future__ import annotations

import argparse
import time

from conf_cli.protocol.control import PROTOCOL_VERSION, encode
from conf_cli.server.hub import Deferred, Hub
from conf_cli.server.limiter import AttemptLimiter, Limits
from conf_cli.server.passcode import PasscodeHash


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guesses", type=int, default=20_000)
    parser.add_argument("--hashes", type=int, default=20)
    args = parser.parse_args()

    digest = PasscodeHash.of("right-1")
    started = time.perf_counter()
    for _ in range(args.hashes):
        digest.matches("wrong")
    per_hash = (time.perf_counter() - started) / args.hashes

    hub = Hub(new_id=lambda: "abc-defg-hjk", limiter=AttemptLimiter(Limits(5, 20, 60.0)))
    hub.connected(1, 0.0, "10.0.0.1:5000")
    hub.received(1, encode({"type": "hello", "protocol": PROTOCOL_VERSION}), 0.0)
    for action in hub.received(1, encode({"type": "create", "name": "host", "passcode": "right-1"}), 0.0):
        if isinstance(action, Deferred):
            action.resume(action.work(), 0.0)
    hub.connected(2, 0.0, "10.6.6.6:6000")
    hub.received(2, encode({"type": "hello", "protocol": PROTOCOL_VERSION}), 0.0)
    guess = encode({"type": "join", "meeting": "abc-defg-hjk", "name": "mallory", "passcode": "wrong"})
    hashed = 0
    started = time.perf_counter()
    for _ in range(args.guesses):
        for action in hub.received(2, guess, 1.0):
            if isinstance(action, Deferred):
                hashed += 1
                action.resume(action.work(), 1.0)
    per_refusal = (time.perf_counter() - started - hashed * per_hash) / (args.guesses - hashed)

    print(f"scrypt check of one passcode: {per_hash * 1000:.1f} ms ({1 / per_hash:.0f} guesses/s per core)")
    print(f"{args.guesses} guesses from one address: {hashed} hashed, {hub.stats.attempts_refused} refused")
    print(f"a refused guess: {per_refusal * 1e6:.1f} us ({1 / per_refusal:.0f} refusals/s, no hashing)")
    print(f"a refusal costs {per_hash / per_refusal:.0f} times less than a hash")


if __name__ == "__main__":
    main()
