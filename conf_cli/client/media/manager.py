"""A participant's media: the tracks it publishes and the remote tracks it receives.

:class:`MediaManager` sits between the :class:`~conf_cli.client.link.Client` and the meeting's face. It
watches the server's typed events (:func:`~conf_cli.client.state.event_of`, checked once by the link:
``joined``, ``share_started``, ``share_stopped``, ``participant_left``, refused ``publish`` requests) to
start and end :class:`~conf_cli.client.media.receiver.RemoteTrack` objects and to stop publishers the
server has stopped; it sorts incoming media packets: RTP to the receiver of its SSRC, RTCP feedback (PLI,
FIR, NACK) to the publisher that owns the track, sender reports to their receiver, and extended reports
(RFC 3611) both ways: a receiver's reference time to the publishers, their answer back to the receiver of
the track, which then knows its round-trip time.

In an end-to-end encrypted meeting it also holds the participant's
:class:`~conf_cli.client.keyring.KeyRing`: it sends a new sealed sender key whenever someone joins or leaves,
installs the keys others seal for it (``e2ee_key``), encrypts what publishers send and decrypts what
receivers get (:mod:`conf_cli.client.media.e2ee`), and reports the meeting's ``security_code``.

With a recording directory, every received track (video and audio) is written there by the ``recorder``
sink a plugin registers, as ``<name>-<kind>-<ssrc>.mkv`` (name and kind made safe for a file name, so
that nothing the server says can place a file outside that directory or overwrite one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from conf_cli.client.keyring import KeyRing
from conf_cli.client.media.e2ee import protect, unprotect
from conf_cli.client.media.publisher import DEFAULT_FPS, DEFAULT_VIDEO_BITRATE, Publisher, open_source
from conf_cli.client.media.receiver import RemoteTrack, recording_path
from conf_cli.client.state import event_of
from conf_cli.errors import ConfError, ProtocolError
from conf_cli.media.source import EncodedSink, Sink, Source
from conf_cli.protocol.control import MAX_BITRATE, MIN_BITRATE, Message
from conf_cli.protocol.events import (
    E2eeKey,
    Error,
    Event,
    Joined,
    LayersActive,
    LayerSwitched,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantRenamed,
    ShareStarted,
    ShareStopped,
    TrackEntry,
)
from conf_cli.protocol.rtcp import (
    CongestionFeedback,
    Fir,
    Nack,
    Pli,
    ReceiverReport,
    SenderReport,
    UnknownRtcp,
    parse_compound,
)
from conf_cli.protocol.rtcp_xr import read_xr
from conf_cli.protocol.rtp import RtpPacket, is_rtcp, peek_ssrc

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from conf_cli.plugin.registry import Registry
    from conf_cli.plugin.transport import Link

Notify = Callable[[Message], None]
MAX_VOLUMES = 256  # names whose /volume is remembered


class MediaClient(Protocol):
    """What media needs of a client: a :class:`~conf_cli.client.link.Client`, or a call's direct path."""

    registry: Registry
    name: str | None
    link: Link | None
    media_handler: Callable[[bytes], None] | None
    media_arrival: float | None
    """When the packet ``media_handler`` is called with reached this host, if known (monotonic)."""

    def send(self, message: Message) -> None: ...

    # End-to-end encryption (SFrame) is a meeting's: a call's client has no meeting and no key here.
    @property
    def meeting(self) -> str | None: ...

    @property
    def e2ee(self) -> bool: ...

    @property
    def e2ee_private(self) -> X25519PrivateKey | None: ...


RECORDER_SINK = "recorder"

log = logging.getLogger(__name__)


class MediaManager:
    """Publishers and receivers of one meeting client."""

    def __init__(
        self,
        client: MediaClient,
        notify: Notify,
        record_dir: Path | None = None,
        open_sinks: Callable[[Message], list[Sink]] | None = None,
        on_close: Callable[[], None] | None = None,
        simulcast: bool = True,
    ) -> None:
        self.client = client
        self.on_close = on_close
        """Called first thing when every track is about to close (we leave): a recording holds its picture."""
        self.simulcast = simulcast
        """Publish video as simulcast layers when it is large enough (``--no-simulcast``: one layer)."""
        self.notify = notify
        self.record_dir = record_dir
        self.open_sinks = open_sinks
        """Called with each remote track's description: the sinks its decoded frames go to (a speaker)."""
        self.local_ssrc = random.SystemRandom().randrange(1, 1 << 32)
        self.receivers: dict[int, RemoteTrack] = {}
        self.publishers: list[Publisher] = []
        self.malformed = 0
        self.unknown = 0
        self._closing: set[asyncio.Task[None]] = set()
        self.volumes: dict[str, float] = {}
        """Playback gain by participant name (``/volume``)."""
        self.keys: KeyRing | None = None
        if client.e2ee and client.meeting and client.name and client.e2ee_private is not None:
            self.keys = KeyRing(client.meeting, client.name, client.e2ee_private)
        client.media_handler = self.media_received

    # -- media in ---------------------------------------------------------------------------------------

    def media_received(self, data: bytes) -> None:
        """One RTP or RTCP packet from the server; never raises."""
        try:
            if is_rtcp(data):
                self._rtcp(data)
                return
            receiver = self.receivers.get(peek_ssrc(data))
            if receiver is None:
                self.unknown += 1
                return
            try:
                packet = RtpPacket.parse(data)
            except (ProtocolError, ValueError):
                receiver.malformed += 1
                return
            receiver.receive(packet, self.client.media_arrival)
        except (ProtocolError, ValueError, IndexError):
            self.malformed += 1

    def _rtcp(self, data: bytes) -> None:
        for part in parse_compound(data):
            if isinstance(part, Pli | Fir | Nack | ReceiverReport):
                for publisher in self.publishers:
                    publisher.feedback(part)
            elif isinstance(part, CongestionFeedback):
                for publisher in self.publishers:
                    publisher.congestion_feedback(part)
            elif isinstance(part, SenderReport):
                receiver = self.receivers.get(part.ssrc)
                if receiver is not None:
                    receiver.sender_report(part)
                if part.reports:
                    for publisher in self.publishers:
                        publisher.feedback(part)
            elif isinstance(part, UnknownRtcp) and (report := read_xr(part)) is not None:
                if report.rrtr is not None:  # a receiver asks the senders to time a round trip
                    for publisher in self.publishers:
                        publisher.reference_time(report.ssrc, report.rrtr)
                receiver = self.receivers.get(report.ssrc)
                if receiver is not None and report.dlrr:
                    receiver.extended_report(report)

    def _send_queue(self) -> tuple[int, int, int] | None:
        """The link's send queue: (bytes waiting, bytes written, packets refused); None without a link."""
        link = self.client.link
        if link is None or link.is_closing:
            return None
        return link.media_backlog() or 0, link.stats.bytes_out, link.stats.media_dropped

    def _send_media(self, packet: bytes) -> None:
        link = self.client.link
        if link is not None and not link.is_closing:
            link.send_media(packet)

    # -- events -----------------------------------------------------------------------------------------

    def handle_event(self, message: Message) -> None:
        """React to a server message (after the face has shown it) through its typed event; the
        client's own messages, which have none, are not the media's business."""
        event = event_of(message)
        if event is None:
            return
        me = self.client.name
        private = self.client.e2ee_private
        if isinstance(event, Joined) and self.keys is None and event.e2ee and private is not None:
            # Admitted from a waiting room: only now do we know the meeting is end-to-end encrypted.
            self.keys = KeyRing(event.meeting, event.name, private)
        if self.keys is not None:
            self._e2ee_event(event)
        match event:
            case Joined():
                if event.resumed:  # back after the link dropped: tracks that ended meanwhile are gone
                    listed = {track.ssrc for track in event.tracks}
                    for ssrc in [ssrc for ssrc in self.receivers if ssrc not in listed]:
                        self._end_receiver(ssrc, "left")
                for track in event.tracks:
                    if track.name != me:
                        self._start_receiver(track)
            case ShareStarted() if event.name == me:
                for publisher in self.publishers:
                    publisher.confirm(event.ssrc)
            case ShareStarted():
                self._start_receiver(
                    TrackEntry(name=event.name, kind=event.kind, ssrc=event.ssrc, codec=event.codec)
                )
            case ShareStopped() if event.ssrc is not None:
                if event.name == me:
                    for publisher in self.publishers:
                        publisher.track_stopped(event.ssrc, event.reason)
                else:
                    self._end_receiver(event.ssrc, event.reason)
            case ParticipantLeft():
                for receiver in list(self.receivers.values()):
                    if receiver.name == event.name:
                        self._end_receiver(receiver.ssrc, "left")
            case ParticipantRenamed():
                for receiver in self.receivers.values():
                    if receiver.name == event.name:
                        receiver.name = event.new_name
            case LayerSwitched():
                switched = self.receivers.get(event.ssrc)
                if switched is not None:
                    switched.told_layer = event.layer
                    if switched.downlink is not None:  # its timestamps jump: the path's delay anew
                        switched.downlink.reset()
            case LayersActive():
                for publisher in self.publishers:
                    publisher.layers_active(event.ssrc, list(event.active))
            case Error(re="publish"):
                for publisher in self.publishers:
                    publisher.refused()

    # -- end-to-end encryption --------------------------------------------------------------------------

    def _e2ee_event(self, event: Event) -> None:
        keys = self.keys
        assert keys is not None
        if not isinstance(event, Joined | ParticipantJoined | ParticipantLeft | E2eeKey):
            return
        try:
            if isinstance(event, E2eeKey):
                keys.open(event.sender, event.box)
                for receiver in self.receivers.values():
                    if receiver.name == event.sender:
                        receiver.key_arrived()
                return
            if isinstance(event, Joined):
                self._send_keys(keys.start(entry.to_message() for entry in event.participants))
                for problem in keys.unusable:
                    self.notify({"type": "error", "code": "e2ee", "message": problem})
            elif isinstance(event, ParticipantJoined):
                self._send_keys(keys.peer_joined(event.name, event.key))
                for publisher in self.publishers:  # the newcomer can decrypt only pictures after this key
                    publisher.request_keyframes()
            else:
                self._send_keys(keys.peer_left(event.name))
        except ProtocolError as exc:  # a key that cannot be used: said, and that peer stays unreadable
            self.notify({"type": "error", "code": "e2ee", "message": str(exc)})
            if isinstance(event, E2eeKey):
                return
        names = sorted([keys.me, *keys.peers], key=str.casefold)
        self.notify({"type": "security_code", "code": keys.security_code(), "participants": names})

    def _send_keys(self, request: Message | None) -> None:
        if request is not None:
            with contextlib.suppress(ConfError):
                self.client.send(request)

    def _protect(self, packet: bytes) -> bytes | None:
        """An outgoing RTP packet, encrypted; None (dropped) if it cannot be."""
        if self.keys is None:
            return packet
        try:
            return protect(self.keys, packet)
        except ProtocolError:
            return None

    def _unprotect_for(self, sender: str) -> Callable[[RtpPacket], RtpPacket] | None:
        keys = self.keys
        if keys is None:
            return None
        return lambda packet: unprotect(keys, packet, sender)

    # -- tracks -----------------------------------------------------------------------------------------

    def _start_receiver(self, track: TrackEntry) -> None:
        if track.ssrc in self.receivers:
            return
        info = track.to_message()
        receiver = RemoteTrack(
            info,
            local_ssrc=self.local_ssrc,
            send_media=self._send_media,
            notify=self.notify,
            recorder=self._open_recorder(track),
            sinks=self.open_sinks(info) if self.open_sinks is not None else None,
            ordered=self.client.link is not None and self.client.link.media_ordered,
            unprotect=self._unprotect_for(track.name),
            on_downlink=self._tell_downlink,
        )
        receiver.volume = self.volumes.get(receiver.name, 1.0)
        self.receivers[track.ssrc] = receiver
        receiver.start()

    def _tell_downlink(self, bitrate: int, queued: float) -> None:
        """Our downlink is queueing (a received track's :class:`DownlinkMonitor`): tell the server what it
        carries and how long the newest packet queued (``queued`` seconds), so that it moves us down a
        simulcast layer at once."""
        request: Message = {
            "type": "downlink",
            "bitrate": max(MIN_BITRATE, min(MAX_BITRATE, bitrate)),
            "queued_ms": max(0, min(60_000, round(queued * 1000))),
        }
        with contextlib.suppress(ConfError):  # the link went: the meeting loop reports it
            self.client.send(request)

    def set_volume(self, name: str, percent: int) -> None:
        """Play ``name``'s audio at ``percent`` (0 to 200) of its level, now and in their later tracks."""
        gain = max(0, min(200, percent)) / 100
        self.volumes[name] = gain
        while len(self.volumes) > MAX_VOLUMES:
            del self.volumes[next(iter(self.volumes))]
        for receiver in self.receivers.values():
            if receiver.name == name:
                receiver.volume = gain

    def _open_recorder(self, track: TrackEntry) -> EncodedSink | None:
        """A recorder for a new track, when recording; a failure is reported and the track plays anyway."""
        if self.record_dir is None:
            return None
        try:  # name and kind come from the server: the path is made safe, inside record_dir
            path = recording_path(self.record_dir, track.name, track.kind, track.ssrc, "mkv")
        except ConfError as exc:
            self.notify({"type": "error", "code": "record", "message": str(exc)})
            return None
        try:
            recorder = self.client.registry.sinks[RECORDER_SINK].open({"path": str(path)})
        except Exception as exc:  # no recorder plugin, or it cannot write there
            log.debug("cannot record %s", path, exc_info=True)
            self.notify({"type": "error", "code": "record", "message": f"cannot record {path.name}: {exc}"})
            return None
        return recorder if isinstance(recorder, EncodedSink) else None

    def _end_receiver(self, ssrc: int, reason: str) -> None:
        receiver = self.receivers.pop(ssrc, None)
        if receiver is not None:
            task = asyncio.create_task(receiver.close(reason))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    # -- sharing ----------------------------------------------------------------------------------------

    def publish(
        self,
        name: str,
        source: Source,
        *,
        fps: float = DEFAULT_FPS,
        bitrate: int = DEFAULT_VIDEO_BITRATE,
    ) -> Publisher:
        """Start publishing an open source; its encoders follow the uplink: on a link whose send queue can be
        measured (tcp://) from that queue, otherwise (rtp://, zmq://) from the server's RFC 8888 feedback."""
        link = self.client.link
        # the send queue tells on a stream link that can measure it (tcp://); otherwise (rtp://, and zmq://,
        # whose queue ZeroMQ keeps to itself) the server's feedback on arrivals does
        queue = link is not None and link.media_ordered and link.media_backlog() is not None
        publisher = Publisher(
            name,
            source,
            send_control=self.client.send,
            send_media=self._send_media,
            notify=self.notify,
            fps=fps,
            bitrate=bitrate,
            protect=self._protect if self.keys is not None else None,
            # RED is for datagram paths; where media is delivered in order a loss is the server shedding
            # load for a slow receiver, which redundancy would only add to.
            red=self.client.link is not None and not self.client.link.media_ordered,
            simulcast=self.simulcast,
            feedback=not queue,
            queue=self._send_queue if queue else None,
        )
        self.publishers = [p for p in self.publishers if not p.finished]
        self.publishers.append(publisher)
        publisher.start()
        return publisher

    def resumed(self) -> None:
        """We took our seat back on a new link: every track we still send is published again (a server
        that kept our seat changes nothing; one that recreated the meeting announces them anew)."""
        for publisher in self.publishers:
            if not publisher.finished:
                publisher.republish()

    async def share(self, name: str, options: Mapping[str, Any]) -> Publisher:
        """Open source ``name`` (in a thread) and publish it; ConfError if it cannot be opened."""
        sources = self.client.registry.sources
        source = await asyncio.to_thread(open_source, sources, name, options)
        return self.publish(name, source, **share_settings(options))

    async def unshare(self, kind: str) -> None:
        """Stop sharing ``kind``; ConfError if nothing of that kind is shared."""
        found = [p for p in self.publishers if not p.finished and kind in p.kinds]
        if not found:
            raise ConfError(f"you are not sharing {kind}")
        for publisher in found:
            publisher.unpublish(kind)

    async def close(self) -> None:
        """Stop every publisher and receiver."""
        if self.on_close is not None:
            self.on_close()
        for publisher in self.publishers:
            with contextlib.suppress(ConfError):
                await publisher.stop()
        for ssrc in list(self.receivers):
            self._end_receiver(ssrc, "closed")
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        self.client.media_handler = None


def share_settings(options: Mapping[str, Any]) -> dict[str, Any]:
    """The encoder settings among share options (``fps``, ``bitrate``)."""
    settings: dict[str, Any] = {}
    try:
        if options.get("fps"):
            settings["fps"] = float(options["fps"])
        if options.get("bitrate"):
            settings["bitrate"] = int(options["bitrate"])
    except (TypeError, ValueError):
        raise ConfError("fps and bitrate must be numbers") from None
    return settings
