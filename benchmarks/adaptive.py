"""Media that adapts to the network: one function per scenario, each printing its figures, one run each.

Run with ``PYTHONPATH=.:plugins/capture .venv/bin/python benchmarks/adaptive.py [--scenario NAME ...]``;
prints figures and asserts nothing (docs/media.md says what they mean). Ratios compare like with like
within the same run.

- ``uplink``: a ``conf share pattern`` publisher (1280x720@30, asked for 1.5 Mbit/s) behind the impairment
  relay, on a real ``conf server``; the relay limits the publisher's uplink (600 kbit/s by default) and
  later lifts the limit (:func:`conf_cli.testing.uplink.run_uplink_scenario`). Printed per transport: the
  time until the publisher's encoder target was under the limit, the receiver's loss and bit rate once it
  was, the time until the target climbed back over 1.5 times the limit, and the target and estimate each
  second. Encryption is each transport's default (rtp: SRTP, tcp: TLS, zmq: CURVE).
  The publisher sends simulcast (``--no-simulcast`` for one layer): its estimate is split among the
  layers, and the top layer pauses under the limit.
- ``downlink``: a simulcast publisher (1280x720@15, 1.2 Mbit/s top layer), a host receiving directly and a
  subscriber behind the relay, whose downlink is limited (400 kbit/s by default, ``--downlink-limit``) once
  both receive 720p (:func:`conf_cli.testing.downlink.run_downlink_scenario`). Printed: the time until the
  server moved the limited subscriber down, the layer and picture size it ends on, its bit rate and loss
  once settled, the longest wait between two of its decoded pictures after the limit (the freeze) and over
  as long before it (the baseline), and the host's layers. Per transport (``--transport``), each with its
  default encryption (rtp: SRTP, tcp: TLS, zmq: CURVE).
- ``switch_freeze``: the freeze at a layer switch (the longest wait between two consecutive pictures the
  subscriber decoded, from the switch's cause to 2.5 s after the server's ``layer_switched``;
  :mod:`conf_cli.testing.switching`), ``--runs`` times per transport, each with its default encryption,
  the machine's load average beside each run. Switches the server chooses itself: a ``--view window``
  subscriber's window made smaller (down) and larger (up), and the climb back once a downlink limit is
  lifted; apart from those, the switch down a downlink limit forces (``--downlink-limit``, the relay's
  32 kB drop-tail queue) at its onset.
- ``simulcast_encoding``: the encoding CPU of a 720p30 source published as three simulcast layers
  (1280x720, 640x360, 320x180; each layer's encoder converts the picture once) against one layer.
- ``simulcast_forwarding``: the server's forwarding cost per packet (hub and forwarder, in process: no
  transport and no encryption) for a track of one layer, a simulcast track whose subscribers all receive
  the highest layer, and one where half of them receive a lower layer rewritten into the track's stream.
- ``capped_and_lossy``: real processes over rtp:// (SRTP): how long a subscriber with ``--max-bitrate
  300k`` waits for its first picture of the low layer, and how long one whose path starts losing 30 %
  takes to be moved down, with the loss each sees afterwards.
- ``dynacast_cpu``: real processes: the publisher's CPU while someone receives 720p, and while its only
  subscriber receives the low layer (the high and middle layers paused).

    .venv/bin/python benchmarks/adaptive.py --scenario uplink --transport rtp tcp zmq --limit 600k

Add a scenario as a function and register it: ``@scenario`` for one that takes no arguments, or in
``SCENARIOS`` for one that takes the parsed arguments.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from conf_cli.testing.downlink import run_downlink_scenario
from conf_cli.testing.switching import Switch, run_window_scenario
from conf_cli.testing.uplink import run_uplink_scenario

PLAIN: dict[str, Callable[[], None]] = {}


def scenario(function: Callable[[], None]) -> Callable[[], None]:
    PLAIN[function.__name__] = function
    return function


@scenario
def simulcast_encoding() -> None:
    import random

    from conf_capture.pattern import PatternGenerator

    from conf_cli.client.media.publisher import OutgoingTrack, simulcast_track
    from conf_cli.media.source import CapturedFrame

    rounds = 8
    frames = 1 + 30 * rounds
    generator = PatternGenerator(1280, 720)
    pictures = [
        CapturedFrame(generator.render(i, 1_700_000_000 + i / 30), 1_700_000_000 + i / 30)
        for i in range(frames)
    ]

    def cost(track: OutgoingTrack) -> Callable[[], float]:
        track.encode_layers(pictures[0])  # opens the encoders
        at = [1]

        def run() -> float:
            start, first = time.process_time(), at[0]
            for picture in pictures[first : first + 30]:
                track.encode_layers(picture)
            at[0] = first + 30
            return (time.process_time() - start) / 30

        return run

    rng = random.Random(1)
    runs = {
        "one": cost(OutgoingTrack("video", False, 30, 1_200_000, rng)),
        "three": cost(simulcast_track("video", 1280, 720, 30, 1_200_000, rng)),
    }
    best = {name: float("inf") for name in runs}
    for _ in range(rounds):  # interleaved, best of 8 rounds of 30 frames: other load counts least
        for name, run in runs.items():
            best[name] = min(best[name], run())
    one, three = best["one"], best["three"]
    print("simulcast_encoding (720p30 pattern, encoding CPU per frame, as the publisher does it)")
    print(f"  one layer     {one * 1000:7.2f} ms")
    print(f"  three layers  {three * 1000:7.2f} ms  ({three / one:.2f}x one layer; the issue allows 1.5x)")


@scenario
def simulcast_forwarding() -> None:
    from conf_cli.protocol.control import PROTOCOL_VERSION, encode
    from conf_cli.protocol.rtp import RtpPacket
    from conf_cli.server import passcode
    from conf_cli.server.forwarding import Forwarder
    from conf_cli.server.hub import Deferred, Hub

    passcode._SCRYPT = {"n": 2, "r": 1, "p": 1}  # type: ignore[attr-defined]
    subscribers = 10
    packets = 5_000

    class Link:
        def __init__(self, cid: int) -> None:
            self.id = cid
            self.listener = None
            self.sent = 0

        def send_media(self, data: bytes) -> None:
            self.sent += 1

    def ask(hub: Hub, cid: int, message: dict[str, Any]) -> list[Any]:
        pending, done = hub.received(cid, encode(message), 0.0), []
        while pending:
            action = pending.pop(0)
            if isinstance(action, Deferred):
                pending += action.resume(action.work(), 0.0)
            else:
                done.append(action)
        return done

    def meeting(layers: list[dict[str, int]] | None, capped: int) -> tuple[Forwarder, Link]:
        hub = Hub()
        links: dict[int, Any] = {}
        for cid in range(1, subscribers + 2):
            hub.connected(cid, 0.0, f"10.0.0.{cid}:5000")
            ask(hub, cid, {"type": "hello", "protocol": PROTOCOL_VERSION})
            links[cid] = Link(cid)
            if cid == 1:
                created = ask(hub, 1, {"type": "create", "name": "pub", "passcode": "pw-1234"})
                meeting_id = created[0].message["meeting"]
            else:
                ask(
                    hub,
                    cid,
                    {"type": "join", "meeting": meeting_id, "name": f"s{cid}", "passcode": "pw-1234"},
                )
            if 2 <= cid < 2 + capped:
                ask(hub, cid, {"type": "receive", "max_bitrate": 150_000})
        request: dict[str, Any] = {"type": "publish", "kind": "video", "ssrc": 0xA2, "codec": "H264"}
        if layers:
            request["layers"] = layers
        ask(hub, 1, request)
        return Forwarder(hub, links), links[1]

    layers = [
        {"ssrc": 0xA0, "width": 320, "height": 180, "bitrate": 120_000},
        {"ssrc": 0xA1, "width": 640, "height": 360, "bitrate": 400_000},
        {"ssrc": 0xA2, "width": 1280, "height": 720, "bitrate": 1_200_000},
    ]

    def runner(
        layers: list[dict[str, int]] | None, capped: int, ssrcs: tuple[int, ...]
    ) -> Callable[[], float]:
        forwarder, publisher = meeting(layers, capped)
        seq = [0]

        def run() -> float:
            first = seq[0]
            seq[0] += packets
            stream = [  # pictures of 8 packets, the last marked (as a 720p picture's would be)
                bytes(
                    RtpPacket(
                        96,
                        n & 0xFFFF,
                        n // 8 * 6000,
                        ssrc,
                        (b"\x65" if n == 0 else b"\x41") + bytes(1000),
                        marker=n % 8 == 7,
                    )
                )
                for n in range(first, first + packets)
                for ssrc in ssrcs
            ]
            media = forwarder.media
            start = time.perf_counter()
            for packet in stream:
                media(publisher, packet, 1.0)  # type: ignore[arg-type]
            return (time.perf_counter() - start) / len(stream)

        return run

    runs = {
        "plain": runner(None, 0, (0xA2,)),
        "top": runner(layers, 0, (0xA2,)),
        "mixed": runner(layers, subscribers // 2, (0xA0, 0xA2)),
    }
    best = {name: float("inf") for name in runs}
    for _ in range(7):  # interleaved, best of 7: the machine's other load counts least
        for name, run in runs.items():
            best[name] = min(best[name], run())
    plain, top, mixed = best["plain"], best["top"], best["mixed"]
    print(f"simulcast_forwarding ({subscribers} subscribers, in process, no transport or encryption)")
    print(f"  one layer                  {plain * 1e6:7.2f} us/packet")
    print(f"  simulcast, all on the top  {top * 1e6:7.2f} us/packet ({top / plain - 1:+.1%})")
    rise = mixed / plain - 1
    print(f"  simulcast, half rewritten  {mixed * 1e6:7.2f} us/packet ({rise:+.1%}, per packet in)")


def _video(name: str, **wanted: Any) -> Callable[[dict[str, Any]], bool]:
    def match(event: dict[str, Any]) -> bool:
        if event.get("name") != name or event.get("kind") != "video" or "height" not in event:
            return False
        return all(
            check(event.get(k)) if callable(check) else event.get(k) == check for k, check in wanted.items()
        )

    return match


HD = ("--width", "1280", "--height", "720", "--fps", "15")


@scenario
def capped_and_lossy() -> None:
    from conf_cli.testing.processes import ClientPool, spawn, start_server
    from conf_cli.testing.relay import Impairment, start_relay

    server, url = start_server(transport="rtp")
    pool = ClientPool(url)
    try:
        host, meeting = pool.create("host")
        sharer = pool.share(meeting, "cam", "pattern", *HD)
        sharer.expect("publish_started")
        host.expect("track_stats", _video("cam", layer=2), timeout=30)
        joined = time.monotonic()
        capped = pool.joined(meeting, "capped", "--max-bitrate", "300k")
        capped.expect("track_stats", _video("cam", layer=0), timeout=30)
        first_low = time.monotonic() - joined
        later = capped.expect("track_stats", _video("cam", layer=0), timeout=10)
        with start_relay("127.0.0.1", int(url.rsplit(":", 1)[1]), seed=7) as relay:
            args = ["join", meeting, "--server", f"rtp://127.0.0.1:{relay.port}", "--name", "lossy"]
            lossy = spawn([*args, "--passcode", pool.passcode, "--json"])
            pool.started.append(lossy)
            lossy.expect("track_stats", _video("cam", layer=2), timeout=30)
            relay.loop.call_soon_threadsafe(setattr, relay.relay, "impairment", Impairment(loss=0.3))
            bad = time.monotonic()
            moved = lossy.expect("track_stats", _video("cam", layer=lambda layer: layer < 2), timeout=60)
            to_switch = time.monotonic() - bad
        print("capped_and_lossy (rtp:// with SRTP, 720p15 pattern, three layers)")
        loss = later["loss_rate"]
        print(f"  --max-bitrate 300k: low-layer stats {first_low:.2f} s after joining, loss {loss:.2%}")
        print(
            f"  30 % loss on the path: on layer {moved['layer']} after {to_switch:.2f} s (stats each second)"
        )
    finally:
        pool.stop_all()
        server.stop()


@scenario
def dynacast_cpu() -> None:
    import os

    from conf_cli.testing.processes import ClientPool, ConfProcess, start_server

    def cpu(process: ConfProcess, seconds: float) -> float:
        def used() -> float:
            with open(f"/proc/{process.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        before, start = used(), time.monotonic()
        time.sleep(seconds)
        return (used() - before) / (time.monotonic() - start)

    server, url = start_server(transport="rtp")
    pool = ClientPool(url)
    try:
        host, meeting = pool.create("host")
        sharer = pool.share(meeting, "cam", "pattern", *HD)
        host.expect("track_stats", _video("cam", layer=2), timeout=30)
        high = cpu(sharer, 5.0)
        host.send("/leave")
        host.wait()
        capped = pool.joined(meeting, "capped", "--max-bitrate", "150k")
        capped.expect("track_stats", _video("cam", layer=0), timeout=30)
        time.sleep(1.0)
        low = cpu(sharer, 5.0)
        print("dynacast_cpu (rtp:// with SRTP, 720p15 pattern)")
        change = low / high - 1
        print(
            f"  someone on 720p: {high:.2f} core; only the low layer wanted: {low:.2f} core ({change:+.0%})"
        )
    finally:
        pool.stop_all()
        server.stop()


def rate(text: str) -> float:
    """``600k``, ``1.2M`` or a plain number of bit/s."""
    scale = {"k": 1e3, "m": 1e6}.get(text[-1:].lower(), 1.0)
    return float(text[:-1] if scale != 1.0 else text) * scale


def seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


def uplink(args: argparse.Namespace) -> None:
    """A publisher's uplink limited, then freed: how the encoder target follows (congestion control)."""
    layers = "one layer" if args.no_simulcast else "simulcast"
    print(f"uplink limited to {args.limit / 1000:.0f} kbit/s for {args.hold:.0f} s, then lifted ({layers})")
    print(f"{'transport':<10}{'before':>10}{'adapted':>10}{'loss after':>12}{'received':>12}{'climbed':>10}")
    results = []
    for transport in args.transport:
        result = run_uplink_scenario(
            transport,
            limit=args.limit,
            hold=args.hold,
            release=args.release,
            simulcast=not args.no_simulcast,
        )
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


def downlink(args: argparse.Namespace) -> None:
    """A subscriber's downlink limited: the layer it moves to, and how long its picture froze."""
    for transport in args.transport:
        result = run_downlink_scenario(transport, limit=args.downlink_limit, hold=args.hold)
        encryption = ENCRYPTION[transport]
        print(
            f"downlink limited to {args.downlink_limit / 1000:.0f} kbit/s for {args.hold:.0f} s "
            f"({transport}://, {encryption})"
        )
        loss = "-" if result.loss_after is None else f"{result.loss_after * 100:.2f} %"
        after = "-" if result.bitrate_after is None else f"{result.bitrate_after / 1000:.0f} kbit/s"
        size = "-" if result.size is None else f"{result.size[0]}x{result.size[1]}"
        freeze = "-" if result.freeze is None else f"{result.freeze * 1000:.0f} ms"
        baseline = "-" if result.freeze_before is None else f"{result.freeze_before * 1000:.0f} ms"
        print(f"  moved down after       {seconds(result.switched_after)}")
        print(f"  ends on                layer {result.layer} ({size}), {after}, loss {loss} once settled")
        print(f"  longest freeze         {freeze} after the limit (before it: {baseline})")
        print(f"  host (no limit)        layers {sorted(set(result.host_layers))}")
        print("  seconds since the limit, layer, height, kbit/s, loss, freeze_ms")
        for at, layer, height, bitrate, loss_rate, freeze_ms in result.timeline:
            row = f"{at:5.1f}  {layer}  {height:4d}  {bitrate / 1000:6.0f}  {loss_rate:6.3f}  {freeze_ms:5d}"
            print(f"  {row}")


ENCRYPTION = {"rtp": "SRTP", "tcp": "TLS", "zmq": "CURVE"}
"""Each transport's default encryption, which the scenarios run with."""


def load_average() -> str:
    """The machine's 1-minute load average (/proc/loadavg): the runs share it with others."""
    with open("/proc/loadavg") as file:
        return file.read().split()[0]


def switch_freeze(args: argparse.Namespace) -> None:
    """The wait between decoded pictures across a layer switch: chosen by the server, or forced."""

    def shown(switch: Switch | None) -> str:
        if switch is None:
            return "none"
        across = "-" if switch.across is None else f"{switch.across * 1000:.0f}"
        return (
            f"{across}/{switch.freeze * 1000:.0f} ms ({switch.before}->{switch.after}, {switch.took:.1f} s)"
        )

    limit = f"{args.downlink_limit / 1000:.0f} kbit/s"
    print(
        "freeze at a layer switch: across it / longest in its window, ms (layers, seconds from the cause "
        f"to layer_switched); {args.runs} runs"
    )
    columns = ("window smaller", "window larger", "climb after the limit", f"onset of {limit}")
    print(f"{'transport':<14}{'load':>6}  " + "".join(f"{c:<32}" for c in columns))
    across: dict[str, dict[str, list[float]]] = {}
    widest: dict[str, dict[str, list[float]]] = {}
    for transport in args.transport:
        name = f"{transport} ({ENCRYPTION[transport]})"
        at_switch = across.setdefault(name, {column: [] for column in columns})
        in_window = widest.setdefault(name, {column: [] for column in columns})
        for _ in range(args.runs):
            load = load_average()
            window = run_window_scenario(transport)
            by_cause = {switch.cause: switch for switch in window.switches}
            limited = run_downlink_scenario(
                transport, limit=args.downlink_limit, hold=args.hold, recover=45.0
            )
            found = (
                by_cause.get("window smaller"),
                by_cause.get("window larger"),
                limited.recovery[0] if limited.recovery else None,
                limited.onset,
            )
            for column, switch in zip(columns, found, strict=True):
                if switch is not None:
                    at_switch[column].append(switch.across if switch.across is not None else float("inf"))
                    in_window[column].append(switch.freeze)
            print(f"{name:<14}{load:>6}  " + "".join(f"{shown(switch):<32}" for switch in found))
    for title, table in (("across the switch", across), ("longest in the switch's window", widest)):
        print(f"\nfreeze {title} over the runs (ms): min-max; the issue's bound is 300 ms")
        print(f"{'transport':<14}  " + "".join(f"{c:<32}" for c in columns))
        for name, freezes in table.items():
            cells = [
                f"{min(v) * 1000:.0f}-{max(v) * 1000:.0f} ({len(v)} runs)" if v else "none"
                for v in (freezes[c] for c in columns)
            ]
            print(f"{name:<14}  " + "".join(f"{cell:<32}" for cell in cells))


SCENARIOS: dict[str, Callable[[argparse.Namespace], None]] = {
    "uplink": uplink,
    "downlink": downlink,
    "switch_freeze": switch_freeze,
    **{name: (lambda args, run=run: run()) for name, run in PLAIN.items()},
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", nargs="+", choices=sorted(SCENARIOS), default=sorted(SCENARIOS))
    parser.add_argument(
        "--transport", nargs="+", choices=("rtp", "tcp", "zmq"), default=["rtp", "tcp", "zmq"]
    )
    parser.add_argument("--limit", type=rate, default=600_000.0, help="the uplink limit (bit/s; 600k)")
    parser.add_argument(
        "--downlink-limit", type=rate, default=400_000.0, help="the downlink limit (bit/s; 400k)"
    )
    parser.add_argument("--no-simulcast", action="store_true", help="the uplink publisher sends one layer")
    parser.add_argument("--hold", type=float, default=10.0, help="seconds the limit holds")
    parser.add_argument("--release", type=float, default=12.0, help="seconds watched after it lifts")
    parser.add_argument("--runs", type=int, default=3, help="runs per transport (switch_freeze)")
    args = parser.parse_args()
    for name in args.scenario:
        SCENARIOS[name](args)


if __name__ == "__main__":
    main()
