"""The prompt's grammar for hands, reactions, polls, breakout rooms, spotlight, renaming, asks to unmute."""

from __future__ import annotations

import pytest

from conf_cli.client.prompt import HELP, CommandError, parse_line


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/hand", {"type": "hand"}),
        ("/hand up", {"type": "hand", "raised": True}),
        ("/HAND Down", {"type": "hand", "raised": False}),
        ("/lower Ada Lovelace", {"type": "lower_hand", "name": "Ada Lovelace"}),
        ("/lower all", {"type": "lower_hand", "all": True}),
        ("/react 👍", {"type": "react", "emoji": "👍"}),
        ("/react +1", {"type": "react", "emoji": "👍"}),
        ("/react Clap", {"type": "react", "emoji": "👏"}),
        ("/react ❤", {"type": "react", "emoji": "❤️"}),
        (
            "/poll Lunch? | Pizza | Sushi",
            {"type": "poll_start", "question": "Lunch?", "options": ["Pizza", "Sushi"]},
        ),
        (
            "/poll --named Go? |yes| no ",
            {"type": "poll_start", "question": "Go?", "options": ["yes", "no"], "named": True},
        ),
        ("/poll close", {"type": "poll_close"}),
        ("/vote 2", {"type": "vote", "choice": 2}),
        ("/breakout create 3", {"type": "breakout_create", "rooms": 3}),
        ("/breakout assign Ada Lovelace 2", {"type": "breakout_assign", "name": "Ada Lovelace", "room": 2}),
        ('/breakout assign "Bob" main', {"type": "breakout_assign", "name": "Bob", "room": 0}),
        ("/breakout shuffle", {"type": "breakout_shuffle"}),
        ("/breakout open", {"type": "breakout_open"}),
        ("/breakout open 15", {"type": "breakout_open", "minutes": 15}),
        (
            "/breakout broadcast five | minutes left",
            {"type": "breakout_broadcast", "text": "five | minutes left"},
        ),
        ("/breakout visit main", {"type": "breakout_visit", "room": 0}),
        ("/breakout visit 2", {"type": "breakout_visit", "room": 2}),
        ("/breakout close", {"type": "breakout_close"}),
        ("/spotlight Ada", {"type": "spotlight", "name": "Ada"}),
        ("/spotlight off", {"type": "spotlight"}),
        ('/rename "Ada L" Ada', {"type": "rename", "name": "Ada L", "new_name": "Ada"}),
        ('/rename bob "Robert Smith"', {"type": "rename", "name": "bob", "new_name": "Robert Smith"}),
        ("/ask-unmute Bob", {"type": "ask_unmute", "name": "Bob"}),
    ],
)
def test_meeting_commands(line: str, message: dict) -> None:
    assert parse_line(line) == message


@pytest.mark.parametrize(
    "line",
    [
        "/hand sideways",
        "/lower",
        "/react",
        "/react banana",
        "/react <b>",
        "/poll",
        "/poll Lunch?",
        "/poll Lunch? | Pizza",
        "/poll Q | a | | b",
        "/poll Q | " + " | ".join(str(n) for n in range(11)),
        "/vote",
        "/vote one",
        "/vote -1",
        "/vote ²",
        "/breakout",
        "/breakout create",
        "/breakout create x",
        "/breakout assign Ada",
        "/breakout assign Ada one",
        "/breakout shuffle now",
        "/breakout open soon",
        "/breakout broadcast",
        "/breakout visit",
        "/breakout dance",
        "/spotlight",
        "/rename Ada",
        "/ask-unmute",
    ],
)
def test_mistyped_meeting_commands_say_how_to_write_them(line: str) -> None:
    with pytest.raises(CommandError, match=r"usage|at most"):
        parse_line(line)


def test_help_lists_every_meeting_command() -> None:
    usages = [usage for usage, _ in HELP]
    for command in (
        "/hand",
        "/lower",
        "/react",
        "/poll",
        "/vote",
        "/breakout create",
        "/breakout assign",
        "/breakout shuffle",
        "/breakout open",
        "/breakout broadcast",
        "/breakout visit",
        "/breakout close",
        "/spotlight",
        "/rename",
        "/ask-unmute",
    ):
        assert any(usage.startswith(command) for usage in usages), command
