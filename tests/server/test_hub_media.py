"""The forwarding rules: who receives a media packet, and what the server asks publishers for."""

from __future__ import annotations

import pytest

from conf_cli.protocol.rtcp import Nack, Pli, ReceiverReport, SenderReport, build_compound, parse_compound
from conf_cli.protocol.rtp import RtpPacket
from conf_cli.server.hub import Forward
from conf_cli.server.meeting import Send
from tests.helpers.hub import MID_A, create, join, make_hub, send, three_in_a_meeting
from tests.helpers.links import RecordingLink

VIDEO_SSRC = 0x1111
AUDIO_SSRC = 0x2222


pytestmark = pytest.mark.usefixtures("cheap_scrypt")


def rtp(ssrc: int, seq: int = 1) -> bytes:
    return bytes(RtpPacket(96, seq, 1000, ssrc, b"\x65payload"))


def publishing_meeting():  # type: ignore[no-untyped-def]
    hub = three_in_a_meeting()
    send(hub, 1, {"type": "publish", "kind": "screen", "ssrc": VIDEO_SSRC, "codec": "H264"})
    send(hub, 2, {"type": "publish", "kind": "audio", "ssrc": AUDIO_SSRC, "codec": "opus"})
    return hub


def test_publish_announces_a_track_to_everyone() -> None:
    hub = three_in_a_meeting()
    actions = send(hub, 1, {"type": "publish", "kind": "screen", "ssrc": VIDEO_SSRC, "codec": "H264"})
    started = {"type": "share_started", "name": "Ada", "kind": "screen", "ssrc": VIDEO_SSRC, "codec": "H264"}
    assert actions == [Send((1, 2, 3), started)]
    assert hub.meetings[MID_A].snapshot()["tracks"] == [{k: v for k, v in started.items() if k != "type"}]


def test_rtp_goes_to_everyone_but_the_publisher() -> None:
    hub = publishing_meeting()
    assert hub.route_media(1, rtp(VIDEO_SSRC), 1.0) == (2, 3)
    assert hub.route_media(2, rtp(AUDIO_SSRC), 1.0) == (1, 3)


def test_a_stolen_or_unknown_ssrc_is_dropped_and_counted() -> None:
    hub = publishing_meeting()
    assert hub.route_media(3, rtp(VIDEO_SSRC), 1.0) == ()  # Cy sends as Ada's track
    assert hub.route_media(1, rtp(0x9999), 1.0) == ()
    assert hub.stats.media_refused == 2


def test_media_from_an_unknown_or_ungreeted_connection_closes_it() -> None:
    hub = publishing_meeting()
    assert hub.route_media(42, rtp(VIDEO_SSRC), 1.0) is None
    hub.connected(7, 0.0)
    assert hub.route_media(7, rtp(VIDEO_SSRC), 1.0) is None


def test_media_outside_a_meeting_goes_nowhere() -> None:
    hub = make_hub()
    create(hub, 1, "Ada")
    hub.connected(5, 0.0)
    send(hub, 5, {"type": "hello", "protocol": 1})
    assert hub.route_media(5, rtp(1), 1.0) == ()


def test_truncated_packets_are_dropped() -> None:
    hub = publishing_meeting()
    assert hub.route_media(1, b"\x80\x60\x00", 1.0) == ()
    assert hub.route_media(1, rtp(VIDEO_SSRC)[:10], 1.0) == ()
    garbage_rtcp = b"\x81\xc9\xff\xff" + bytes(8)  # RR claiming far more words than it has
    assert hub.route_media(1, garbage_rtcp, 1.0) == ()
    assert hub.stats.media_malformed == 2


def test_rtp_whose_header_runs_past_its_end_is_not_forwarded() -> None:
    """The publisher's own SSRC, but a CSRC count or extension length that the packet cannot hold."""
    hub = publishing_meeting()
    good = rtp(VIDEO_SSRC)
    fifteen_csrcs = bytes((good[0] | 0x0F,)) + good[1:]
    long_extension = bytes((good[0] | 0x10,)) + good[1:12] + b"\xbe\xde\xff\xff" + good[12:]
    assert hub.route_media(1, fifteen_csrcs, 1.0) == ()
    assert hub.route_media(1, long_extension, 1.0) == ()
    assert hub.stats.media_malformed == 2
    assert hub.route_media(1, good, 1.0) == (2, 3)


def test_forwarder_drops_malformed_rtp_before_its_cache_and_reports_the_sender() -> None:
    from conf_cli.server.forwarding import Forwarder

    hub = publishing_meeting()
    links: dict[int, RecordingLink] = {cid: RecordingLink(cid) for cid in (1, 2, 3)}
    reports: list[tuple[str, str]] = []
    forwarder = Forwarder(hub, links, lambda link, what: reports.append((link.peer, what)))
    good = rtp(VIDEO_SSRC)
    assert forwarder.media(links[1], good, 1.0)  # the route is cached now
    bad = bytes((good[0] | 0x0F,)) + good[1:]
    assert forwarder.media(links[1], bad, 1.0)
    assert forwarder.media(links[1], b"\x81\xc9\xff\xff" + bytes(8), 1.0)  # RTCP past its end
    assert [r.got for r in links.values()] == [[], [good], [good]]
    assert reports == [
        ("peer1", "RTP header runs past the end of the packet"),
        ("peer1", "malformed RTP or RTCP"),
    ]
    assert hub.stats.media_malformed == 2


def test_feedback_goes_to_the_publisher_only() -> None:
    hub = publishing_meeting()
    assert hub.route_media(3, bytes(Pli(0x33, VIDEO_SSRC)), 1.0) == (1,)
    assert hub.route_media(3, bytes(Nack(0x33, AUDIO_SSRC, [5, 6])), 1.0) == (2,)
    assert hub.route_media(3, bytes(Pli(0x33, 0x7777)), 1.0) == ()


def test_sender_reports_go_to_the_audience() -> None:
    hub = publishing_meeting()
    report = build_compound([SenderReport(VIDEO_SSRC, 1 << 32, 1000, 10, 1000, [])])
    assert sorted(hub.route_media(1, report, 1.0) or ()) == [2, 3]
    receiver_report = build_compound([ReceiverReport(0x33, [])])
    assert sorted(hub.route_media(3, receiver_report, 1.0) or ()) == [1, 2]


def test_a_joiner_triggers_a_keyframe_request_to_each_video_publisher() -> None:
    hub = publishing_meeting()
    actions = join(hub, 4, MID_A, "Dee")
    forwards = [a for a in actions if isinstance(a, Forward)]
    assert len(forwards) == 1 and forwards[0].to == (1,)
    (pli,) = parse_compound(forwards[0].packet)
    assert isinstance(pli, Pli) and pli.media_ssrc == VIDEO_SSRC
    assert hub.route_media(1, rtp(VIDEO_SSRC), 2.0) == (2, 3, 4)


def test_forbid_stops_a_live_share_and_its_packets() -> None:
    hub = three_in_a_meeting()
    send(hub, 2, {"type": "publish", "kind": "video", "ssrc": 0x5555, "codec": "H264"})
    assert hub.route_media(2, rtp(0x5555), 1.0) == (1, 3)
    actions = send(hub, 1, {"type": "forbid", "what": "video"})
    stopped = [a.message for a in actions if isinstance(a, Send) and a.message["type"] == "share_stopped"]
    assert stopped == [
        {
            "type": "share_stopped",
            "name": "Bob",
            "kind": "video",
            "ssrc": 0x5555,
            "codec": "H264",
            "reason": "forbidden",
        }
    ]
    assert hub.route_media(2, rtp(0x5555), 1.0) == ()
    refused = send(hub, 2, {"type": "publish", "kind": "video", "ssrc": 0x5555, "codec": "H264"})
    assert refused[0].message["code"] == "forbidden"  # type: ignore[union-attr]


def test_leaving_ends_tracks_and_unpublish_needs_a_track() -> None:
    hub = publishing_meeting()
    actions = send(hub, 2, {"type": "leave"})
    kinds = [a.message["type"] for a in actions if isinstance(a, Send)]
    assert kinds == ["left", "share_stopped", "participant_left"]
    assert AUDIO_SSRC not in hub.meetings[MID_A].tracks
    refused = send(hub, 3, {"type": "unpublish", "kind": "audio"})
    assert refused[0].message["code"] == "bad_request"  # type: ignore[union-attr]


def test_an_ssrc_cannot_be_taken_over_by_another_participant() -> None:
    hub = publishing_meeting()
    refused = send(hub, 3, {"type": "publish", "kind": "screen", "ssrc": VIDEO_SSRC, "codec": "H264"})
    assert refused[0].message["code"] == "bad_request"  # type: ignore[union-attr]


def test_a_new_track_of_the_same_kind_replaces_the_old() -> None:
    hub = publishing_meeting()
    actions = send(hub, 1, {"type": "publish", "kind": "screen", "ssrc": 0x4444, "codec": "H264"})
    assert [a.message["type"] for a in actions if isinstance(a, Send)] == ["share_stopped", "share_started"]
    assert hub.route_media(1, rtp(VIDEO_SSRC), 1.0) == ()
    assert hub.route_media(1, rtp(0x4444), 1.0) == (2, 3)
