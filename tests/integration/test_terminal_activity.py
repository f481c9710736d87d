"""The interactive view shows hands, reactions, polls and breakout rooms, through a real pseudo-terminal."""

from __future__ import annotations

from conf_cli.testing.processes import ClientPool, conf_command
from tests.helpers.terminal import Terminal


def test_the_terminal_shows_hands_reactions_a_poll_and_rooms(clients: ClientPool, server_url: str) -> None:
    bob, meeting = clients.create("bob")
    terminal = Terminal(
        [*conf_command(), "join", meeting, "--server", server_url, "--name", "ada", "--passcode", "pass-123"]
    )
    try:
        terminal.read_until("participants (2)")
        bob.send("/hand")
        terminal.read_until("✋ bob raises a hand (1st in line)")
        terminal.read_until("✋1")  # beside bob's name
        terminal.type("/react tada\r")
        bob.expect("reaction", lambda e: e["name"] == "ada" and e["emoji"] == "🎉")
        terminal.read_until("ada 🎉")
        bob.send("/poll Lunch? | Pizza | Soup")
        terminal.read_until("  2. Soup")
        terminal.read_until("POLL 1 open: /vote N")
        terminal.type("/vote 2\r")
        terminal.read_until("you voted 2")
        bob.send("/poll close")
        terminal.read_until("  2. Soup: 1 ")
        bob.send("/breakout create 2")
        bob.send("/breakout assign ada 2")
        bob.send("/breakout open")
        terminal.read_until("you are now in breakout room 2")
        bob.send("/breakout close")
        terminal.read_until("bob closed the breakout")
        terminal.type("\x03")
        assert terminal.wait(10) == 0
    finally:
        terminal.close()
