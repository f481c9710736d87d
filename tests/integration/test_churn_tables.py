"""Join churn against a real server leaves nothing behind: after a few hundred clients joined with the
passcode over TLS, chatted, and left or dropped their connection, the server's per-connection tables
(``server_stats.tables``: the hub's connections, meetings, rate-limit windows, trusted addresses, passcode
keys, calls, and the edge's links, logged peers and pending work) and its open files are back where they
were while it was idle. Counts, not timing."""

from __future__ import annotations

import json
import time

import pytest

from conf_cli.bench.proc import open_fds
from conf_cli.testing.processes import run_conf, start_server

SETTLE_SECONDS = 30.0


@pytest.mark.parametrize("transport", ["tcp", "rtp"])
def test_hundreds_of_joins_and_leaves_leave_the_tables_and_files_at_idle(transport: str) -> None:
    # A short rate-limit window, so the windows of the run's attempts and creates end within the test.
    server, url = start_server("--stats-interval", "0.2", "--failure-window", "2", transport=transport)
    try:
        idle = server.expect("server_stats")["tables"]
        assert idle["connections"] == idle["links"] == idle["meetings"] == 0
        idle_fds = open_fds(server.pid)
        done = run_conf(
            "bench", "--churn", "0", "--joins", "300", "--clients", "20", "--transport", transport,
            "--server", url, "--server-pid", str(server.pid), "--interval", "0.1", "--json", timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        assert figures["joins"]["joined"] == 300 and figures["joins"]["failed"] == 0
        assert figures["joins"]["dropped"] == 75  # every fourth dropped its connection without a word
        during = max(sample["fds"] for sample in figures["samples"])
        assert during > idle_fds  # the run did hold connections open
        settled = server.expect(
            "server_stats",
            lambda e: e["hub"]["passcode_checks"] >= 300 and e["tables"] == idle,  # after the run, at idle
            timeout=SETTLE_SECONDS,
        )
        assert settled["hub"]["passcode_hashed"] == 0  # every join was checked by the meeting's key
        deadline = time.monotonic() + SETTLE_SECONDS
        while open_fds(server.pid) != idle_fds and time.monotonic() < deadline:
            time.sleep(0.2)
        assert open_fds(server.pid) == idle_fds
    finally:
        server.stop()
