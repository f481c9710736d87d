"""Merging the metrics of several processes (``--workers``) into one exposition: one HELP and TYPE per
family, every process's samples under it with its own ``node``. Sans-I/O: real collectors rendered to
Prometheus text, parsed back, merged, rendered and parsed again."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from conf_cli.plugin.registry import registry
from conf_cli.server.edge import Server
from conf_cli.server.hub import Hub
from conf_cli.server.metrics import ServerCollector
from conf_cli.server.metrics_merge import merge, parse, worker_up
from tests.helpers.hub import create, join, make_hub


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> list[Metric]:
        return self.families


def render(families: list[Metric]) -> str:
    out = CollectorRegistry(auto_describe=False)
    out.register(_Fixed(families))
    return generate_latest(out).decode()


def text_of(hub: Hub, node: str) -> str:
    return render(list(ServerCollector(Server(registry(), hub), node).collect()))


def busy_hub(people: int) -> Hub:
    hub = make_hub()
    meeting = create(hub, 1, "ada")
    for index in range(1, people):
        join(hub, index + 1, meeting, f"p{index}")
    return hub


def test_each_family_appears_once_with_the_samples_of_every_node() -> None:
    one, two = text_of(busy_hub(2), "worker-1"), text_of(busy_hub(3), "worker-2")
    merged = render(merge([parse(one), parse(two)]))
    lines = merged.splitlines()
    types = [line for line in lines if line.startswith("# TYPE ")]
    helps = [line.split()[2] for line in lines if line.startswith("# HELP ")]
    assert len(types) == len(set(types)) == len(helps) == len(set(helps)) == len(parse(one))
    assert set(types) == {line for line in one.splitlines() if line.startswith("# TYPE ")}
    families = {f.name: f for f in text_string_to_metric_families(merged)}
    participants = {s.labels["node"]: s.value for s in families["conf_participants"].samples}
    assert participants == {"worker-1": 2.0, "worker-2": 3.0}
    # a histogram keeps its buckets, count and sum per node
    join_latency = families["conf_join_latency_seconds"].samples
    counts = {s.labels["node"]: s.value for s in join_latency if s.name.endswith("_count")}
    assert counts == {"worker-1": 2.0, "worker-2": 3.0}
    assert {s.labels["node"] for s in join_latency if s.name.endswith("_bucket")} == {"worker-1", "worker-2"}
    # counters keep their _total samples
    assert {s.name for s in families["conf_failed_attempts"].samples} == {"conf_failed_attempts_total"}
    assert {s.labels["node"] for s in families["conf_failed_attempts"].samples} == {"worker-1", "worker-2"}


def test_a_family_of_another_type_is_left_out_and_a_sample_seen_twice_is_kept_once() -> None:
    first = parse('# HELP x_total n\n# TYPE x_total counter\nx_total{node="a"} 1\n')
    clash = parse('# HELP x n\n# TYPE x gauge\nx{node="b"} 7\n')
    again = parse('# HELP x_total n\n# TYPE x_total counter\nx_total{node="a"} 1\nx_total{node="c"} 2\n')
    merged = merge([first, clash, again])
    assert [(f.name, f.type) for f in merged] == [("x", "counter")]
    assert [(s.labels["node"], s.value) for s in merged[0].samples] == [("a", 1.0), ("c", 2.0)]


@pytest.mark.parametrize("text", ["<html>not metrics</html>", 'x{node="a" 1\n', "# TYPE x gauge\nx abc\n"])
def test_what_is_not_prometheus_text_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not Prometheus text"):
        parse(text)


def test_worker_up_says_which_workers_answered() -> None:
    family = worker_up({"worker-1": True, "worker-2": False})
    assert [(s.labels["node"], s.value) for s in family.samples] == [("worker-1", 1.0), ("worker-2", 0.0)]
