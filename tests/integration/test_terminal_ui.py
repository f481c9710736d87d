"""The interactive meeting view, driven through a real pseudo-terminal as a person would."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time

from conf_cli.testing import ClientPool, conf_command


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

    def read_until(self, text: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.screen:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{text!r} never appeared; last output {self.screen[-400:]!r}"
            ready, _, _ = select.select([self.master], [], [], remaining)
            if ready:
                try:
                    self.screen += os.read(self.master, 65536)
                except OSError:
                    break

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
        assert terminal.process.wait(10) == 0
        terminal.read_until("you left the meeting")
    finally:
        terminal.close()
