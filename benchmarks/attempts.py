"""What a passcode check costs the server: by scrypt, by the meeting's key, and refused by the rate limit.

A check with no key kept for the meeting costs one scrypt hash (in a worker thread); once the server knows
the meeting's passcode (from ``create``), a check is an HMAC under the meeting's key, right or wrong; a
guess the limiter refuses costs a dictionary look-up and an error message, with no check at all. This
prints the three, measured on the sans-I/O hub (no sockets), so the figures are the server's own work
per attempt.

Run: ``.venv/bin/python benchmarks/attempts.py [--guesses 20000]``
"""

from __future__ import annotations

import argparse
import time

from conf_cli.protocol.control import PROTOCOL_VERSION, encode
from conf_cli.server.hub import Deferred, Hub
from conf_cli.server.limiter import AttemptLimiter, Limits
from conf_cli.server.passcode import PasscodeHash

MEETING = "abc-defg-hjk"


def hub_with_meeting(limits: Limits) -> Hub:
    """A hub holding MEETING (passcode ``right-1``), created by connection 1 from 10.0.0.1."""
    hub = Hub(new_id=lambda: MEETING, limiter=AttemptLimiter(limits))
    hub.connected(1, 0.0, "10.0.0.1:5000")
    hub.received(1, encode({"type": "hello", "protocol": PROTOCOL_VERSION}), 0.0)
    for action in hub.received(1, encode({"type": "create", "name": "host", "passcode": "right-1"}), 0.0):
        if isinstance(action, Deferred):
            action.resume(action.work(), 0.0)
    return hub


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

    # The meeting's key: every guess checked (no limit), from one address; none is hashed.
    unlimited = Limits(10**9, 10**9, 60.0)
    hub = hub_with_meeting(unlimited)
    hub.connected(2, 0.0, "10.6.6.6:6000")
    hub.received(2, encode({"type": "hello", "protocol": PROTOCOL_VERSION}), 0.0)
    guess = encode({"type": "join", "meeting": MEETING, "name": "mallory", "passcode": "wrong"})
    started = time.perf_counter()
    for _ in range(args.guesses):
        hub.received(2, guess, 1.0)
    per_keyed = (time.perf_counter() - started) / args.guesses
    keyed_hashed = hub.stats.passcode_hashed

    # The rate limit: 5 guesses a minute from one address; the rest are refused before any check.
    hub = hub_with_meeting(Limits(5, 20, 60.0))
    hub.connected(2, 0.0, "10.6.6.6:6000")
    hub.received(2, encode({"type": "hello", "protocol": PROTOCOL_VERSION}), 0.0)
    started = time.perf_counter()
    for _ in range(args.guesses):
        hub.received(2, guess, 1.0)
    per_refusal = (time.perf_counter() - started) / args.guesses

    print(f"scrypt check of one passcode: {per_hash * 1000:.1f} ms ({1 / per_hash:.0f} checks/s per core)")
    print(
        f"check by the meeting's key (a whole join request, refused as wrong): {per_keyed * 1e6:.1f} us "
        f"({per_hash / per_keyed:.0f} times less than a hash; {keyed_hashed} of {args.guesses} hashed)"
    )
    print(f"{args.guesses} guesses from one address under the limit: {hub.stats.passcode_checks} checked, "
          f"{hub.stats.attempts_refused} refused")  # fmt: skip
    print(f"a refused guess: {per_refusal * 1e6:.1f} us ({1 / per_refusal:.0f} refusals/s, no check)")


if __name__ == "__main__":
    main()
