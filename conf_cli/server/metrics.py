"""Prometheus metrics of one conf server, read when scraped from the counters the server keeps anyway.

:class:`ServerCollector` is a prometheus-client collector: each scrape reads the hub (meetings,
participants, tracks, its counters), every link's own traffic counts grouped by transport
(:mod:`conf_cli.server.traffic`) and the process's CPU time and memory. Nothing is counted twice and the
forwarding path does no work for metrics. Every metric has the label ``node``: the server's name.
docs/operations.md lists them.
"""

from __future__ import annotations

import resource
import sys
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from conf_cli.protocol.control import MEDIA_KINDS
from conf_cli.version import __version__

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from conf_cli.server.edge import Server


def _rss_bytes() -> int:
    """The process's resident memory now (Linux), else its peak (other systems)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[1])
        return pages * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


TRAFFIC_COUNTERS = (
    ("conf_packets_received", "Media packets (RTP and RTCP) received, by transport.", "media_in"),
    ("conf_packets_sent", "Media packets (RTP and RTCP) sent, by transport.", "media_out"),
    (
        "conf_packets_dropped",
        "Media packets not sent because a receiver's link could not take them (congestion), by transport.",
        "media_dropped",
    ),
    ("conf_received_bytes", "Bytes received (media and control), by transport.", "bytes_in"),
    ("conf_sent_bytes", "Bytes sent (media and control), by transport.", "bytes_out"),
    ("conf_control_messages_received", "Control messages received, by transport.", "control_in"),
    ("conf_control_messages_sent", "Control messages sent, by transport.", "control_out"),
)
"""The per-transport counters: metric name, help text, and the LinkStats count it reads."""


class ServerCollector(Collector):
    """The metrics of ``server``, labelled ``node=NODE``."""

    def __init__(self, server: Server, node: str) -> None:
        self.server = server
        self.node = node

    def collect(self) -> Iterator[Metric]:
        node = self.node
        hub = self.server.hub
        stats = hub.stats

        def gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, text, labels=["node"])
            family.add_metric([node], value)
            return family

        def counter(name: str, text: str, value: float) -> CounterMetricFamily:
            family = CounterMetricFamily(name, text, labels=["node"])
            family.add_metric([node], value)
            return family

        def by(name: str, text: str, label: str, values: dict[str, float], kind: type) -> Metric:
            family = kind(name, text, labels=["node", label])
            for key, value in values.items():
                family.add_metric([node, key], value)
            return family

        info = GaugeMetricFamily(
            "conf_build_info", "The conf version this server runs.", labels=["node", "version"]
        )
        info.add_metric([node, __version__], 1)
        yield info

        # -- meetings ---------------------------------------------------------------------------------
        meetings = list(hub.meetings.values())
        yield gauge("conf_meetings", "Meetings open on this server.", len(meetings))
        yield gauge(
            "conf_participants",
            "Participants in this server's meetings (not counting those in waiting rooms).",
            sum(len(m.participants) for m in meetings),
        )
        yield gauge(
            "conf_waiting_participants",
            "People waiting in waiting rooms to be admitted.",
            sum(len(m.waiting) for m in meetings),
        )
        kinds: Counter[str] = Counter({kind: 0 for kind in MEDIA_KINDS})  # each kind has a series, 0 too
        kinds.update(t.kind for m in meetings for t in m.tracks.values())
        yield by("conf_tracks", "Published media tracks, by kind.", "kind", dict(kinds), GaugeMetricFamily)
        yield gauge("conf_connections", "Open client connections (in a meeting or not).", stats.connections)

        # -- traffic per transport --------------------------------------------------------------------
        traffic = self.server.traffic.by_transport(self.server.links.values())
        per = {name: counts for name, (counts, _) in traffic.items()}
        yield by(
            "conf_links",
            "Open links, by transport.",
            "transport",
            {name: opened for name, (_, opened) in traffic.items()},
            GaugeMetricFamily,
        )
        for name, text, count in TRAFFIC_COUNTERS:
            values = {transport: getattr(c, count) for transport, c in per.items()}
            yield by(name, text, "transport", values, CounterMetricFamily)

        # -- loss, NACKs, resends, keyframe requests --------------------------------------------------
        loss = SummaryMetricFamily(
            "conf_reported_loss_ratio",
            "Loss receivers reported in RTCP report blocks (fraction lost, 0 to 1): sum and count, so "
            "rate(_sum) / rate(_count) is the mean reported loss.",
            labels=["node"],
        )
        loss.add_metric([node], count_value=stats.loss_reports, sum_value=stats.loss_reported)
        yield loss
        yield by(
            "conf_nack_sequences",
            "Sequence numbers receivers asked for again (NACK): passed on to the publisher, or dropped.",
            "outcome",
            {
                "asked": stats.nack_asked,
                "duplicate": stats.nack_duplicates,
                "repeat": stats.nack_repeats,
                "over_budget": stats.nack_over_budget,
            },
            CounterMetricFamily,
        )
        yield by(
            "conf_resent_packets",
            "Resent RTP packets: from publishers (in), delivered to who asked (out), or unrequested.",
            "direction",
            {"in": stats.resends_in, "out": stats.resends_out, "unrequested": stats.resends_unrequested},
            CounterMetricFamily,
        )
        yield by(
            "conf_plis",
            "Picture loss indications passed to publishers: from receivers, or made by the server when "
            "someone joins.",
            "origin",
            {"receiver": stats.plis_forwarded, "server": stats.keyframes_requested},
            CounterMetricFamily,
        )
        yield counter(
            "conf_firs", "Full intra requests (FIR entries) passed to publishers.", stats.firs_forwarded
        )
        yield by(
            "conf_feedback_dropped",
            "RTCP feedback dropped: over a participant's rate limit, about a track its sender does not "
            "receive, or forged (speaking for another's source).",
            "reason",
            {
                "rate_limited": stats.feedback_limited,
                "not_receiver": stats.feedback_refused,
                "forged": stats.rtcp_forged,
            },
            CounterMetricFamily,
        )
        yield by(
            "conf_packets_refused",
            "Media packets refused: for a track the sender does not own or from outside a meeting, "
            "or malformed.",
            "reason",
            {"not_owner": stats.media_refused, "malformed": stats.media_malformed},
            CounterMetricFamily,
        )

        # -- joins and attempts -----------------------------------------------------------------------
        latency = hub.join_latency
        join = HistogramMetricFamily(
            "conf_join_latency_seconds",
            "Seconds from a create or join request to being in the meeting (the passcode check included, "
            "time in a waiting room not).",
            labels=["node"],
        )
        join.add_metric(
            [node],
            buckets=[(floatToGoString(bound), n) for bound, n in latency.cumulative()],
            sum_value=latency.total,
        )
        yield join
        yield counter(
            "conf_failed_attempts",
            "Wrong passcodes, passwords or meeting IDs (and other failed checks of a secret).",
            hub.limiter.failed_total,
        )
        yield counter(
            "conf_rate_limited_attempts",
            "Attempts refused by the rate limit on failed attempts or creates.",
            stats.attempts_refused,
        )
        yield counter(
            "conf_protocol_errors", "Malformed or out-of-place control messages.", stats.protocol_errors
        )
        yield counter(
            "conf_timeouts", "Connections closed for silence (no hello or heartbeat).", stats.timeouts
        )

        # -- the process ------------------------------------------------------------------------------
        usage = resource.getrusage(resource.RUSAGE_SELF)
        yield counter(
            "conf_process_cpu_seconds",
            "CPU time (user and system) this server process has used.",
            usage.ru_utime + usage.ru_stime,
        )
        yield gauge(
            "conf_process_resident_memory_bytes", "Resident memory of this server process.", _rss_bytes()
        )
