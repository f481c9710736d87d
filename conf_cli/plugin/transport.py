"""The transport interface: what a transport plugin gives the server and the client.

A transport moves bytes and nothing else. The server gets a :class:`Listener` that reports links
opening, control messages and media packets arriving, and links closing; the client gets one
:class:`Link` to the server. Control messages are reliable and ordered; media packets (RTP/RTCP) are
best effort and are dropped, never queued without bound, when a peer cannot keep up. Who receives a
packet is the meeting core's decision; how it is sent (a loop of sends, one batched write) is the transport's,
through :meth:`Listener.forward_media`.
"""

from __future__ import annotations

import itertools
import socket
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from conf_cli.latch import Credentials
    from conf_cli.plugin.security import Security

_link_ids = itertools.count(1)


def next_link_id() -> int:
    """A process-wide unique link number."""
    return next(_link_ids)


@dataclass
class LinkStats:
    control_in: int = 0
    control_out: int = 0
    media_in: int = 0
    media_out: int = 0
    media_dropped: int = 0
    bytes_in: int = 0
    bytes_out: int = 0


class Link(ABC):
    """One connection: a client as the server sees it, or the server as a client sees it."""

    media_ordered: bool = False
    """Media arrives in the order it was sent, if at all (a stream: TCP, ZeroMQ, WebSocket).

    A receiver then never waits for a reordered or resent packet. False for datagrams (RTP over UDP)."""

    media_address: tuple[str, int] | None = None
    """A transport whose media goes by UDP with STUN bindings (rtp://): the client's media address as the
    server sees it (behind a NAT, the NAT's). On the server, where the link's media goes (the latched
    address); on the client, what the server's last binding answer said. None for other transports."""
    media_credentials: Credentials | None = None
    """Client side, such a transport: what this link's STUN bindings are signed with (conf_cli.latch), so
    that ``conf doctor`` can bind to the server's media port from a socket of its own. None otherwise."""

    def __init__(self, peer: str, listener: Listener | None = None) -> None:
        self.id = next_link_id()
        self.peer = peer
        self.stats = LinkStats()
        self.listener = listener  # the server-side listener that accepted this link, if any

    @abstractmethod
    def send_control(self, data: bytes) -> None:
        """Queue a control message for reliable, ordered delivery.

        Never blocks. A peer that falls too far behind is disconnected rather than buffered forever.
        """

    @abstractmethod
    def send_media(self, packet: bytes) -> bool:
        """Send an RTP/RTCP packet best-effort; return False if it was dropped (peer congested)."""

    def media_backlog(self) -> int | None:
        """Bytes waiting in this link's send queue (what a sender's congestion control watches on a stream
        transport), or None if the transport cannot tell."""
        return None

    @abstractmethod
    def close(self) -> None:
        """Close the link; the other side's events receive ``closed``."""

    @property
    @abstractmethod
    def is_closing(self) -> bool:
        """True once the link is closed or closing."""


class ServerEvents(Protocol):
    """What a listener reports to the server."""

    def link_opened(self, link: Link) -> None: ...

    def control_received(self, link: Link, data: bytes) -> None: ...

    def media_received(self, link: Link, packet: bytes) -> None: ...

    def keepalive_received(self, link: Link) -> None: ...

    def link_closed(self, link: Link, reason: str) -> None: ...


class ClientEvents(Protocol):
    """What a client link reports to the client."""

    def control_received(self, data: bytes) -> None: ...

    def media_received(self, packet: bytes, arrival: float | None = None) -> None:
        """``arrival``: when the packet reached this host (:func:`time.monotonic` seconds), if the
        transport knows it better than the time of this call (a datagram's kernel time stamp)."""

    def closed(self, reason: str) -> None: ...


class Listener(ABC):
    """A server endpoint accepting links on one transport."""

    url: str

    def forward_media(self, packet: bytes, links: Iterable[Link]) -> int:
        """Send one media packet to many links; return how many were sent. Transports may do better."""
        sent = 0
        for link in links:
            sent += link.send_media(packet)
        return sent

    def stats(self) -> dict[str, int]:
        """Transport-specific counters (datagrams dropped and why ...) for ``server_stats``; may be empty."""
        return {}

    @abstractmethod
    async def close(self) -> None:
        """Stop accepting and close every link."""


@dataclass
class TransportOptions:
    """Settings every transport understands; ``extra`` holds transport-specific ones."""

    connect_timeout: float = 5.0
    extra: dict[str, Any] = field(default_factory=dict)
    security: Security | None = None
    """How to protect links (see :mod:`conf_cli.plugin.security`); None for plaintext (``--encryption
    none``).
    """


class Transport(ABC):
    """A transport plugin. Register an instance through ``conf_register_transports``."""

    name: str
    schemes: tuple[str, ...]
    description: str = ""
    secure: bool = False
    """True if the transport protects its links when :attr:`TransportOptions.security` is set. conf refuses
    to run a transport that does not, unless encryption is off (``--encryption none``)."""

    @abstractmethod
    async def listen(self, host: str, port: int, events: ServerEvents, options: TransportOptions) -> Listener:
        """Start accepting links. Raise :class:`conf_cli.errors.ConfError` if the port cannot be used."""

    @abstractmethod
    async def connect(self, host: str, port: int, events: ClientEvents, options: TransportOptions) -> Link:
        """Open a link to a server. Raise ConfError if it cannot be reached within the timeout."""

    adopts: bool = False
    """True if the transport can take over connections another process accepted (:meth:`adopt`): what
    ``conf server --workers`` asks of the ``tcp`` transport."""

    def adoption_listener(self, url: str) -> Listener:
        """A listener that accepts nothing itself: its links arrive through :meth:`adopt`."""
        raise NotImplementedError(f"the {self.name} transport cannot adopt connections")

    async def adopt(
        self,
        listener: Listener,
        sock: socket.socket,
        already_read: bytes,
        events: ServerEvents,
        peer: str = "",
    ) -> Link:
        """Take over a connected client socket that another process accepted and began to read.

        ``already_read`` (what was read off the socket but not handled) reaches the link before anything
        else, so the server sees the client's stream whole. ``peer`` names the client when ``sock`` does
        not (a Unix socket from a front that terminates TLS). Only for transports with :attr:`adopts`.
        """
        raise NotImplementedError(f"the {self.name} transport cannot adopt connections")
