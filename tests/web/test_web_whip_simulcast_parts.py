"""A WHIP publisher's simulcast without a network: the offer's RIDs and ``a=simulcast`` read and refused
(RFC 8851, RFC 8853), the answer's lines, RTP streams told apart by RID until their SSRC is known
(RFC 8852), and the RIDs mapped to the meeting track's layers (order from the picture sizes, layers whose
RID sends nothing, dynacast, keyframe requests and NACKs)."""

from __future__ import annotations

import asyncio
import fractions
from functools import cache
from types import SimpleNamespace

import pytest
from conf_web.rtc import NacksPerStream, _forward_received
from conf_web.simulcast import (
    LIVE,
    SETTLE,
    RidStreams,
    SimulcastError,
    SimulcastLayers,
    SimulcastOffer,
    add_to_answer,
    parse_offer,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from conf_cli.media.h264 import payload_picture_size, sps_picture_size
from conf_cli.protocol.rtp import RtpPacket

AUDIO = """m=audio 9 UDP/TLS/RTP/SAVPF 111
a=mid:0
a=sendonly
a=rtpmap:111 opus/48000/2
"""
VIDEO = """m=video 9 UDP/TLS/RTP/SAVPF 96 97 102
a=mid:1
a=sendonly
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id
a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id
a=rtpmap:96 VP8/90000
a=rtpmap:97 rtx/90000
a=rtpmap:102 H264/90000
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f
"""


def offer(*lines: str, video: str = VIDEO) -> str:
    """A Chromium-like offer: audio, then video with ``lines`` added."""
    text = (
        "v=0\no=- 1 2 IN IP4 127.0.0.1\ns=-\nt=0 0\n" + AUDIO + video + "".join(f"{line}\n" for line in lines)
    )
    return text.replace("\n", "\r\n")


CHROMIUM = ("a=rid:q send", "a=rid:h send", "a=rid:f send", "a=simulcast:send q;h;f")


def test_a_chromium_simulcast_offer_is_read_lowest_first_and_answered_with_its_rids() -> None:
    simulcast = parse_offer(offer(*CHROMIUM))
    assert simulcast is not None
    assert simulcast.mid == "1" and simulcast.ids == ("q", "h", "f") and not simulcast.by_size
    assert (simulcast.rid_extension, simulcast.repaired_extension) == (10, 11)
    assert simulcast.answer_lines() == [
        "a=rid:q recv",
        "a=rid:h recv",
        "a=rid:f recv",
        "a=simulcast:recv q;h;f",
    ]
    # Without restrictions the layers are described nominally: halves below 1280x720.
    assert simulcast.layers() == [(320, 180, 150_000), (640, 360, 500_000), (1280, 720, 1_500_000)]
    # A RID that starts paused (~) is taken like the others.
    paused = parse_offer(offer("a=rid:a send", "a=rid:b send", "a=simulcast:send a;~b"))
    assert paused is not None and paused.ids == ("a", "b")


def test_size_restrictions_order_the_rids_and_describe_their_layers() -> None:
    simulcast = parse_offer(
        offer(
            "a=rid:hi send pt=102;max-width=1920;max-height=1080",
            "a=rid:lo send max-width=480;max-height=270;max-br=200000;x-unknown=3",
            "a=simulcast:send hi;lo",
        )
    )
    assert simulcast is not None and simulcast.by_size
    assert simulcast.ids == ("lo", "hi")  # by size, not by the offer's order
    assert simulcast.layers() == [(480, 270, 200_000), (1920, 1080, 1_500_000)]
    # The answer lists them as the offer did, keeping the restrictions it understands.
    assert simulcast.answer_lines() == [
        "a=rid:hi recv max-width=1920;max-height=1080",
        "a=rid:lo recv max-width=480;max-height=270;max-br=200000",
        "a=simulcast:recv hi;lo",
    ]


def test_an_offer_without_a_send_simulcast_is_not_one() -> None:
    assert parse_offer(offer()) is None
    assert parse_offer(offer("a=rid:q recv", "a=simulcast:recv q")) is None  # a WHIP client receives nothing
    assert parse_offer("v=0\r\n" + AUDIO.replace("\n", "\r\n")) is None  # no video at all


@pytest.mark.parametrize(
    ("lines", "video", "says"),
    [
        (("a=rid:a send", "a=rid:b send", "a=rid:c send", "a=rid:d send", "a=simulcast:send a;b;c;d"), VIDEO,
         "at most 3"),
        (("a=rid:q send", "a=simulcast:send q;h"), VIDEO, "which no a=rid:h send declares"),
        (("a=rid:q send", "a=rid:q send", "a=simulcast:send q"), VIDEO, "declared twice"),
        (("a=rid:q send", "a=simulcast:send q;q"), VIDEO, "lists a rid twice"),
        (("a=rid:q send", "a=rid:h send", "a=simulcast:send q,h"), VIDEO, "alternatives"),
        (("a=rid:q send", "a=rid:h send depend=q", "a=simulcast:send q;h"), VIDEO, "layered coding"),
        (("a=rid:q send pt=96", "a=simulcast:send q"), VIDEO, "no H.264"),
        (("a=rid:q send pt=35", "a=simulcast:send q"), VIDEO, "payload types the m-line does not"),
        (("a=rid:q send max-width=wide", "a=simulcast:send q"), VIDEO, "whole number"),
        (("a=rid:q send max-height=99999", "a=simulcast:send q"), VIDEO, "outside"),
        (("a=rid:q send max-width", "a=simulcast:send q"), VIDEO, "malformed restriction"),
        (("a=rid:q/x send", "a=simulcast:send q/x"), VIDEO, "letters, digits"),
        (("a=rid:" + "r" * 17 + " send", "a=simulcast:send " + "r" * 17), VIDEO, "1 to 16"),
        (("a=rid:q send", "a=simulcast:send q", "a=simulcast:send q"), VIDEO, "more than one"),
        (("a=rid:q send", "a=simulcast:send"), VIDEO, "malformed"),
        (("a=rid:q send", "a=simulcast:sideways q"), VIDEO, "send or recv"),
        (("a=rid:q send", "a=simulcast:send q"), VIDEO.replace("a=extmap:10", "a=extmap-off:10"),
         "RID header extension"),
    ],
)  # fmt: skip
def test_a_simulcast_the_server_cannot_take_is_refused_with_the_reason(
    lines: tuple[str, ...], video: str, says: str
) -> None:
    with pytest.raises(SimulcastError, match=says.replace(".", r"\.")):
        parse_offer(offer(*lines, video=video))


def test_the_answer_takes_the_simulcast_in_its_video_section_only() -> None:
    simulcast = parse_offer(offer(*CHROMIUM))
    assert simulcast is not None
    answer = "v=0\r\nm=audio 9 X 111\r\na=mid:0\r\nm=video 9 X 102\r\na=mid:1\r\na=recvonly\r\n"
    lines = add_to_answer(answer, simulcast).split("\r\n")
    video = lines.index("m=video 9 X 102")
    assert lines[video:] == ["m=video 9 X 102", "a=mid:1", "a=recvonly", *simulcast.answer_lines(), ""]
    with pytest.raises(SimulcastError):
        add_to_answer("v=0\r\nm=audio 9 X 111\r\na=mid:0\r\n", simulcast)


def test_streams_are_told_by_rid_until_their_ssrc_is_known() -> None:
    streams = RidStreams(("q", "h", "f"))
    assert streams.media(100, None) is None and streams.unknown_ssrc == 1  # not named yet: dropped
    assert streams.media(100, "q") == "q"
    assert streams.media(100, None) == "q"  # Chromium stops naming it once acknowledged
    assert streams.media(200, "x") is None and streams.unknown_rid == 1  # not the offer's: dropped
    assert streams.media(200, None) is None
    # A RID under a new SSRC forgets the old one: one SSRC per RID, the tables stay bounded.
    assert streams.media(101, "q") == "q"
    assert streams.media(100, None) is None and streams.ssrc_of("q") == 101
    for ssrc in range(1000, 1100):
        streams.media(ssrc, "h")
    assert len(streams.by_ssrc) == 2
    # A retransmission names the RID it repairs; it goes in as the media stream's.
    assert streams.repaired(500, "q") == (101, "q")
    assert streams.repaired(500, None) == (101, "q")
    assert streams.repaired(501, None) is None
    assert streams.repaired(502, "zz") is None


@cache
def sps_and_pps(width: int, height: int) -> tuple[bytes, bytes]:
    """The parameter sets libx264 writes for a ``width`` x ``height`` picture."""
    import av

    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.time_base = fractions.Fraction(1, 30)
    frame = av.VideoFrame(width, height, "yuv420p")
    frame.pts = 0
    data = b"".join(bytes(p) for p in [*codec.encode(frame), *codec.encode(None)])
    nals = [nal for n in data.split(b"\x00\x00\x01") if (nal := n.rstrip(b"\x00"))]
    return next(n for n in nals if n[0] & 0x1F == 7), next(n for n in nals if n[0] & 0x1F == 8)


def keyframe(width: int, height: int) -> bytes:
    """The first RTP payload of a keyframe: a STAP-A with the SPS and the PPS."""
    sps, pps = sps_and_pps(width, height)
    return b"\x78" + len(sps).to_bytes(2, "big") + sps + len(pps).to_bytes(2, "big") + pps


DELTA = b"\x41\x9a\x00\x10"  # a non-IDR slice


def test_the_picture_size_is_read_from_the_parameter_set() -> None:
    for width, height in ((320, 180), (640, 360), (1280, 720), (322, 182)):
        sps, _ = sps_and_pps(width, height)
        assert sps_picture_size(sps) == (width, height)
        assert payload_picture_size(keyframe(width, height)) == (width, height)
        assert payload_picture_size(sps) == (width, height)
    assert payload_picture_size(DELTA) is None
    assert sps_picture_size(b"\x67\x42") is None  # cut short
    assert sps_picture_size(b"\x67" + b"\x00" * 40) is None  # an exp-Golomb code that never ends


SSRCS = [11, 22, 33]  # the meeting layers', lowest first; 33 the track's
BROWSER = {"q": 1001, "h": 1002, "f": 1003}


class Feed:
    """Packets of the browser's RIDs into :class:`SimulcastLayers`, each RID's sequence numbers its own."""

    def __init__(self, layers: SimulcastLayers) -> None:
        self.layers = layers
        self.sequence = dict.fromkeys(BROWSER, 100)
        self.now = 0.0

    def send(self, rid: str, payload: bytes) -> tuple[list[RtpPacket], list[int]]:
        self.sequence[rid] += 1
        packets, asks = self.layers.packet(
            rid, BROWSER[rid], self.sequence[rid], 9000, True, payload, self.now
        )
        return [RtpPacket.parse(p) for p in packets], asks


def chromium(order: str = "qhf") -> SimulcastOffer:
    lines = [f"a=rid:{rid} send" for rid in order] + ["a=simulcast:send " + ";".join(order)]
    simulcast = parse_offer(offer(*lines))
    assert simulcast is not None
    return simulcast


def test_rids_listed_highest_first_are_ordered_by_the_sizes_their_streams_send() -> None:
    layers = SimulcastLayers(chromium("fhq"), SSRCS)
    feed = Feed(layers)
    # Nothing goes out before the order is known: one size is not enough.
    assert feed.send("f", keyframe(1280, 720)) == ([], [])
    assert layers.by_rid["f"].held == 1
    # The second size settles it: the offer listed them highest first. Every stream wants a keyframe.
    packets, asks = feed.send("h", keyframe(640, 360))
    assert set(asks) == {BROWSER["f"], BROWSER["h"]}
    assert [position.own for position in layers.positions] == ["q", "h", "f"]
    # h's keyframe, on the middle layer, and on the lowest while q has sent nothing.
    assert [p.ssrc for p in packets] == [11, 22]
    assert [p.ssrc for p in feed.send("f", keyframe(1280, 720))[0]] == [33]
    assert [p.ssrc for p in feed.send("q", keyframe(320, 180))[0]] == [11]
    assert [p.ssrc for p in feed.send("h", DELTA)[0]] == [22]
    assert [p.ssrc for p in feed.send("q", DELTA)[0]] == [11]


def test_a_single_sending_rid_is_ordered_as_offered_after_a_while_and_feeds_every_layer() -> None:
    layers = SimulcastLayers(chromium("fhq"), SSRCS)
    feed = Feed(layers)
    assert feed.send("f", keyframe(320, 240))[0] == []
    feed.now = SETTLE - 0.1
    assert feed.send("f", DELTA) == ([], [])
    feed.now = SETTLE
    packets, asks = feed.send("f", DELTA)
    assert asks and packets == []  # settled: a keyframe is asked for, nothing starts mid-picture
    packets, _ = feed.send("f", keyframe(320, 240))
    # f is the lowest as offered; the two layers above, whose RIDs send nothing, carry it too.
    assert sorted(p.ssrc for p in packets) == SSRCS
    assert {p.payload for p in packets} == {keyframe(320, 240)}


def test_a_layer_whose_rid_sends_nothing_carries_the_one_below_until_its_own_starts() -> None:
    layers = SimulcastLayers(chromium("qhf"), SSRCS)
    feed = Feed(layers)
    feed.send("q", keyframe(320, 180))
    feed.send("h", keyframe(640, 360))  # settles the order
    assert [p.ssrc for p in feed.send("q", keyframe(320, 180))[0]] == [11]
    packets, _ = feed.send("h", keyframe(640, 360))
    assert sorted(p.ssrc for p in packets) == [22, 33]  # the top layer carries h for now
    assert layers.positions[2].feed == "h"
    top = next(p for p in packets if p.ssrc == 33)
    packets, _ = feed.send("h", DELTA)
    assert [p.sequence_number for p in packets if p.ssrc == 33] == [top.sequence_number + 1]
    # f starts (Chromium's bandwidth estimate grew): the top layer moves to it at its keyframe, its
    # sequence numbers running on.
    feed.now = 0.5
    packets, asks = feed.send("f", DELTA)
    assert packets == [] and BROWSER["f"] in asks  # not at a keyframe: h goes on, f's keyframe asked for
    assert [p.ssrc for p in feed.send("h", DELTA)[0]] == [22, 33]
    packets, _ = feed.send("f", keyframe(1280, 720))
    assert [p.ssrc for p in packets] == [33] and layers.positions[2].feed == "f"
    assert packets[0].sequence_number == top.sequence_number + 3
    assert [p.ssrc for p in feed.send("h", DELTA)[0]] == [22]
    # f stops for longer than LIVE: the top layer goes back to h, at h's next keyframe.
    feed.now = 0.5 + LIVE + 0.1
    assert [p.ssrc for p in feed.send("q", DELTA)[0]] == [11]
    packets, asks = feed.send("h", DELTA)
    assert [p.ssrc for p in packets] == [22] and BROWSER["h"] in asks
    assert sorted(p.ssrc for p in feed.send("h", keyframe(640, 360))[0]) == [22, 33]


def test_dynacast_drops_the_layers_nobody_wants_at_the_server() -> None:
    layers = SimulcastLayers(chromium("qhf"), SSRCS)
    feed = Feed(layers)
    for rid, size in (("q", (320, 180)), ("h", (640, 360)), ("f", (1280, 720))):
        feed.send(rid, keyframe(*size))
    for rid, size in (("q", (320, 180)), ("h", (640, 360)), ("f", (1280, 720))):
        feed.send(rid, keyframe(*size))
    assert layers.set_active(99, [11]) == []  # another track's: not ours
    assert layers.set_active(33, [11, 33]) == []
    assert feed.send("h", DELTA)[0] == [] and layers.by_rid["h"].paused == 1
    assert [p.ssrc for p in feed.send("q", DELTA)[0]] == [11]
    # Someone wants the middle layer again: it comes back with a keyframe of h, asked for at once.
    assert layers.set_active(33, [11, 22, 33]) == [BROWSER["h"]]
    assert [p.ssrc for p in feed.send("h", DELTA)[0]] == [22]


def test_keyframe_requests_and_nacks_for_a_layer_go_to_the_rid_it_carries() -> None:
    layers = SimulcastLayers(chromium("qhf"), SSRCS)
    feed = Feed(layers)
    feed.send("q", keyframe(320, 180))
    feed.send("h", keyframe(640, 360))
    sent = feed.send("h", keyframe(640, 360))[0]
    assert layers.sources(22) == [BROWSER["h"]]
    assert layers.sources(33) == [BROWSER["h"]]  # the top layer carries h while f sends nothing
    assert layers.sources(44) == []
    middle = next(p for p in sent if p.ssrc == 22)
    assert layers.nack(22, [middle.sequence_number]) == (BROWSER["h"], [feed.sequence["h"]])
    assert layers.nack(44, [1]) is None


def test_simulcast_packets_are_forwarded_with_their_rid_and_unknown_rids_dropped() -> None:
    """The receiver of a simulcast m-line: each media packet goes on with the RID of its stream (the
    SSRC learnt from the RID extension), a packet of an unknown RID or SSRC is dropped, and aiortc's NACK
    generator tracks each stream's sequence numbers apart."""

    class RTCRtpReceiver:
        def __init__(self) -> None:
            self.handled = 0

        async def _handle_rtp_packet(self, packet: object, arrival_time_ms: int) -> None:
            self.handled += 1

        def __stop_decoder(self) -> None:
            pass

    receiver = RTCRtpReceiver()
    codecs = [SimpleNamespace(mimeType="video/H264", payloadType=102)]
    got: list[tuple[object, ...]] = []
    streams = RidStreams(("q", "f"))
    _forward_received(
        "video",
        SimpleNamespace(receiver=receiver, _codecs=codecs),
        lambda *a: got.append((a[1], a[2], a[7])),
        streams,
    )
    assert isinstance(receiver._RTCRtpReceiver__nack_generator, NacksPerStream)  # type: ignore[attr-defined]

    def packet(ssrc: int, seq: int, rid: str | None) -> object:
        return SimpleNamespace(
            payload_type=102, ssrc=ssrc, sequence_number=seq, timestamp=1, marker=1, payload=b"\x41x",
            extensions=SimpleNamespace(rtp_stream_id=rid, repaired_rtp_stream_id=None),
        )  # fmt: skip

    async def run() -> None:
        for ssrc, seq, rid in ((7, 1, "q"), (8, 900, "f"), (7, 2, None), (9, 5, "evil"), (9, 6, None)):
            await receiver._handle_rtp_packet(packet(ssrc, seq, rid), 0)

    asyncio.run(run())
    assert got == [(7, 1, "q"), (8, 900, "f"), (7, 2, "q")]
    assert (streams.unknown_rid, streams.unknown_ssrc) == (1, 1)
    assert receiver.handled == 5


def test_losses_are_tracked_per_stream_not_across_the_layers() -> None:
    nacks = NacksPerStream()

    def add(ssrc: int, seq: int) -> bool:
        return nacks.add(SimpleNamespace(ssrc=ssrc, sequence_number=seq))

    assert not any(add(ssrc, seq) for seq in range(10, 20) for ssrc in (1, 2))  # interleaved: no loss
    assert add(1, 22) and nacks.missing == {20, 21}
    for ssrc in range(100, 120):
        add(ssrc, 1)
    assert len(nacks.streams) <= 8


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["q", "h", "f", "x"]),
            st.sampled_from(["key", "delta", "padding", "junk"]),
            st.floats(min_value=0, max_value=1.5),
            st.binary(max_size=40),
        ),
        max_size=120,
    ),
    st.sampled_from(["qhf", "fhq", "hf"]),
)
def test_each_layer_is_one_continuous_stream_whatever_the_rids_send(
    steps: list[tuple[str, str, float, bytes]], order: str
) -> None:
    """Random packets of the offered RIDs (and one not offered), keyframes, padding and junk, with pauses:
    nothing raises, only the layers' SSRCs go out, and each layer's sequence numbers run on by one
    across every change of the RID it carries."""
    simulcast = chromium(order)
    layers = SimulcastLayers(simulcast, SSRCS[-len(order) :])
    sizes = {"q": (320, 180), "h": (640, 360), "f": (1280, 720)}
    sequence = dict.fromkeys([*BROWSER, "x"], 0)
    now = 0.0
    last: dict[int, int] = {}
    for rid, what, wait, junk in steps:
        now += wait
        sequence[rid] += 1
        payload = {"key": keyframe(*sizes.get(rid, (320, 180))), "delta": DELTA, "padding": b""}.get(
            what, junk
        )
        packets, asks = layers.packet(rid, BROWSER.get(rid, 9), sequence[rid], 9000, True, payload, now)
        assert set(asks) <= set(BROWSER.values())
        for data in packets:
            packet = RtpPacket.parse(data)
            assert packet.ssrc in SSRCS
            if packet.ssrc in last:
                assert packet.sequence_number == (last[packet.ssrc] + 1) & 0xFFFF
            last[packet.ssrc] = packet.sequence_number


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_a_hostile_parameter_set_gives_a_size_or_none(data: bytes) -> None:
    for nal in (b"\x67" + data, b"\x78\x00" + bytes([len(data) + 1]) + b"\x67" + data):
        size = payload_picture_size(nal)
        assert size is None or (size[0] > 0 and size[1] > 0)
