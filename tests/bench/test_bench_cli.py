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


def test_the_summary_table_names_the_encryption_and_the_generator_s_niceness(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A figure is read with what it was measured under: the table says how the links were protected and
    how much nicer than the server the load generator ran (``--generator-nice``)."""
    monkeypatch.setenv("COLUMNS", "160")  # the table's rows on one line each
    done = run_conf(
        "bench",
        *("--transport", "tcp", "--duration", "1", "--publishers", "1", "--subscribers", "1"),
        *("--generator-nice", "5"),
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    cells = [line.split("│") for line in done.stdout.splitlines() if line.count("│") == 3]
    rows = {cell[1].strip(): cell[2].strip() for cell in cells}
    assert rows["encryption"] == "TLS 1.3"
    assert "load generator (python, nice +5) CPU per process" in rows, rows
