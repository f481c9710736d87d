"""The waiting room in the interactive view: the host sees who waits and admits them by typing."""

from __future__ import annotations

from conf_cli.testing.processes import conf_command
from tests.helpers.terminal import Terminal


def test_the_host_sees_who_waits_and_admits_them(server_url: str) -> None:
    host = Terminal(
        [
            *conf_command(),
            "create",
            "--server",
            server_url,
            "--name",
            "ada",
            "--passcode",
            "pass-123",
            "--waiting-room",
        ]
    )
    waiter: Terminal | None = None
    try:
        host.read_until("WAITING ROOM", timeout=20)
        meeting = _meeting_id(host.screen.decode(errors="replace"))
        waiter = Terminal(
            [
                *conf_command(),
                "join",
                meeting,
                "--server",
                server_url,
                "--name",
                "bob",
                "--passcode",
                "pass-123",
            ]
        )
        waiter.read_until("you are waiting to be admitted", timeout=20)
        host.read_until("bob is waiting to be admitted")
        host.read_until("\x1b[2;33mwaiting")  # the participants panel lists who waits, dimmed
        host.type("/admit bob\r")
        waiter.read_until("you joined meeting", timeout=20)
        host.read_until("bob joined")
        waiter.type("\x03")
        assert waiter.wait(10) == 0
        host.type("\x03")
        assert host.wait(10) == 0
    finally:
        host.close()
        if waiter is not None:
            waiter.close()


def _meeting_id(screen: str) -> str:
    marker = "meeting "
    for start in range(len(screen)):
        if screen.startswith(marker, start):
            candidate = screen[start + len(marker) : start + len(marker) + 12]
            if len(candidate) == 12 and candidate[3] == "-" and candidate[8] == "-":
                return candidate
    raise AssertionError("no meeting ID on the host's screen")
