"""How long a participant is out of its meeting when its link drops: a network blip (every TCP connection
through a relay cut) and a SIGKILL of the server followed by a restart (same identity, ports and folder).

Prints, per scenario and transport, each client's seconds from the drop to ``reconnected`` (its own
measure, from when it noticed) and from the drop to its ``joined`` (resumed) as the test process saw it.
Encryption is on (TLS for tcp://, TLS and SRTP for rtp://): resume tokens travel only on encrypted links.
Nothing here asserts a speed; run it a few times on a quiet machine and compare within one run.

    .venv/bin/python benchmarks/resume.py --rounds 3
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import time

from conf_cli.testing.capture import free_port_pair
from conf_cli.testing.processes import ClientPool, ConfProcess, spawn
from conf_cli.testing.relay import start_relay


def _back(process: ConfProcess, since: float) -> tuple[float, float]:
    reconnected = process.expect("reconnected", timeout=30)
    process.expect("joined", lambda e: e.get("resumed") is True, timeout=30)
    return float(reconnected["seconds"]), time.monotonic() - since


def blip(transport: str) -> list[tuple[float, float]]:
    port = free_port_pair()
    server = spawn(["server", "--json", "--host", "127.0.0.1", "--transport", f"{transport}:{port}"])
    server.expect("server_started")
    with start_relay("127.0.0.1", port) as relay:
        pool = ClientPool(f"{transport}://127.0.0.1:{relay.port}")
        try:
            host, meeting = pool.create("ada")
            others = [pool.joined(meeting, name) for name in ("bob", "cy")]
            time.sleep(1.0)
            dropped = time.monotonic()
            relay.drop_connections()
            return [_back(process, dropped) for process in (host, *others)]
        finally:
            pool.stop_all()
            server.stop()


def restart(transport: str) -> list[tuple[float, float]]:
    port = free_port_pair()
    args = ["server", "--json", "--host", "127.0.0.1", "--transport", f"{transport}:{port}"]
    server = spawn(args)
    server.expect("server_started")
    pool = ClientPool(f"{transport}://127.0.0.1:{port}")
    try:
        host, meeting = pool.create("ada")
        others = [pool.joined(meeting, name) for name in ("bob", "cy")]
        time.sleep(1.0)
        killed = time.monotonic()
        os.kill(server.pid, signal.SIGKILL)
        server.wait()
        server = spawn(args)
        server.expect("server_started")
        return [_back(process, killed) for process in (host, *others)]
    finally:
        pool.stop_all()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--transports", nargs="+", default=["tcp", "rtp"])
    args = parser.parse_args()
    print("encryption: on (TLS; SRTP media on rtp://); 3 clients per meeting")
    header = ("scenario", "transport", "own s (median)", "seen s (median)", "seen s (max)")
    print(f"{header[0]:<10} {header[1]:<9} {header[2]:>15} {header[3]:>16} {header[4]:>13}")
    for scenario, run in (("blip", blip), ("restart", restart)):
        for transport in args.transports:
            results = [result for _ in range(args.rounds) for result in run(transport)]
            own = statistics.median(r[0] for r in results)
            seen = [r[1] for r in results]
            middle, worst = statistics.median(seen), max(seen)
            print(f"{scenario:<10} {transport:<9} {own:>15.2f} {middle:>16.2f} {worst:>13.2f}")


if __name__ == "__main__":
    main()
