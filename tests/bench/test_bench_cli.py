"""``conf bench`` end to end: a real server, real clients, synthetic RTP. Figures are checked for
presence and consistency, never for speed."""

from __future__ import annotations

import json

import pytest

from conf_cli.testing.processes import run_conf


@pytest.mark.parametrize("transport", ["tcp", "zmq", "rtp"])
def test_bench_reports_delivery_without_loss(transport: str) -> None:
    done = run_conf(
        "bench",
        "--transport",
        transport,
        "--duration",
        "2",
        "--publishers",
        "2",
        "--subscribers",
        "4",
        "--json",
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    packets = figures["packets"]
    assert packets["received"] > 0
    assert packets["loss"] == 0
    assert packets["lost"] == 0
    assert packets["seq_gaps"] == 0
    # every packet reaches the 5 other members: 1 other publisher and 4 subscribers
    assert packets["expected"] == packets["sent"] * 5 == packets["received"]
    latency = figures["latency_ms"]
    assert set(latency) >= {"p50", "p95", "p99"}
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
    assert figures["server"]["pid"] > 0
    assert figures["server"]["rss_bytes"] > 0
    assert figures["intervals"]
    # one figure per load-generator process: the CPU of the thread that sent and read the media, a share
    # of one core (the bound on how long a packet waited in the generator before it was read)
    (busy,) = figures["generator_media_thread_cpu_pct"]
    assert 0 < busy <= 105
    # and the time it, the generator process and the server were ready to run but had no core
    (waiting,) = figures["generator_media_thread_wait_pct"]
    assert 0 <= waiting <= 105
    assert figures["generator_runqueue_wait_pct"][0] >= 0
    assert figures["server"]["runqueue_wait_pct"] >= 0
