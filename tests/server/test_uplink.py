"""The server's RFC 8888 reports on a publisher's packets: arrivals, losses, bounds, the hub's wiring."""

from __future__ import annotations

from conf_cli.protocol.rtcp import CcfbBlock, CongestionFeedback, parse_compound
from conf_cli.protocol.rtp import RtpPacket
from conf_cli.server.uplink import MAX_REPORTED, REPORT_INTERVAL, UplinkFeedback


def rtp(seq: int, ssrc: int = 7) -> bytes:
    return bytes(
        RtpPacket(payload_type=96, sequence_number=seq & 0xFFFF, timestamp=0, ssrc=ssrc, payload=b"x")
    )


def report(data: bytes | None) -> CongestionFeedback:
    assert data is not None
    (part,) = parse_compound(data)
    assert isinstance(part, CongestionFeedback)
    return part


def test_arrivals_and_gaps_are_reported_once_the_interval_passes() -> None:
    uplink = UplinkFeedback(7)
    assert uplink.arrived(rtp(65534), 10.0) is None  # the first packet starts the interval
    assert uplink.arrived(rtp(65535), 10.01) is None
    assert uplink.arrived(rtp(1), 10.02) is None  # 0 is missing (the sequence number wrapped)
    part = report(uplink.arrived(rtp(2), 10.0 + REPORT_INTERVAL))
    assert part.report_timestamp == int((10.0 + REPORT_INTERVAL) * 65536) & 0xFFFFFFFF
    (block,) = part.blocks
    assert block.ssrc == 7
    arrivals = block.arrivals()
    assert [seq for seq, _ in arrivals] == [65534, 65535, 0, 1, 2]
    assert arrivals[2][1] is None
    offsets = [offset for _, offset in arrivals if offset is not None]
    assert offsets == [round((10.0 + REPORT_INTERVAL - t) * 1024) for t in (10.0, 10.01, 10.02, 10.05)]
    # the next report starts after the last one; a late packet already reported lost is not reported
    assert uplink.arrived(rtp(0), 10.06) is None
    part = report(uplink.arrived(rtp(3), 10.0 + 2 * REPORT_INTERVAL + 0.01))
    assert [seq for seq, _ in part.blocks[0].arrivals()] == [3]


def test_a_report_is_sent_early_when_many_packets_wait() -> None:
    uplink = UplinkFeedback(7)
    sent = [uplink.arrived(rtp(seq), 1.0) for seq in range(MAX_REPORTED + 1)]
    reports = [s for s in sent if s is not None]
    assert len(reports) == 1
    assert len(report(reports[0]).blocks[0].metrics) == MAX_REPORTED


def test_a_jump_in_sequence_numbers_starts_afresh_and_every_report_stays_small() -> None:
    uplink = UplinkFeedback(7)
    uplink.arrived(rtp(100), 1.0)
    part = report(uplink.arrived(rtp(30_000), 1.01))
    assert len(part.blocks[0].metrics) == 1  # only 100, not the 29,900 between
    part = report(uplink.arrived(rtp(30_001), 1.1))
    assert [seq for seq, _ in part.blocks[0].arrivals()] == [30_000, 30_001]
    # a hostile publisher skipping sequence numbers gets reports of at most MAX_REPORTED packets
    sizes = [len(r) for seq in range(0, 60_000, 255) if (r := uplink.arrived(rtp(seq), 2.0)) is not None]
    assert sizes and max(sizes) <= 12 + 8 + 2 * MAX_REPORTED + 4


def test_the_forwarder_reports_arrivals_to_a_publisher_that_asked_and_to_no_one_else() -> None:
    import pytest

    from conf_cli.errors import ProtocolError
    from conf_cli.protocol.control import decode_client_message
    from conf_cli.server.forwarding import Forwarder
    from tests.helpers.hub import send, three_in_a_meeting
    from tests.helpers.links import RecordingLink

    hub = three_in_a_meeting()
    send(hub, 1, {"type": "publish", "kind": "video", "ssrc": 7, "codec": "H264", "feedback": "ccfb"})
    send(hub, 2, {"type": "publish", "kind": "audio", "ssrc": 8, "codec": "opus"})
    links = {cid: RecordingLink(cid) for cid in (1, 2, 3)}
    forwarder = Forwarder(hub, links)
    for i in range(10):  # the first takes the hub's path, the rest the cached route; 5 is lost
        if i != 5:
            assert forwarder.media(links[1], rtp(100 + i), 1.0 + i * 0.01)
        assert forwarder.media(links[2], rtp(200 + i, ssrc=8), 1.0 + i * 0.01)
    assert forwarder.media(links[1], rtp(110), 1.2)
    reports = [report(p) for p in links[1].got if p[1] == 205]
    assert len(reports) == 2  # one when 50 ms had passed, one at the last packet
    arrivals = [a for r in reports for block in r.blocks if block.ssrc == 7 for a in block.arrivals()]
    assert [seq for seq, _ in arrivals] == list(range(100, 111))  # each packet reported once, in order
    assert [seq for seq, offset in arrivals if offset is None] == [105]
    assert not [p for cid in (2, 3) for p in links[cid].got if p[1] == 205]  # nobody else hears of it
    # only the feedback conf knows can be asked for
    with pytest.raises(ProtocolError, match="feedback must be one of ccfb"):
        decode_client_message(b'{"type":"publish","kind":"video","ssrc":1,"codec":"H264","feedback":"twcc"}')


def test_a_participant_cannot_send_congestion_feedback_about_someone_elses_track() -> None:
    from tests.helpers.hub import send, three_in_a_meeting

    hub = three_in_a_meeting()
    send(hub, 1, {"type": "publish", "kind": "video", "ssrc": 7, "codec": "H264", "feedback": "ccfb"})
    forged = bytes(CongestionFeedback(0x33, [CcfbBlock.received(7, 0, [None] * 50)], 0))
    assert hub.route_media(3, forged, 1.0) == ()
    assert hub.stats.rtcp_forged == 1


def test_one_report_covers_every_simulcast_layer_within_the_same_bound() -> None:
    uplink = UplinkFeedback(7, (5, 6))
    assert uplink.arrived(rtp(10, ssrc=5), 1.0) is None
    assert uplink.arrived(rtp(500, ssrc=6), 1.01) is None
    assert uplink.arrived(rtp(11, ssrc=5), 1.02) is None
    assert uplink.arrived(rtp(99, ssrc=9), 1.03) is None  # not one of the track's SSRCs: ignored
    part = report(uplink.arrived(rtp(40, ssrc=7), 1.0 + REPORT_INTERVAL))
    got = {block.ssrc: [seq for seq, _ in block.arrivals()] for block in part.blocks}
    assert got == {5: [10, 11], 6: [500], 7: [40]}
    # many packets of one layer: the report goes early, and all layers together stay within the bound
    sizes = [
        len(r)
        for seq in range(1000)
        for ssrc in (5, 6, 7)
        if (r := uplink.arrived(rtp(seq * 3 + ssrc, ssrc=ssrc), 2.0)) is not None
    ]
    assert sizes and max(sizes) <= 12 + 3 * 8 + 2 * MAX_REPORTED + 4


def test_the_server_reports_the_arrivals_of_every_layer_of_a_simulcast_track() -> None:
    from conf_cli.server.forwarding import Forwarder
    from tests.helpers.hub import send, three_in_a_meeting
    from tests.helpers.links import RecordingLink

    hub = three_in_a_meeting()
    layers = [
        {"ssrc": 5, "width": 320, "height": 180, "bitrate": 150_000},
        {"ssrc": 6, "width": 640, "height": 360, "bitrate": 500_000},
        {"ssrc": 7, "width": 1280, "height": 720, "bitrate": 1_500_000},
    ]
    publish = {"type": "publish", "kind": "video", "ssrc": 7, "codec": "H264", "feedback": "ccfb"}
    send(hub, 1, {**publish, "layers": layers})
    links = {cid: RecordingLink(cid) for cid in (1, 2, 3)}
    forwarder = Forwarder(hub, links)
    for i in range(10):  # the hub's path, then the cached routes
        for ssrc in (5, 6, 7):
            assert forwarder.media(links[1], rtp(100 + i, ssrc=ssrc), 1.0 + i * 0.01)
    assert forwarder.media(links[1], rtp(110, ssrc=7), 1.2)
    reports = [report(p) for p in links[1].got if p[1] == 205]
    seen: dict[int, list[int]] = {}
    for r in reports:
        for block in r.blocks:
            seen.setdefault(block.ssrc, []).extend(seq for seq, _ in block.arrivals())
    assert seen == {5: list(range(100, 110)), 6: list(range(100, 110)), 7: list(range(100, 111))}
