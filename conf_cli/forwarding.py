"""The server's media fan-out: the hub decides who receives a packet, this module sends it there fast.

Who receives a first-seen RTP packet depends only on the sending connection, the SSRC and the hub's
state, which :attr:`Hub.generation` tracks. :class:`Forwarder` therefore asks the hub once per
(link, SSRC) and keeps the answer, already resolved to links grouped by listener, with the track, until
the generation changes (a join, a leave, a publish, any request or connection event). A packet that hits
the cache costs two dict lookups, the track's check that its sequence number is new, and one
``forward_media`` call per listener; no tuples, lists or dicts are built for it. A packet seen before (a
resend) goes only to whoever asked for it (:meth:`Hub.route_resend`), on each one's own link. RTCP, which
the hub may rewrite (a NACK) or split (feedback to publishers, reports to the audience), and short packets
always take the hub's full path. RTP whose header (CSRC list, extension) runs past the end of the packet
is dropped before the cache, as the hub would; ``on_malformed`` hears of each malformed packet and its
sender.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from conf_cli.meeting.core import Track
from conf_cli.meeting.hub import Hub
from conf_cli.protocol.rtp import header_fits, is_rtcp
from conf_cli.transport import Link, Listener

Send = Callable[[bytes, Sequence[Link]], object]
Groups = tuple[tuple[Send, tuple[Link, ...]], ...]
Route = tuple[Groups, Track | None]

_REFUSED: Route = ((), None)
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
        self._routes: dict[int, dict[bytes, Route]] = {}
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
                route = routes.get(packet[8:12])
                if route is not None:
                    self.active.add(link.id)
                    groups, track = route
                    if track is None:
                        hub.stats.media_refused += 1
                    elif track.feedback.first(packet):
                        for send, group in groups:
                            send(packet, group)
                    else:
                        self.send_each(packet, hub.route_resend(link.id, track, packet, now))
                    return True
            return self._uncached_rtp(link, packet, now)
        malformed = hub.stats.media_malformed
        if is_rtcp(packet) and len(packet) >= 8:
            forwards = hub.route_rtcp(link.id, packet, now)
            if forwards is None:
                return False
            for forward in forwards:
                self.send(forward.packet, forward.to)
        else:  # too short to be RTP
            recipients = hub.route_media(link.id, packet, now)
            if recipients is None:
                return False
            self.send(packet, recipients)
        if hub.stats.media_malformed != malformed and self.on_malformed is not None:
            self.on_malformed(link, "malformed RTP or RTCP")
        return True

    def _uncached_rtp(self, link: Link, packet: bytes, now: float) -> bool:
        """RTP whose route is not cached: the hub routes it, and its route is cached for what follows."""
        hub = self.hub
        recipients = hub.route_media(link.id, packet, now)
        if recipients is None:
            return False
        routes = self._routes.get(link.id)
        if routes is None:
            routes = self._routes[link.id] = {}
        found = hub.rtp_route(link.id, int.from_bytes(packet[8:12], "big"))
        routes[packet[8:12]] = _REFUSED if found is None else (self._resolve(found[0]), found[1])
        if found is not None and recipients != found[0]:  # a resend: to whoever asked, point to point
            self.send_each(packet, recipients)
        else:
            self.send(packet, recipients)
        return True

    def send(self, packet: bytes, recipients: tuple[int, ...]) -> None:
        """Send ``packet`` to ``recipients`` (a keyframe request the server made, a resend, RTCP)."""
        if not recipients:
            return
        for send, group in self._resolve(recipients):
            send(packet, group)

    def send_each(self, packet: bytes, recipients: tuple[int, ...]) -> None:
        """Send ``packet`` to each of ``recipients`` on its own link, never by a listener's fan-out: a
        resend is for whoever asked, and a fan-out (ZeroMQ's PUB) would reach every subscriber."""
        links = self.links
        for cid in recipients:
            link = links.get(cid)
            if link is not None:
                link.send_media(packet)

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
