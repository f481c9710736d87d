"""A video window asks the server for the simulcast layer that fits its size: the ``receive`` request for a
view, and a window's resizes turned into such requests once the size settles."""

from __future__ import annotations

import asyncio

import pytest

from conf_cli.client import runner
from conf_cli.client.runner import PREVIEW_HEIGHT, WINDOW_HEIGHT, ResizeRequests, receive_request
from conf_cli.protocol.control import Message


def test_each_view_asks_for_the_lines_it_shows() -> None:
    assert receive_request(None, "none") is None
    assert receive_request(300_000, "none") == {"type": "receive", "max_bitrate": 300_000}
    assert receive_request(None, "preview") == {"type": "receive", "max_height": PREVIEW_HEIGHT}
    assert receive_request(None, "window") == {"type": "receive", "max_height": WINDOW_HEIGHT}
    assert receive_request(None, "window", 400) == {"type": "receive", "max_height": 400}
    assert receive_request(None, "window", 3) == {"type": "receive", "max_height": 16}  # the least allowed


def test_a_window_asks_again_once_its_size_has_settled_and_only_when_it_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runner, "RESIZE_SETTLE", 0.05)
    sent: list[Message] = []

    async def scenario() -> None:
        requests = ResizeRequests(sent.append, 2_000_000, asyncio.get_running_loop())
        for height in (700, 600, 500, 360):  # a drag: only where it stops counts
            requests.resized(640, height)
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        assert sent == [{"type": "receive", "max_bitrate": 2_000_000, "max_height": 360}]
        requests.resized(700, 360)  # wider, not taller: nothing new to ask
        await asyncio.sleep(0.2)
        requests.resized(1280, 720)  # back to what a window asks at first: asked again (it changed)
        await asyncio.sleep(0.2)

    asyncio.run(scenario())
    assert sent[1:] == [{"type": "receive", "max_bitrate": 2_000_000, "max_height": 720}]
