"""How long a call takes to connect through two NATs: from the callee accepting to media flowing.

Two clients, each behind its own MASQUERADE NAT in network namespaces (conf_cli.testing.netns, needs
root), call each other through a real ``conf server`` several times: first with UDP between the NATs
open (the path is direct), then with it cut (the call falls back to the server's relay). For each call
it prints the time from ``call_accepted`` to ``call_path`` at the caller (connectivity checks, and for the
relay the check timeout and the relay binding) and from ``call_path`` to the first received video
statistics with decoded frames (these come once a second, so that figure is coarse).

    sudo .venv/bin/python benchmarks/call_setup.py --calls 3
"""

from __future__ import annotations

import argparse
import statistics
import time

from conf_cli.testing.netns import NetLab, netns_unavailable, two_nats

SMALL = ("--width", "320", "--height", "240", "--fps", "15")


def one_call(lab: NetLab, picture, url: str, n: int) -> tuple[str, float, float]:
    common = ["--json", "--server", url, "--share", "pattern", *SMALL]
    callee = lab.conf(picture.clients[1], ["call", "--listen", "--accept", "--name", f"bob{n}", *common])
    callee.expect("online", timeout=30)
    caller = lab.conf(picture.clients[0], ["call", f"bob{n}", "--name", f"ada{n}", *common])
    caller.expect("call_accepted", timeout=30)
    accepted = time.monotonic()
    path = caller.expect("call_path", timeout=30)
    connected = time.monotonic()
    caller.expect("track_stats", lambda e: e["frames"] > 0, timeout=30)
    flowing = time.monotonic()
    caller.send("/leave")
    caller.wait(15)
    callee.stop()
    return path["path"], connected - accepted, flowing - connected


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=3, help="calls per case")
    args = parser.parse_args()
    why = netns_unavailable()
    if why is not None:
        raise SystemExit(f"call_setup: {why}")
    print(f"{'case':<10} {'path':<8} {'accept->path ms':>16} {'path->frames ms':>16}")
    for case in ("open", "cut"):
        with NetLab() as lab:
            picture = two_nats(lab)
            if case == "cut":
                a, b = picture.public_ips
                for one, other in ((a, b), (b, a)):
                    lab.iptables(
                        picture.wan, "-A", "FORWARD", "-p", "udp", "-s", one, "-d", other, "-j", "DROP"
                    )
            server = lab.conf(
                picture.server, ["server", "--json", "--host", picture.server_ip, "--port", "0"]
            )
            url = server.expect("server_started")["urls"][0]
            setups, flows, paths = [], [], set()
            for n in range(args.calls):
                path, setup, flow = one_call(lab, picture, url, n)
                paths.add(path)
                setups.append(setup * 1000)
                flows.append(flow * 1000)
                print(f"{case:<10} {path:<8} {setup * 1000:>16.0f} {flow * 1000:>16.0f}")
            print(
                f"{case + ' p50':<10} {'/'.join(sorted(paths)):<8} "
                f"{statistics.median(setups):>16.0f} {statistics.median(flows):>16.0f}"
            )


if __name__ == "__main__":
    main()
