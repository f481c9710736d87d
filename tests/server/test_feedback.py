"""RTCP feedback rules, sans-I/O: NACKs de-duplicated, once per round trip, within a byte budget; resends
only to who asked; feedback rate-limited; RTCP speaking for another's SSRC dropped."""

from __future__ import annotations

import pytest

from conf_cli.protocol.rtcp import (
    Bye,
    Fir,
    Nack,
    Pli,
    ReceiverReport,
    Sdes,
    SenderReport,
    build_compound,
    parse_compound,
)
from conf_cli.protocol.rtp import RtpPacket
from conf_cli.server.feedback import (
    FEEDBACK_BURST,
    MAX_NACK_SEQUENCES,
    PACKET_ESTIMATE,
    RESEND_BURST,
    RESEND_RATE,
    FeedbackStats,
    TokenBucket,
    TrackFeedback,
)
from conf_cli.server.hub import Hub
from tests.helpers.hub import send, three_in_a_meeting
from tests.helpers.links import RecordingLink

VIDEO = 0x1111
AUDIO = 0x2222


pytestmark = pytest.mark.usefixtures("cheap_scrypt")


def rtp(ssrc: int, seq: int, payload: bytes = b"\x65payload") -> bytes:
    return bytes(RtpPacket(96, seq, 1000, ssrc, payload))


def big_budget() -> TokenBucket:
    return TokenBucket(1e12, 1e12)


# -- one track, sans-I/O -----------------------------------------------------------------------------


def test_a_nack_naming_one_packet_many_times_asks_for_it_once() -> None:
    track, stats = TrackFeedback(), FeedbackStats()
    assert track.nack(3, [500] * 400 + [501, 500], 0.0, big_budget(), stats) == [500, 501]
    assert stats.nack_duplicates == 400
    assert stats.nack_asked == 2


def test_a_nack_asks_for_at_most_as_many_packets_as_a_publisher_keeps() -> None:
    track, stats = TrackFeedback(), FeedbackStats()
    asked = track.nack(3, range(5000), 0.0, big_budget(), stats)
    assert len(asked) == MAX_NACK_SEQUENCES


def test_a_requester_asking_again_within_a_round_trip_is_not_heard() -> None:
    track, stats = TrackFeedback(), FeedbackStats()
    budget = big_budget()
    interval = track.interval()
    assert track.nack(3, [7], 0.0, budget, stats) == [7]
    for tick in range(1, 5):  # many NACKs a second for the same packet
        assert track.nack(3, [7], tick * interval / 5, budget, stats) == []
    assert stats.nack_repeats == 4
    assert track.nack(3, [7], interval, budget, stats) == [7]  # a round trip later it may ask again


def test_the_publisher_is_asked_once_per_round_trip_however_many_ask() -> None:
    track, stats = TrackFeedback(), FeedbackStats()
    assert track.nack(3, [9], 0.0, big_budget(), stats) == [9]
    assert track.nack(4, [9], 0.01, big_budget(), stats) == []  # already asked: 4 waits for it too
    assert track.nack(5, [9], 0.02, big_budget(), stats) == []
    assert track.resend(rtp(VIDEO, 9), 0.05, stats) == (3, 4, 5)
    assert track.asked == 0


def test_the_byte_budget_caps_what_one_requester_may_ask_for() -> None:
    track, stats = TrackFeedback(), FeedbackStats()
    budget = TokenBucket(RESEND_RATE, RESEND_BURST)
    per_burst = int(RESEND_BURST // PACKET_ESTIMATE)
    assert len(track.nack(3, range(0, 500), 0.0, budget, stats)) == per_burst
    assert stats.nack_over_budget == 500 - per_burst
    assert track.nack(3, range(1000, 1010), 0.0, budget, stats) == []  # nothing left this instant
    later = track.nack(3, range(2000, 2500), 1.0, budget, stats)  # a second refills RESEND_RATE bytes
    assert len(later) == int(RESEND_RATE // PACKET_ESTIMATE)
    # Another requester has a budget of its own.
    assert len(track.nack(4, range(3000, 3010), 1.0, TokenBucket(RESEND_RATE, RESEND_BURST), stats)) == 10


def test_a_packet_seen_before_goes_only_to_who_asked_and_otherwise_nowhere() -> None:
    track, stats = TrackFeedback(), FeedbackStats()
    assert track.first(rtp(VIDEO, 40))
    assert not track.first(rtp(VIDEO, 40))  # seen: a resend (or a duplicate)
    assert track.resend(rtp(VIDEO, 40), 0.0, stats) == ()  # nobody asked
    assert stats.resends_unrequested == 1
    track.nack(3, [40], 1.0, big_budget(), stats)
    assert track.resend(rtp(VIDEO, 40), 1.02, stats) == (3,)
    assert track.resend(rtp(VIDEO, 40), 1.03, stats) == ()  # asked once, answered once
    assert stats.resends_in == 3 and stats.resends_out == 1


def test_a_request_expires_and_a_first_seen_packet_settles_it() -> None:
    track, stats = TrackFeedback(), FeedbackStats()
    track.nack(3, [50, 51], 0.0, big_budget(), stats)
    assert track.first(rtp(VIDEO, 50))  # the original, late: everyone gets it, the request is settled
    assert track.resend(rtp(VIDEO, 50), 0.1, stats) == ()
    assert track.resend(rtp(VIDEO, 51), 10.0, stats) == ()  # much too late: nobody waits any more


def test_the_round_trip_is_measured_from_the_resends() -> None:
    track, stats = TrackFeedback(), FeedbackStats()
    for seq in range(20):
        track.nack(3, [seq], seq * 1.0, big_budget(), stats)
        track.resend(rtp(VIDEO, seq), seq * 1.0 + 0.3, stats)
    assert track.rtt is not None and abs(track.rtt - 0.3) < 0.01
    assert abs(track.interval() - 0.45) < 0.02


def test_token_bucket() -> None:
    bucket = TokenBucket(10.0, 5.0)
    assert all(bucket.take(1, 0.0) for _ in range(5))
    assert not bucket.take(1, 0.0)
    assert bucket.take(1, 0.1) and not bucket.take(1, 0.1)
    assert not bucket.take(6, 100.0)  # never more than the burst


# -- the hub ---------------------------------------------------------------------------------------------


def publishing() -> Hub:
    """1 publishes video, 2 audio; 3 receives."""
    hub = three_in_a_meeting()
    send(hub, 1, {"type": "publish", "kind": "screen", "ssrc": VIDEO, "codec": "H264"})
    send(hub, 2, {"type": "publish", "kind": "audio", "ssrc": AUDIO, "codec": "opus"})
    return hub


def test_the_hub_passes_a_nack_on_cut_down_and_sends_the_resend_to_the_requester_alone() -> None:
    hub = publishing()
    for seq in range(100, 110):
        assert hub.route_media(1, rtp(VIDEO, seq), 1.0) == (2, 3)
    one = bytes(Nack(0x33, VIDEO, [105]))  # conf's encoder folds repeats: repeat the entry by hand
    flood = one[:2] + (2 + 300).to_bytes(2, "big") + one[4:12] + one[12:16] * 300
    (forward,) = hub.route_rtcp(3, flood, 1.1) or []
    assert forward.to == (1,)
    (nack,) = parse_compound(forward.packet)
    assert isinstance(nack, Nack) and nack.lost == [105] and nack.sender_ssrc == 0x33
    assert hub.stats.nack_duplicates == 299
    assert hub.route_media(1, rtp(VIDEO, 105), 1.2) == (3,)  # the resend: to 3 alone
    assert hub.route_media(1, rtp(VIDEO, 105), 1.3) == ()  # again, unasked: nowhere
    assert hub.route_media(1, rtp(VIDEO, 110), 1.3) == (2, 3)  # new packets reach everyone


def test_feedback_is_rate_limited_per_participant() -> None:
    hub = publishing()
    pli = bytes(Pli(0x33, VIDEO))
    delivered = sum(bool(hub.route_rtcp(3, pli, 5.0)) for _ in range(1000))
    assert delivered == FEEDBACK_BURST
    assert hub.stats.feedback_limited == 1000 - FEEDBACK_BURST
    assert hub.route_rtcp(2, pli, 5.0)  # another participant has its own allowance
    assert hub.route_rtcp(3, pli, 6.0)  # and it refills


def test_feedback_about_ones_own_or_an_unknown_track_goes_nowhere() -> None:
    hub = publishing()
    assert hub.route_rtcp(1, bytes(Pli(0x11, VIDEO)), 1.0) == []
    assert hub.route_rtcp(3, bytes(Nack(0x33, 0x7777, [1])), 1.0) == []
    assert hub.route_rtcp(3, bytes(Fir(0x33, [(0x7777, 1)])), 1.0) == []
    assert hub.stats.feedback_refused == 3
    (forward,) = hub.route_rtcp(3, bytes(Fir(0x33, [(VIDEO, 1), (0x7777, 2)])), 1.0) or []
    assert forward.to == (1,)
    (fir,) = parse_compound(forward.packet)
    assert isinstance(fir, Fir) and fir.entries == [(VIDEO, 1)]


def test_a_sender_report_for_another_participants_track_is_not_forwarded() -> None:
    hub = publishing()
    forged = bytes(SenderReport(VIDEO, 1 << 32, 1000, 10, 1000))
    assert hub.route_rtcp(3, forged, 1.0) == []  # 3 publishes nothing
    assert hub.route_rtcp(2, forged, 1.0) == []  # 2 publishes, but not VIDEO
    assert hub.stats.rtcp_forged == 2
    (own,) = hub.route_rtcp(1, forged, 1.0) or []
    assert own.to == (2, 3) and own.packet == forged  # the owner's, unchanged
    # Nor a receiver report, SDES or BYE in the name of someone else's track.
    for packet in (ReceiverReport(VIDEO), Sdes.for_cname(VIDEO, "mallory"), Bye([VIDEO])):
        assert hub.route_rtcp(3, bytes(packet), 1.0) == []
    assert hub.stats.rtcp_forged == 5
    receiver_report = bytes(ReceiverReport(0x33))  # 3's own (random, unpublished) SSRC
    assert [f.to for f in hub.route_rtcp(3, receiver_report, 1.0) or []] == [(1, 2)]


def test_a_compound_packet_is_split_feedback_to_publishers_reports_to_the_audience() -> None:
    hub = publishing()
    for seq in range(10):
        hub.route_media(1, rtp(VIDEO, seq), 1.0)
    compound = build_compound(
        [
            ReceiverReport(0x33),
            Nack(0x33, VIDEO, [3, 4]),
            Pli(0x33, AUDIO),
            SenderReport(VIDEO, 1 << 32, 1, 1, 1),  # forged: dropped
        ]
    )
    forwards = {f.to: parse_compound(f.packet) for f in hub.route_rtcp(3, compound, 1.1) or []}
    assert [type(p) for p in forwards[(1, 2)]] == [ReceiverReport]
    assert [type(p) for p in forwards[(1,)]] == [Nack]
    assert [type(p) for p in forwards[(2,)]] == [Pli]


def test_the_forwarder_sends_a_resend_to_the_requester_alone_on_its_own_link() -> None:
    from conf_cli.server.forwarding import Forwarder

    class Fanout:
        """A listener's one-send-for-all (as a publish/subscribe fan-out would: it reaches everyone)."""

        def __init__(self) -> None:
            self.packets: list[bytes] = []

        def forward_media(self, packet: bytes, links: list[RecordingLink]) -> int:
            self.packets.append(packet)
            return sum(link.send_media(packet) for link in links)

    hub = publishing()
    fanout = Fanout()
    links: dict[int, RecordingLink] = {cid: RecordingLink(cid) for cid in (1, 2, 3)}
    for link in links.values():
        link.listener = fanout  # type: ignore[assignment]
    forwarder = Forwarder(hub, links)  # type: ignore[arg-type]
    for seq in range(20):
        assert forwarder.media(links[1], rtp(VIDEO, seq), 1.0)
    assert len(links[2].got) == len(links[3].got) == 20
    nack = bytes(Nack(0x33, VIDEO, [5, 6]))
    assert forwarder.media(links[3], nack, 1.1)
    assert [parse_compound(p)[0] for p in links[1].got] == [Nack(0x33, VIDEO, [5, 6])]
    for _ in range(50):  # a publisher made to resend 5 and 6 many times over
        forwarder.media(links[1], rtp(VIDEO, 5), 1.2)
        forwarder.media(links[1], rtp(VIDEO, 6), 1.2)
    assert len(links[2].got) == 20  # nothing more for who did not ask
    assert links[3].got[20:] == [rtp(VIDEO, 5), rtp(VIDEO, 6)]  # each once for who did
    assert len(fanout.packets) == 20 + 1  # the originals and the NACK; resends went link by link
