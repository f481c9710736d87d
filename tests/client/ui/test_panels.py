"""The media panels of the terminal view, and which preview is on show. Sans-I/O: rendered to text."""

from __future__ import annotations

import io

from rich.console import Console, RenderableType
from rich.text import Text

from conf_cli.client.ui.panels import media_panel_height, media_table, preview_panel
from conf_cli.client.ui.previews import Preview, PreviewDeck
from conf_cli.client.ui.terminal import Key, LineEditor, newest_lines
from conf_cli.client.ui.view import TrackView


class FakePicture:
    def __init__(self, text: str | None = "PICTURE") -> None:
        self.frames = 0
        self.text = text

    def renderable(self) -> RenderableType | None:
        return None if self.text is None else Text(self.text)


def draw(renderable: RenderableType, width: int = 80) -> str:
    console = Console(file=io.StringIO(), width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_the_media_table_lists_each_track_with_its_figures() -> None:
    tracks = [
        TrackView("bob", "screen", 2, "H264", 90, 29.97, 1_234_567, 0.025, 3.14, 0.8),
        TrackView("ada", "audio", 3, "opus", 100, 50.0, 32_000, 0.0, 0.5, None),
    ]
    lines = [line.split() for line in draw(media_table(tracks)).splitlines()]
    assert lines[0] == ["who", "kind", "fps", "kbit/s", "loss", "%", "jitter", "ms", "rtt", "ms"]
    assert lines[1] == ["bob", "screen", "30.0", "1235", "2.5", "3.1", "0.8"]
    assert lines[2] == ["ada", "audio", "50.0", "32", "0.0", "0.5", "-"]
    assert media_panel_height(tracks) == 5 and media_panel_height([]) == 0


def test_many_tracks_are_summed_up() -> None:
    tracks = [TrackView(f"p{i}", "video") for i in range(9)]
    text = draw(media_table(tracks, limit=6))
    assert "p5" in text and "p6" not in text and "… 3 more" in text
    assert media_panel_height(tracks) == 10


def test_the_newest_video_is_shown_and_tab_cycles() -> None:
    deck = PreviewDeck()
    assert deck.current is None and deck.cycle() is None and preview_panel(deck) is None
    bob, cy = FakePicture(), FakePicture(None)
    deck.add(Preview(1, "bob", "video", bob))
    assert "PICTURE" in draw(preview_panel(deck) or "") and "bob's video" in draw(preview_panel(deck) or "")
    deck.add(Preview(2, "cy", "screen", cy))
    panel = draw(preview_panel(deck) or "")
    assert "cy's screen" in panel and "waiting for a picture" in panel and "2/2, Tab: next" in panel
    assert deck.cycle() is not None and deck.current is not None and deck.current.ssrc == 1
    assert deck.cycle() is not None and deck.current is not None and deck.current.ssrc == 2
    deck.remove(2)
    assert deck.current is not None and deck.current.ssrc == 1
    deck.remove(1)
    assert deck.current is None


def test_a_redraw_is_due_when_a_picture_arrives_or_the_track_changes() -> None:
    deck = PreviewDeck()
    assert not deck.changed()
    picture = FakePicture()
    deck.add(Preview(1, "bob", "video", picture))
    assert deck.changed()
    deck.drawn()
    assert not deck.changed()
    picture.frames += 1
    assert deck.changed()
    deck.drawn()
    deck.remove(1)
    assert deck.changed()


def test_tab_is_a_key_not_text() -> None:
    editor = LineEditor()
    assert editor.feed(b"hi\tthere\r") == [Key.TAB, "hithere"]


def test_ctrl_r_takes_control_back() -> None:
    editor = LineEditor()
    assert editor.feed(b"ab\x12c\r") == [Key.REVOKE, "abc"]


def test_the_chat_shows_the_newest_lines_once_wrapped() -> None:
    console = Console(file=io.StringIO(), width=80)
    log = [("", "one"), ("", "two " * 10), ("", "three")]
    wrapped = [line.plain.strip() for line in newest_lines(console, log, 12, 4)]
    assert wrapped == ["two two two", "two two two", "two", "three"]  # the top of the long line is cut
    assert [line.plain for line in newest_lines(console, log, 80, 10)] == ["one", "two " * 10, "three"]
