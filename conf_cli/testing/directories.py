"""Real cluster directories for tests and benchmarks: Debian's ``redis-server`` and ``nats-server``.

:func:`start_redis` and :func:`start_nats` start one on a free port (of 127.0.0.1, or of ``host`` inside a
network namespace when ``prefix`` is ``ip netns exec NS``), with nothing kept on disk but a temporary
folder, and wait until it says it is ready; :meth:`Directory.stop` stops it by its process ID, and
:meth:`Directory.restart` stops it and starts it again, empty, on the same port. ``conf server --cluster
directory.url`` then joins it.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT = 20.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class Directory:
    """A running Redis or NATS server."""

    kind: str
    """``redis`` or ``nats``."""
    host: str
    port: int
    prefix: tuple[str, ...] = ()
    folder: tempfile.TemporaryDirectory[str] = field(
        default_factory=lambda: tempfile.TemporaryDirectory(prefix="conf-directory-")
    )
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return (
            f"redis://{self.host}:{self.port}/0"
            if self.kind == "redis"
            else f"nats://{self.host}:{self.port}"
        )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _command(self) -> list[str]:
        if self.kind == "redis":
            binary = shutil.which("redis-server")
            if binary is None:
                raise AssertionError("redis-server is not installed: run scripts/setup-system.sh")
            command = [
                binary,
                "--port",
                str(self.port),
                "--bind",
                self.host,
                "--save",
                "",
                "--appendonly",
                "no",
            ]
            if not self.host.startswith("127."):  # a test's own namespace: reached from other namespaces
                command += ["--protected-mode", "no"]
            return command
        binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        if not Path(binary).exists():
            raise AssertionError("nats-server is not installed: run scripts/setup-system.sh")
        store = Path(self.folder.name) / f"js{self.starts}"  # each start empty, as a restarted Redis is
        return [binary, "-a", self.host, "-p", str(self.port), "-js", "-sd", str(store)]

    def start(self) -> Directory:
        """Start it and wait until it accepts clients; AssertionError if it does not within the timeout."""
        ready_line = b"Ready to accept connections" if self.kind == "redis" else b"Server is ready"
        log = Path(self.folder.name) / f"{self.kind}-{self.starts}.log"
        self.starts += 1
        ready = threading.Event()
        process = subprocess.Popen(
            [*self.prefix, *self._command()], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self.process = process

        def read() -> None:
            assert process.stdout is not None
            with open(log, "wb") as out:
                for line in process.stdout:
                    out.write(line)
                    out.flush()
                    if ready_line in line:
                        ready.set()

        threading.Thread(target=read, name=f"{self.kind}-log", daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT
        while not ready.wait(0.05):
            if process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"{self.kind} did not start: {log.read_text(errors='replace')[-2000:]}")
        return self

    def stop(self) -> None:
        """Stop it by its process ID (SIGTERM, then SIGKILL)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def restart(self, pause: float = 0.0) -> None:
        """Stop it, wait ``pause`` seconds, and start it again, empty, on the same port."""
        self.stop()
        time.sleep(pause)
        self.start()

    def close(self) -> None:
        self.stop()
        with contextlib.suppress(OSError):
            self.folder.cleanup()


def start_redis(host: str = "127.0.0.1", prefix: Sequence[str] = (), port: int | None = None) -> Directory:
    """A fresh Redis (no persistence) on a free port of ``host``."""
    return Directory(
        "redis", host, port or free_port(host if not prefix else "127.0.0.1"), tuple(prefix)
    ).start()


def start_nats(host: str = "127.0.0.1", prefix: Sequence[str] = (), port: int | None = None) -> Directory:
    """A fresh NATS server with JetStream (its store in a temporary folder) on a free port of ``host``."""
    return Directory(
        "nats", host, port or free_port(host if not prefix else "127.0.0.1"), tuple(prefix)
    ).start()


def start_directory(kind: str, host: str = "127.0.0.1", prefix: Sequence[str] = ()) -> Directory:
    """:func:`start_redis` (``redis``) or :func:`start_nats` (``nats``)."""
    if kind not in ("redis", "nats"):
        raise ValueError(f"no directory kind {kind!r}: redis or nats")
    return start_redis(host, prefix) if kind == "redis" else start_nats(host, prefix)
