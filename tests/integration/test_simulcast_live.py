"""Simulcast end to end, real processes and codecs over rtp:// (SRTP): each subscriber gets the layer its
cap or its path allows while another keeps 720p, and a publisher whose high layer nobody receives stops
encoding it (dynacast)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from conf_cli.testing.processes import ClientPool, ConfProcess, spawn, start_server
from conf_cli.testing.relay import Impairment, start_relay

HD = ("--width", "1280", "--height", "720", "--fps", "15")


@pytest.fixture
def rtp_url() -> Iterator[str]:
    server, url = start_server(transport="rtp")
    try:
        yield url
    finally:
        server.stop()


def video(name: str, **wanted: Any) -> Any:
    """A ``track_stats`` of ``name``'s video with pictures decoded and each field in ``wanted`` as given."""

    def match(event: dict[str, Any]) -> bool:
        if event.get("name") != name or event.get("kind") != "video" or "height" not in event:
            return False
        return all(
            check(event.get(key)) if callable(check) else event.get(key) == check
            for key, check in wanted.items()
        )

    return match


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` and its threads."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_share(process: ConfProcess, seconds: float) -> float:
    """The CPU the process used over ``seconds`` of wall time, as a share of one core."""
    before, start = cpu_seconds(process.pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(process.pid) - before) / (time.monotonic() - start)


def test_a_capped_and_a_lossy_subscriber_get_lower_layers_while_a_third_keeps_720p(rtp_url: str) -> None:
    pool = ClientPool(rtp_url)
    port = int(rtp_url.rsplit(":", 1)[1])
    try:
        host, meeting = pool.create("host")  # no cap, clean path: the third, who keeps 720p
        capped = pool.joined(meeting, "capped", "--max-bitrate", "300k")
        with start_relay("127.0.0.1", port, seed=7) as relay:
            args = ["join", meeting, "--server", f"rtp://127.0.0.1:{relay.port}", "--name", "lossy"]
            lossy = spawn([*args, "--passcode", pool.passcode, "--json"])
            pool.started.append(lossy)
            lossy.expect("joined")
            # Its path turns bad once it is in (the join's UDP check needs a working path).
            relay.loop.call_soon_threadsafe(setattr, relay.relay, "impairment", Impairment(loss=0.3))
            sharer = pool.share(meeting, "cam", "pattern", *HD)
            published = sharer.expect("publish_started")
            assert [(layer["width"], layer["height"]) for layer in published["layers"]] == [
                (320, 180),
                (640, 360),
                (1280, 720),
            ]
            # The capped subscriber asked for 300 kbit/s: it gets the 320x180 layer, as layer 0, under
            # the track's one SSRC; the host keeps 1280x720.
            first = capped.expect("track_stats", video("cam", layer=0, height=180, width=320), timeout=20)
            assert first["ssrc"] == published["ssrc"]
            top = host.expect("track_stats", video("cam", layer=2, height=720, width=1280), timeout=20)
            assert top["ssrc"] == published["ssrc"]
            # Its loss after the switch stays under 2 % (each track_stats covers the last interval).
            later = capped.expect("track_stats", video("cam", fps=lambda fps: fps > 0), timeout=10)
            assert later["layer"] == 0 and later["loss_rate"] < 0.02
            # 30 % loss on its path: the lossy subscriber's receiver reports move it to a lower layer.
            lossy.expect("track_stats", video("cam", layer=lambda layer: layer < 2), timeout=30)
            # And the host still has 720p.
            host.expect("track_stats", video("cam", layer=2, height=720), timeout=10)
    finally:
        pool.stop_all()


def test_nobody_on_the_high_layer_cuts_the_publishers_cpu(rtp_url: str) -> None:
    """Dynacast: while a viewer receives 720p only the high layer is encoded; once the only viewer is one
    capped to the low layer, the high (and middle) layer's encoders stop: the publisher's CPU falls by at
    least 30 %."""
    pool = ClientPool(rtp_url)
    try:
        host, meeting = pool.create("host", "--max-bitrate", "100M")
        sharer = pool.share(meeting, "cam", "pattern", *HD)
        sharer.expect("publish_started")
        host.expect("track_stats", video("cam", layer=2), timeout=20)
        time.sleep(1.0)
        high = cpu_share(sharer, 4.0)
        host.send("/leave")
        host.wait()
        capped = pool.joined(meeting, "capped", "--max-bitrate", "150k")
        capped.expect("track_stats", video("cam", layer=0), timeout=20)
        time.sleep(1.0)
        low = cpu_share(sharer, 4.0)
        print(f"publisher CPU, rtp:// (SRTP): high layer only {high:.2f} core, low layer only {low:.2f}")
        assert low <= 0.7 * high
    finally:
        pool.stop_all()


def test_no_simulcast_publishes_one_layer_that_everyone_receives(rtp_url: str) -> None:
    pool = ClientPool(rtp_url)
    try:
        host, meeting = pool.create("host", "--max-bitrate", "300k")
        sharer = pool.share(meeting, "cam", "pattern", *HD, "--no-simulcast")
        published = sharer.expect("publish_started")
        assert "layers" not in published
        # The cap has nothing to choose from: the one 720p layer arrives.
        host.expect("track_stats", video("cam", layer=0, height=720), timeout=20)
    finally:
        pool.stop_all()
