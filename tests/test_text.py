"""Text from the network drawn on a terminal: no control character gets through, and markup is text."""

from __future__ import annotations

import io
import json

from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console, RenderableType

from conf_cli.client.state import receive
from conf_cli.client.ui.call_console import CallConsole
from conf_cli.client.ui.panels import media_table, preview_panel
from conf_cli.client.ui.previews import Preview, PreviewDeck
from conf_cli.client.ui.view import MeetingView, TrackView
from conf_cli.machine import emit
from conf_cli.protocol.control import CONTROL_CHARS
from conf_cli.text import REPLACEMENT, json_line, printable, printable_event

OSC52 = "\x1b]52;c;ZXZpbA==\x07"
LINK = "[link=https://evil.example/]click[/link]"
EVIL = f"{LINK}\x1b]0;pwned\x07\x9b2J\x7f"
CONTROLS = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))]


def terminal_bytes(renderable: RenderableType) -> str:
    """What rich writes to a colour terminal for ``renderable``, escape sequences and all."""
    out = io.StringIO()
    Console(file=out, width=120, force_terminal=True, color_system="truecolor").print(renderable)
    return out.getvalue()


def assert_safe(drawn: str) -> None:
    assert "\x1b]" not in drawn  # no OSC: no clipboard, title or hyperlink
    assert not any(ch in drawn for ch in CONTROLS if ch not in "\x1b\n\r"), repr(drawn)


class FakePicture:
    frames = 0

    def renderable(self) -> None:
        return None


@given(st.text())
def test_printable_leaves_no_control_character_and_keeps_the_rest(text):
    shown = printable(text)
    assert not CONTROL_CHARS.search(shown) and len(shown) == len(text)
    assert all(
        a == b or (CONTROL_CHARS.match(a) and b == REPLACEMENT) for a, b in zip(text, shown, strict=True)
    )


def test_printable_event_cleans_every_string_deeply():
    event = {"type": "chat", "from": EVIL, "n": 3, "list": [OSC52, {"k\x1b": "v\x9b"}], "ok": True}
    cleaned = printable_event(event)
    assert cleaned["n"] == 3 and cleaned["ok"] is True
    assert not CONTROL_CHARS.search(json.dumps(cleaned, ensure_ascii=False).replace("\\", ""))
    assert cleaned["list"][1] == {f"k{REPLACEMENT}": f"v{REPLACEMENT}"}
    assert cleaned["from"].startswith(LINK)


@given(st.dictionaries(st.text(), st.text() | st.lists(st.text()) | st.integers()))
def test_json_lines_carry_the_data_unchanged_and_no_raw_control_character(message):
    line = json_line(message)
    assert not CONTROL_CHARS.search(line)
    assert json.loads(line) == message


def test_machine_mode_escapes_control_characters_in_its_json():
    out = io.StringIO()
    emit({"type": "chat", "from": EVIL, "text": OSC52}, out)
    line = out.getvalue()
    assert line.endswith("\n") and not CONTROL_CHARS.search(line[:-1])
    assert json.loads(line) == {"type": "chat", "from": EVIL, "text": OSC52}


def test_the_view_keeps_names_and_chat_without_control_characters():
    view = MeetingView("ada")
    view.apply(receive({"type": "participant_joined", "name": EVIL, "role": "member"}))
    view.apply(receive({"type": "chat", "from": EVIL, "text": f"hi {OSC52}", "private": False}))
    view.apply(receive({"type": "kicked", "by": EVIL}))
    texts = [text for _, text in view.log] + list(view.peers) + [view.ended or ""]
    assert texts and not any(CONTROL_CHARS.search(text) for text in texts)
    assert any(text.startswith(f"{LINK}") for text in texts)  # markup stays as its text


def test_media_table_and_preview_title_draw_markup_as_text():
    track = TrackView.from_event({"name": EVIL, "kind": f"video{OSC52}", "ssrc": 1})
    deck = PreviewDeck()
    deck.add(Preview(1, EVIL, "video", FakePicture()))
    for renderable in (media_table([track]), preview_panel(deck)):
        assert renderable is not None
        drawn = terminal_bytes(renderable)
        assert_safe(drawn)
        assert "[link=https://e" in drawn  # the name column is cut at 16 characters


def test_the_call_console_prints_no_control_character(capsys):
    CallConsole().show({"type": "call_incoming", "peer": f"{LINK}{OSC52}"})
    out = capsys.readouterr().out
    assert not CONTROL_CHARS.search(out.rstrip("\n")) and LINK in out
