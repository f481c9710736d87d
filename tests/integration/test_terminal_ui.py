"""The interactive meeting view, driven through a real pseudo-terminal as a person would."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time

from conf_cli.testing import ClientPool, conf_command

SMALL_PATTERN = ("--width", "320", "--height", "240", "--fps", "10")


class Terminal:
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


def test_typing_in_the_meeting_view(clients: ClientPool, server_url: str) -> None:
    bob_meeting_owner, meeting = clients.create("bob")
    terminal = Terminal(
        [*conf_command(), "join", meeting, "--server", server_url, "--name", "ada", "--passcode", "pass-123"]
    )
    try:
        terminal.read_until("participants (2)")
        terminal.read_until("bob")
        terminal.type("hello from a terminal\r")
        chat = bob_meeting_owner.expect("chat")
        assert chat["from"] == "ada" and chat["text"] == "hello from a terminal"
        bob_meeting_owner.send("welcome, ada")
        terminal.read_until("welcome, ada")
        terminal.type("/nonsense\r")
        terminal.read_until("unknown command /nonsense")
        terminal.type("\x03")  # Ctrl-C leaves politely
        bob_meeting_owner.expect("participant_left", lambda e: e["name"] == "ada" and e["reason"] == "left")
        assert terminal.wait(10) == 0
        terminal.read_until("you left the meeting")
    finally:
        terminal.close()


def test_received_video_is_previewed_with_its_figures(clients: ClientPool, server_url: str) -> None:
    _, meeting = clients.create("host")
    terminal = Terminal(
        [*conf_command(), "join", meeting, "--server", server_url, "--name", "ada", "--passcode", "pass-123"]
    )
    try:
        terminal.read_until("participants (2)")
        bob = clients.share(meeting, "bob", "pattern", *SMALL_PATTERN)
        bob.expect("publish_started")
        terminal.read_until("bob's video")  # the preview panel's title
        terminal.read_until("▀")  # a picture in half blocks
        for heading in ("media", "kbit/s", "loss %", "jitter ms", "rtt ms"):
            terminal.read_until(heading)
        cy = clients.share(meeting, "cy", "pattern", *SMALL_PATTERN)
        cy.expect("publish_started")
        terminal.read_until("2/2, Tab: next")  # the newest video is on show
        terminal.read_until("cy's video")
        mark = len(terminal.screen)
        terminal.type("\t")
        terminal.read_until("1/2, Tab: next", since=mark)
        terminal.read_until("bob's video", since=mark)
        terminal.type("/help\r")
        terminal.read_until("Tab ")
        cy.send("/leave")
        mark = len(terminal.screen)
        terminal.read_until("bob's video", since=mark)
        terminal.type("\x03")
        assert terminal.wait(10) == 0
    finally:
        terminal.close()


def test_the_security_code_of_an_e2ee_meeting_is_in_the_view(clients: ClientPool, server_url: str) -> None:
    host, meeting = clients.create("host", "--e2ee")
    terminal = Terminal(
        [*conf_command(), "join", meeting, "--server", server_url, "--name", "cy", "--passcode", "pass-123"]
    )
    try:
        code = host.expect("security_code", lambda e: e["participants"] == ["cy", "host"])["code"]
        terminal.read_until(f"E2EE code {code}")
        terminal.type("/leave\r")
        assert terminal.wait() == 0
    finally:
        terminal.close()
