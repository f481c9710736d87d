"""One ``/metrics`` for a server of several processes (``conf server --workers N --metrics-port``):
the metric families of each process merged by name. Sans-I/O: text in, families out.

Each worker serves its own metrics (every sample labelled with its ``node``); the parent reads them
when it is scraped (:mod:`conf_cli.server.workers.metrics`), parses each with prometheus-client's text
parser (:func:`parse`), and :func:`merge` joins them with its own: one family per name, its HELP and
TYPE once, every process's samples under it. A family whose type differs from the first seen of that
name (a worker of another version, say) is left out rather than mislabelled. :func:`worker_up` says
which workers answered in time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

MAX_TEXT = 8 << 20
"""Bytes of one worker's metrics at most."""


def parse(text: str) -> list[Metric]:
    """The families of a Prometheus text exposition; ValueError if it is not one (or too long)."""
    if len(text) > MAX_TEXT:
        raise ValueError(f"more than {MAX_TEXT} bytes of metrics")
    try:
        return list(text_string_to_metric_families(text))
    except (ValueError, IndexError, TypeError) as exc:
        raise ValueError(f"not Prometheus text: {exc}") from None


def merge(groups: Iterable[Iterable[Metric]]) -> list[Metric]:
    """The families of every group, merged by name (in the order first seen); a sample seen twice (the
    same name and labels) is kept once."""
    merged: dict[str, Metric] = {}
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for group in groups:
        for family in group:
            into = merged.get(family.name)
            if into is None:
                into = Metric(family.name, family.documentation, family.type, family.unit)
                merged[family.name] = into
            elif into.type != family.type:
                continue
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if key not in seen:
                    seen.add(key)
                    into.samples.append(sample)
    return list(merged.values())


def worker_up(answered: Mapping[str, bool]) -> GaugeMetricFamily:
    """``conf_worker_up{node}``: 1 for each worker whose metrics came in time, 0 for the others."""
    family = GaugeMetricFamily(
        "conf_worker_up",
        "1 if the worker's metrics were read for this scrape, 0 if it did not answer in time.",
        labels=["node"],
    )
    for node, up in answered.items():
        family.add_metric([node], 1.0 if up else 0.0)
    return family
