"""A subscriber's downlink squeezed, with real processes: the per-subscriber layer scenario.

:func:`run_downlink_scenario` starts a ``conf server``, a host (connected directly, no limit), a
subscriber whose every byte goes through the impairment relay, and a publisher (``conf share pattern``,
simulcast) connected directly. Once both subscribers receive the top layer, the relay limits what the
subscriber behind it receives (:meth:`RelayHandle.set_rate`, ``down``) for ``hold`` seconds. The
subscriber's ``layer_switched`` and ``track_stats`` events (``layer``, ``height``, ``bitrate``, loss,
``freeze_ms``: the longest wait between two decoded pictures) and the host's give the figures: how long
the switch took, the layer and bit rate after it, the loss once settled, the longest freeze, and whether
the host kept the top layer. With ``recover`` the limit is then lifted and the subscriber watched for
at most that long, until its first switch back up has settled: the switches back up the server makes once
its estimate grows again, each with its freeze
(:mod:`conf_cli.testing.switching`). The tests assert on them; ``benchmarks/adaptive.py`` prints them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from conf_cli.testing.processes import ClientPool, spawn, start_server
from conf_cli.testing.relay import start_relay
from conf_cli.testing.switching import SETTLE, Switch, switches, video_stats, watch

Event = dict[str, Any]


LIFTED = 1.0
"""Seconds after the limit is lifted from which the climb back up is measured (what the server did under
the limit has been told by then)."""


@dataclass
class DownlinkResult:
    """What one run measured (times in seconds from the limit's start; None: it never happened)."""

    transport: str
    limit: float
    switched_after: float | None
    """Seconds from the limit until the server said the subscriber moved to a lower layer."""
    layer: int | None
    """The subscriber's layer at the end (``track_stats.layer``) ..."""
    size: tuple[int, int] | None
    """... and the size of the pictures it decoded then."""
    loss_after: float | None
    """Its loss from 2 s after the switch to the end (None: no packets)."""
    bitrate_after: float | None
    """Its mean received bit rate over that time."""
    freeze: float | None
    """The longest wait between two of its decoded pictures from the limit to the end (seconds)."""
    freeze_before: float | None
    """... and over as long before the limit (the same path without the limit: the baseline)."""
    host_layers: list[int] = field(default_factory=list)
    """The host's layers over the time the limit held (it has no limit: the top one)."""
    timeline: list[tuple[float, int, int, int, float, int]] = field(default_factory=list)
    """(seconds since the limit, layer, height, bit rate, loss rate, freeze_ms) per subscriber
    ``track_stats``."""
    onset: Switch | None = None
    """The first move down the limit forced, its freeze measured from the limit's start."""
    recovery: list[Switch] = field(default_factory=list)
    """Once the limit was lifted (``recover``), each move up, its freeze measured from :data:`LIFTED` after
    the lift (the first) or from the move before it."""


def run_downlink_scenario(
    transport: str = "rtp",
    *,
    limit: float = 400_000,
    hold: float = 10.0,
    size: tuple[int, int] = (1280, 720),
    fps: int = 15,
    bitrate: int = 1_200_000,
    baseline: float = 5.0,
    recover: float = 0.0,
) -> DownlinkResult:
    """Run the scenario on ``transport`` (rtp, tcp, zmq); see the module's description."""
    server, url = start_server(transport=transport)
    pool = ClientPool(url)
    try:
        port = int(url.rsplit(":", 1)[1])
        host, meeting = pool.create("host")
        with start_relay("127.0.0.1", port, queue=32_000) as relay:
            args = ["join", meeting, "--server", f"{transport}://127.0.0.1:{relay.port}", "--name", "limited"]
            limited = spawn([*args, "--passcode", pool.passcode, "--json"])
            pool.started.append(limited)
            limited.expect("joined", timeout=15)
            sharer = pool.share(
                meeting,
                "cam",
                "pattern",
                *("--width", str(size[0]), "--height", str(size[1])),
                *("--fps", str(fps), "--bitrate", str(bitrate)),
            )
            sharer.expect("publish_started", timeout=15)
            for process in (host, limited):
                process.expect(
                    "track_stats", lambda e: video_stats(e, "cam") and e.get("layer") == 2, timeout=20
                )
            before = watch(limited, baseline)
            host.drain(0.01)  # what it said before the limit
            relay.set_rate(None, limit)
            limited_at = time.monotonic()
            during = watch(limited, hold)
            host_seen = [e for e in host.drain(0.05) if video_stats(e, "cam")]
            recovery: list[Switch] = []
            if recover > 0:
                relay.set_rate(None, None)
                # a switch the server made under the limit (its estimate grown, a probe) is told up to
                # a tick later: the climb is measured from LIFTED on, from the layer it was on by then
                after = watch(limited, LIFTED)
                lifted_at = time.monotonic()
                told = [int(e["layer"]) for _, e in during + after if e.get("type") == "layer_switched"]
                stats_now = [e for _, e in during if video_stats(e, "cam")]
                layer = told[-1] if told else int(stats_now[-1]["layer"]) if stats_now else 0
                while time.monotonic() < lifted_at + recover:  # until its first move up, and the time
                    after += watch(limited, 0.5)  # the freeze across it needs
                    if switches(after, "cam", "limit lifted", lifted_at, layer, True) is not None:
                        after += watch(limited, SETTLE + 0.5)
                        break
                at = lifted_at
                while (up := switches(after, "cam", "limit lifted", at, layer, True)) is not None:
                    recovery.append(up)
                    at, layer = at + up.took, up.after
        switched_after = next(
            (
                when - limited_at
                for when, e in during
                if e.get("type") == "layer_switched" and int(e["layer"]) < 2
            ),
            None,
        )
        onset = switches(during, "cam", "limit begun", limited_at, 2, False)
        stats = [(when, e) for when, e in during if video_stats(e, "cam")]
        timeline = [
            (
                when - limited_at,
                int(e["layer"]),
                int(e["height"]),
                int(e["bitrate"]),
                float(e["loss_rate"]),
                int(e.get("freeze_ms", 0)),
            )
            for when, e in stats
        ]
        loss_after = bitrate_after = None
        if switched_after is not None:
            settled = [e for when, e in stats if when >= limited_at + switched_after + 2.0]
            if len(settled) >= 2:
                first, last = settled[0], settled[-1]
                got = int(last["packets"]) - int(first["packets"])
                lost = max(0, int(last["packets_lost"]) - int(first["packets_lost"]))
                if got + lost > 0:
                    loss_after = lost / (got + lost)
                bitrate_after = sum(int(e["bitrate"]) for e in settled[1:]) / (len(settled) - 1)
        freezes = [int(e.get("freeze_ms", 0)) / 1000 for _, e in stats]
        freezes_before = [int(e.get("freeze_ms", 0)) / 1000 for _, e in before if video_stats(e, "cam")]
        last_stats = stats[-1][1] if stats else None
        return DownlinkResult(
            transport,
            limit,
            switched_after,
            None if last_stats is None else int(last_stats["layer"]),
            None if last_stats is None else (int(last_stats["width"]), int(last_stats["height"])),
            loss_after,
            bitrate_after,
            max(freezes, default=None),
            max(freezes_before, default=None),
            [int(e["layer"]) for e in host_seen],
            timeline,
            onset,
            recovery,
        )
    finally:
        pool.stop_all()
        server.stop()
