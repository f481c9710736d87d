"""The interactive meeting view, driven through a real pseudo-terminal as a person would."""

from __future__ import annotations

from conf_cli.testing.processes import ClientPool, conf_command
from tests.helpers.terminal import Terminal

SMALL_PATTERN = ("--width", "320", "--height", "240", "--fps", "10")


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
