"""Where received media goes, for a meeting or a call: the speaker (checked before connecting) and the video
view (a terminal preview or a window), as sinks opened for each received track."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conf_cli.errors import ConfError
from conf_cli.plugin.registry import registry

if TYPE_CHECKING:
    from conf_cli.client.media.playback import SinkOpener
    from conf_cli.client.ui.meeting_ui import MeetingUI


@dataclass(frozen=True)
class Outputs:
    """Where received media goes: the speaker (a sink factory, or None) and the video view."""

    speaker: Any
    speaker_device: str | None
    view: str
    sinks: Mapping[str, Any]

    def opener(self, ui: MeetingUI, on_resize: Callable[[int, int], None] | None = None) -> SinkOpener | None:
        """The sinks each received track gets, for a meeting (or call) shown by ``ui``; ``on_resize``
        hears of a video window's size (see :func:`~conf_cli.client.media.viewing.window_opener`)."""
        open_sinks = None
        if self.speaker is not None:
            from conf_cli.client.media.playback import speaker_opener

            open_sinks = speaker_opener(self.speaker, _speaker_options(self.speaker_device), ui.show)
        return _with_viewer(open_sinks, self.view, self.sinks, ui, on_resize)


async def prepare_outputs(
    machine: bool, *, play: bool | None = None, speaker: str | None = None, view: str | None = None
) -> Outputs:
    """Check the speaker and the view asked for (see :func:`attend`) before connecting; ConfError if not."""
    from conf_cli.client.media.playback import find_sink_factory
    from conf_cli.client.media.viewing import check_sink, resolve_view

    sinks = registry().sinks
    shown = resolve_view(view, machine)
    if shown != "none" and shown not in sinks:
        if view is not None:  # asked for: say what is missing; by default: go on without a preview
            find_sink_factory(sinks, shown)
        shown = "none"
    if shown == "window":
        await asyncio.to_thread(check_sink, sinks[shown])
    speaker_factory = await _speaker(sinks, machine if play is None else not play, play is True, speaker)
    return Outputs(speaker_factory, speaker, shown, sinks)


def _with_viewer(
    open_sinks: SinkOpener | None,
    view: str,
    sinks: Mapping[str, Any],
    ui: MeetingUI,
    on_resize: Callable[[int, int], None] | None = None,
) -> SinkOpener | None:
    """``open_sinks`` plus the sinks that show received video as ``view`` asks (its sink is registered)."""
    from conf_cli.client.media.viewing import combine, preview_opener, window_opener

    if view == "window":
        return combine(open_sinks, window_opener(sinks, ui.show, on_resize))
    add_preview = getattr(ui, "add_preview", None)
    if view == "preview" and add_preview is not None:
        return combine(open_sinks, preview_opener(sinks, add_preview))
    return open_sinks


def _speaker_options(device: str | None) -> dict[str, Any]:
    return {"device": device} if device else {}


async def _speaker(sinks: Mapping[str, Any], skip: bool, required: bool, device: str | None) -> Any:
    """The speaker sink factory to play received audio with, or ``None`` (not wanted, or unusable).

    The speaker is opened and closed once, in a thread, to find out now whether it works.
    """
    if skip:
        return None
    from conf_cli.client.media.playback import check_speaker, find_sink_factory

    try:
        factory = find_sink_factory(sinks)
        await asyncio.to_thread(check_speaker, factory, _speaker_options(device))
    except ConfError:
        if required:
            raise
        return None
    except Exception as exc:  # whatever the device layer raised
        if required:
            raise ConfError(f"cannot play sound: {exc}") from None
        return None
    return factory
