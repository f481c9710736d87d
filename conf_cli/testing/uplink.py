"""A publisher's uplink squeezed and released, with real processes: the congestion control scenario.

:func:`run_uplink_scenario` starts a ``conf server``, an impairment relay in front of it, a receiver (the
host, connected directly) and a publisher (``conf share pattern``) whose every byte goes through the relay.
Once the publisher sends at full rate, the relay limits the publisher's uplink (:meth:`RelayHandle.set_rate`)
for ``hold`` seconds, then lifts the limit. The publisher's ``publish_stats`` events (its encoders'
``target_bitrate``, the estimate ``available_bitrate``) and the receiver's ``track_stats`` give the
figures: how long the target took to fall under the limit, the receiver's loss once it had, how long the
target took to climb back. The tests assert on them; ``benchmarks/adaptive.py`` prints them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from conf_cli.testing.processes import ClientPool, ConfProcess, start_server
from conf_cli.testing.relay import start_relay

Event = dict[str, Any]


@dataclass
class UplinkResult:
    """What one run measured (times in seconds from the limit's start or end; None: it never happened)."""

    transport: str
    simulcast: bool
    limit: float
    before: float
    """The publisher's target (bit/s, all tracks) just before the limit."""
    adapted_after: float | None
    """Seconds from the limit until the target was under it."""
    loss_after: float | None
    """The receiver's loss rate from 2 s after adapting until the limit lifted (None: no packets)."""
    received_bitrate: float | None
    """The receiver's mean bit rate over that time."""
    climbed_after: float | None
    """Seconds from lifting the limit until the target was over ``climb`` bit/s."""
    climb: float
    layers_limited: list[int] = field(default_factory=list)
    """The layers (``track_stats.layer``) the receiver reported while the limit held, in order."""
    layers_after: list[int] = field(default_factory=list)
    """... and after it lifted."""
    timeline: list[tuple[float, int, int]] = field(default_factory=list)
    """(seconds since the limit, target, estimate) per ``publish_stats`` second."""
    relay: dict[str, Any] = field(default_factory=dict)


def _target(stats: list[Event]) -> int:
    return sum(int(e["target_bitrate"]) for e in stats)


def _layers(stats: Iterable[Event]) -> list[int]:
    return [int(e["layer"]) for e in stats if e.get("kind") != "audio" and e.get("layer") is not None]


def _next_second(publisher: ConfProcess, timeout: float = 5.0) -> tuple[float, list[Event]]:
    """The next round of ``publish_stats`` (one per live track), with the time it arrived."""
    first = publisher.expect("publish_stats", timeout=timeout)
    got = [first]
    for event in publisher.drain(0.05):
        if event.get("type") == "publish_stats":
            got.append(event)
    return time.monotonic(), got


def run_uplink_scenario(
    transport: str = "rtp",
    *,
    limit: float = 600_000,
    hold: float = 8.0,
    release: float = 12.0,
    climb: float | None = None,
    size: tuple[int, int] = (1280, 720),
    fps: int = 30,
    bitrate: int = 1_500_000,
    warmup: float = 4.0,
    simulcast: bool = True,
) -> UplinkResult:
    """Run the scenario on ``transport`` (rtp, tcp, zmq); see the module's description."""
    climb = 1.5 * limit if climb is None else climb
    server, url = start_server(transport=transport)
    pool = ClientPool(url)
    try:
        port = int(url.rsplit(":", 1)[1])
        _, meeting = pool.create("receiver")
        receiver = pool.started[-1]
        with start_relay("127.0.0.1", port, queue=48_000) as relay:
            relayed = ClientPool(f"{transport}://127.0.0.1:{relay.port}")
            pool.started.append(
                publisher := relayed.share(
                    meeting,
                    "publisher",
                    "pattern",
                    "--width",
                    str(size[0]),
                    "--height",
                    str(size[1]),
                    "--fps",
                    str(fps),
                    "--bitrate",
                    str(bitrate),
                    *(() if simulcast else ("--no-simulcast",)),
                )
            )
            publisher.expect("publish_started", timeout=15)
            receiver.expect("track_stats", lambda e: int(e["frames"]) > 0, timeout=15)
            deadline = time.monotonic() + warmup
            before = 0
            while time.monotonic() < deadline:
                _, stats = _next_second(publisher)
                before = _target(stats)
            timeline: list[tuple[float, int, int]] = []
            received: list[tuple[float, Event]] = []  # the receiver's track_stats, with when they were read
            receiver.drain(0.01)  # what it reported before the limit
            relay.set_rate(limit)
            limited_at = time.monotonic()
            adapted_after = None
            adapted_at = None
            while time.monotonic() < limited_at + hold:
                when, stats = _next_second(publisher)
                target = _target(stats)
                timeline.append((when - limited_at, target, int(stats[0]["available_bitrate"])))
                if adapted_after is None and target < limit:
                    adapted_after = when - limited_at
                    adapted_at = when
                now = time.monotonic()
                received += [(now, e) for e in receiver.drain(0.01) if e.get("type") == "track_stats"]
            loss_after = received_bitrate = None
            if adapted_at is not None:
                window = [(t, e) for t, e in received if t >= adapted_at + 2.0]
                if len(window) >= 2:
                    (t0, first), (t1, last) = window[0], window[-1]
                    got = int(last["packets"]) - int(first["packets"])
                    lost = max(0, int(last["packets_lost"]) - int(first["packets_lost"]))
                    if got + lost > 0:
                        loss_after = lost / (got + lost)
                        received_bitrate = (int(last["bytes"]) - int(first["bytes"])) * 8 / max(0.5, t1 - t0)
            relay.set_rate(None)
            released_at = time.monotonic()
            climbed_after = None
            after: list[Event] = []
            while time.monotonic() < released_at + release:
                when, stats = _next_second(publisher)
                target = _target(stats)
                timeline.append((when - limited_at, target, int(stats[0]["available_bitrate"])))
                if climbed_after is None and target > climb:
                    climbed_after = when - released_at
                after += [e for e in receiver.drain(0.01) if e.get("type") == "track_stats"]
            return UplinkResult(
                transport,
                simulcast,
                limit,
                before,
                adapted_after,
                loss_after,
                received_bitrate,
                climbed_after,
                climb,
                _layers(e for _, e in received),
                _layers(after),
                timeline,
                relay.stats(),
            )
    finally:
        pool.stop_all()
        server.stop()
