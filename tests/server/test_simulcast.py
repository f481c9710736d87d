"""Simulcast in the server: the layer selector, the downlink estimate, SSRC/sequence/timestamp rewriting
across switches, dynacast decisions, and the hub routing a simulcast track per subscriber."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conf_cli.protocol.control import PROTOCOL_VERSION, encode
from conf_cli.protocol.rtcp import Nack, Pli, ReceiverReport, ReportBlock, build_compound, parse_compound
from conf_cli.protocol.rtp import RtpPacket
from conf_cli.server import passcode as passcode_module
from conf_cli.server.forwarding import Forwarder
from conf_cli.server.hub import Action, Deferred, Forward, Hub, Send
from conf_cli.server.simulcast import (
    HOLD,
    KEYFRAME_RETRY,
    UP_MARGIN,
    Downlink,
    LastPacket,
    Layer,
    Rewriter,
    Subscription,
    needed,
    pick,
)

LAYERS = (
    Layer(0xA0, 320, 180, 120_000),
    Layer(0xA1, 640, 360, 400_000),
    Layer(0xA2, 1280, 720, 1_200_000),
)
IDR = b"\x65idr"  # an IDR slice: a keyframe starts here
SLICE = b"\x41p"  # a P slice


# -- the layer selector ----------------------------------------------------------------------------------


def test_no_budget_gets_the_highest_layer() -> None:
    assert pick(LAYERS, None, None) == 2


@pytest.mark.parametrize(
    ("budget", "layer"), [(50_000, 0), (120_000, 0), (300_000, 0), (400_000, 1), (1_199_999, 1), (2e6, 2)]
)
def test_the_best_layer_within_the_budget(budget: float, layer: int) -> None:
    assert pick(LAYERS, budget, None) == layer


def test_a_view_of_few_lines_gets_the_layer_that_fits_it() -> None:
    assert pick(LAYERS, None, None, max_height=180) == 0  # the terminal preview
    assert pick(LAYERS, None, None, max_height=400) == 1
    assert pick(LAYERS, None, None, max_height=100) == 0  # nothing fits: the lowest
    assert pick(LAYERS, 150_000, None, max_height=720) == 0  # the budget still counts


def test_climbing_needs_a_margin_above_the_layer_but_staying_does_not() -> None:
    # On the middle layer, 1.2 Mbit/s is not enough to climb (hysteresis) ...
    assert pick(LAYERS, 1_200_000, 1) == 1
    assert pick(LAYERS, 1_200_000 * UP_MARGIN, 1) == 2
    # ... but a subscriber already on the highest layer keeps it at exactly its rate.
    assert pick(LAYERS, 1_200_000, 2) == 2
    assert pick(LAYERS, 1_199_999, 2) == 1


# -- the downlink estimate -------------------------------------------------------------------------------


def test_loss_lowers_the_estimate_to_what_got_through() -> None:
    downlink = Downlink()
    assert downlink.estimate is None
    assert downlink.report(0.5, 1_200_000, 10.0)
    assert downlink.estimate == pytest.approx(1_200_000 * 0.5 * 0.85)
    assert pick(LAYERS, downlink.estimate, 2) == 1


def test_the_estimate_grows_only_after_the_hold_time_on_clean_reports() -> None:
    downlink = Downlink()
    downlink.report(0.5, 800_000, 0.0)
    low = downlink.estimate
    assert not downlink.report(0.0, 400_000, HOLD / 2)  # too soon after the drop
    assert downlink.estimate == low
    assert downlink.report(0.0, 400_000, HOLD + 0.1)
    assert downlink.estimate is not None and low is not None and downlink.estimate > low


def test_loss_between_the_thresholds_changes_nothing() -> None:
    downlink = Downlink()
    downlink.report(0.5, 800_000, 0.0)
    before = downlink.estimate
    assert not downlink.report(0.05, 400_000, 100.0)
    assert downlink.estimate == before


# -- rewriting -------------------------------------------------------------------------------------------


def packet(ssrc: int, seq: int, ts: int, payload: bytes = SLICE) -> bytes:
    return bytes(RtpPacket(96, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc, payload))


def picture_end(ssrc: int, seq: int, ts: int, payload: bytes = SLICE) -> bytes:
    """The last packet of a picture (its marker bit set)."""
    return bytes(RtpPacket(96, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc, payload, marker=True))


def header(data: bytes) -> tuple[int, int, int]:
    return data[2] << 8 | data[3], int.from_bytes(data[4:8], "big"), int.from_bytes(data[8:12], "big")


def test_a_subscriber_on_the_tracks_own_layer_gets_packets_unchanged() -> None:
    rewriter = Rewriter(0xA2)
    rewriter.switch(packet(0xA2, 100, 5000, IDR), 0.0, None)
    assert rewriter.identity


def test_a_lower_layer_goes_out_under_the_tracks_ssrc_with_the_payload_untouched() -> None:
    rewriter = Rewriter(0xA2)
    first = packet(0xA0, 7, 900, IDR)
    rewriter.switch(first, 0.0, None)
    assert not rewriter.identity
    out = rewriter.rewrite(first)
    assert out is not None and header(out) == (7, 900, 0xA2) and out[12:] == first[12:]


def test_a_packet_from_before_the_switch_point_is_dropped() -> None:
    rewriter = Rewriter(0xA2)
    rewriter.switch(packet(0xA0, 7, 900, IDR), 0.0, None)
    assert rewriter.rewrite(packet(0xA0, 6, 900)) is None


# Each step: the layer (0..2) the subscriber is on for a run of packets, and how many packets.
runs = st.lists(st.tuples(st.integers(0, 2), st.integers(1, 40)), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(runs, st.lists(st.integers(0, 0xFFFF), min_size=3, max_size=3), st.integers(0, 0xFFFFFFFF))
def test_sequence_numbers_run_on_without_a_gap_or_a_repeat_across_switches(
    steps: list[tuple[int, int]], starts: list[int], ts_start: int
) -> None:
    """Whatever layer the subscriber is moved to, and wherever each layer's numbers start and wrap, what
    it receives is one stream: every sequence number one more than the last, timestamps never going
    back, one SSRC."""
    rewriter = Rewriter(0xA2)
    next_seq = list(starts)
    next_ts = [ts_start, ts_start + 12345, ts_start + 999_999]
    last = [LastPacket() for _ in range(3)]
    received: list[tuple[int, int, int]] = []
    now = 0.0
    current: int | None = None
    for layer, count in steps:
        for i in range(count):
            now += 1 / 30
            # Every layer keeps sending meanwhile (the router notes each one's newest packet); the
            # subscriber gets only its own.
            for other in range(3):
                next_seq[other] += 1
                next_ts[other] += 3000
                if other != layer:
                    meanwhile = packet(LAYERS[other].ssrc, next_seq[other], next_ts[other])
                    last[other].note(meanwhile, now)
                    if other == current:  # it comes before the new layer's keyframe: still received
                        out = rewriter.rewrite(meanwhile)
                        assert out is not None
                        received.append(header(out))
            data = packet(LAYERS[layer].ssrc, next_seq[layer], next_ts[layer], IDR if i == 0 else SLICE)
            if layer != current:
                old = None if current is None else last[current]
                ending = None
                if old is not None and old.seq is not None:
                    ending = (*rewriter.out(old.seq, old.ts), old.at)
                rewriter.switch(data, now, ending)
                current = layer
            last[layer].note(data, now)
            out = rewriter.rewrite(data)
            assert out is not None
            received.append(header(out))
    assert {ssrc for _, _, ssrc in received} == {0xA2}
    for (seq_a, ts_a, _), (seq_b, ts_b, _) in itertools.pairwise(received):
        assert seq_b == (seq_a + 1) & 0xFFFF
        assert 0 < (ts_b - ts_a) & 0xFFFFFFFF < 0x80000000


def test_a_nack_maps_back_to_the_layers_own_numbers() -> None:
    rewriter = Rewriter(0xA2)
    rewriter.switch(packet(0xA2, 500, 0, IDR), 0.0, None)
    rewriter.switch(packet(0xA0, 40_000, 77, IDR), 0.2, (510, 3000, 0.1))
    out = rewriter.rewrite(packet(0xA0, 40_005, 77))
    assert out is not None
    assert rewriter.original(header(out)[0]) == 40_005


# -- dynacast --------------------------------------------------------------------------------------------


def subscription(current: int | None, target: int) -> Subscription:
    sub = Subscription(0xA2, target)
    sub.current = current
    return sub


def test_dynacast_keeps_only_the_layers_someone_receives_or_switches_to() -> None:
    assert needed(LAYERS, [subscription(0, 0), subscription(0, 0)]) == {0}
    assert needed(LAYERS, [subscription(2, 0), subscription(0, 0)]) == {0, 2}  # one still switching
    assert needed(LAYERS, [subscription(None, 1)]) == {1}


def test_dynacast_keeps_every_layer_while_nobody_subscribes() -> None:
    assert needed(LAYERS, []) == {0, 1, 2}


# -- the hub ---------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passcode_module, "_SCRYPT", {"n": 2, "r": 1, "p": 1})


def ask(hub: Hub, cid: int, message: dict[str, Any], now: float = 0.0) -> list[Action]:
    pending, done = hub.received(cid, encode(message), now), []
    while pending:
        action = pending.pop(0)
        if isinstance(action, Deferred):
            pending += action.resume(action.work(), now)
        else:
            done.append(action)
    return done


def simulcast_meeting() -> tuple[Hub, list[Action]]:
    """Ada (1) publishes LAYERS; Bob (2) and Cy (3) joined; Cy asks for at most 300 kbit/s."""
    hub = Hub()
    hub.connected(1, 0.0, "10.0.0.1:5000")
    ask(hub, 1, {"type": "hello", "protocol": PROTOCOL_VERSION})
    created = ask(hub, 1, {"type": "create", "name": "Ada", "passcode": "pw-1234"})
    meeting = created[0].message["meeting"]  # type: ignore[union-attr]
    for cid, name in ((2, "Bob"), (3, "Cy")):
        hub.connected(cid, 0.0, f"10.0.0.{cid}:5000")
        ask(hub, cid, {"type": "hello", "protocol": PROTOCOL_VERSION})
        ask(hub, cid, {"type": "join", "meeting": meeting, "name": name, "passcode": "pw-1234"})
    layers = [layer.describe() for layer in LAYERS]
    ask(hub, 1, {"type": "publish", "kind": "video", "ssrc": 0xA2, "codec": "H264", "layers": layers})
    actions = ask(hub, 3, {"type": "receive", "max_bitrate": 300_000})
    return hub, actions


def plis(actions: list[Action]) -> set[int]:
    found = set()
    for action in actions:
        if isinstance(action, Forward):
            for part in parse_compound(action.packet):
                if isinstance(part, Pli):
                    found.add(part.media_ssrc)
    return found


def test_a_capped_subscriber_gets_the_low_layer_under_the_tracks_ssrc_at_its_keyframe() -> None:
    hub, actions = simulcast_meeting()
    assert 0xA0 in plis(actions)  # the low layer's keyframe is asked for
    # Before a keyframe of the low layer, Cy gets nothing of it; Bob gets the high layer unchanged.
    assert hub.route(1, packet(0xA0, 10, 100), 1.0).to == ()
    high = hub.route(1, packet(0xA2, 50, 9000, IDR), 1.0)
    assert high.to == (2,) and high.rewrites == ()
    routed = hub.route(1, packet(0xA0, 11, 200, IDR), 1.1)
    assert routed.to == () and [cids for _, cids in routed.rewrites] == [(3,)]
    out = routed.rewrites[0][0].rewrite(packet(0xA0, 11, 200, IDR))
    assert out is not None and header(out)[2] == 0xA2
    assert hub.stats.layer_switches == 2
    # Settled: the routes may be cached again.
    assert hub.route(1, packet(0xA0, 12, 300), 1.2).cacheable


def test_dynacast_pauses_the_middle_layer_nobody_receives() -> None:
    _, actions = simulcast_meeting()
    sent = [a.message for a in actions if isinstance(a, Send) and a.message["type"] == "layers_active"]
    assert sent and sent[-1]["ssrc"] == 0xA2
    assert set(sent[-1]["active"]) == {0xA0, 0xA2}
    assert all(a.to == (1,) for a in actions if isinstance(a, Send) and a.message["type"] == "layers_active")


def test_nobody_on_the_high_layer_pauses_it() -> None:
    hub, _ = simulcast_meeting()
    hub.route(1, packet(0xA2, 1, 0, IDR), 0.5)  # Bob on the high layer
    actions = ask(hub, 2, {"type": "receive", "max_bitrate": 150_000}, 0.6)
    # Bob still receives the high layer until the low one's keyframe: both are needed until then.
    sent = [a.message for a in actions if isinstance(a, Send) and a.message["type"] == "layers_active"]
    assert sent == [] or set(sent[-1]["active"]) == {0xA0, 0xA2}
    # A keyframe of the low layer before any high-layer packet since the ask: Bob's stream could not go on
    # from where it stands, so he waits for the next one.
    hub.route(1, packet(0xA0, 1, 0, IDR), 0.7)
    sub = hub.layers.subscription(0xA2, 2)
    assert sub is not None and sub.current == 2
    hub.route(1, packet(0xA2, 2, 3000), 0.8)
    routed = hub.route(1, packet(0xA0, 2, 3000, IDR), 1.0)
    assert sub.current == 0
    # the keyframe that switched Bob tells his publisher at once that the high layer is not needed
    actions = list(routed.actions)
    sent = [a.message for a in actions if isinstance(a, Send) and a.message["type"] == "layers_active"]
    assert sent and sent[-1]["active"] == [0xA0]


def test_loss_reports_move_a_subscriber_down_a_layer() -> None:
    hub, _ = simulcast_meeting()
    hub.route(1, packet(0xA2, 1, 0, IDR), 1.0)  # Bob on the high layer
    report = ReceiverReport(0xBB, [ReportBlock(0xA2, int(0.6 * 256), 100, 1, 0, 0, 0)])
    hub.route(2, build_compound([report]), 2.0)
    actions = hub.tick(2.1)
    assert 0xA0 in plis(actions) or 0xA1 in plis(actions)
    sub = hub.layers.subscription(0xA2, 2)
    assert sub is not None and sub.target < 2


def test_loss_on_the_publishers_uplink_is_not_taken_for_the_subscribers_downlink() -> None:
    hub, _ = simulcast_meeting()
    seq = 0
    for tick in range(4):  # a third of the top layer's packets never reach the server
        for _ in range(30):
            seq += 1
            if seq % 3 or seq == 1:
                hub.route(1, packet(0xA2, seq, seq * 3000, IDR if seq == 1 else SLICE), 1.0 + tick * 0.5)
        hub.tick(1.4 + tick * 0.5)
    assert 0.3 < hub.layers.upstream_loss(0xA2) < 0.37
    bob = hub.layers.subscription(0xA2, 2)
    assert bob is not None and bob.current == 2
    # Bob reports the same loss: it happened before the server, so he stays on the top layer
    report = ReceiverReport(0xBB, [ReportBlock(0xA2, int(0.33 * 256), 100, 1, 0, 0, 0)])
    hub.route(2, build_compound([report]), 3.0)
    hub.tick(3.1)
    assert bob.target == 2 and hub.layers.budget(2) is None
    # more than that: the rest is his downlink's, and he moves down
    report = ReceiverReport(0xBB, [ReportBlock(0xA2, int(0.7 * 256), 200, 1, 0, 0, 0)])
    hub.route(2, build_compound([report]), 3.2)
    hub.tick(3.3)
    assert bob.target < 2


def test_a_nack_for_a_rewritten_stream_reaches_the_publisher_for_the_layer() -> None:
    hub, _ = simulcast_meeting()
    hub.route(1, packet(0xA0, 1000, 0, IDR), 1.0)  # Cy switches to the low layer at 1000
    hub.route(1, packet(0xA0, 1001, 0), 1.0)
    sub = hub.layers.subscription(0xA2, 3)
    assert sub is not None
    seen_seq = (1001 + sub.rewriter.seq_offset) & 0xFFFF
    forwards = hub.route_rtcp(3, build_compound([Nack(0xCC, 0xA2, [seen_seq])]), 1.5) or []
    nacks = [p for f in forwards for p in parse_compound(f.packet) if isinstance(p, Nack)]
    assert nacks and nacks[0].media_ssrc == 0xA0 and nacks[0].lost == [1001]


class FakeLink:
    media_ordered = False  # a datagram link (rtp://)

    def __init__(self, cid: int) -> None:
        self.id = cid
        self.listener = None
        self.sent: list[bytes] = []
        self.sent_at: list[float] = []

    def send_media(self, data: bytes) -> None:
        self.sent.append(data)
        self.sent_at.append(time.monotonic())


def test_the_forwarder_caches_the_route_and_rewrites_for_each_subscriber() -> None:
    hub, _ = simulcast_meeting()
    links = {cid: FakeLink(cid) for cid in (1, 2, 3)}
    forwarder = Forwarder(hub, links)  # type: ignore[arg-type]
    assert forwarder.media(links[1], packet(0xA2, 1, 0, IDR), 1.0)  # type: ignore[arg-type]
    assert forwarder.media(links[1], packet(0xA0, 1, 0, IDR), 1.0)  # type: ignore[arg-type]
    for seq in range(2, 6):
        forwarder.media(links[1], packet(0xA2, seq, seq * 3000), 1.0)  # type: ignore[arg-type]
        forwarder.media(links[1], packet(0xA0, seq, seq * 3000), 1.0)  # type: ignore[arg-type]
    assert {header(p)[2] for p in links[2].sent} == {0xA2}
    assert {header(p)[2] for p in links[3].sent} == {0xA2}
    assert [header(p)[0] for p in links[3].sent] == [1, 2, 3, 4, 5]
    assert len(links[2].sent) == 5


def test_share_started_lists_the_layers_but_snapshots_do_not() -> None:
    """A snapshot must fit one control frame with every participant sharing (test_snapshot_bound.py):
    its tracks carry no layers; ``share_started`` does, and ``layer_switched`` tells each subscriber."""
    hub, _ = simulcast_meeting()
    meeting = next(iter(hub.meetings.values()))
    assert "layers" not in meeting.snapshot()["tracks"][0]
    started = meeting.tracks[0xA2].describe("Ada").to_message()
    assert [layer["ssrc"] for layer in started["layers"]] == [0xA0, 0xA1, 0xA2]


def test_a_subscriber_is_told_the_layer_it_switched_to_with_the_keyframe_that_switched_it() -> None:
    hub, _ = simulcast_meeting()
    routed = hub.route(1, packet(0xA0, 1, 0, IDR), 1.0)
    told = [a for a in routed.actions if isinstance(a, Send) and a.message["type"] == "layer_switched"]
    assert [(a.to, a.message["layer"], a.message["height"]) for a in told] == [((3,), 0, 180)]
    # told once: the next tick does not say it again
    assert not [a for a in hub.tick(1.1) if isinstance(a, Send) and a.message["type"] == "layer_switched"]
    # a packet that switches nobody sets nothing off
    assert hub.route(1, packet(0xA0, 2, 3000, IDR), 1.2).actions == ()


def test_layers_a_publish_may_not_list_are_refused() -> None:
    hub, _ = simulcast_meeting()
    bad = [
        [LAYERS[2].describe(), LAYERS[0].describe()],  # highest first
        [LAYERS[0].describe(), {**LAYERS[2].describe(), "ssrc": 0xB0}],  # the last is not the track's SSRC
        [LAYERS[0].describe(), LAYERS[0].describe(), LAYERS[2].describe()],  # an SSRC twice
    ]
    for layers in bad:
        answer = ask(
            hub, 2, {"type": "publish", "kind": "video", "ssrc": 0xA2, "codec": "H264", "layers": layers}
        )
        assert [a.message["code"] for a in answer if isinstance(a, Send)] == ["bad_request"]
    answer = ask(hub, 2, {"type": "publish", "kind": "audio", "ssrc": 0xC2, "codec": "opus", "layers": [{}]})
    assert [a.message["code"] for a in answer if isinstance(a, Send)] == ["bad_request"]


def test_a_stream_link_dropping_media_moves_its_subscriber_down() -> None:
    """tcp:// never loses a packet: a full send queue makes the server drop media instead, and that share
    is the subscriber's downlink signal."""
    hub, _ = simulcast_meeting()
    hub.route(1, packet(0xA2, 1, 0, IDR), 1.0)  # Bob on the high layer
    hub.layers.stream_report(2, 0.0, 1.5)  # nothing dropped: no limit learnt
    assert hub.layers.budget(2) is None
    hub.layers.stream_report(2, 0.7, 2.0)
    hub.tick(2.1)
    sub = hub.layers.subscription(0xA2, 2)
    assert sub is not None and sub.target == 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([2, 3]), st.sampled_from([None, 150_000, 500_000, 2_000_000])),
        max_size=8,
    ),
    st.integers(2, 9),
)
def test_what_each_subscriber_receives_through_the_forwarder_is_one_continuous_stream(
    caps: list[tuple[int, int | None]], keyframe_every: int
) -> None:
    """Through the hub and the forwarder's route cache: whatever caps the subscribers set, and whenever
    each layer's keyframes come, each subscriber receives one stream under the track's SSRC with every
    sequence number one more than the last, and timestamps that only go forward."""
    hub, _ = simulcast_meeting()
    links = {cid: FakeLink(cid) for cid in (1, 2, 3)}
    forwarder = Forwarder(hub, links)  # type: ignore[arg-type]
    starts = (100, 65_000, 30_000)
    changes = iter(caps)
    now = 1.0
    for tick in range(120):
        now += 1 / 30
        if tick % 12 == 11:
            change = next(changes, None)
            if change is not None:
                cid, cap = change
                ask(hub, cid, {"type": "receive", "max_bitrate": cap}, now)
        if tick % 15 == 14:
            hub.tick(now)
        for index, layer in enumerate(LAYERS):
            payload = IDR if tick % keyframe_every == 0 else SLICE
            data = packet(layer.ssrc, starts[index] + tick, 9000 * index + 3000 * tick, payload)
            forwarder.media(links[1], data, now)  # type: ignore[arg-type]
    for cid in (2, 3):
        got = [header(p) for p in links[cid].sent]
        assert got, f"subscriber {cid} received nothing"
        assert {ssrc for _, _, ssrc in got} == {0xA2}
        for (seq_a, ts_a, _), (seq_b, ts_b, _) in itertools.pairwise(got):
            assert seq_b == (seq_a + 1) & 0xFFFF
            assert 0 < (ts_b - ts_a) & 0xFFFFFFFF < 0x80000000


def test_a_layer_its_publisher_stops_sending_moves_its_subscribers_down_and_back_when_it_returns() -> None:
    """The publisher's congestion control pauses its top layer: Bob, who receives it, moves to the best
    layer still sent at its keyframe, his stream running on without a gap; the top layer back, so is he."""
    hub, _ = simulcast_meeting()
    hub.route(1, packet(0xA0, 1, 0, IDR), 1.0)
    hub.route(1, packet(0xA2, 1, 0, IDR), 1.0)
    hub.tick(1.1)
    hub.route(1, packet(0xA0, 2, 3000), 1.2)
    hub.route(1, packet(0xA2, 2, 3000), 1.2)  # the top layer's last packet before it pauses
    hub.tick(1.5)
    hub.route(1, packet(0xA0, 3, 6000), 1.6)  # the low layer goes on
    actions = hub.tick(2.0)
    assert hub.layers.stalled[0xA2] == {1, 2}  # the top stopped; the middle is not sent either
    bob = hub.layers.subscription(0xA2, 2)
    assert bob is not None and bob.current == 2 and bob.target == 0 and bob.want == 2
    assert 0xA0 in plis(actions)  # the low layer's keyframe, for Bob
    sent = [a.message for a in actions if isinstance(a, Send) and a.message["type"] == "layers_active"]
    assert sent == [] or 0xA2 in sent[-1]["active"]  # the top stays asked for: it may return
    routed = hub.route(1, packet(0xA0, 4, 90_000, IDR), 2.1)
    assert bob.current == 0
    group = next(rewriter for rewriter, cids in routed.rewrites if 2 in cids)
    out = group.rewrite(packet(0xA0, 4, 90_000, IDR))
    assert out is not None
    seq, ts, ssrc = header(out)
    assert (ssrc, seq) == (0xA2, 3)  # right after the last packet Bob had of the top layer
    assert ts > 3000 + round(0.8 * 90_000)  # the clock ran on while the top layer was paused
    hub.route(1, packet(0xA0, 5, 93_000), 2.2)
    actions = hub.tick(2.2)
    sent = [a.message for a in actions if isinstance(a, Send) and a.message["type"] == "layers_active"]
    assert sent == [] or 0xA2 in sent[-1]["active"]  # Bob still wants the top layer: it stays asked for
    # a layer the publisher sends in place of the top one (the middle, though dynacast paused it): the
    # best one sent now, Bob goes there
    hub.route(1, packet(0xA1, 50, 95_000, IDR), 2.3)
    hub.route(1, packet(0xA0, 6, 96_000), 2.3)
    actions = hub.tick(2.4)
    assert hub.layers.stalled[0xA2] == {2} and bob.target == 1 and 0xA1 in plis(actions)
    hub.route(1, packet(0xA0, 7, 99_000), 2.45)
    hub.route(1, packet(0xA1, 51, 99_000, IDR), 2.5)
    assert bob.current == 1
    # the top layer comes back (with a keyframe): Bob climbs back at its next keyframe
    hub.route(1, packet(0xA2, 3, 200_000, IDR), 2.6)
    actions = hub.tick(2.7)
    assert hub.layers.stalled[0xA2] == frozenset() and bob.target == 2
    assert 0xA2 in plis(actions)
    hub.route(1, packet(0xA1, 52, 203_000), 2.75)
    routed = hub.route(1, packet(0xA2, 4, 210_000, IDR), 2.8)
    assert bob.current == 2 and 2 in [cid for _, cids in routed.rewrites for cid in cids]


def test_a_layer_paused_by_dynacast_or_never_sent_is_not_stalled() -> None:
    hub, _ = simulcast_meeting()  # nobody wants the middle layer: it is paused, its silence is no stall
    for step in range(10):
        hub.route(1, packet(0xA0, step, step * 3000, IDR if step == 0 else SLICE), 1.0 + step * 0.1)
        hub.route(1, packet(0xA2, step, step * 3000, IDR if step == 0 else SLICE), 1.0 + step * 0.1)
        hub.tick(1.05 + step * 0.1)
    assert hub.layers.stalled.get(0xA2, frozenset()) == frozenset()
    bob = hub.layers.subscription(0xA2, 2)
    assert bob is not None and bob.current == bob.target == 2


def test_the_newest_sequence_number_forwarded_is_found_across_losses_and_the_wrap() -> None:
    from conf_cli.server.feedback import NEWEST_GAP, TrackFeedback

    feedback = TrackFeedback()
    assert feedback.newest() is None
    for seq in (65530, 65531, 65533, 65535, 1, 2):
        feedback.first(packet(0xA0, seq, 0))
    assert feedback.newest() == 2
    assert feedback.newest(65530) == 2
    assert feedback.newest(2) == 2
    feedback.first(packet(0xA0, 2 + NEWEST_GAP, 0))  # a gap the walk steps over
    assert feedback.newest(2) == 2 + NEWEST_GAP


def test_a_growing_send_queue_counts_what_it_kept_as_lost() -> None:
    from conf_cli.server.simulcast import QUEUE_FLOOR, queued_share

    assert queued_share(0, QUEUE_FLOOR - 1, 50_000) == 0.0  # short: bursts, not the downlink
    assert queued_share(QUEUE_FLOOR, QUEUE_FLOOR + 25_000, 75_000) == 25_000 / 75_000  # a third stayed
    assert queued_share(200_000, 150_000, 75_000) == 0.0  # draining: nothing more kept
    assert queued_share(0, 90_000, 0) == 0.0  # nothing written since
    assert queued_share(0, 900_000, 75_000) == 1.0


def test_a_subscribers_own_estimate_moves_it_down_at_once_and_its_old_layer_stops_for_it() -> None:
    hub, _ = simulcast_meeting()
    links = {cid: FakeLink(cid) for cid in (1, 2, 3)}
    forwarder = Forwarder(hub, links)  # type: ignore[arg-type]
    forwarder.media(links[1], packet(0xA2, 1, 0, IDR), 1.0)  # type: ignore[arg-type]
    for seq in range(2, 30):  # the route is cached: the hub does not see these
        forwarder.media(links[1], packet(0xA2, seq, seq * 3000), 1.0)  # type: ignore[arg-type]
    assert [header(p)[0] for p in links[2].sent] == list(range(1, 30))
    # Bob's client saw a queue building on his downlink and says so twice: the server moves him down at
    # once (no tick) ...
    assert not plis(ask(hub, 2, {"type": "downlink", "bitrate": 100_000}, 0.75))  # one alone: a hiccup?
    actions = ask(hub, 2, {"type": "downlink", "bitrate": 100_000}, 1.05)
    assert 0xA0 in plis(actions)
    bob = hub.layers.subscription(0xA2, 2)
    assert bob is not None and bob.target == 0 and bob.current == 2
    # ... and sends him no more of the top layer, though the low layer's keyframe has not come yet
    for seq in range(30, 33):
        forwarder.media(links[1], packet(0xA2, seq, seq * 3000), 1.1)  # type: ignore[arg-type]
    assert len(links[2].sent) == 29
    # the low layer's keyframe: his stream goes on from the last packet he got, without a gap
    forwarder.media(links[1], packet(0xA0, 40, 9000, IDR), 1.2)  # type: ignore[arg-type]
    forwarder.media(links[1], packet(0xA0, 41, 12000), 1.3)  # type: ignore[arg-type]
    forwarder.media(links[1], packet(0xA2, 33, 99000), 1.3)  # type: ignore[arg-type]
    assert [header(p)[0] for p in links[2].sent] == list(range(1, 32))
    assert {header(p)[2] for p in links[2].sent} == {0xA2}
    assert bob.current == 0 and not bob.pending
    # Cy (capped by her own request) and the host were not moved by Bob's estimate
    cy = hub.layers.subscription(0xA2, 3)
    assert cy is not None and cy.target == 0 and hub.layers.budget(3) == 300_000


def test_a_subscribers_own_estimate_only_lowers_its_budget_and_is_taken_five_times_a_second_at_most() -> None:
    downlink = Downlink()
    assert downlink.told(300_000, 1.0) and downlink.estimate == 300_000
    assert not downlink.told(900_000, 1.1) and downlink.estimate == 300_000  # never raised this way
    assert downlink.told(5_000, 1.2) and downlink.estimate == 30_000  # never under the floor
    assert downlink.congested(1.9) and not downlink.congested(2.3)
    hub, _ = simulcast_meeting()
    hub.route(1, packet(0xA2, 1, 0, IDR), 1.0)
    router = hub.layers
    assert not router.told(2, 300_000, 1.5) and router.budget(2) is None  # alone: not yet
    assert router.told(2, 300_000, 2.0)
    for step in range(1, 20):  # a flood: ignored until the interval passed
        assert not router.told(2, 100_000, 2.0 + step * 0.01)
    assert router.told_ignored == 19 and router.budget(2) == 300_000
    assert router.told(2, 100_000, 2.25) and router.budget(2) == 100_000
    # it moved nobody else: Cy keeps her own cap, Ada (publishing only) has no budget
    assert router.budget(3) == 300_000 and router.budget(1) is None


def test_a_move_up_or_a_move_down_by_cap_keeps_the_old_layer_until_the_new_ones_keyframe() -> None:
    hub, _ = simulcast_meeting()
    hub.route(1, packet(0xA2, 1, 0, IDR), 1.0)
    ask(hub, 2, {"type": "receive", "max_bitrate": 150_000}, 1.1)  # a smaller view: no congestion
    bob = hub.layers.subscription(0xA2, 2)
    assert bob is not None and bob.target == 0 and not bob.hurry
    assert 2 in hub.route(1, packet(0xA2, 2, 3000), 1.2).to  # still the top layer until the keyframe
    assert bob.held is None


def test_a_subscribers_estimate_is_not_taken_while_the_queue_is_on_the_publishers_uplink() -> None:
    """Nor while a picture is still crossing that uplink: see the next test."""
    hub, _ = simulcast_meeting()
    links = {cid: FakeLink(cid) for cid in (1, 2, 3)}
    forwarder = Forwarder(hub, links)  # type: ignore[arg-type]
    for seq in range(1, 11):  # pictures 1/15 s apart arriving on time: no queue before the server
        payload = IDR if seq == 1 else SLICE
        forwarder.media(links[1], picture_end(0xA2, seq, seq * 6000, payload), 1.0 + seq / 15)  # type: ignore[arg-type]
    assert hub.layers.upstream_queue(hub.layers.tracks[0xA2]) < 0.01
    for seq in range(11, 21):  # then each 0.1 s later than the one before: Ada's uplink queues
        forwarder.media(links[1], picture_end(0xA2, seq, seq * 6000), 1.0 + seq / 15 + (seq - 10) * 0.1)  # type: ignore[arg-type]
    assert hub.layers.upstream_queue(hub.layers.tracks[0xA2]) > 0.9
    # Bob saw that queue too, in everything he received: not his downlink's, so not taken
    ask(hub, 2, {"type": "downlink", "bitrate": 100_000}, 2.7)
    ask(hub, 2, {"type": "downlink", "bitrate": 100_000}, 3.0)
    assert hub.layers.budget(2) is None and hub.layers.told_upstream == 1
    # once the uplink's queue is four ticks old (its pictures come on time again), his own estimate is
    # taken again
    seq, picture = 21, 40  # the sequence goes on; the pictures are captured on time again

    def on_time_until(now: float) -> None:
        nonlocal seq, picture
        while 1.0 + picture / 15 <= now:
            forwarder.media(links[1], picture_end(0xA2, seq, picture * 6000), 1.0 + picture / 15)  # type: ignore[arg-type]
            seq, picture = seq + 1, picture + 1

    for tick in range(4):
        on_time_until(3.5 + tick * 0.5)
        hub.tick(3.5 + tick * 0.5)
    on_time_until(5.3)
    ask(hub, 2, {"type": "downlink", "bitrate": 100_000}, 5.3)
    on_time_until(5.6)
    ask(hub, 2, {"type": "downlink", "bitrate": 100_000}, 5.6)
    assert hub.layers.budget(2) == 100_000


def test_one_downlink_request_with_a_long_queue_is_taken_at_once_but_not_while_the_uplink_queues() -> None:
    hub, _ = simulcast_meeting()
    links = {cid: FakeLink(cid) for cid in (1, 2, 3)}
    forwarder = Forwarder(hub, links)  # type: ignore[arg-type]
    for seq in range(1, 11):  # pictures 1/15 s apart arriving on time: no queue before the server
        payload = IDR if seq == 1 else SLICE
        forwarder.media(links[1], picture_end(0xA2, seq, seq * 6000, payload), 1.0 + seq / 15)  # type: ignore[arg-type]
    # a short queue alone may be a hiccup of Bob's host: wait for the next
    assert not plis(ask(hub, 2, {"type": "downlink", "bitrate": 300_000, "queued_ms": 150}, 2.0))
    assert hub.layers.budget(2) is None
    for seq in range(11, 38):  # the pictures go on coming on time
        forwarder.media(links[1], picture_end(0xA2, seq, seq * 6000), 1.0 + seq / 15)  # type: ignore[arg-type]
    # a long one (over STRONG_QUEUE) with no queue before the server is his downlink's: at once, so his
    # old layer stops before his bottleneck's queue overflows
    actions = ask(hub, 2, {"type": "downlink", "bitrate": 300_000, "queued_ms": 250}, 3.5)
    assert 0xA0 in plis(actions) and hub.layers.budget(2) == 300_000
    bob = hub.layers.subscription(0xA2, 2)
    assert bob is not None and bob.target == 0 and bob.hurry
    # once Ada's uplink queues, a long queue alone is not taken from Cy: everyone would see it
    for seq in range(38, 48):
        forwarder.media(links[1], picture_end(0xA2, seq, seq * 6000), 1.0 + seq / 15 + (seq - 37) * 0.1)  # type: ignore[arg-type]
    ask(hub, 3, {"type": "receive"}, 5.0)  # (Cy's cap lifted: her budget is her estimate alone)
    ask(hub, 3, {"type": "downlink", "bitrate": 200_000, "queued_ms": 900}, 6.0)
    assert hub.layers.budget(3) is None
    # out of range: refused, like any malformed request
    refused = ask(hub, 2, {"type": "downlink", "bitrate": 300_000, "queued_ms": -1}, 7.0)
    assert any(isinstance(a, Send) and a.message.get("type") == "error" for a in refused)


def test_a_long_queue_is_not_taken_alone_while_a_picture_is_still_crossing_the_publishers_uplink() -> None:
    """A 720p keyframe takes up to half a second through a 600 kbit/s uplink: a subscriber sees its first
    packets queue while the server, which notes each picture at its last packet, has seen no queue yet."""
    hub, _ = simulcast_meeting()
    links = {cid: FakeLink(cid) for cid in (1, 2, 3)}
    forwarder = Forwarder(hub, links)  # type: ignore[arg-type]
    for seq in range(1, 11):  # pictures 1/15 s apart arriving on time, the last at 1.67 s
        payload = IDR if seq == 1 else SLICE
        forwarder.media(links[1], picture_end(0xA2, seq, seq * 6000, payload), 1.0 + seq / 15)  # type: ignore[arg-type]
    # no picture has ended for 0.35 s: Bob's long queue may be the one on Ada's uplink
    ask(hub, 2, {"type": "downlink", "bitrate": 300_000, "queued_ms": 250}, 2.02)
    assert hub.layers.budget(2) is None
    # pictures coming on time again, the same request is his downlink's
    for seq in range(11, 20):
        forwarder.media(links[1], picture_end(0xA2, seq, seq * 6000), 1.0 + seq / 15)  # type: ignore[arg-type]
    ask(hub, 2, {"type": "downlink", "bitrate": 300_000, "queued_ms": 250}, 2.3)
    assert hub.layers.budget(2) == 300_000


def test_a_keyframe_that_does_not_come_is_asked_for_again_once_overdue_not_at_the_next_tick() -> None:
    hub, _ = simulcast_meeting()  # Cy (capped) waits for the low layer's keyframe
    hub.route(1, packet(0xA2, 1, 0, IDR), 1.0)
    hub.route(1, packet(0xA0, 1, 0, IDR), 1.0)  # her first keyframe: she receives the low layer
    cy = hub.layers.subscription(0xA2, 3)
    assert cy is not None and cy.current == 0 and not cy.pending
    assert 0xA0 not in plis(hub.tick(1.5))  # settled: nothing to ask
    assert hub.layers.retry_at is None  # nobody waits: the edge's frequent look costs a comparison
    actions = ask(hub, 3, {"type": "receive", "max_bitrate": 600_000}, 2.0)  # she may have the middle one
    assert 0xA1 in plis(actions) and cy.target == 1
    assert 0xA1 not in plis(hub.retry_keyframes(2.2))  # asked 0.2 s ago: it may be on its way
    assert 0xA1 not in plis(hub.retry_keyframes(2.0 + KEYFRAME_RETRY - 0.01))
    # due: asked again at once (the edge looks every RETRY_POLL), not at the next tick 0.5 s later
    assert 0xA1 in plis(hub.retry_keyframes(2.0 + KEYFRAME_RETRY))
    assert 0xA1 not in plis(hub.retry_keyframes(2.0 + KEYFRAME_RETRY + 0.05))  # ... not at every look
    assert 0xA1 not in plis(hub.tick(2.7))  # ... nor at the tick
    assert 0xA1 in plis(hub.tick(2.0 + 2 * KEYFRAME_RETRY + 0.01))  # the tick asks too once it is due again
    hub.route(1, packet(0xA0, 2, 3000), 2.85)  # her old layer goes on until the new one's keyframe
    hub.route(1, packet(0xA1, 1, 3000, IDR), 2.9)
    assert cy.current == 1 and not cy.pending
    hub.route(1, packet(0xA2, 2, 3000), 3.0)  # (the top layer moves on: nothing stalled)
    assert not plis(hub.retry_keyframes(3.3)) and not plis(hub.tick(3.5))
    assert hub.layers.retry_at is None


def test_a_subscriber_whose_old_layer_was_stopped_asks_for_the_new_ones_keyframe_and_gets_no_resends() -> (
    None
):
    hub, _ = simulcast_meeting()
    hub.route(1, packet(0xA2, 1, 0, IDR), 1.0)
    ask(hub, 2, {"type": "downlink", "bitrate": 100_000, "queued_ms": 300}, 1.2)
    hub.route(1, packet(0xA2, 2, 3000), 1.3)  # Bob's top layer stops here
    bob = hub.layers.subscription(0xA2, 2)
    assert bob is not None and bob.held is not None
    # his client lost the top layer's tail at his bottleneck: its NACKs are not passed on, and its PLI is
    # for the layer his stream continues with
    forwards = hub.route_rtcp(2, build_compound([Nack(0xBB, 0xA2, [1]), Pli(0xBB, 0xA2)]), 1.4) or []
    parts = [p for f in forwards for p in parse_compound(f.packet)]
    assert not [p for p in parts if isinstance(p, Nack)]
    assert [p.media_ssrc for p in parts if isinstance(p, Pli)] == [0xA0]
    # once moved, a NACK for what he lost of the layer he left is not passed on either
    hub.route(1, packet(0xA0, 500, 9000, IDR), 1.5)
    assert bob.current == 0 and bob.held is None
    before = (bob.rewriter.original(0) - 1) & 0xFFFF  # a number from before his switch point ...
    seen = (before + bob.rewriter.seq_offset) & 0xFFFF
    first = (500 + bob.rewriter.seq_offset) & 0xFFFF  # ... and his new layer's first packet
    forwards = hub.route_rtcp(2, build_compound([Nack(0xBB, 0xA2, [seen, first])]), 1.6) or []
    nacks = [p for f in forwards for p in parse_compound(f.packet) if isinstance(p, Nack)]
    assert nacks and nacks[0].media_ssrc == 0xA0 and nacks[0].lost == [500]


async def test_a_datagram_subscriber_moved_down_for_want_of_downlink_gets_the_new_keyframe_paced() -> None:
    """Bob's downlink queues (rtp://): his old layer stops at once, and the new layer's keyframe goes to him
    at 0.7 of his estimate (sent in one burst into his bottleneck's full queue it would lose its tail),
    while Cy, on that layer for her cap, gets it at once, and so does Bob's audio. Once the keyframe is out,
    he is sent to directly again."""
    hub, _ = simulcast_meeting()
    ask(hub, 1, {"type": "publish", "kind": "audio", "ssrc": 0xC1, "codec": "opus"})
    links = {cid: FakeLink(cid) for cid in (1, 2, 3)}
    forwarder = Forwarder(hub, links)  # type: ignore[arg-type]
    start = time.monotonic()
    forwarder.media(links[1], packet(0xA2, 1, 0, IDR), start)  # type: ignore[arg-type]
    forwarder.media(links[1], packet(0xA0, 1, 0, IDR), start)  # type: ignore[arg-type]
    ask(hub, 2, {"type": "downlink", "bitrate": 160_000, "queued_ms": 300}, start + 0.2)
    assert hub.layers.pace_rate(2, start + 0.2) == pytest.approx(112_000)  # 14,000 bytes a second
    assert hub.layers.pace_rate(3, start + 0.2) is None
    forwarder.media(links[1], packet(0xA2, 2, 3000), start + 0.3)  # type: ignore[arg-type]  # stopped for Bob
    bob = hub.layers.subscription(0xA2, 2)
    assert bob is not None and bob.held is not None
    before_bob, before_cy = len(links[2].sent), len(links[3].sent)
    keyframe = [packet(0xA0, 2, 9000, IDR + bytes(1200))]
    keyframe += [packet(0xA0, seq, 9000, SLICE + bytes(1200)) for seq in range(3, 7)]
    for part in keyframe:
        forwarder.media(links[1], part, time.monotonic())  # type: ignore[arg-type]
    forwarder.media(links[1], packet(0xC1, 1, 960, b"opus"), time.monotonic())  # type: ignore[arg-type]
    assert bob.current == 0 and bob.held is None  # switched at the keyframe
    assert len(links[3].sent) == before_cy + 6  # Cy: all of it at once
    bob_now = links[2].sent[before_bob:]
    assert [header(p)[2] for p in bob_now] == [0xA2, 0xC1]  # Bob: the keyframe's first packet, his audio
    await asyncio.sleep(0.6)
    sent_to_bob = zip(links[2].sent_at, links[2].sent, strict=True)
    video = [(when, p) for when, p in sent_to_bob if header(p)[2] == 0xA2][-5:]
    assert [header(p)[0] for _, p in video] == sorted(header(p)[0] for _, p in video)  # in order
    assert [p[12:] for _, p in video] == [k[12:] for k in keyframe]
    # 4 packets of 1,212 bytes after the first, at 14,000 bytes a second: 0.35 s
    assert 0.25 <= video[-1][0] - video[0][0] <= 0.5
    # the pacing ends once the keyframe is out: the routes are made again, Bob's video goes straight out
    forwarder.end_pacing(time.monotonic() + 1.0)
    assert forwarder.pacers.paced() == []
    sent = len(links[2].sent)
    forwarder.media(links[1], packet(0xA0, 7, 12000, SLICE), time.monotonic() + 1.0)  # type: ignore[arg-type]
    assert len(links[2].sent) == sent + 1


def test_a_rewritten_stream_runs_on_past_half_the_sequence_space_and_its_wrap() -> None:
    # 70,000 packets of the middle layer after a switch (about half an hour at 400 kbit/s): every one goes
    # out, numbered on from the switch, however far its own numbers ran and wrapped
    rewriter = Rewriter(0xA2)
    rewriter.switch(packet(0xA1, 60_000, 1_000, IDR), 1.0, (99, 5_000, 0.9))
    sent = 100
    for step in range(1, 70_000):
        out = rewriter.rewrite(packet(0xA1, (60_000 + step) & 0xFFFF, (1_000 + step * 2_250) & 0xFFFFFFFF))
        assert out is not None, step
        assert header(out)[0] == (sent + step) & 0xFFFF
    # one from just before the switch point, reordered on its way, is still dropped; its NACK not passed on
    assert rewriter.rewrite(packet(0xA1, 59_990, 500)) is None
    assert not rewriter.since_switch(59_990) and rewriter.since_switch(60_000 + 40_000)
