"""Prometheus metrics: the hub's new counters (join latency, PLIs, reported loss, failed attempts) and
the names and values the collector renders from a server's state."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from conf_cli.plugin.registry import registry
from conf_cli.plugin.transport import Link, Listener
from conf_cli.protocol.control import encode
from conf_cli.protocol.rtcp import Pli, ReceiverReport, ReportBlock
from conf_cli.server.edge import Server
from conf_cli.server.histogram import Histogram
from conf_cli.server.hub import Deferred, Hub
from conf_cli.server.metrics_http import metrics_registry
from conf_cli.server.passcode import PasscodeCache
from tests.helpers.hub import MID_A, greet, make_hub, send, three_in_a_meeting

pytestmark = pytest.mark.usefixtures("cheap_scrypt")

VIDEO_SSRC = 0x1111


def resume_later(actions: list, now: float) -> list:  # type: ignore[type-arg]
    """Carry out the hub's deferred work, finishing at ``now`` (as a slow hash would)."""
    done = []
    for action in actions:
        if isinstance(action, Deferred):
            done += resume_later(action.resume(action.work(), now), now)
        else:
            done.append(action)
    return done


def test_histogram_buckets_are_cumulative_and_end_with_every_observation() -> None:
    histogram = Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 3.0):
        histogram.observe(value)
    assert histogram.cumulative() == [(0.1, 2), (1.0, 3), (float("inf"), 4)]
    assert histogram.count == 4 and histogram.total == pytest.approx(3.65)


def test_join_latency_runs_from_the_request_to_being_in_the_meeting() -> None:
    # A hub that keeps no meeting key, so that the join's passcode is hashed (in a Deferred) as the create's.
    hub = make_hub(MID_A, passcodes=PasscodeCache(limit=0))
    greet(hub, 1)
    create = {"type": "create", "name": "Ada", "passcode": "pw-123"}
    resume_later(hub.received(1, encode(create), 10.0), 10.02)  # the hash took 20 ms
    greet(hub, 2)
    join = {"type": "join", "meeting": MID_A, "name": "Bob", "passcode": "pw-123"}
    resume_later(hub.received(2, encode(join), 20.0), 20.3)
    latency = hub.join_latency
    assert latency.count == 2
    assert latency.total == pytest.approx(0.32)
    assert dict(latency.cumulative())[0.025] == 1  # the create; the join took 300 ms
    assert dict(latency.cumulative())[0.5] == 2


def test_wrong_passcodes_and_unknown_meetings_count_as_failed_attempts() -> None:
    hub = three_in_a_meeting()
    greet(hub, 4)
    send(hub, 4, {"type": "join", "meeting": MID_A, "name": "Eve", "passcode": "wrong-1"})
    greet(hub, 5)
    send(hub, 5, {"type": "join", "meeting": "zzz-zzzz-zzz", "name": "Eve", "passcode": "x"})
    assert hub.limiter.failed_total == 2
    assert hub.join_latency.count == 3  # Ada, Bob and Cy; not the failures


def test_plis_from_receivers_and_the_server_are_counted() -> None:
    hub = three_in_a_meeting()
    send(hub, 1, {"type": "publish", "kind": "screen", "ssrc": VIDEO_SSRC, "codec": "H264"})
    assert hub.route_media(2, bytes(Pli(0x5555, VIDEO_SSRC)), 1.0) == (1,)
    assert hub.stats.plis_forwarded == 1
    greet(hub, 4)
    send(hub, 4, {"type": "join", "meeting": MID_A, "name": "Dee", "passcode": "pw-123"})
    assert hub.stats.keyframes_requested == 1  # the newcomer needs a picture of Ada's screen


def test_loss_that_receivers_report_is_summed() -> None:
    hub = three_in_a_meeting()
    send(hub, 1, {"type": "publish", "kind": "screen", "ssrc": VIDEO_SSRC, "codec": "H264"})
    report = ReceiverReport(0x5555, [ReportBlock(VIDEO_SSRC, fraction_lost=64)])
    hub.route_media(2, bytes(report), 1.0)
    hub.route_media(3, bytes(ReceiverReport(0x6666, [ReportBlock(VIDEO_SSRC, fraction_lost=0)])), 1.0)
    assert hub.stats.loss_reports == 2
    assert hub.stats.loss_reported == pytest.approx(0.25)


class _Listener(Listener):
    def __init__(self, url: str) -> None:
        self.url = url

    async def close(self) -> None:
        pass


class _Link(Link):
    def send_control(self, data: bytes) -> None:
        pass

    def send_media(self, packet: bytes) -> bool:
        return True

    def close(self) -> None:
        pass

    @property
    def is_closing(self) -> bool:
        return False


def _scrape(server: Server, node: str = "n1") -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample the collector renders: name -> labels -> value."""
    text = generate_latest(metrics_registry(server, node)).decode()
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def _server_with_traffic() -> Server:
    hub: Hub = three_in_a_meeting()
    send(hub, 1, {"type": "publish", "kind": "screen", "ssrc": VIDEO_SSRC, "codec": "H264"})
    send(hub, 2, {"type": "publish", "kind": "audio", "ssrc": 0x2222, "codec": "opus"})
    server = Server(registry(), hub)
    tcp, rtp = _Listener("tcp://127.0.0.1:7450"), _Listener("rtp://127.0.0.1:7454")
    for listener, media_in, sent_bytes in ((tcp, 10, 1000), (tcp, 5, 500), (rtp, 7, 700)):
        link = _Link("peer", listener)
        link.stats.media_in, link.stats.bytes_out = media_in, sent_bytes
        server.links[link.id] = link
    closed = _Link("gone", tcp)
    closed.stats.media_in, closed.stats.bytes_out = 100, 10_000
    server.links[closed.id] = closed
    server.link_closed(closed, "bye")
    return server


def test_the_collector_reads_meetings_tracks_and_traffic_per_transport() -> None:
    samples = _scrape(_server_with_traffic())
    node = (("node", "n1"),)
    assert samples["conf_meetings"][node] == 1
    assert samples["conf_participants"][node] == 3
    assert samples["conf_tracks"][(("kind", "audio"), ("node", "n1"))] == 1
    assert samples["conf_tracks"][(("kind", "screen"), ("node", "n1"))] == 1
    assert samples["conf_tracks"][(("kind", "video"), ("node", "n1"))] == 0
    tcp, rtp = (("node", "n1"), ("transport", "tcp")), (("node", "n1"), ("transport", "rtp"))
    assert samples["conf_packets_received_total"][tcp] == 115  # the closed link's count is kept
    assert samples["conf_packets_received_total"][rtp] == 7
    assert samples["conf_sent_bytes_total"][tcp] == 11_500
    assert samples["conf_links"][tcp] == 2 and samples["conf_links"][rtp] == 1
    assert samples["conf_join_latency_seconds_count"][node] == 3
    assert samples["conf_join_latency_seconds_bucket"][(("le", "+Inf"), ("node", "n1"))] == 3
    assert samples["conf_process_resident_memory_bytes"][node] > 1_000_000
    assert samples["conf_process_cpu_seconds_total"][node] > 0


def test_every_metric_is_named_as_prometheus_asks_and_labelled_with_the_node() -> None:
    text = generate_latest(metrics_registry(_server_with_traffic(), "node-7")).decode()
    families = list(text_string_to_metric_families(text))
    assert len(families) >= 25
    for family in families:
        assert family.name.startswith("conf_"), family.name
        assert family.documentation, family.name
        for sample in family.samples:
            assert sample.labels["node"] == "node-7", sample
            if family.type == "counter":
                assert sample.name.endswith(("_total", "_created")), sample.name
    names = {family.name for family in families}
    assert {"conf_received_bytes", "conf_sent_bytes", "conf_join_latency_seconds"} <= names
    assert "conf_process_resident_memory_bytes" in names
