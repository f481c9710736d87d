"""The terminal driver: a conf process in a real pseudo-terminal, driven as a person would."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time


class Terminal:
    """A process (conf join ...) in a real pseudo-terminal of 100x30: read what it draws, type keys."""

    def __init__(self, args: list[str]) -> None:
        self.master, slave = pty.openpty()
        os.set_blocking(self.master, False)
        env = {**os.environ, "COLUMNS": "100", "LINES": "30", "TERM": "xterm-256color"}
        self.process = subprocess.Popen(
            args, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True
        )
        os.close(slave)
        self.screen = b""

    def read_until(self, text: str, timeout: float = 10.0, since: int = 0) -> None:
        """Wait until ``text`` has been drawn (at or after offset ``since`` of the output)."""
        deadline = time.monotonic() + timeout
        while text.encode() not in self.screen[since:]:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{text!r} never appeared; last output {self.screen[-400:]!r}"
            ready, _, _ = select.select([self.master], [], [], remaining)
            if ready:
                try:
                    self.screen += os.read(self.master, 65536)
                except OSError:
                    break

    def wait(self, timeout: float = 10.0) -> int:
        """Wait for the process to exit, reading what it draws meanwhile (a full pty would block it)."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"still running after {timeout} s; last output {self.screen[-400:]!r}"
            ready, _, _ = select.select([self.master], [], [], min(remaining, 0.1))
            if ready:
                try:
                    self.screen += os.read(self.master, 65536)
                except OSError:
                    break
        return self.process.wait(timeout)

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(5)
        os.close(self.master)
