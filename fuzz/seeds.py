"""Seed inputs for the fuzz targets: real packets, made the way a conf client makes them.

Video seeds are RTP packets of H.264 access units that libx264 encoded from a moving picture, packetized
as conf does (single NAL units, STAP-A for the parameter sets, FU-A for large slices); audio seeds are
RTP packets of Opus encoded by libopus. Control, RTCP, STUN and transport seeds come from the encoders of
each format. Everything is built once per process.
"""

from __future__ import annotations

import functools
import json
import random

from conf_cli.media.h264 import H264Packetizer, split_annexb
from conf_cli.media.rtp_stream import RtpSender
from conf_cli.protocol import rtcp, rtcp_xr, stun
from conf_cli.protocol.control import encode
from conf_cli.protocol.framing import frame
from conf_cli.protocol.rtp import RtpPacket

VIDEO_SSRC = 0x1234ABCD
AUDIO_SSRC = 0x0BADCAFE


@functools.cache
def video_rtp() -> tuple[bytes, ...]:
    """RTP packets of six 96x64 H.264 pictures (an IDR with SPS and PPS, then P pictures)."""
    import av
    import numpy as np

    from conf_cli.media.codecs import H264Encoder

    encoder = H264Encoder(96, 64, fps=30, bitrate=300_000)
    sender = RtpSender(VIDEO_SSRC, 96, 90_000, rng=random.Random(1))
    packetizer = H264Packetizer(mtu=300)  # small, so that the IDR picture needs FU-A fragments
    packets: list[bytes] = []
    noise = np.random.default_rng(7)
    for index in range(6):
        picture = noise.integers(0, 255, (64, 96, 3), dtype=np.uint8)
        picture[:, : 8 * index] = 40
        units = encoder.encode(av.VideoFrame.from_ndarray(picture, format="rgb24"), index / 30)
        for unit in units:
            packets += sender.packetize(packetizer.packetize(split_annexb(unit.data)), unit.pts, marker=True)
    return tuple(packets)


@functools.cache
def audio_rtp() -> tuple[bytes, ...]:
    """RTP packets of five 20 ms Opus packets of a 440 Hz tone."""
    import av
    import numpy as np

    from conf_cli.media.codecs import OpusEncoder

    encoder = OpusEncoder()
    sender = RtpSender(AUDIO_SSRC, 111, 48_000, rng=random.Random(2))
    samples = (np.sin(np.arange(4800) * 2 * np.pi * 440 / 48_000) * 8000).astype(np.int16)
    audio = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    audio.sample_rate = 48_000
    packets: list[bytes] = []
    for unit in encoder.encode(audio, 0.0):
        packets += sender.packetize([unit.data], unit.pts, marker=not packets)
    return tuple(packets)


def opus_payloads() -> list[bytes]:
    return [RtpPacket.parse(packet).payload for packet in audio_rtp()]


def video_payloads() -> list[bytes]:
    return [RtpPacket.parse(packet).payload for packet in video_rtp()]


def rtp_packets() -> list[bytes]:
    """Real packets, and packets using every optional part of the header."""
    crafted = RtpPacket(
        payload_type=96,
        sequence_number=65535,
        timestamp=0xFFFFFFFF,
        ssrc=7,
        payload=b"\x65\x88\x84",
        marker=True,
        csrc=[1, 2, 3],
        extension=(0xBEDE, b"\x10\xff\x00\x00"),
        padding=4,
    )
    return [*video_rtp()[:8], *audio_rtp()[:2], bytes(crafted)]


def rtcp_compounds() -> list[bytes]:
    """Compounds a conf client sends: SR+SDES(+XR DLRR), RR+XR RRTR, NACK, PLI, FIR, BYE."""
    block = rtcp.ReportBlock(VIDEO_SSRC, 12, -3, 70_000, 45, 0x12345678, 0x00010000)
    sr = rtcp.SenderReport(VIDEO_SSRC, rtcp.ntp_from_unix(1.7e9), 123456, 40, 32000, [block])
    rr = rtcp.ReceiverReport(AUDIO_SSRC, [block, block])
    sdes = rtcp.Sdes.for_cname(VIDEO_SSRC, "ada@conf")
    return [
        rtcp.build_compound([sr, sdes, rtcp_xr.dlrr(VIDEO_SSRC, [(AUDIO_SSRC, 0x1234, 0x10)])]),
        rtcp.build_compound([rr, rtcp_xr.rrtr(AUDIO_SSRC, rtcp.ntp_from_unix(1.7e9))]),
        bytes(rtcp.Nack(AUDIO_SSRC, VIDEO_SSRC, [100, 101, 105, 300])),
        bytes(rtcp.Pli(AUDIO_SSRC, VIDEO_SSRC)),
        bytes(rtcp.Fir(AUDIO_SSRC, [(VIDEO_SSRC, 3)])),
        bytes(rtcp.Bye([VIDEO_SSRC], "left the meeting")),
    ]


def stun_messages() -> list[bytes]:
    from conf_cli.latch import Credentials  # the rtp:// and call relay requests, and the consent check

    tid = bytes(range(12))
    token = bytes(range(16))
    error = stun.StunMessage(stun.BINDING, stun.CLASS_ERROR, tid, [(0x0009, b"\x00\x00\x04\x01Unauthorized")])
    return [
        bytes(stun.binding_request(tid, token.hex(), token, "conf/0.1")),
        Credentials.of(token).request(tid, "conf/0.1"),
        Credentials.of(token).check(tid),
        Credentials.of(token, "call relay").request(tid, "conf/0.1"),
        bytes(stun.binding_success(tid, "192.0.2.1", 40000, token, "conf")),
        bytes(stun.binding_success(tid, "2001:db8::1", 40000, None)),
        bytes(error),
    ]


def control_messages() -> list[bytes]:
    messages: list[dict[str, object]] = [
        {"type": "hello", "protocol": 1, "client": "conf/0.1"},
        {"type": "create", "name": "Ada", "passcode": "pass-123", "id": 1},
        {"type": "join", "meeting": "k7m-q2xw-9fd", "name": "Grace Hopper", "passcode": "x"},
        {"type": "chat", "text": "hello \u00e9\u4e16", "to": "Ada", "id": "r-1"},
        {"type": "set_role", "name": "Ada", "role": "admin"},
        {"type": "forbid", "what": "screen", "name": "Ada"},
        {"type": "publish", "kind": "video", "ssrc": VIDEO_SSRC, "codec": "H264"},
        {"type": "kick", "name": "Eve"},
        {"type": "ping"},
        {"type": "hand", "raised": True},
        {"type": "react", "emoji": "\U0001f44d"},
        {"type": "poll_start", "question": "Lunch?", "options": ["Pizza", "Soup"], "named": True},
        {"type": "vote", "choice": 2, "poll": 1},
        {"type": "breakout_assign", "name": "Ada", "room": 1},
        {"type": "breakout_open", "minutes": 5},
    ]
    return [encode(message) for message in messages]


def tcp_streams() -> list[bytes]:
    """What a client writes on a TCP connection: control and media frames, and keep-alives."""
    hello, create = control_messages()[:2]
    return [
        frame(hello) + frame(create) + frame(b""),
        b"".join(frame(packet) for packet in video_rtp()[:4]),
        frame(rtcp_compounds()[0]) + frame(audio_rtp()[0]),
    ]


def media_streams() -> list[bytes]:
    """Runs of RTP packets, each with a 16-bit length in front, for targets that take a sequence."""
    video = video_rtp()
    in_order = b"".join(frame(packet) for packet in video)
    shuffled = list(video)
    random.Random(3).shuffle(shuffled)
    return [in_order, b"".join(frame(packet) for packet in shuffled[:8])]


def zmq_messages() -> list[bytes]:
    """A ZeroMQ message as the fuzz target reads it: the kind byte, then the payload (an RTP packet as it
    is)."""
    greeting = json.dumps({"transport": "conf-zmq", "version": 3}).encode()
    return [b"G" + greeting, b"C" + control_messages()[0], video_rtp()[0], b"K", b"Bgoodbye"]


def zmtp_streams() -> list[bytes]:
    """What a DEALER sends after its ZMTP greeting: a NULL READY and conf's greeting, or a CURVE HELLO and
    an INITIATE-shaped command, and a PING."""
    from conf_transport_zmq import zmtp

    ready = zmtp.command(b"READY", zmtp.properties({"Socket-Type": b"DEALER", "Identity": b"\x01id"}))
    greeting = json.dumps({"transport": "conf-zmq", "version": 3}).encode()
    hello = zmtp.command(
        b"HELLO", b"\x01\x00" + bytes(72) + bytes(range(32)) + (1).to_bytes(8, "big") + bytes(80)
    )
    initiate = zmtp.command(b"INITIATE", bytes(96) + (2).to_bytes(8, "big") + bytes(160))
    return [
        zmtp.frame(ready, zmtp.COMMAND) + zmtp.frame(b"G", zmtp.MORE) + zmtp.frame(greeting),
        zmtp.frame(hello, zmtp.COMMAND) + zmtp.frame(initiate, zmtp.COMMAND),
        zmtp.frame(zmtp.command(b"PING", b"\x00\x10ctx"), zmtp.COMMAND) + zmtp.frame(video_rtp()[0]),
    ]


def arrivals() -> list[bytes]:
    """Arrival records (sequence number, timestamp, 0.1 ms steps) of the real video packets: in order,
    and with one lost and two swapped."""
    packets = [RtpPacket.parse(packet) for packet in video_rtp()]
    records = [
        p.sequence_number.to_bytes(2, "big") + p.timestamp.to_bytes(4, "big") + (50).to_bytes(2, "big")
        for p in packets
    ]
    damaged = [*records[:3], records[4], records[3], *records[6:]]
    return [b"".join(records), b"".join(damaged)]


def client_streams() -> list[bytes]:
    """What a client receives: video and audio RTP interleaved with RTCP about them, length-prefixed."""
    packets = [*video_rtp(), *audio_rtp(), *rtcp_compounds()]
    return [b"".join(frame(packet) for packet in packets)]


def hub_sessions() -> list[bytes]:
    """A meeting in records for the hub-session target: connection (top bit: media), then the message."""

    def say(cid: int, message: dict[str, object]) -> bytes:
        return frame(bytes((cid,)) + encode(message))

    def media(cid: int, packet: bytes) -> bytes:
        return frame(bytes((0x80 | cid,)) + packet)

    hello = {"type": "hello", "protocol": 1}
    join = {"type": "join", "meeting": "abc-defg-hij", "passcode": "pass-123"}
    records = [
        say(0, hello),
        say(0, {"type": "create", "name": "Ada", "passcode": "pass-123"}),
        say(1, hello),
        say(1, {**join, "name": "Grace"}),
        say(2, hello),
        say(2, {**join, "name": "Eve"}),
        say(0, {"type": "publish", "kind": "video", "ssrc": VIDEO_SSRC, "codec": "H264"}),
        say(1, {"type": "publish", "kind": "audio", "ssrc": AUDIO_SSRC, "codec": "opus"}),
        media(0, video_rtp()[0]),
        media(1, audio_rtp()[0]),
        media(2, rtcp_compounds()[3]),
        say(1, {"type": "chat", "text": "hi", "to": "Ada"}),
        say(0, {"type": "set_role", "name": "Grace", "role": "admin"}),
        say(1, {"type": "forbid", "what": "video"}),
        say(1, {"type": "kick", "name": "Eve"}),
        say(0, {"type": "lock"}),
        say(0, {"type": "set_role", "name": "Grace", "role": "host"}),
        say(1, {"type": "unpublish", "kind": "audio"}),
        say(0, {"type": "leave"}),
        say(1, {"type": "end"}),
    ]
    return [b"".join(records), b"".join(records[:8])]


def server_events() -> list[bytes]:
    """Events a server sends that start and end a client's tracks."""
    track = {"name": "Grace", "kind": "video", "ssrc": VIDEO_SSRC, "codec": "H264"}
    events: list[dict[str, object]] = [
        {"type": "joined", "meeting": "abc-defg-hij", "name": "ada", "tracks": [track]},
        {"type": "share_started", **track},
        {"type": "share_started", **track, "name": "ada"},
        {"type": "share_stopped", **track, "reason": "stopped"},
        {"type": "participant_left", "name": "Grace", "reason": "left"},
        {"type": "error", "code": "forbidden", "message": "no", "re": "publish"},
    ]
    return [encode(event) for event in events]


def rtsp_streams() -> list[bytes]:
    """A player's requests as ffmpeg sends them, a response, and an interleaved RTP frame."""
    describe = (
        b"DESCRIBE rtsp://127.0.0.1:8554/files/clip.mkv RTSP/1.0\r\nAccept: application/sdp\r\nCSeq: 2\r\n"
        b"User-Agent: Lavf59.27.100\r\n\r\n"
    )
    setup = (
        b"SETUP rtsp://127.0.0.1:8554/files/clip.mkv/trackID=0 RTSP/1.0\r\n"
        b"Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nCSeq: 3\r\n\r\n"
    )
    body = b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\n"
    response = b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    interleaved = b"$\x00\x00\x0c" + video_rtp()[0][:12]
    return [describe, setup, response, describe + setup + interleaved]


def sdp_texts() -> list[bytes]:
    """A gateway's DESCRIBE answer with H.264 and Opus tracks."""
    return [
        b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=conf\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
        b"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\n"
        b"a=control:trackID=0\r\nm=audio 0 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n"
        b"a=control:trackID=1\r\n"
    ]


def sframe_headers() -> list[bytes]:
    """SFrame headers with short and long key IDs and counters."""
    from conf_cli.protocol import sframe

    return [sframe.encode_header(kid, ctr) for kid, ctr in ((0, 0), (7, 7), (8, 255), (0xFFFF, 1 << 40))]


def ssdp_datagrams() -> list[bytes]:
    """A discovery search and a server's answer."""
    from conf_cli.protocol import ssdp

    return [ssdp.search()]


def jpeg_pictures() -> list[bytes]:
    """A small baseline JPEG as an MJPEG file holds it."""
    import av
    import numpy as np

    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 64, 48, "yuvj420p"
    picture = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 90, dtype=np.uint8), format="rgb24")
    packets = encoder.encode(picture.reformat(format="yuvj420p")) + encoder.encode(None)
    return [bytes(packets[0])]
