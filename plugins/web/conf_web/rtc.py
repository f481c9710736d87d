"""The server's end of one browser's WebRTC connection (aiortc), made to forward instead of decode.

- Three receive slots take the browser's microphone, camera and screen. aiortc still does the RTP
  bookkeeping (receiver reports, NACKs, REMB) but its decoder is stopped: each packet is handed to
  ``on_rtp`` as it arrives, still encoded.
- Send slots carry meeting tracks. They have no aiortc track: packets are written to the DTLS transport
  as they come from the meeting, already encoded and packetised. The browser's keyframe requests and
  NACKs for a slot go to ``on_feedback`` (and on to the track's publisher) instead of an encoder.
- Only H.264 (packetisation mode 1) and Opus are negotiated: what the meeting carries. There is no
  transcoding; a browser that cannot do H.264 is told so by the page before it joins.
- ICE host candidates are the address the page is served on (``--host``), every interface's when that is
  a wildcard; STUN and TURN servers come from ``--ice-server``.

aiortc has no public API for any of this, so this module (and only this one) reaches into it: a
receiver's ``_handle_rtp_packet``, ``_send_rtcp_pli``, ``_send_rtcp_nack`` and its decoder thread; a
sender's ``_ssrc`` and ``_handle_rtcp_packet``; a transceiver's negotiated ``_codecs``; the DTLS
transport's ``_send_rtp``; the peer connection's list of transceivers (a WHIP offer without audio
leaves the answerer's audio transceiver out); a receiver's NACK generator and jitter buffer (a simulcast's
three streams); aioice's candidate gathering. Checked with aiortc 1.16 and aioice 0.13, the range
pyproject.toml allows; the web tests exercise every one of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from conf_web.media import Outbound
from conf_web.simulcast import REPAIRED_RID_URI, RID_URI, RidStreams, SimulcastOffer, add_to_answer

if TYPE_CHECKING:
    from conf_web.config import WebConfig
    from conf_web.ice import IceServer

RECEIVE_KINDS = ("audio", "video", "screen")
MAX_NACKED_STREAMS = 8  # SSRCs whose losses one receiver tracks (a simulcast has three, a page's track one)

OnRtp = Callable[[str, int, int, int, bool, bytes, "int | None", "str | None"], None]
"""A received RTP packet: kind, SSRC, sequence number, timestamp, marker, payload, audio level (RFC 6464)
and, in a simulcast, the RID of its stream (RFC 8852; None otherwise)."""


class PeerConnection:
    def __init__(
        self,
        config: WebConfig,
        on_rtp: OnRtp,
        on_feedback: Callable[[Outbound, bool, list[int]], None],
        on_connected: Callable[[], None] = lambda: None,
        ice_servers: list[IceServer] | None = None,
    ) -> None:
        from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection

        servers = config.ice_servers if ice_servers is None else ice_servers

        self.config = config
        self.on_rtp = on_rtp
        self.on_feedback = on_feedback
        # One transport for every track (the page bundles them all); aiortc's default ("balanced") would
        # leave tracks added later on a transport that never connects.
        self.pc = RTCPeerConnection(
            RTCConfiguration(
                iceServers=[s.for_aiortc() for s in servers],
                bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
            )
        )
        self.receivers: dict[str, Any] = {}

        @self.pc.on("connectionstatechange")
        def changed() -> None:
            if self.pc.connectionState == "connected":
                on_connected()

        for kind in RECEIVE_KINDS:
            transceiver = self.pc.addTransceiver(
                "audio" if kind == "audio" else "video", direction="recvonly"
            )
            self._prepare(transceiver)
            self.receivers[kind] = transceiver
        self.slots: dict[int, tuple[Any, Outbound]] = {}  # id(slot) → (transceiver, slot)
        self.by_source: dict[int, Outbound] = {}
        self._offered = False
        self._unanswered: list[Outbound] = []
        self._receiving = False

    # -- slots ----------------------------------------------------------------------------------------

    def assign(self, tracks: dict[int, dict[str, Any]]) -> list[Outbound]:
        """Give each meeting track without one a send slot; return the negotiated slots reused for one."""
        reused: list[Outbound] = []
        for ssrc, track in tracks.items():
            if ssrc in self.by_source:
                continue
            media = "audio" if track["kind"] == "audio" else "video"
            slot = next((s for _, s in self.slots.values() if s.kind == media and s.source is None), None)
            if slot is None:
                transceiver = self.pc.addTransceiver(media, direction="sendonly")
                self._prepare(transceiver)
                slot = Outbound(mid="", kind=media)
                self.slots[id(slot)] = (transceiver, slot)
                self._unanswered.append(slot)
            slot.assign(ssrc, track["name"], track["kind"])
            self.by_source[ssrc] = slot
            if slot.ssrc:
                reused.append(slot)
        return reused

    def describe(self) -> dict[str, dict[str, object]]:
        """What each negotiated send slot carries, by MID (as the page sees its transceivers)."""
        return {
            str(transceiver.mid): slot.describe()
            for transceiver, slot in self.slots.values()
            if transceiver.mid is not None
        }

    def needs_offer(self) -> bool:
        return not self._offered or any(s.ssrc == 0 for s in self._unanswered)

    # -- negotiation ----------------------------------------------------------------------------------

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self._offered = True
        for transceiver, slot in self.slots.values():
            slot.mid = str(transceiver.mid)
        return str(self.pc.localDescription.sdp)

    async def answer(self, sdp: str) -> list[Outbound]:
        """Apply the page's answer; return the send slots that now carry media."""
        from aiortc import RTCSessionDescription

        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        if not self._receiving:
            self._receiving = True
            for kind, transceiver in self.receivers.items():
                self._forward_received(kind, transceiver)
        started: list[Outbound] = []
        for slot in self._unanswered:
            transceiver, _ = self.slots[id(slot)]
            if not transceiver._codecs:
                continue  # the page refused the slot
            slot.ssrc = transceiver.sender._ssrc
            slot.payload_type = transceiver._codecs[0].payloadType
            self._take_feedback(slot, transceiver.sender)
            started.append(slot)
        self._unanswered = []
        return started

    # -- media ----------------------------------------------------------------------------------------

    async def send_rtp(self, slot: Outbound, data: bytes) -> None:
        entry = self.slots.get(id(slot))
        if entry is not None and slot.ssrc:
            await entry[0].sender.transport._send_rtp(data)

    async def request_keyframe(self, kind: str, browser_ssrc: int) -> None:
        await self.receivers[kind].receiver._send_rtcp_pli(browser_ssrc)

    async def nack(self, kind: str, browser_ssrc: int, lost: list[int]) -> None:
        await self.receivers[kind].receiver._send_rtcp_nack(browser_ssrc, lost)

    async def close(self) -> None:
        await self.pc.close()

    # -- aiortc, adapted ------------------------------------------------------------------------------

    def _prepare(self, transceiver: Any) -> None:
        _prepare(transceiver, self.config)

    def _forward_received(self, kind: str, transceiver: Any) -> None:
        _forward_received(kind, transceiver, self.on_rtp)

    def _take_feedback(self, slot: Outbound, sender: Any) -> None:
        _take_feedback(slot, sender, self.on_feedback)


class Answerer:
    """The server's end of a WHIP or WHEP connection, which the client offers (docs/web.md, WHIP and WHEP).

    WHIP (``receive``): one audio and one video m-line of the offer are answered ``recvonly``, H.264 and
    Opus only, and their packets go to ``on_rtp`` undecoded, as a page's do. WHEP: the m-line of ``kind``
    is answered ``sendonly`` as one :class:`Outbound` slot, whose packets :meth:`send_rtp` writes to the
    DTLS transport. Any other m-line is answered ``inactive``. The answer carries every ICE candidate
    (aiortc gathers before answering); the client's own trickled candidates come by :meth:`add_candidates`.
    """

    def __init__(
        self,
        config: WebConfig,
        on_rtp: OnRtp,
        on_feedback: Callable[[Outbound, bool, list[int]], None],
        on_connected: Callable[[], None],
        on_failed: Callable[[], None],
        ice_servers: list[IceServer],
    ) -> None:
        from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection

        self.config = config
        self.on_rtp = on_rtp
        self.on_feedback = on_feedback
        self.pc = RTCPeerConnection(
            RTCConfiguration(
                iceServers=[s.for_aiortc() for s in ice_servers], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE
            )
        )
        self.receivers: dict[str, Any] = {}
        self.slot: Outbound | None = None
        self.streams: RidStreams | None = None
        """A simulcast's RTP streams by RID, when the answer took one."""

        @self.pc.on("connectionstatechange")
        def changed() -> None:
            if self.pc.connectionState == "connected":
                on_connected()
            elif self.pc.connectionState in ("failed", "closed"):
                on_failed()

    async def answer(self, offer: str, send: str | None, simulcast: SimulcastOffer | None = None) -> str:
        """Answer ``offer``: receive its audio and video (``send`` None, WHIP) or send one meeting track
        of media kind ``send`` (WHEP). Raise ValueError when the offer has nothing to take or give.

        ``simulcast`` (WHIP): the video m-line's simulcast, which the answer takes (its RIDs and the RID
        header extensions); each packet of the video then reaches ``on_rtp`` with the RID of its stream,
        told by :attr:`streams`, and one without a RID the server knows is dropped."""
        from aiortc import RTCSessionDescription
        from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters

        mine: dict[str, Any] = {}
        for media in ("audio", "video") if send is None else (send,):
            transceiver = self.pc.addTransceiver(media, direction="recvonly" if send is None else "sendonly")
            _prepare(transceiver, self.config)
            mine[media] = transceiver
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        except Exception as exc:  # aiortc's refusal of a malformed offer, or of one without our codecs
            raise ValueError(f"cannot take this offer: {exc}") from None
        for transceiver in self.pc.getTransceivers():
            if transceiver.mid is None:  # ours, of a kind the offer has no m-line for: not answered
                self.pc._RTCPeerConnection__transceivers.remove(transceiver)  # type: ignore[attr-defined]
            elif all(transceiver is not t for t in mine.values()):
                transceiver.direction = "inactive"  # a second m-line of a kind: not taken
        used = {k: t for k, t in mine.items() if t.mid is not None and t._codecs}
        if not used:
            wanted = "audio or video" if send is None else ("audio" if send == "audio" else "video")
            raise ValueError(f"the offer has no {wanted} m-line in H.264 or Opus")
        video = used.get("video")
        if simulcast is not None and (send is not None or video is None or video.mid != simulcast.mid):
            simulcast = None  # the simulcast m-line is not the one taken
        if simulcast is not None:
            assert video is not None
            video._headerExtensions += [
                RTCRtpHeaderExtensionParameters(id=simulcast.rid_extension, uri=RID_URI)
            ] + (
                [RTCRtpHeaderExtensionParameters(id=simulcast.repaired_extension, uri=REPAIRED_RID_URI)]
                if simulcast.repaired_extension is not None
                else []
            )
            self.streams = RidStreams(simulcast.ids)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        for kind, transceiver in used.items():
            if send is None:
                self.receivers[kind] = transceiver
                streams = self.streams if kind == "video" else None
                _forward_received(kind, transceiver, self.on_rtp, streams)
            else:
                slot = Outbound(mid=str(transceiver.mid), kind=kind)
                slot.ssrc = transceiver.sender._ssrc
                slot.payload_type = transceiver._codecs[0].payloadType
                _take_feedback(slot, transceiver.sender, self.on_feedback)
                self.slot = slot
                self._sender = transceiver.sender
        answer = str(self.pc.localDescription.sdp)
        return answer if simulcast is None else add_to_answer(answer, simulcast)

    async def add_candidates(self, lines: list[str], end: bool) -> None:
        """The client's trickled ICE candidates (``candidate:...`` attribute values) for the bundle."""
        from aiortc.sdp import candidate_from_sdp

        first = next((t for t in self.pc.getTransceivers() if t.mid is not None), None)
        if first is None:
            return
        for line in lines:
            candidate = candidate_from_sdp(line.removeprefix("candidate:"))
            candidate.sdpMid = first.mid
            await self.pc.addIceCandidate(candidate)
        if end:
            await self.pc.addIceCandidate(None)

    async def send_rtp(self, data: bytes) -> None:
        if self.slot is not None:
            await self._sender.transport._send_rtp(data)

    async def request_keyframe(self, kind: str, remote_ssrc: int) -> None:
        await self.receivers[kind].receiver._send_rtcp_pli(remote_ssrc)

    async def nack(self, kind: str, remote_ssrc: int, lost: list[int]) -> None:
        await self.receivers[kind].receiver._send_rtcp_nack(remote_ssrc, lost)

    async def close(self) -> None:
        await self.pc.close()


def _prepare(transceiver: Any, config: WebConfig) -> None:
    """Negotiate only what meetings carry, and offer host candidates only where the page is served."""
    from aiortc import RTCRtpSender

    media = transceiver.kind
    wanted = "video/h264" if media == "video" else "audio/opus"
    codecs = [
        c
        for c in RTCRtpSender.getCapabilities(media).codecs
        if c.mimeType.lower() == wanted and c.parameters.get("packetization-mode", "1") == "1"
    ]
    transceiver.setCodecPreferences(codecs)
    addresses = config.ice_addresses
    if addresses is not None:
        _gather_on(transceiver.sender.transport.transport.iceGatherer._connection, addresses)


def _forward_received(kind: str, transceiver: Any, on_rtp: OnRtp, streams: RidStreams | None = None) -> None:
    """Hand each RTP packet the transceiver's receiver gets to ``on_rtp`` as it is, and stop its decoder.

    A retransmission (RFC 4588 RTX, which Chromium sends for NACKs and as padding to probe bandwidth) is
    handed on as the packet it repeats (the original sequence number and the media stream's SSRC); an
    RTX packet without a payload is not handed on at all.
    """
    receiver = transceiver.receiver
    handle = receiver._handle_rtp_packet
    rtx = {c.payloadType for c in transceiver._codecs if c.mimeType.lower().endswith("/rtx")}
    media_ssrc: int | None = None

    async def forward_then_handle(packet: Any, arrival_time_ms: int) -> None:
        nonlocal media_ssrc
        payload = bytes(packet.payload)
        level = _audio_level(packet)
        marker = bool(packet.marker)
        if streams is not None:  # a simulcast: each stream is told by its RID
            extensions = packet.extensions
            if packet.payload_type not in rtx:
                rid = streams.media(packet.ssrc, extensions.rtp_stream_id)
                if rid is not None:
                    on_rtp(
                        kind,
                        packet.ssrc,
                        packet.sequence_number,
                        packet.timestamp,
                        marker,
                        payload,
                        level,
                        rid,
                    )
            elif len(payload) > 2:
                repaired = streams.repaired(packet.ssrc, extensions.repaired_rtp_stream_id)
                if repaired is not None:
                    original = int.from_bytes(payload[:2], "big")
                    ssrc, rid = repaired
                    on_rtp(kind, ssrc, original, packet.timestamp, marker, payload[2:], level, rid)
        elif packet.payload_type not in rtx:
            media_ssrc = packet.ssrc
            on_rtp(kind, packet.ssrc, packet.sequence_number, packet.timestamp, marker, payload, level, None)
        elif len(payload) > 2 and media_ssrc is not None:
            original = int.from_bytes(payload[:2], "big")
            on_rtp(kind, media_ssrc, original, packet.timestamp, marker, payload[2:], level, None)
        await handle(packet, arrival_time_ms)

    receiver._handle_rtp_packet = forward_then_handle
    receiver._RTCRtpReceiver__stop_decoder()  # forwarded as it is: nothing here decodes
    if streams is not None:
        # One NACK generator per stream, not one for all the layers' sequence numbers; and no frames put
        # together (nothing decodes them): one jitter buffer fed three streams would take their
        # sequence numbers for gaps and send keyframe requests all the time.
        receiver._RTCRtpReceiver__nack_generator = NacksPerStream()
        receiver._RTCRtpReceiver__jitter_buffer = NoFrames()


class NoFrames:
    """Stands in for aiortc's jitter buffer where nothing decodes: no frames, no keyframe requests."""

    def add(self, packet: Any) -> tuple[bool, None]:
        return False, None


class NacksPerStream:
    """aiortc's NACK generator for a receiver of several RTP streams (a simulcast): each SSRC's losses
    are tracked apart (one generator would take another layer's sequence numbers for losses). At most
    :data:`MAX_NACKED_STREAMS` SSRCs, the oldest forgotten first."""

    def __init__(self) -> None:
        self.streams: dict[int, Any] = {}
        self.missing: set[int] = set()

    def add(self, packet: Any) -> bool:
        from aiortc.rtcrtpreceiver import NackGenerator

        generator = self.streams.get(packet.ssrc)
        if generator is None:
            if len(self.streams) >= MAX_NACKED_STREAMS:
                del self.streams[next(iter(self.streams))]
            generator = self.streams[packet.ssrc] = NackGenerator()
        missed = bool(generator.add(packet))
        self.missing = generator.missing
        return missed


def _take_feedback(
    slot: Outbound, sender: Any, on_feedback: Callable[[Outbound, bool, list[int]], None]
) -> None:
    """Keyframe requests and NACKs the remote end sends ``sender`` go to ``on_feedback``."""
    from aiortc.rtp import RTCP_PSFB_FIR, RTCP_PSFB_PLI, RTCP_RTPFB_NACK, RtcpPsfbPacket, RtcpRtpfbPacket

    handle = sender._handle_rtcp_packet

    async def feedback_or_handle(packet: Any) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            on_feedback(slot, True, [])
        elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            on_feedback(slot, False, list(packet.lost))
        else:
            await handle(packet)

    sender._handle_rtcp_packet = feedback_or_handle


def _gather_on(connection: Any, addresses: list[str]) -> None:
    """Make an aioice connection gather host candidates on ``addresses`` only (loopback included)."""

    async def gather_candidates() -> None:
        if connection._local_candidates_start:
            return
        connection._local_candidates_start = True
        for component in connection._components:
            connection._local_candidates += await connection.get_component_candidates(
                component=component, addresses=addresses
            )
        connection._local_candidates_end = True

    connection.gather_candidates = gather_candidates


def _audio_level(packet: Any) -> int | None:
    """The audio level (RFC 6464, -dBov) the browser put on a packet, if it did (aiortc parses it)."""
    level = getattr(getattr(packet, "extensions", None), "audio_level", None)
    if isinstance(level, tuple) and len(level) == 2 and isinstance(level[1], int) and 0 <= level[1] <= 127:
        return level[1]
    return None
