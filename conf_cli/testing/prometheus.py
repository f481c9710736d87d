"""A real Prometheus server (Debian's ``prometheus``) for tests: it scrapes one ``/metrics`` URL.

:func:`start_prometheus` writes a configuration with one scrape job, starts Prometheus on a free
loopback port with its data in a temporary folder, and waits until it answers; :meth:`Prometheus.query`
runs PromQL through its HTTP API; :meth:`Prometheus.stop` stops it by its process ID.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

START_TIMEOUT = 30.0
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""Straight to loopback, whatever proxy the environment names."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class Prometheus:
    process: subprocess.Popen[bytes]
    url: str
    folder: tempfile.TemporaryDirectory[str]
    log: BinaryIO

    def query(self, expression: str) -> list[dict[str, Any]]:
        """The result vector of an instant PromQL query (``[{"metric": {...}, "value": [t, "v"]}]``)."""
        address = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
        with _direct.open(address, timeout=5.0) as response:
            answer = json.load(response)
        if answer.get("status") != "success":
            raise AssertionError(f"Prometheus refused {expression!r}: {answer}")
        return list(answer["data"]["result"])

    def wait_for(self, expression: str, expected: float, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Query until one series of the result has the value ``expected``; return that result."""
        deadline = time.monotonic() + timeout
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, urllib.error.URLError):
                result = self.query(expression)
                if any(float(series["value"][1]) == expected for series in result):
                    return result
            time.sleep(0.5)
        raise AssertionError(f"{expression} did not reach {expected} within {timeout} s; last {result}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.close()
        self.folder.cleanup()


def start_prometheus(target: str, interval: float = 1.0) -> Prometheus:
    """Start Prometheus scraping the metrics URL ``target`` (``http://HOST:PORT/metrics``) every
    ``interval`` seconds. Raises AssertionError if Prometheus is not installed or does not start."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise AssertionError("prometheus is not installed: run scripts/setup-system.sh (Debian's prometheus)")
    parts = urllib.parse.urlsplit(target)
    folder = tempfile.TemporaryDirectory(prefix="conf-prometheus-")
    config = Path(folder.name) / "prometheus.yml"
    config.write_text(
        "global:\n"
        f"  scrape_interval: {round(interval * 1000)}ms\n"
        f"  scrape_timeout: {round(interval * 1000)}ms\n"
        "scrape_configs:\n"
        "  - job_name: conf\n"
        f"    metrics_path: {json.dumps(parts.path or '/metrics')}\n"
        "    static_configs:\n"
        f"      - targets: [{json.dumps(parts.netloc)}]\n"
    )
    port = free_port()
    log = (Path(folder.name) / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={Path(folder.name) / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    prometheus = Prometheus(process, f"http://127.0.0.1:{port}", folder, log)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            said = (Path(folder.name) / "prometheus.log").read_text(errors="replace")[-2000:]
            prometheus.stop()
            raise AssertionError(f"prometheus exited ({process.returncode}): {said}")
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            _direct.open(f"{prometheus.url}/-/ready", timeout=2.0) as response,
        ):
            if response.status == 200:
                return prometheus
        time.sleep(0.3)
    prometheus.stop()
    raise AssertionError(f"prometheus did not become ready within {START_TIMEOUT} s")
