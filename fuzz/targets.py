"""The built-in fuzz targets: every piece of conf that turns bytes from the network into objects.

Each target parses its input and checks what a parser promises beyond not crashing: a round trip
through the encoder where there is one, and bounds (a frame decoder holds less than one frame, a jitter
buffer spans at most its packet limit). A broken promise raises AssertionError, which the runner reports
as a crash like any other unexpected exception. Add a parser's target here with :func:`register`.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from collections.abc import Coroutine, Iterator
from typing import Any

from conf_cli.errors import ProtocolError
from conf_cli.media.h264 import H264Depacketizer, H264Packetizer, join_annexb, parse_stap_a, split_annexb
from conf_cli.media.jitter import Gap, JitterBuffer
from conf_cli.media.opus_rtp import OPUS_MAX_PACKET_SAMPLES, opus_packet_samples
from conf_cli.plugin.transport import TransportOptions
from conf_cli.protocol import control, rtcp, rtcp_xr, sframe, ssdp, stun
from conf_cli.protocol.framing import MAX_FRAME_BYTES, FrameDecoder, frame
from conf_cli.protocol.rtp import RtpPacket, header_fits, is_rtcp, peek_ssrc
from conf_cli.protocol.sdp import SessionDescription
from conf_cli.server import webhooks
from conf_cli.server.hub import Deferred, Hub
from conf_cli.server.local_directory import LocalStore, StoreBackend, answer
from conf_cli.server.passcode import PasscodeHash
from fuzz import register, seeds

_ZMTP_SERVER_KEYS = (bytes(range(32)), bytes(range(32, 64)))
"""A fixed CURVE key pair for the zmtp target (what it opens fails on the MAC, which is the point)."""


def control_message(data: bytes) -> object:
    """A client's control message, as the server validates it; re-encoding must give the same bytes."""
    message = control.decode_client_message(data)
    try:
        encoded = control.encode(message)
    except ProtocolError:
        return "unencodable"  # e.g. a lone surrogate in a field the schema does not name: never echoed
    again = control.encode(control.decode_client_message(encoded))
    assert again == encoded, (again, encoded)
    return message["type"]


def tcp_stream(data: bytes) -> object:
    """RFC 4571 framing fed in uneven chunks: the frames must re-frame to exactly what was consumed."""
    decoder = FrameDecoder()
    frames: list[bytes] = []
    step = 1 + (data[0] if data else 0) % 7
    for start in range(0, len(data), step):
        frames += decoder.feed(data[start : start + step])
        assert decoder.pending < 2 + MAX_FRAME_BYTES, decoder.pending
    consumed = b"".join(frame(payload) for payload in frames)
    assert data[: len(consumed)] == consumed
    assert decoder.pending == len(data) - len(consumed)
    return len(frames)


def rtp_packet(data: bytes) -> object:
    """One RTP packet; written back it must parse to the same packet, and its SSRC peek must agree."""
    fits = header_fits(data)
    packet = RtpPacket.parse(data)
    assert fits
    again = RtpPacket.parse(bytes(packet))
    assert again == packet, (again, packet)
    if not is_rtcp(data):
        assert peek_ssrc(data) == packet.ssrc
    return (len(packet.csrc), packet.extension is not None, packet.padding > 0)


def rtcp_compound(data: bytes) -> object:
    """An RTCP compound, with XR blocks read; writing it out must reach a fixed point in one step."""
    packets = rtcp.parse_compound(data)
    for packet in packets:
        if isinstance(packet, rtcp.UnknownRtcp):
            rtcp_xr.read_xr(packet)
    try:
        written = rtcp.build_compound(packets)
    except ValueError as exc:
        raise AssertionError(f"a parsed RTCP packet cannot be written back: {exc}") from None
    assert rtcp.build_compound(rtcp.parse_compound(written)) == written
    return tuple(type(packet).__name__ for packet in packets)


def stun_message(data: bytes) -> object:
    """A STUN message with every typed attribute read; the attributes must survive a round trip."""
    message = stun.StunMessage.parse(data)
    _ = (message.username, message.software, message.xor_mapped_address, message.mapped_address)
    _ = message.error_code
    message.check_integrity(b"key")
    copy = stun.StunMessage(
        message.method, message.message_class, message.transaction_id, message.attributes, fingerprint=True
    )
    try:
        written = bytes(copy)
    except ValueError:
        return "too long to write back"  # attributes after MESSAGE-INTEGRITY were dropped; others fit
    assert stun.StunMessage.parse(written).attributes == message.attributes
    return (message.method, message.message_class, len(message.attributes))


def stap_a(data: bytes) -> object:
    """An H.264 STAP-A payload; its NAL units aggregated again must read back the same."""
    nals = parse_stap_a(data)
    payloads: list[bytes] = []
    H264Packetizer._flush(nals, payloads)
    assert len(payloads) == 1
    assert (parse_stap_a(payloads[0]) if len(nals) > 1 else [payloads[0]]) == nals
    return len(nals)


def annexb(data: bytes) -> object:
    """An Annex-B stream cut into NAL units; joined again and cut, it must give the same units."""
    nals = split_annexb(data)
    assert split_annexb(join_annexb(nals)) == nals
    return len(nals)


def _media_stream(data: bytes) -> list[bytes]:
    """Cut a fuzz input into length-prefixed records (the last may be short)."""
    records = []
    pos = 0
    while pos + 2 <= len(data):
        size = data[pos] << 8 | data[pos + 1]
        records.append(data[pos + 2 : pos + 2 + size])
        pos += 2 + size
    return records


def h264_depacketizer(data: bytes) -> object:
    """A run of RTP packets (and losses) into the H.264 depacketizer, which must never raise."""
    depacketizer = H264Depacketizer(max_access_unit=64 * 1024)
    out = 0
    for record in _media_stream(data):
        if len(record) == 3 and record[0] == 0:  # a loss the jitter buffer would report
            units = depacketizer.push(Gap(record[1] << 8 | record[2], 1 + record[1] % 5))
        else:
            try:
                packet = RtpPacket.parse(record)
            except ProtocolError:
                continue
            units = depacketizer.push(packet)
        for unit in units:
            assert len(unit.data) <= 5 * 64 * 1024 + 2 * (4 + MAX_FRAME_BYTES), len(unit.data)
            out += 1
    assert depacketizer.frames == out
    return (out, depacketizer.frames_lost > 0, depacketizer.needs_keyframe)


def jitter_buffer(data: bytes) -> object:
    """Arrivals (sequence number, timestamp, time step) into a jitter buffer, which must never raise and
    must keep within its packet limit, whatever the sequence numbers and timestamps do."""
    buffer = JitterBuffer(90_000, 0.04, max_packets=64)
    now = 0.0
    handed = 0
    for pos in range(0, len(data) - 7, 8):
        seq = data[pos] << 8 | data[pos + 1]
        timestamp = int.from_bytes(data[pos + 2 : pos + 6], "big")
        now += (data[pos + 6] << 8 | data[pos + 7]) / 10_000
        buffer.push(RtpPacket(96, seq, timestamp, 1), now)
        assert len(buffer) <= buffer.max_packets + 1, len(buffer)
        assert len(buffer._missing) <= buffer.max_packets, len(buffer._missing)
        for item in buffer.pop(now):
            assert not isinstance(item, Gap) or 0 < item.count <= 0xFFFF, item
            handed += 1
    return handed > 0


def opus_packet(data: bytes) -> object:
    """The duration of an Opus packet: positive and at most 120 ms."""
    samples = opus_packet_samples(data)
    assert 0 < samples <= OPUS_MAX_PACKET_SAMPLES, samples
    return samples


def zmq_message(data: bytes) -> object:
    """A ZeroMQ message as the server checks it (the transport's kinds as two frames, the kind byte and
    the payload; any other as one frame), and a greeting as either end does."""
    from conf_transport_zmq import wire

    message = [data[:1], data[1:]] if data[:1] in wire.TRANSPORT_KINDS else [data]
    kind, payload = wire.split(message)
    if kind == wire.GREETING:
        wire.parse_client_greeting(payload)
        wire.parse_server_greeting(payload)
    elif kind == wire.BYE:
        wire.read_bye(payload)
    return kind


def zmtp_stream(data: bytes) -> object:
    """What follows the greeting on a zmq:// connection, as the server reads it: no frame over the limit,
    never more than one frame's bytes held, each handshake command parsed (a NULL READY's metadata, a
    CURVE HELLO and INITIATE opened) and refused with ProtocolError when it is not one."""
    from conf_transport_zmq import curvezmq, zmtp

    reader = zmtp.FrameReader(zmtp.MAX_HANDSHAKE_FRAME)
    curve = curvezmq.CurveServer(*_ZMTP_SERVER_KEYS)
    flags_seen = []
    for flags, body in reader.feed(data):
        assert len(body) <= reader.limit
        flags_seen.append(flags)
        if flags & zmtp.COMMAND:
            name, value = zmtp.read_command(body)
            if name == b"READY":
                zmtp.peer_socket(zmtp.read_properties(value))
            elif name == b"HELLO":
                curve.hello(body)
            elif name == b"INITIATE":
                curve.initiate(body)
    assert len(reader._buffer) < 9 + reader.limit
    return flags_seen


def stun_latch(data: bytes) -> object:
    """A datagram to the RTP transport's STUN latch, which must answer or refuse, never raise."""
    from conf_transport_udp_rtp.latch import Latches

    latches: Latches[str] = Latches()
    latches.add("link", bytes(range(16)))
    actions = latches.receive(data, ("192.0.2.7", 4000), 0.0)
    return [type(action).__name__ for action in actions + latches.tick(1.0)]


def call_port(data: bytes) -> object:
    """A datagram to the server's call port (STUN answerer and call relay), which must answer, relay or
    drop it, never raise."""
    from conf_cli.server.call_relay import CallRelay

    relay = CallRelay()
    relay.allocate("c1")
    out = relay.datagram(data, ("192.0.2.7", 4000), 0.0) + relay.tick(1.0)
    return [len(datagram) for datagram, _ in out]


def rtp_token_frame(data: bytes) -> object:
    """The first frame an rtp:// client reads from the server: the token that signs its STUN requests."""
    from conf_transport_udp_rtp.latch import read_token_frame

    return len(read_token_frame(data))


def hub_control(data: bytes) -> object:
    """A control message to the server's core from a greeted connection: answered, never raised."""
    hub = Hub()
    hub.connected(1, 0.0, "192.0.2.7:4000")
    hub.received(1, control.encode({"type": "hello", "protocol": control.PROTOCOL_VERSION}), 0.0)
    actions = hub.received(1, data, 0.1)
    hub.route_media(1, data, 0.2)
    return tuple(type(action).__name__ for action in actions)


def client_media(data: bytes) -> object:
    """A run of RTP/RTCP packets into a client's media pipeline (a video and an audio track, RTCP to
    publishers and receivers): malformed packets are counted, nothing raises."""
    from conf_cli.client.link import Client
    from conf_cli.client.media.manager import MediaManager
    from conf_cli.client.media.receiver import RemoteTrack

    manager = MediaManager(Client(None, None, TransportOptions()), lambda event: None)  # type: ignore[arg-type]
    for ssrc, kind, codec in ((seeds.VIDEO_SSRC, "video", "H264"), (seeds.AUDIO_SSRC, "audio", "opus")):
        info = {"name": "ada", "kind": kind, "ssrc": ssrc, "codec": codec}
        manager.receivers[ssrc] = RemoteTrack(
            info, local_ssrc=1, send_media=lambda packet: None, notify=print
        )
    for record in _media_stream(data):
        manager.media_received(record)
    return manager.malformed + sum(track.malformed for track in manager.receivers.values())


HUB_MEETING = "abc-defg-hij"


@functools.cache
def _hub_passcode() -> PasscodeHash:
    return PasscodeHash.of("pass-123")


def hub_session(data: bytes) -> object:
    """Records (connection, then a control message or, with the top bit set, a media packet) into the
    server's core from three connections, passcode checks answered at once: it answers, never raises,
    and keeps its state consistent."""
    numbers = itertools.count()
    hub = Hub(new_id=lambda: f"m{n}" if (n := next(numbers)) else HUB_MEETING)  # unique, as random IDs are
    now = 0.0
    for cid in (1, 2, 3):
        hub.connected(cid, now, f"192.0.2.{cid}:4000")
    for record in _media_stream(data):
        if not record:
            continue
        cid, body = 1 + (record[0] & 0x7F) % 3, record[1:]
        now += 0.01
        if record[0] & 0x80:
            hub.route_media(cid, body, now)
            continue
        pending = list(hub.received(cid, body, now))
        while pending:
            action = pending.pop()
            if isinstance(action, Deferred):
                kind = control.decode_client_message(body)["type"]
                pending += action.resume(_hub_passcode() if kind == "create" else True, now)
        hub.tick(now)
    for meeting_id, meeting in hub.meetings.items():
        assert meeting.id == meeting_id and not meeting.closed
        assert all(track.owner in meeting.participants for track in meeting.tracks.values())
        assert sum(p.role.name == "HOST" for p in meeting.participants.values()) == 1
    for conn in hub._conns.values():
        assert conn.meeting is None or conn.cid in conn.meeting.participants
    return tuple(sorted((len(m.participants), len(m.tracks), m.locked) for m in hub.meetings.values()))


def client_events(data: bytes) -> object:
    """A server's control message, as a client's media manager reacts to it (tracks start and end)."""
    from conf_cli.client.link import Client
    from conf_cli.client.media.manager import MediaManager

    message = control.decode_any(data)
    client = Client(None, None, TransportOptions())  # type: ignore[arg-type]
    client.name = "ada"
    manager = MediaManager(client, lambda event: None)
    with _no_tasks():
        manager.handle_event(message)
    return len(manager.receivers)


@contextlib.contextmanager
def _no_tasks() -> Iterator[None]:
    """Let code that starts asyncio tasks run outside an event loop: the coroutines are closed unrun."""
    import asyncio

    def closed(coroutine: Coroutine[Any, Any, Any], **kwargs: object) -> None:
        coroutine.close()

    saved = asyncio.create_task
    asyncio.create_task = closed  # type: ignore[assignment]
    try:
        yield
    finally:
        asyncio.create_task = saved


def directory_request(data: bytes) -> object:
    """A request line to the workers' directory (``conf server --workers``): answered or refused with an
    error answer, never raised, and the store stays within its bounds."""
    store = LocalStore(max_entries=8)
    running = answer(StoreBackend(store, "local://", clock=lambda: 1.0), data)
    try:
        running.send(None)  # the store is in this process: the answer never waits
    except StopIteration as done:
        assert len(store.entries) <= 8
        return done.value
    raise AssertionError("the directory's answer waited on something")


def rtsp_stream(data: bytes) -> object:
    """RTSP requests, responses and interleaved frames fed in uneven chunks, as a connection reads them."""
    from conf_rtsp.wire import RtspReader  # the RTSP plugin's wire format

    reader = RtspReader()
    messages = []
    step = 1 + (data[0] if data else 0) % 13
    for start in range(0, len(data), step):
        messages += reader.feed(data[start : start + step])
    return tuple(type(message).__name__ for message in messages)


def sdp_text(data: bytes) -> object:
    """An SDP (DESCRIBE's answer, ANNOUNCE's body); writing it out must reach a fixed point in one step."""
    description = SessionDescription.parse(data)
    written = str(description)
    assert str(SessionDescription.parse(written)) == written, written
    return len(description.media)


def sframe_header(data: bytes) -> object:
    """An SFrame header (RFC 9605): its KID and counter, encoded again (minimally), parse to the same."""
    kid, ctr, size = sframe.parse_header(data)
    encoded = sframe.encode_header(kid, ctr)
    assert len(encoded) <= size and sframe.parse_header(encoded) == (kid, ctr, len(encoded))
    return size


def ssdp_datagram(data: bytes) -> object:
    """A discovery datagram: an M-SEARCH the server answers, or an answer the client reads."""
    try:
        return ssdp.parse_search(data)
    except ProtocolError:
        return ssdp.parse_response(data)


def webhook_signature(data: bytes) -> object:
    """A webhook's ``Conf-Signature`` header (the line before the first newline) over a body (the rest):
    verifying raises only BadSignature, and a body signed here verifies under its own timestamp only."""
    head, _, body = data.partition(b"\n")
    header = head.decode("utf-8", "replace")
    with contextlib.suppress(webhooks.BadSignature):
        webhooks.verify(b"fuzz-secret", header, body, now=1765010000.0)
    signed = webhooks.sign(b"fuzz-secret", 1765010000, body)
    assert webhooks.verify(b"fuzz-secret", signed, body, now=1765010000.0) == 1765010000
    try:
        webhooks.verify(b"fuzz-secret", signed, body + b"x", now=1765010000.0)
    except webhooks.BadSignature:
        return len(body)
    raise AssertionError("a signature held for a changed body")


def jpeg_picture(data: bytes) -> object:
    """A JPEG picture the RTSP gateway sends as RFC 2435."""
    from conf_rtsp.jpeg_rtp import parse_jpeg  # the RTSP plugin's payload format

    return parse_jpeg(data, check_huffman=False).width


register("control", control_message, seeds.control_messages)
register("framing", tcp_stream, seeds.tcp_streams, expected=(), max_size=70_000)
register("rtp", rtp_packet, seeds.rtp_packets, max_size=1500)
register("rtcp", rtcp_compound, seeds.rtcp_compounds, max_size=1500)
register("stun", stun_message, seeds.stun_messages, max_size=1600)
register("stap-a", stap_a, lambda: [p for p in seeds.video_payloads() if p[0] & 0x1F == 24])
register("annexb", annexb, lambda: [join_annexb(parse_stap_a(seeds.video_payloads()[0]))], expected=())
register("h264", h264_depacketizer, seeds.media_streams, expected=(), max_size=16_384)
register("jitter", jitter_buffer, seeds.arrivals, expected=())
register("opus", opus_packet, seeds.opus_payloads)
register("zmq", zmq_message, seeds.zmq_messages, max_size=2048)
register("zmtp", zmtp_stream, seeds.zmtp_streams, max_size=2048)
register("stun-latch", stun_latch, seeds.stun_messages, expected=(), max_size=1600)
register("call-port", call_port, seeds.stun_messages, expected=(), max_size=1600)
register("rtp-token", rtp_token_frame, lambda: [b"\x01" + bytes(range(16))])
register("hub", hub_control, seeds.control_messages, expected=())
register("hub-session", hub_session, seeds.hub_sessions, expected=(), max_size=8192)
register("client-media", client_media, seeds.client_streams, expected=(), max_size=16_384)
register("client-events", client_events, seeds.server_events)
register(
    "local-directory",
    directory_request,
    lambda: [
        b'{"op": "claim", "meeting": "abc-defg-hij", "node": "worker-1", "ttl": 6}',
        b'{"op": "put_node", "node": "worker-1", "data": "e30=", "ttl": 6}',
        b'{"op": "nodes"}',
    ],
    expected=(),
    max_size=4096,
)
register("rtsp", rtsp_stream, seeds.rtsp_streams, expected=(ProtocolError,), max_size=8192)
register("sdp", sdp_text, seeds.sdp_texts, expected=(ProtocolError, ValueError))
register("sframe", sframe_header, seeds.sframe_headers, max_size=32)
register("ssdp", ssdp_datagram, seeds.ssdp_datagrams, expected=(ProtocolError, ValueError), max_size=2048)
register(
    "webhook",
    webhook_signature,
    lambda: [b"t=1765010000,v1=" + b"0" * 64 + b'\n{"id":"evt_1","type":"meeting_started"}'],
    expected=(),
    max_size=4096,
)
register("jpeg", jpeg_picture, seeds.jpeg_pictures, max_size=65_536)
