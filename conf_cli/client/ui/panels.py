"""Panels of the terminal view that show media: the received tracks' figures and the video preview."""

from __future__ import annotations

from rich.console import RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from conf_cli.client.ui.previews import PreviewDeck
from conf_cli.client.ui.view import TrackView
from conf_cli.text import printable

MEDIA_ROWS = 6  # tracks listed at most; the rest are summed up in one line
PREVIEW_LINES = 12  # text lines of a 48x24-pixel picture
PREVIEW_COLUMNS = 48


def _figure(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def media_table(tracks: list[TrackView], limit: int = MEDIA_ROWS) -> Table:
    """One row per received track: who, kind, fps, kbit/s, loss %, jitter ms, RTT ms."""
    table = Table(box=None, padding=(0, 1), show_edge=False, header_style="bold")
    table.add_column("who", no_wrap=True, overflow="ellipsis", max_width=16)
    table.add_column("kind")
    for heading in ("fps", "kbit/s", "loss %", "jitter ms", "rtt ms"):
        table.add_column(heading, justify="right")
    for track in tracks[:limit]:
        loss = track.loss_rate * 100
        table.add_row(
            Text(printable(track.name)),  # a plain str cell would be read as markup
            Text(printable(track.kind)),
            _figure(track.fps),
            _figure(track.bitrate / 1000, 0),
            Text(_figure(loss), style="red" if loss >= 1 else ""),
            _figure(track.jitter_ms),
            _figure(track.rtt_ms),
        )
    if len(tracks) > limit:
        table.add_row(Text(f"… {len(tracks) - limit} more", style="dim"))
    return table


def media_panel_height(tracks: list[TrackView]) -> int:
    """Lines the media panel takes: its rows, a heading and two borders (0 when nothing is received)."""
    if not tracks:
        return 0
    return min(len(tracks), MEDIA_ROWS + 1) + 3


def preview_panel(deck: PreviewDeck) -> Panel | None:
    """The picture on show in a titled panel, or ``None`` when no video is received."""
    preview = deck.current
    if preview is None:
        return None
    picture: RenderableType | None = preview.picture.renderable()
    body: RenderableType = picture if picture is not None else Text("waiting for a picture…", style="dim")
    count = len(deck.previews)
    position = list(deck.previews).index(preview.ssrc) + 1
    subtitle = f"{position}/{count}, Tab: next" if count > 1 else None
    return Panel(body, title=Text(printable(preview.label)), subtitle=subtitle, padding=0)
