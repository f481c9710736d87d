"""Media that adapts to the network: one function per scenario, each printing its figures.

``uplink``: a ``conf share pattern`` publisher (1280x720@30, asked for 1.5 Mbit/s) behind the impairment
relay, on a real ``conf server``; the relay limits the publisher's uplink (600 kbit/s by default) and later
lifts the limit (:func:`conf_cli.testing.uplink.run_uplink_scenario`). Printed per transport: the time
until the publisher's encoder target was under the limit, the receiver's loss and bit rate once it was,
the time until the target climbed back over 1.5 times the limit, and the target and estimate each second.
Encryption is each transport's default (rtp: SRTP, tcp: TLS, zmq: CURVE).

    .venv/bin/python benchmarks/adaptive.py --scenario uplink --transport rtp tcp zmq --limit 600k

Add a scenario as a function taking the parsed arguments and register it in ``SCENARIOS``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from conf_cli.testing.uplink import run_uplink_scenario


def rate(text: str) -> float:
    """``600k``, ``1.2M`` or a plain number of bit/s."""
    scale = {"k": 1e3, "m": 1e6}.get(text[-1:].lower(), 1.0)
    return float(text[:-1] if scale != 1.0 else text) * scale


def seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


def uplink(args: argparse.Namespace) -> None:
    """A publisher's uplink limited, then freed: how the encoder target follows (congestion control)."""
    print(f"uplink limited to {args.limit / 1000:.0f} kbit/s for {args.hold:.0f} s, then lifted")
    print(f"{'transport':<10}{'before':>10}{'adapted':>10}{'loss after':>12}{'received':>12}{'climbed':>10}")
    results = []
    for transport in args.transport:
        result = run_uplink_scenario(transport, limit=args.limit, hold=args.hold, release=args.release)
        results.append(result)
        loss = "-" if result.loss_after is None else f"{result.loss_after * 100:.2f} %"
        received = "-" if result.received_bitrate is None else f"{result.received_bitrate / 1000:.0f} k"
        print(
            f"{transport:<10}{result.before / 1000:>9.0f}k{seconds(result.adapted_after):>10}{loss:>12}"
            f"{received:>12}{seconds(result.climbed_after):>10}"
        )
    for result in results:
        print(f"\n{result.transport}: seconds since the limit, encoder target, estimate (kbit/s)")
        for at, target, estimate in result.timeline:
            print(f"  {at:5.1f}  {target / 1000:7.0f}  {estimate / 1000:7.0f}")


SCENARIOS: dict[str, Callable[[argparse.Namespace], None]] = {"uplink": uplink}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", nargs="+", choices=sorted(SCENARIOS), default=sorted(SCENARIOS))
    parser.add_argument(
        "--transport", nargs="+", choices=("rtp", "tcp", "zmq"), default=["rtp", "tcp", "zmq"]
    )
    parser.add_argument("--limit", type=rate, default=600_000.0, help="the uplink limit (bit/s; 600k)")
    parser.add_argument("--hold", type=float, default=10.0, help="seconds the limit holds")
    parser.add_argument("--release", type=float, default=12.0, help="seconds watched after it lifts")
    args = parser.parse_args()
    for name in args.scenario:
        SCENARIOS[name](args)


if __name__ == "__main__":
    main()
