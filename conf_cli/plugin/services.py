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

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import click

    from conf_cli.plugin.transport import Link
    from conf_cli.protocol.control import Message


class RunningService(ABC):
    """A started service."""

    urls: list[str]
    """Where users reach it (printed by ``conf server`` and listed in ``server_started``)."""

    @abstractmethod
    async def close(self) -> None:
        """Stop serving and release every socket and participant link."""

    def service_stats(self) -> dict[str, object]:
        """The service's counters for ``server_stats`` (under ``services``, by the service's name); empty
        for none."""
        return {}


class Participant(Protocol):
    """An in-process participant of a meeting, as a service drives it (a
    :class:`conf_cli.client.link.Client`).

    Its control messages are those of docs/protocol.md; what the server sends arrives on :attr:`events`,
    media from the meeting reaches :attr:`media_handler`, and media goes out through ``link.send_media``.
    """

    events: asyncio.Queue[Message]
    """Every message from the server that is not the answer to a request of ours."""
    link: Link | None
    meeting: str | None
    name: str | None
    closed_reason: str | None
    media_handler: Callable[[bytes], None] | None

    async def connect(self) -> Message:
        """Open the link and say hello; the ``welcome`` message."""
        ...

    async def join(
        self,
        meeting: str,
        name: str,
        passcode: str | None = None,
        *,
        require_e2ee: bool = False,
        token: str | None = None,
    ) -> Message:
        """``joined``, or ``waiting`` when a waiting room holds us; RequestRefused with the hub's reason.
        ``token``: an access token instead of the passcode."""
        ...

    async def request(self, message: Message, wanted: set[str]) -> Message:
        """Send ``message`` and wait for one of ``wanted``; RequestRefused if the server refuses it."""
        ...

    def send(self, message: Message) -> None: ...

    async def close(self) -> None: ...


class ServiceContext(ABC):
    """What a running service may use of the server it runs in."""

    @abstractmethod
    def participant(self, origin: str, *, e2ee_capable: bool = True) -> Participant:
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
