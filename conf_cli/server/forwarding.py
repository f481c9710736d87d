"""The server's media fan-out: the hub decides who receives a packet, this module sends it there fast.

The hub answers each packet with a :class:`~conf_cli.server.hub.Routed`: its recipients, a verdict
(forwarded, refused, malformed, or close: the sender must go) and whether the route is cacheable. Who
receives a first-seen RTP packet depends only on the sending connection, the SSRC, and the meeting's
participants and tracks, which :attr:`Hub.version` tracks. :class:`Forwarder` therefore keeps a cacheable
answer per (link, SSRC), already resolved to links grouped by listener, with the track, until that
version changes (a participant comes or goes, a track is published, replaced or stopped). A packet that
hits the cache costs two dict lookups, the track's check that its sequence number is new, and one
``forward_media`` call per listener; no tuples, lists or dicts are built for it. A track whose publisher
asked for congestion feedback (:mod:`conf_cli.server.uplink`) also has each arrival noted, and a report
sent back to the publisher when one is due. A packet seen before (a
resend) goes only to whoever asked for it (:meth:`Hub.route_resend`), on each one's own link. RTCP, which
the hub may rewrite (a NACK) or split (feedback to publishers, reports to the audience), and short packets
always take the hub's full path. RTP whose header (CSRC list, extension) runs past the end of the packet
is dropped before the cache, as the hub would; ``on_malformed`` hears of each malformed packet and its
sender. An audio packet's level (RFC 6464 header extension) goes to :meth:`Hub.audio_level`, and the
``active_speaker`` messages that come of it to ``on_actions``, as do the ``layer_switched`` messages of a
keyframe that switched subscribers to its layer (once the keyframe's packet is sent).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from conf_cli.media.audio_level import read_audio_level
from conf_cli.plugin.transport import Link, Listener
from conf_cli.protocol.rtp import header_fits, is_rtcp
from conf_cli.server.hub import Action, Hub, Routed, Verdict
from conf_cli.server.meeting import Track
from conf_cli.server.pacing import Pacers

Send = Callable[[bytes, Sequence[Link]], object]
Groups = tuple[tuple[Send, tuple[Link, ...]], ...]
Rewrite = Callable[[bytes], bytes | None]
Rewrites = tuple[tuple[Rewrite, Groups], ...]
Route = tuple[Groups, Track | None, Rewrites]

_REFUSED: Route = ((), None, ())
"""Cached for a (link, SSRC) whose RTP the hub refuses: counted, sent nowhere."""


def _each(packet: bytes, links: Iterable[Link]) -> None:
    for link in links:
        link.send_media(packet)


class Forwarder:
    def __init__(
        self,
        hub: Hub,
        links: dict[int, Link],
        on_malformed: Callable[[Link, str], None] | None = None,
        on_actions: Callable[[list[Action]], None] | None = None,
    ) -> None:
        self.hub = hub
        self.on_actions = on_actions
        self.links = links
        self.on_malformed = on_malformed
        self.active: set[int] = set()
        """Links whose cached media arrived since :meth:`take_active`: alive, as far as the hub cares."""
        self._routes: dict[int, dict[bytes, Route]] = {}
        self.pacers = Pacers()
        """The video sent to a subscriber that moves down for want of downlink goes out paced
        (:mod:`conf_cli.server.pacing`; :meth:`LayerRouter.pace_rate` says whom)."""
        self._version = hub.version
        self._cached = -1  # the version the cached routes are for

    def media(self, link: Link, packet: bytes, now: float) -> bool:
        """Forward ``packet`` from ``link``; False if the link must be closed (media before hello)."""
        hub = self.hub
        if self._cached != self._version.value:
            self._routes.clear()
            self._cached = self._version.value
        if len(packet) >= 12 and not is_rtcp(packet):
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
                    groups, track, rewrites = route
                    if track is None:
                        hub.stats.media_refused += 1
                        return True
                    if track.uplink is not None:  # the publisher asked to hear of each arrival
                        self._uplink(link, track, packet, now)
                    if track.feedback.first(packet):
                        if packet[1] & 0x80 and (track.parent is not None or track.layers):
                            hub.layers.arrived(track.ssrc, packet, now)  # a picture's last packet
                        for send, group in groups:
                            send(packet, group)
                        for rewrite, rewritten in rewrites:  # a simulcast layer, into the track's stream
                            out = rewrite(packet)
                            if out is not None:
                                for send, group in rewritten:
                                    send(out, group)
                        if track.kind == "audio":
                            self._level(link, track, packet, now)
                        return True
                    if not rewrites:
                        self.send_each(packet, hub.route_resend(link.id, track, packet, now))
                        return True
                    # a resend of a rewritten layer: the hub's full path rewrites it for each requester
        routed = hub.route(link.id, packet, now)
        verdict = routed.verdict
        if verdict is Verdict.CLOSE:
            return False
        if verdict is Verdict.MALFORMED:
            if self.on_malformed is not None:
                self.on_malformed(link, "malformed RTP or RTCP")
            return True
        if routed.track is not None and routed.track.uplink is not None:
            self._uplink(link, routed.track, packet, now)
        if routed.cacheable:
            routes = self._routes.get(link.id)
            if routes is None:
                routes = self._routes[link.id] = {}
            track = routed.track
            routes[packet[8:12]] = (
                _REFUSED
                if track is None
                else (self._resolve(routed.to, now, track), track, self._rewrites(routed, now, track))
            )
        if routed.track is not None and routed.track.kind == "audio" and not routed.resend:
            self._level(link, routed.track, packet, now)
        if routed.forwards:
            for forward in routed.forwards:
                self.send(forward.packet, forward.to)
        elif routed.resend:  # to whoever asked, point to point
            self.send_each(packet, routed.to)
        else:
            self.send(packet, routed.to, now, routed.track)
        for rewriter, to in routed.rewrites:
            out = rewriter.rewrite(packet)
            if out is None:
                continue
            if routed.resend:
                self.send_each(out, to)
            else:
                self.send(out, to, now, routed.track)
        if routed.actions and self.on_actions is not None:
            self.on_actions(list(routed.actions))
        return True

    def _level(self, link: Link, track: Track, packet: bytes, now: float) -> None:
        """The audio level on a forwarded packet, to the speaker detector."""
        level = read_audio_level(packet)
        if level is None:
            return
        actions = self.hub.audio_level(link.id, track, level[0], now)
        if actions and self.on_actions is not None:
            self.on_actions(list(actions))

    def _rewrites(self, routed: Routed, now: float, track: Track) -> Rewrites:
        return tuple((rewriter.rewrite, self._resolve(to, now, track)) for rewriter, to in routed.rewrites)

    @staticmethod
    def _uplink(link: Link, track: Track, packet: bytes, now: float) -> None:
        """Note an RTP packet's arrival for its publisher's congestion control; send the report if due."""
        assert track.uplink is not None
        report = track.uplink.arrived(packet, now)
        if report is not None:
            link.send_media(report)

    def forget(self, link: Link) -> None:
        """Drop the routes cached for ``link``'s media (it closed)."""
        self._routes.pop(link.id, None)
        self.pacers.drop(link.id)

    def end_pacing(self, now: float) -> None:
        """Stop pacing whoever no longer needs it once its pacer let out all it held (called every
        tick): the routes are made again, sending to it directly."""
        layers = self.hub.layers
        ended = [
            cid for cid in self.pacers.paced() if layers.pace_rate(cid, now) is None and self.pacers.idle(cid)
        ]
        for cid in ended:
            self.pacers.drop(cid)
        if ended:
            self._version.bump()

    def send(
        self, packet: bytes, recipients: tuple[int, ...], now: float | None = None, track: Track | None = None
    ) -> None:
        """Send ``packet`` to ``recipients`` (a keyframe request the server made, a resend, RTCP; a packet
        of ``track`` forwarded at ``now``)."""
        if not recipients:
            return
        for send, group in self._resolve(recipients, now, track):
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

    def _resolve(
        self, recipients: tuple[int, ...], now: float | None = None, track: Track | None = None
    ) -> Groups:
        """Recipients' links grouped by the listener that fans out to them, as it does best; for video of
        ``track`` forwarded at ``now``, a datagram subscriber being paced gets it through its pacer."""
        by_listener: dict[Listener | None, list[Link]] = {}
        paced: list[tuple[Send, tuple[Link, ...]]] = []
        at = now if track is not None and track.kind == "video" else None
        layers = self.hub.layers
        for cid in recipients:
            link = self.links.get(cid)
            if link is None:
                continue
            if at is not None and (rate := layers.pace_rate(cid, at)) is not None and not link.media_ordered:
                paced.append((self.pacers.sender(link, rate, at), (link,)))
                continue
            by_listener.setdefault(link.listener, []).append(link)
        return (
            *(
                (listener.forward_media if listener is not None else _each, tuple(group))
                for listener, group in by_listener.items()
            ),
            *paced,
        )
