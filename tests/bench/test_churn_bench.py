"""``conf bench --churn`` end to end: a server it starts, clients joining with the passcode over TLS,
chatting, leaving or dropping. Figures are checked for presence and consistency, never for speed."""

from __future__ import annotations

import json

from conf_cli.testing.processes import run_conf


def test_churn_reports_every_join_and_the_server_checks_no_passcode_by_scrypt() -> None:
    done = run_conf(
        "bench", "--churn", "0", "--joins", "40", "--clients", "8", "--drop-every", "4", "--json", timeout=120
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    joins = figures["joins"]
    assert joins == {"started": 40, "joined": 40, "failed": 0, "left": 30, "dropped": 10, "errors": {}}
    for key in ("join_ms", "connect_ms", "chat_ms"):
        ms = figures[key]
        assert 0 < ms["p50"] <= ms["p95"] <= ms["p99"] <= ms["max"], key
    assert figures["connect_ms"]["p50"] <= figures["join_ms"]["p50"]  # joining includes connecting
    assert figures["joins_per_s"] > 0
    server = figures["server"]
    assert server["pid"] > 0 and server["cpu_seconds"] > 0 and server["cpu_ms_per_join"] > 0
    # Every join's passcode was checked, none by a scrypt hash: the meeting's key answered them all.
    assert server["passcode_checks"] == 40 and server["passcode_hashed"] == 0
    assert server["rss_bytes_idle"] > 0 and server["fds_idle"] > 0
    assert figures["target"] == {"p95_ms": 150.0, "joins_per_s": 200.0, "met": figures["target"]["met"]}
    assert figures["config"]["encryption"] == "on" and figures["config"]["transport"] == "tcp"


def test_churn_refuses_more_clients_than_a_meeting_holds() -> None:
    done = run_conf("bench", "--churn", "0", "--clients", "150", timeout=60)
    assert done.returncode == 2
    assert "a meeting holds 100 with its host; add --meetings" in done.stderr


def test_churn_at_a_rate_starts_joins_on_schedule() -> None:
    """``--churn 10``: 10 joins start 100 ms apart, so the run cannot end before the last one starts (as
    fast as they go, 5 at a time, they take a fraction of that)."""
    done = run_conf("bench", "--churn", "10", "--joins", "10", "--clients", "5", "--json", timeout=120)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["joins"]["joined"] == 10 and figures["joins"]["failed"] == 0
    assert figures["seconds"] >= 0.9
    assert figures["config"]["rate"] == 10.0
