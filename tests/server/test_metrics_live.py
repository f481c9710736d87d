"""``conf server --metrics-port``: a real server with real participants, scraped over HTTP and by a real
Prometheus (Debian's package, started here on a free port), queried with PromQL."""

from __future__ import annotations

import os
import signal
import socket
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conf_cli.server.workers.metrics import SCRAPE_TIMEOUT
from conf_cli.testing.processes import ClientPool, run_conf, spawn, start_server
from conf_cli.testing.prometheus import start_prometheus

pytestmark = pytest.mark.timeout(180)

_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get(url: str) -> tuple[int, str]:
    try:
        with _direct.open(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def test_prometheus_scrapes_the_participant_count_of_a_real_server() -> None:
    server, url = start_server("--metrics-port", "0")
    pool = ClientPool(url)
    prometheus = None
    try:
        metrics = server.latest("server_started")["metrics"]
        assert metrics.startswith("http://127.0.0.1:") and metrics.endswith("/metrics")  # loopback by default
        _, meeting = pool.create("ada")
        pool.joined(meeting, "bob")
        pool.joined(meeting, "cy")
        prometheus = start_prometheus(metrics)
        result = prometheus.wait_for("conf_participants", 3)
        assert result[0]["metric"]["node"] == socket.gethostname()
        assert result[0]["metric"]["job"] == "conf"
        prometheus.wait_for("conf_meetings", 1)
        prometheus.wait_for("sum(conf_join_latency_seconds_count)", 3)
        pool.started[-1].stop()  # cy leaves
        prometheus.wait_for("conf_participants", 2)
    finally:
        if prometheus is not None:
            prometheus.stop()
        pool.stop_all()
        server.stop()


def test_metrics_endpoint_serves_only_metrics() -> None:
    server, _ = start_server("--metrics-port", "0", "--metrics-host", "127.0.0.1")
    try:
        metrics = server.latest("server_started")["metrics"]
        status, text = _get(metrics)
        assert status == 200
        assert "conf_meetings{" in text and "conf_process_cpu_seconds_total{" in text
        assert _get(metrics.replace("/metrics", "/admin"))[0] == 404
    finally:
        server.stop()


def test_a_busy_metrics_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_conf("server", "--port", "0", "--metrics-port", str(port), timeout=30)
    assert done.returncode == 1
    assert f"cannot serve metrics on 127.0.0.1:{port}" in done.stderr


def test_a_stalled_or_oversized_request_holds_up_no_one() -> None:
    server, _ = start_server("--metrics-port", "0")
    try:
        metrics = server.latest("server_started")["metrics"]
        host, port = metrics.split("//")[1].split("/")[0].split(":")
        with socket.create_connection((host, int(port)), timeout=10) as stalled:
            stalled.sendall(b"GET /metr")  # and never the rest
            status, text = _get(metrics)  # another scraper is served meanwhile
            assert status == 200 and "conf_participants{" in text
        with socket.create_connection((host, int(port)), timeout=10) as flood:
            flood.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
            answer = flood.recv(200)
            assert answer.split(b" ")[1] == b"400", answer  # refused, not buffered without bound
        assert _get(metrics)[0] == 200
    finally:
        server.stop()


def _samples(text: str, name: str) -> dict[str, float]:
    """``name``'s value by ``node`` in a Prometheus text."""
    return {
        sample.labels["node"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def test_with_workers_one_endpoint_serves_every_worker_and_prometheus_sums_them() -> None:
    """--workers 2: meetings on both workers; PromQL's sum is everyone, by node it splits per worker."""
    server = spawn(
        ["server", "--json", "--host", "127.0.0.1", "--port", "0", "--workers", "2", "--metrics-port", "0"]
    )
    started = server.expect("server_started", timeout=60)
    pool = ClientPool(started["urls"][0])
    prometheus = None
    try:
        metrics = started["metrics"]
        assert metrics.startswith("http://127.0.0.1:") and metrics.endswith("/metrics")
        ada, first = pool.create("ada")
        bob, second = pool.create("bob")
        placed = {ada.latest("redirect")["node"]: first, bob.latest("redirect")["node"]: second}
        assert set(placed) == {"worker-1", "worker-2"}  # the parent placed one meeting on each worker
        pool.joined(placed["worker-1"], "cy")
        pool.joined(placed["worker-1"], "dee")

        status, text = _get(metrics)
        assert status == 200
        assert text.count("# TYPE conf_participants gauge") == 1  # one family, every node's samples
        assert _samples(text, "conf_worker_up") == {"worker-1": 1.0, "worker-2": 1.0}
        prometheus = start_prometheus(metrics)
        prometheus.wait_for("sum(conf_participants)", 4)
        by_node = prometheus.wait_for('sum by (node) (conf_participants{node=~"worker-[12]"})', 3)
        assert {r["metric"]["node"]: float(r["value"][1]) for r in by_node} == {"worker-1": 3, "worker-2": 1}
        prometheus.wait_for("sum(conf_meetings)", 2)
        prometheus.wait_for("count(conf_build_info)", 3)  # the parent (worker-front) and both workers
        pool.started[-1].stop()  # dee leaves worker-1's meeting
        prometheus.wait_for('conf_participants{node="worker-1"}', 2)
        prometheus.wait_for("sum(conf_participants)", 3)
    finally:
        if prometheus is not None:
            prometheus.stop()
        pool.stop_all()
        server.stop()


def test_a_stuck_worker_costs_a_scrape_at_most_its_timeout_and_shows_as_down() -> None:
    server = spawn(
        ["server", "--json", "--host", "127.0.0.1", "--port", "0", "--workers", "2", "--metrics-port", "0"]
    )
    started = server.expect("server_started", timeout=60)
    stuck = started["workers"][0]
    try:
        metrics = started["metrics"]
        assert _samples(_get(metrics)[1], "conf_worker_up") == {"worker-1": 1.0, "worker-2": 1.0}
        os.kill(stuck, signal.SIGSTOP)  # by its PID: alive, its socket open, answering nothing
        try:
            begun = time.monotonic()
            status, text = _get(metrics)
            took = time.monotonic() - begun
            assert status == 200
            assert took < SCRAPE_TIMEOUT + 3.0  # the per-worker timeout, not the stuck worker, bounds it
            assert _samples(text, "conf_worker_up") == {"worker-1": 0.0, "worker-2": 1.0}
            assert set(_samples(text, "conf_participants")) == {"worker-front", "worker-2"}
        finally:
            os.kill(stuck, signal.SIGCONT)
        assert _samples(_get(metrics)[1], "conf_worker_up") == {"worker-1": 1.0, "worker-2": 1.0}
    finally:
        server.stop()
