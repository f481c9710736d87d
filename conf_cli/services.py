"""Server services: plugins that run inside ``conf server`` beside the transports.

An RTSP gateway or a web page for browsers is a service. A service adds its own options to
``conf server`` (``--rtsp-port``, ``--web-port`` ...), starts when they ask for it, and takes part in
meetings through the :class:`ServiceContext` it is started with: each
:meth:`ServiceContext.participant` is an ordinary conf client on an in-process link that the server
treats like any client's, so the hub's rules (passcodes, roles, forbids) apply to it unchanged. A service
never sees the server itself.

Register a service through the ``conf_register_server_services`` hook::

    @hookimpl
    def conf_register_server_services(register):
        register(MyGateway())
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import click

    from conf_cli.client import Client


class RunningService(ABC):
    """A started service."""

    urls: list[str]
    """Where users reach it (printed by ``conf server`` and listed in ``server_started``)."""

    @abstractmethod
    async def close(self) -> None:
        """Stop serving and release every socket and participant link."""


class ServiceContext(ABC):
    """What a running service may use of the server it runs in."""

    @abstractmethod
    def participant(self, origin: str, *, e2ee_capable: bool = True) -> Client:
        """A new in-process participant, not yet connected: ``await client.connect()``, then ``join``.

        ``origin`` names it in the server's log and in ``server_stats`` (``"rtsp 192.0.2.1:5000"``).
        A participant that cannot read end-to-end encrypted media says ``e2ee_capable=False`` so that
        the hub refuses it such a meeting. Close it with ``await client.close()``.
        """


class ServerService(ABC):
    """A service plugin. Register an instance through ``conf_register_server_services``."""

    name: str
    description: str = ""

    def options(self) -> list[click.Option]:
        """click options this service adds to ``conf server``; their values reach :meth:`wanted`."""
        return []

    @abstractmethod
    def wanted(self, settings: Mapping[str, Any]) -> bool:
        """Whether the server's settings (every ``conf server`` option by name) ask for this service."""

    @abstractmethod
    async def start(self, context: ServiceContext, settings: Mapping[str, Any]) -> RunningService:
        """Start serving; raise :class:`conf_cli.errors.ConfError` with a clear message if it cannot."""
