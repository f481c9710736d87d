"""The server's media fan-out: the hub decides who receives a packet, this module sends it there fast.

The hub's answer for an RTP packet depends only on the sending connection, the SSRC and the hub's
state, which :attr:`Hub.generation` tracks. :class:`Forwarder` therefore asks the hub once per
(link, SSRC) and keeps the answer, already resolved to links grouped by listener, until the generation
changes (a join, a leave, a publish, any request or connection event). A packet that hits the cache costs
two dict lookups and one ``forward_media`` call per listener; no tuples, lists or dicts are built for it.
RTCP and short packets always take the hub's full path. RTP whose header (CSRC list, extension) runs past
the end of the packet is dropped before the cache, as the hub would; ``on_malformed`` hears of each
malformed packet and its sender.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from conf_cli.meeting.hub import Hub
from conf_cli.protocol.rtp import header_fits
from conf_cli.transport import Link, Listener

Send = Callable[[bytes, Sequence[Link]], object]
Groups = tuple[tuple[Send, tuple[Link, ...]], ...]

_REFUSED: Groups = ((lambda packet, links: None, ()),)
"""Cached for a (link, SSRC) whose RTP the hub refuses: counted, sent nowhere."""


def _each(packet: bytes, links: Iterable[Link]) -> None:
    for link in links:
        link.send_media(packet)


class Forwarder:
    def __init__(
        self, hub: Hub, links: dict[int, Link], on_malformed: Callable[[Link, str], None] | None = None
    ) -> None:
        self.hub = hub
        self.links = links
        self.on_malformed = on_malformed
        self.active: set[int] = set()
        """Links whose cached media arrived since :meth:`take_active`: alive, as far as the hub cares."""
        self._routes: dict[int, dict[bytes, Groups]] = {}
        self._generation = -1

    def media(self, link: Link, packet: bytes, now: float) -> bool:
        """Forward ``packet`` from ``link``; False if the link must be closed (media before hello)."""
        hub = self.hub
        if self._generation != hub.generation:
            self._routes.clear()
            self._generation = hub.generation
        rtp = len(packet) >= 12 and not 64 <= (packet[1] & 0x7F) <= 95
        if rtp:
            if not header_fits(packet):
                if not hub.seen(link.id, now):
                    return False
                hub.stats.media_malformed += 1
                if self.on_malformed is not None:
                    self.on_malformed(link, "RTP header runs past the end of the packet")
                return True
            routes = self._routes.get(link.id)
            if routes is not None:
                groups = routes.get(packet[8:12])
                if groups is not None:
                    self.active.add(link.id)
                    if groups is _REFUSED:
                        hub.stats.media_refused += 1
                        return True
                    for send, group in groups:
                        send(packet, group)
                    return True
        refused, malformed = hub.stats.media_refused, hub.stats.media_malformed
        recipients = hub.route_media(link.id, packet, now)
        if recipients is None:
            return False
        if hub.stats.media_malformed != malformed and self.on_malformed is not None:
            self.on_malformed(link, "malformed RTP or RTCP")
        groups = self._resolve(recipients)
        if rtp:
            routes = self._routes.get(link.id)
            if routes is None:
                routes = self._routes[link.id] = {}
            routes[packet[8:12]] = _REFUSED if hub.stats.media_refused != refused else groups
        for send, group in groups:
            send(packet, group)
        return True

    def send(self, packet: bytes, recipients: tuple[int, ...]) -> None:
        """Send a packet the server made (a keyframe request) to ``recipients``."""
        for send, group in self._resolve(recipients):
            send(packet, group)

    def take_active(self) -> set[int]:
        active, self.active = self.active, set()
        return active

    def _resolve(self, recipients: tuple[int, ...]) -> Groups:
        """Recipients' links grouped by the listener that fans out to them, as it does best."""
        by_listener: dict[Listener | None, list[Link]] = {}
        for cid in recipients:
            link = self.links.get(cid)
            if link is not None:
                by_listener.setdefault(link.listener, []).append(link)
        return tuple(
            (listener.forward_media if listener is not None else _each, tuple(group))
            for listener, group in by_listener.items()
        )
