"""The input injector interface: what replays a remote controller's pointer and keys on this desktop.

A plugin registers an :class:`InjectorFactory` (or a :class:`~conf_cli.plugin.lazy.LazyFactory` standing for
one) through ``conf_register_injectors``; :mod:`conf_cli.client.desktop_control` opens one when a participant
is granted control of this desktop, and feeds it from a thread of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class Injector(Protocol):
    """Replays ``control_input`` events on this desktop (blocking calls; run in a thread)."""

    def inject(self, event: Mapping[str, Any]) -> None: ...

    def close(self) -> None:
        """Release every button and key still held."""


class InjectorFactory(Protocol):
    """What a plugin registers with ``conf_register_injectors``."""

    name: str

    def open(self, options: Mapping[str, Any]) -> Injector:
        """Options: ``area``, the desktop rectangle (left, top, width, height) the shared picture shows.
        ConfError, in one line, where this desktop cannot be driven."""
        ...
