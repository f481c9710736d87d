"""A long join churn against a real server: 100 clients at once joining with the passcode over TLS,
chatting, leaving or dropping, over and over for 30 minutes. The server's memory must stay flat (its RSS
at the end within 5 % of what it was after the first 2 minutes) and its open files go back to idle.

Run on demand: ``pytest -m slow tests/integration/test_churn_soak.py``; ``CONF_CHURN_SOAK_SECONDS`` sets
the length (the reference point is then 2 minutes in, or a quarter of the run if that is sooner).
"""

from __future__ import annotations

import json
import os
import time

import pytest

from conf_cli.bench.proc import open_fds
from conf_cli.testing.processes import run_conf, start_server

SECONDS = float(os.environ.get("CONF_CHURN_SOAK_SECONDS", "1800"))
WARM_UP = min(120.0, SECONDS / 4)
SETTLE_SECONDS = 30.0


@pytest.mark.slow
@pytest.mark.timeout(SECONDS + 900)  # the run, then the server's return to idle
def test_a_long_churn_of_a_hundred_clients_keeps_memory_flat_and_files_at_idle() -> None:
    server, url = start_server("--stats-interval", "1", "--failure-window", "5")
    try:
        idle = server.expect("server_stats")["tables"]
        idle_fds = open_fds(server.pid)
        done = run_conf(
            "bench", "--churn", "0", "--joins", "0", "--duration", str(SECONDS), "--clients", "100",
            "--meetings", "2", "--procs", "2", "--interval", "5", "--server", url,
            "--server-pid", str(server.pid), "--json", timeout=SECONDS + 600,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        joins = figures["joins"]
        assert joins["joined"] > 0 and joins["failed"] <= joins["started"] // 100, joins
        samples = [s for s in figures["samples"] if s["rss_bytes"] is not None]
        reference = next(s for s in samples if s["t"] >= WARM_UP)["rss_bytes"]
        end = samples[-1]["rss_bytes"]
        rss = [(s["t"], round(s["rss_bytes"] / 2**20, 1)) for s in samples]
        assert abs(end - reference) <= 0.05 * reference, rss
        print(f"\n{joins['joined']} joins; server RSS (s, MiB): {rss}")  # shown with pytest -s
        server.expect(
            "server_stats",
            lambda e: e["hub"]["passcode_checks"] >= joins["joined"] and e["tables"] == idle,
            timeout=SETTLE_SECONDS,
        )
        deadline = time.monotonic() + SETTLE_SECONDS
        while open_fds(server.pid) != idle_fds and time.monotonic() < deadline:
            time.sleep(0.5)
        assert open_fds(server.pid) == idle_fds
    finally:
        server.stop()
