"""H.264 RTP payloads (RFC 6184 mode 1): hand-built NAL units, and real libx264 video end to end."""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Iterable
from fractions import Fraction

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conf_cli.errors import ProtocolError
from conf_cli.media.h264 import (
    AccessUnit,
    H264Depacketizer,
    H264Packetizer,
    join_annexb,
    parse_stap_a,
    split_annexb,
)
from conf_cli.media.jitter import Gap, JitterBuffer
from conf_cli.media.rtp_stream import RtpSender
from conf_cli.protocol.rtp import RtpPacket

FRAMES = 30
KEYFRAME_INTERVAL = 10
TICKS_PER_FRAME = 3000  # 30 fps on the 90 kHz clock
SPS = bytes([0x67, 0x42, 0xC0, 0x1F, 0xDA, 0x01, 0x40, 0x16, 0xE8, 0x40])
PPS = bytes([0x68, 0xCE, 0x3C, 0x80])


def nal(header: int, size: int, fill: int = 0xAB) -> bytes:
    return bytes([header]) + bytes([fill]) * (size - 1)


def rtp(payloads: list[bytes], seq: int = 100, timestamp: int = 9000) -> list[RtpPacket]:
    last = len(payloads) - 1
    return [
        RtpPacket(96, (seq + i) & 0xFFFF, timestamp, 1, payload, marker=i == last)
        for i, payload in enumerate(payloads)
    ]


def feed(depacketizer: H264Depacketizer, items: Iterable[RtpPacket | Gap]) -> list[AccessUnit]:
    out: list[AccessUnit] = []
    for item in items:
        out.extend(depacketizer.push(item))
    return out


# --- Annex B ---------------------------------------------------------------------------------------------


def test_split_annexb_three_and_four_byte_start_codes() -> None:
    stream = b"\x00\x00\x00\x01" + SPS + b"\x00\x00\x01" + PPS + b"\x00\x00\x00\x01\x65\x88\x84\x00"
    assert split_annexb(stream) == [SPS, PPS, b"\x65\x88\x84"]
    assert split_annexb(b"junk\x00\x00\x01\x41\x9a") == [b"\x41\x9a"]
    assert split_annexb(b"\x00\x00\x01\x00\x00\x01\x09\xf0") == [b"\x09\xf0"]
    assert split_annexb(b"") == []
    assert split_annexb(b"no start code") == []
    assert join_annexb([SPS, PPS]) == b"\x00\x00\x00\x01" + SPS + b"\x00\x00\x00\x01" + PPS


# --- Packetizer ------------------------------------------------------------------------------------------


def test_stap_a_single_nal_and_fu_a_byte_exact() -> None:
    idr = nal(0x65, 3000)
    slice_ = nal(0x41, 1100)
    payloads = H264Packetizer(mtu=1200).packetize([SPS, PPS, idr, slice_])
    # STAP-A: F=0, NRI = the largest (3), type 24; then 16-bit size + NAL unit for each.
    assert payloads[0] == b"\x78" + b"\x00\x0a" + SPS + b"\x00\x04" + PPS
    # FU-A: indicator keeps F and NRI of the NAL header, type 28; FU header S/E/R + original type (5).
    fragments = payloads[1:4]
    assert [f[:2] for f in fragments] == [b"\x7c\x85", b"\x7c\x05", b"\x7c\x45"]
    assert [len(f) - 2 for f in fragments] == [1000, 1000, 999]  # 2999 bytes spread evenly
    assert b"".join(f[2:] for f in fragments) == idr[1:]
    # Too big to share a STAP-A with anything: a single NAL unit packet, unchanged.
    assert payloads[4] == slice_
    assert len(payloads) == 5


def test_nri_and_forbidden_bit_are_carried() -> None:
    low = nal(0x21, 2000)  # NRI 1, type 1
    payloads = H264Packetizer(mtu=1000).packetize([low])
    assert {p[0] for p in payloads} == {0x3C}
    stap = H264Packetizer(mtu=1000).packetize([b"\x06\x01", b"\xa1\x02"])  # NRI 0 SEI; F=1 NRI 1 slice
    assert stap == [b"\xb8\x00\x02\x06\x01\x00\x02\xa1\x02"]


def test_small_nal_units_fill_stap_a_up_to_the_mtu() -> None:
    units = [nal(0x41, 300, fill=i + 1) for i in range(8)]
    payloads = H264Packetizer(mtu=1000).packetize(units)
    # 1 + 3 * 302 = 907 fits, a fourth would not.
    assert [len(p) for p in payloads] == [907, 907, 1 + 2 * 302]
    assert [n for p in payloads for n in parse_stap_a(p)] == units


def test_nal_unit_exactly_the_mtu_is_not_fragmented() -> None:
    assert H264Packetizer(mtu=500).packetize([nal(0x65, 500)]) == [nal(0x65, 500)]
    assert len(H264Packetizer(mtu=500).packetize([nal(0x65, 501)])) == 2


def test_packetizer_rejects_tiny_mtu() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        H264Packetizer(mtu=2)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x78", "H.264 STAP-A carries no NAL units"),
        (b"\x78\x00", "H.264 STAP-A size field runs past the end of the 2-byte payload"),
        (b"\x78\x00\x00", "H.264 STAP-A holds a NAL unit of size 0"),
        (b"\x78\x00\x05\x67\x42", "H.264 STAP-A NAL unit of 5 bytes runs past the end of the 5-byte payload"),
        (b"\x78\x00\x01\x67\x00", "H.264 STAP-A size field runs past the end of the 5-byte payload"),
    ],
)
def test_malformed_stap_a(payload: bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_stap_a(payload)
    assert str(info.value) == message


nal_bodies = st.binary(min_size=1, max_size=3000).map(lambda b: b.replace(b"\x00", b"\x01"))
nal_units = st.lists(
    st.tuples(st.sampled_from([0x41, 0x01, 0x06, 0x21, 0x65]), nal_bodies).map(
        lambda t: bytes([t[0]]) + t[1]
    ),
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(nal_units, st.integers(3, 1500))
def test_packetize_depacketize_round_trip(units: list[bytes], mtu: int) -> None:
    access_unit = [SPS, PPS, b"\x65\x88", *units]
    payloads = H264Packetizer(mtu=mtu).packetize(access_unit)
    assert all(len(p) <= mtu for p in payloads)
    depacketizer = H264Depacketizer()
    [out] = feed(depacketizer, rtp(payloads))
    assert out.keyframe
    assert out.timestamp == 9000
    assert split_annexb(out.data) == access_unit
    assert not depacketizer.needs_keyframe


# --- Depacketizer on hand-built packets ------------------------------------------------------------------


def keyframe_payloads(mtu: int = 1200) -> list[bytes]:
    return H264Packetizer(mtu).packetize([SPS, PPS, nal(0x65, 3000)])


def test_starts_needing_a_keyframe_and_skips_until_one() -> None:
    depacketizer = H264Depacketizer()
    assert depacketizer.needs_keyframe
    assert feed(depacketizer, rtp([nal(0x41, 50)], seq=1, timestamp=0)) == []
    assert depacketizer.frames_skipped == 1
    [unit] = feed(depacketizer, rtp(keyframe_payloads(), seq=2, timestamp=3000))
    assert unit.keyframe
    assert not depacketizer.needs_keyframe
    [unit] = feed(depacketizer, rtp([nal(0x41, 50)], seq=6, timestamp=6000))
    assert not unit.keyframe
    assert (depacketizer.frames, depacketizer.frames_lost, depacketizer.frames_skipped) == (2, 0, 1)


def test_idr_without_parameter_sets_waits_for_them() -> None:
    depacketizer = H264Depacketizer()
    assert feed(depacketizer, rtp([nal(0x65, 100)], seq=1, timestamp=0)) == []
    assert depacketizer.needs_keyframe
    # Parameter sets known out of band (SDP sprop-parameter-sets) are put in front of the first IDR.
    depacketizer = H264Depacketizer(parameter_sets=[SPS, PPS])
    [unit] = feed(depacketizer, rtp([nal(0x65, 100)], seq=1, timestamp=0))
    assert split_annexb(unit.data) == [SPS, PPS, nal(0x65, 100)]


def test_parameter_sets_from_an_earlier_access_unit_are_reused() -> None:
    depacketizer = H264Depacketizer()
    feed(depacketizer, rtp(keyframe_payloads(), seq=1, timestamp=0))
    # Loss (which also damages the frame after it), then an IDR that comes without SPS/PPS: they are
    # prepended so that a decoder starting afresh can decode it.
    feed(depacketizer, [Gap(10, 1)])
    assert depacketizer.needs_keyframe
    assert feed(depacketizer, rtp([nal(0x41, 100)], seq=11, timestamp=6000)) == []
    [unit] = feed(depacketizer, rtp([nal(0x65, 100)], seq=12, timestamp=9000))
    assert split_annexb(unit.data) == [SPS, PPS, nal(0x65, 100)]


def test_access_unit_ends_on_timestamp_change_without_marker() -> None:
    depacketizer = H264Depacketizer(parameter_sets=[SPS, PPS])
    first = [RtpPacket(96, 1, 0, 1, nal(0x65, 10)), RtpPacket(96, 2, 0, 1, nal(0x65, 10, 0x11))]
    assert feed(depacketizer, first) == []
    [unit] = depacketizer.push(RtpPacket(96, 3, 3000, 1, nal(0x41, 10)))
    assert unit.timestamp == 0
    assert split_annexb(unit.data) == [SPS, PPS, nal(0x65, 10), nal(0x65, 10, 0x11)]


def test_a_packet_can_complete_two_access_units() -> None:
    depacketizer = H264Depacketizer(parameter_sets=[SPS, PPS])
    depacketizer.push(RtpPacket(96, 1, 0, 1, nal(0x65, 10)))
    units = depacketizer.push(RtpPacket(96, 2, 3000, 1, nal(0x41, 10), marker=True))
    assert [u.timestamp for u in units] == [0, 3000]


def test_missing_fu_a_fragment_drops_the_frame() -> None:
    depacketizer = H264Depacketizer()
    packets = rtp(keyframe_payloads(), seq=65534, timestamp=0)  # wraps: 65534, 65535, 0, 1
    assert len(packets) == 4
    del packets[2]
    assert feed(depacketizer, packets) == []
    assert depacketizer.frames_lost == 1
    assert depacketizer.needs_keyframe
    [unit] = feed(depacketizer, rtp(keyframe_payloads(), seq=2, timestamp=3000))
    assert unit.keyframe


def test_loss_sets_needs_keyframe_at_once() -> None:
    depacketizer = H264Depacketizer()
    feed(depacketizer, rtp(keyframe_payloads(), seq=1, timestamp=0))
    assert not depacketizer.needs_keyframe
    packets = rtp(H264Packetizer(1200).packetize([nal(0x41, 5000)]), seq=5, timestamp=3000)
    feed(depacketizer, packets[:2])
    assert not depacketizer.needs_keyframe
    depacketizer.push(packets[3])  # packets[2] is missing
    assert depacketizer.needs_keyframe  # the receiver can send its PLI now, before the frame ends
    assert feed(depacketizer, packets[4:]) == []
    assert depacketizer.frames_lost == 1


def test_lost_marker_packet_drops_the_frame_and_the_next_one() -> None:
    depacketizer = H264Depacketizer()
    feed(depacketizer, rtp(keyframe_payloads(), seq=1, timestamp=0))
    packets = rtp([nal(0x41, 10), nal(0x41, 11)], seq=5, timestamp=3000)
    feed(depacketizer, packets[:1])
    # The marker packet (seq 6) is lost; the next packet opens a new timestamp after a gap.
    assert feed(depacketizer, rtp([nal(0x41, 12)], seq=7, timestamp=6000)) == []
    assert depacketizer.frames_lost == 2
    assert depacketizer.frames_skipped == 0


def test_gap_between_frames_damages_the_next_frame() -> None:
    depacketizer = H264Depacketizer()
    feed(depacketizer, rtp(keyframe_payloads(), seq=1, timestamp=0))
    # Lost packets right after a complete frame may have been the start of the next one.
    assert feed(depacketizer, rtp([nal(0x41, 10), nal(0x41, 11)], seq=9, timestamp=3000)) == []
    assert depacketizer.frames_lost == 1
    assert depacketizer.needs_keyframe


def test_a_keyframe_opening_with_its_sps_right_after_a_gap_is_kept() -> None:
    """Recovery must not wait for a second keyframe: an access unit that starts with SPS is whole."""
    depacketizer = H264Depacketizer()
    feed(depacketizer, rtp(keyframe_payloads(), seq=1, timestamp=0))
    packets = rtp([nal(0x41, 10), nal(0x41, 11)], seq=5, timestamp=3000)
    feed(depacketizer, packets[:1])  # the marker packet (seq 6) is lost
    [unit] = feed(depacketizer, rtp(keyframe_payloads(), seq=7, timestamp=6000))
    assert unit.keyframe and unit.timestamp == 6000
    assert not depacketizer.needs_keyframe
    assert depacketizer.frames_lost == 1


def test_gap_item_from_the_jitter_buffer() -> None:
    depacketizer = H264Depacketizer()
    feed(depacketizer, rtp(keyframe_payloads(), seq=1, timestamp=0))
    packets = rtp([nal(0x41, 10), nal(0x41, 11), nal(0x41, 12)], seq=5, timestamp=3000)
    units = feed(depacketizer, [packets[0], Gap(6, 1), packets[2]])
    assert units == []
    assert depacketizer.frames_lost == 1
    assert depacketizer.needs_keyframe


def test_duplicates_and_stale_packets_are_ignored() -> None:
    depacketizer = H264Depacketizer()
    packets = rtp(keyframe_payloads(), seq=10, timestamp=0)
    items = [packets[0], packets[0], packets[1], packets[0], packets[2], packets[1], packets[3]]
    [unit] = feed(depacketizer, items)
    assert split_annexb(unit.data) == [SPS, PPS, nal(0x65, 3000)]


@pytest.mark.parametrize(
    "payloads",
    [
        [b""],  # empty payload
        [b"\x78\x00\x09\x67"],  # STAP-A overrunning its payload
        [b"\x7c\x05" + b"x" * 10, b"\x7c\x45" + b"y"],  # FU-A without a start fragment
        [b"\x7c\x85" + b"x" * 10, b"\x7c\x85" + b"y"],  # two start fragments
        [b"\x7c\x85" + b"x" * 10, b"\x7c\x41" + b"y"],  # fragments of different NAL types
        [b"\x7c\x85" + b"x" * 10, b"\x41\x9a"],  # FU-A interrupted by another NAL unit
        [b"\x7c\x85" + b"x" * 10],  # FU-A never ended (marker on a middle fragment)
        [b"\x7c"],  # FU-A without its FU header
        [b"\x79\x00\x02\x65\x88"],  # STAP-B, not packetization mode 1
        [b"\x7d\x85\x00\x00" + b"x"],  # FU-B
    ],
)
def test_malformed_payloads_drop_the_frame(payloads: list[bytes]) -> None:
    depacketizer = H264Depacketizer(parameter_sets=[SPS, PPS])
    assert feed(depacketizer, rtp([nal(0x65, 20), *payloads], timestamp=0)) == []
    assert depacketizer.frames_lost == 1
    assert depacketizer.needs_keyframe


def test_reserved_nal_types_are_ignored() -> None:
    depacketizer = H264Depacketizer(parameter_sets=[SPS, PPS])
    [unit] = feed(depacketizer, rtp([b"\x00\x01", nal(0x65, 20), b"\x1e\x02", b"\x1f\x03"]))
    assert split_annexb(unit.data) == [SPS, PPS, nal(0x65, 20)]


def test_access_unit_size_is_bounded() -> None:
    depacketizer = H264Depacketizer(max_access_unit=2000)
    assert feed(depacketizer, rtp(keyframe_payloads(), seq=1, timestamp=0)) == []
    assert depacketizer.frames_lost == 1
    depacketizer = H264Depacketizer(max_access_unit=2000, parameter_sets=[SPS, PPS])
    assert feed(depacketizer, rtp([nal(0x65, 1000)] * 3, seq=1, timestamp=0)) == []
    assert depacketizer.frames_lost == 1
    [unit] = feed(depacketizer, rtp([nal(0x65, 1000)], seq=4, timestamp=3000))
    assert unit.keyframe


# --- Real video: libx264 -> packetize -> RTP -> depacketize -> decode -------------------------------------


@pytest.fixture(scope="module")
def encoded() -> list[bytes]:
    """30 access units of 1280x720 video from libx264 (ultrafast, zerolatency), an IDR every 10 frames."""
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height = 1280, 720
    codec.pix_fmt = "yuv420p"
    codec.time_base = Fraction(1, 30)
    codec.options = {
        "preset": "ultrafast",
        "tune": "zerolatency",
        "x264-params": f"keyint={KEYFRAME_INTERVAL}:min-keyint={KEYFRAME_INTERVAL}:scenecut=0",
    }
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:720, 0:1280]
    units: list[bytes] = []
    for index in range(FRAMES):
        yuv = np.empty((1080, 1280), np.uint8)
        yuv[:720] = (xx + yy + index * 8) % 256
        yuv[720:] = 128
        yuv[100:228, 100 + index * 10 : 228 + index * 10] = rng.integers(0, 256, (128, 128), dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = index
        units.extend(bytes(packet) for packet in codec.encode(frame))
    units.extend(bytes(packet) for packet in codec.encode(None))
    assert len(units) == FRAMES
    return units


def decode(units: Iterable[tuple[int, bytes]]) -> dict[int, str]:
    """Decode (index, Annex-B access unit) pairs; a digest of each picture, by index."""
    codec = av.CodecContext.create("h264", "r")
    pictures: dict[int, str] = {}
    packets: list[av.Packet | None] = []
    for index, data in units:
        packet = av.Packet(data)
        packet.pts = index
        packets.append(packet)
    packets.append(None)  # flush
    for item in packets:
        for frame in codec.decode(item):
            assert frame.pts is not None
            pictures[frame.pts] = hashlib.sha1(frame.to_ndarray().tobytes()).hexdigest()
    return pictures


@pytest.fixture(scope="module")
def reference(encoded: list[bytes]) -> dict[int, str]:
    pictures = decode(enumerate(encoded))
    assert sorted(pictures) == list(range(FRAMES))
    return pictures


def send(encoded: list[bytes], mtu: int = 1200) -> list[list[RtpPacket]]:
    """The RTP packets of each access unit, as they would leave conf and be parsed on arrival."""
    sender = RtpSender(ssrc=0x1234, payload_type=96, clock_rate=90_000, rng=random.Random(3))
    packetizer = H264Packetizer(mtu)
    return [
        [
            RtpPacket.parse(data)
            for data in sender.packetize(
                packetizer.packetize(split_annexb(unit)), index * TICKS_PER_FRAME, marker=True
            )
        ]
        for index, unit in enumerate(encoded)
    ]


def index_of(unit: AccessUnit, first_timestamp: int) -> int:
    return ((unit.timestamp - first_timestamp) & 0xFFFFFFFF) // TICKS_PER_FRAME


def test_real_video_keyframes_are_far_bigger_than_the_mtu(encoded: list[bytes]) -> None:
    nal_types = [[n[0] & 0x1F for n in split_annexb(unit)] for unit in encoded]
    for index, types in enumerate(nal_types):
        assert (5 in types) == (index % KEYFRAME_INTERVAL == 0)
    assert nal_types[0][:2] == [7, 8]
    assert len(encoded[0]) > 20 * 1200


def test_real_video_packets(encoded: list[bytes]) -> None:
    frames = send(encoded)
    for index, packets in enumerate(frames):
        assert all(len(p.payload) <= 1200 for p in packets)
        assert [p.marker for p in packets] == [False] * (len(packets) - 1) + [True]
        assert len({p.timestamp for p in packets}) == 1
        assert any(p.payload[0] & 0x1F == 28 for p in packets)  # FU-A
        if index % KEYFRAME_INTERVAL == 0:
            first = packets[0].payload
            assert first[0] & 0x1F == 24  # STAP-A
            assert [n[0] & 0x1F for n in parse_stap_a(first)][:2] == [7, 8]
    seqs = [p.sequence_number for packets in frames for p in packets]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))


def test_real_video_round_trip_decodes_every_frame(encoded: list[bytes], reference: dict[int, str]) -> None:
    frames = send(encoded)
    depacketizer = H264Depacketizer()
    units = feed(depacketizer, [p for packets in frames for p in packets])
    assert len(units) == FRAMES
    assert units[0].keyframe
    assert [u.keyframe for u in units] == [i % KEYFRAME_INTERVAL == 0 for i in range(FRAMES)]
    for unit, original in zip(units, encoded, strict=True):
        assert split_annexb(unit.data) == split_annexb(original)
    first_ts = frames[0][0].timestamp
    assert decode((index_of(u, first_ts), u.data) for u in units) == reference
    assert (depacketizer.frames, depacketizer.frames_lost, depacketizer.frames_skipped) == (FRAMES, 0, 0)


def test_real_video_lost_fragment_drops_until_next_idr(
    encoded: list[bytes], reference: dict[int, str]
) -> None:
    frames = send(encoded)
    fragments = [i for i, p in enumerate(frames[3]) if p.payload[0] & 0x1F == 28 and not p.payload[1] & 0xC0]
    del frames[3][fragments[0]]  # a middle FU-A fragment of P-frame 3
    depacketizer = H264Depacketizer()
    first_ts = frames[0][0].timestamp
    units: list[AccessUnit] = []
    needs_keyframe_after: dict[int, bool] = {}
    for index, packets in enumerate(frames):
        units.extend(feed(depacketizer, packets))
        needs_keyframe_after[index] = depacketizer.needs_keyframe
    emitted = [index_of(u, first_ts) for u in units]
    assert emitted == [0, 1, 2, *range(10, FRAMES)]
    assert depacketizer.frames_lost == 1
    assert depacketizer.frames_skipped == 6
    assert [needs_keyframe_after[i] for i in range(12)] == [False] * 3 + [True] * 7 + [False] * 2
    decoded = decode((index_of(u, first_ts), u.data) for u in units)
    assert decoded == {i: reference[i] for i in emitted}


def test_real_video_lost_keyframe_fragment(encoded: list[bytes], reference: dict[int, str]) -> None:
    frames = send(encoded)
    del frames[10][len(frames[10]) // 2]
    depacketizer = H264Depacketizer()
    first_ts = frames[0][0].timestamp
    units = feed(depacketizer, [p for packets in frames for p in packets])
    emitted = [index_of(u, first_ts) for u in units]
    assert emitted == [*range(10), *range(20, FRAMES)]
    assert (depacketizer.frames_lost, depacketizer.frames_skipped) == (1, 9)
    assert decode((index_of(u, first_ts), u.data) for u in units) == {i: reference[i] for i in emitted}


def test_real_video_joining_mid_stream(encoded: list[bytes], reference: dict[int, str]) -> None:
    frames = send(encoded)
    depacketizer = H264Depacketizer()
    first_ts = frames[0][0].timestamp
    units = feed(depacketizer, [p for packets in frames[4:] for p in packets])
    assert [index_of(u, first_ts) for u in units] == list(range(10, FRAMES))
    assert units[0].keyframe
    assert depacketizer.frames_skipped == 6


def test_real_video_through_a_jitter_buffer_with_reordering_and_loss(
    encoded: list[bytes], reference: dict[int, str]
) -> None:
    frames = send(encoded)
    first_ts = frames[0][0].timestamp
    lost = frames[15][2].sequence_number
    # Frame i arrives at i/30 s, its packets 0.1 ms apart; every 7th pair swapped; a packet of frame 15 lost.
    arrivals: list[tuple[float, RtpPacket]] = []
    for index, packets in enumerate(frames):
        for n, packet in enumerate(packets):
            if packet.sequence_number != lost:
                arrivals.append((index / 30 + n * 0.0001, packet))
    for i in range(0, len(arrivals) - 1, 7):
        (t1, p1), (t2, p2) = arrivals[i], arrivals[i + 1]
        arrivals[i], arrivals[i + 1] = (t1, p2), (t2, p1)
    buffer = JitterBuffer(clock_rate=90_000, target_delay=0.05)
    depacketizer = H264Depacketizer()
    units: list[AccessUnit] = []
    gaps: list[Gap] = []
    for now, packet in arrivals:
        buffer.push(packet, now)
        for item in buffer.pop(now):
            if isinstance(item, Gap):
                gaps.append(item)
            units.extend(depacketizer.push(item))
    for item in buffer.pop(now + 1):
        units.extend(depacketizer.push(item))
    assert gaps == [Gap(lost, 1)]
    assert buffer.late == 0
    emitted = [index_of(u, first_ts) for u in units]
    assert emitted == [*range(15), *range(20, FRAMES)]
    assert decode((index_of(u, first_ts), u.data) for u in units) == {i: reference[i] for i in emitted}


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 40),  # sequence number step, 1 most of the time
            st.integers(0, 3),  # timestamp step in frames
            st.booleans(),
            st.binary(max_size=40)
            | st.sampled_from([b"\x7c\x85ab", b"\x7c\x05cd", b"\x7c\x45ef", b"\x78\x00\x02\x67\x42"]),
        ),
        max_size=60,
    )
)
def test_arbitrary_packets_never_raise(steps: list[tuple[int, int, bool, bytes]]) -> None:
    depacketizer = H264Depacketizer(max_access_unit=1000, parameter_sets=[SPS, PPS])
    seq, timestamp = 65500, 0
    for seq_step, ts_step, marker, payload in steps:
        seq = (seq + (1 if seq_step > 30 else seq_step)) & 0xFFFF
        timestamp = (timestamp + ts_step * TICKS_PER_FRAME) & 0xFFFFFFFF
        for unit in depacketizer.push(RtpPacket(96, seq, timestamp, 1, payload, marker=marker)):
            assert unit.data.startswith(b"\x00\x00\x00\x01")
            assert len(unit.data) <= 1000 + 4 * 64 + len(SPS) + len(PPS)
