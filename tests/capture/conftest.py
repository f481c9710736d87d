"""Virtual devices for capture tests: an Xvfb screen and a PulseAudio server, stopped by PID afterwards.

The fixtures skip (with the reason) when Xvfb or PulseAudio is not installed; see
:mod:`conf_cli.testing.devices` and scripts/setup-system.sh. The sound server is shared by the tests of a
module (a new one takes about two seconds before sound flows); each test gets ``PULSE_SERVER`` set.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conf_cli.testing.devices import (
    VirtualScreen,
    VirtualSound,
    missing_screen_tools,
    missing_sound_tools,
    start_screen,
    start_sound,
)


@pytest.fixture
def screen(monkeypatch: pytest.MonkeyPatch) -> Iterator[VirtualScreen]:
    """A 640x480 virtual screen; ``DISPLAY`` points at it for this test."""
    reason = missing_screen_tools()
    if reason is not None:
        pytest.skip(f"no virtual screen: {reason}")
    virtual = start_screen(640, 480)
    try:
        monkeypatch.setenv("DISPLAY", virtual.display)
        yield virtual
    finally:
        virtual.stop()


@pytest.fixture(scope="module")
def sound_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VirtualSound]:
    """A PulseAudio server with ``vsink``, ``micfeed`` and ``vmic``, for one test module."""
    reason = missing_sound_tools()
    if reason is not None:
        pytest.skip(f"no virtual sound server: {reason}")
    virtual = start_sound(tmp_path_factory.mktemp("pulse"))
    try:
        yield virtual
    finally:
        virtual.stop()


@pytest.fixture
def sound(sound_server: VirtualSound, monkeypatch: pytest.MonkeyPatch) -> VirtualSound:
    """The module's sound server, with ``PULSE_SERVER`` pointing at it for this test."""
    monkeypatch.setenv("PULSE_SERVER", sound_server.server)
    return sound_server
