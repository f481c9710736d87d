"""Where a followed redirect goes: the URL it names, but a wildcard host means the host already reached
(a `conf server --workers` listening on all addresses lists its workers as 0.0.0.0 or ::)."""

from __future__ import annotations

import pytest

from conf_cli.urls import parse_server_url, redirected

REACHED = parse_server_url("tcp://conf.example.org:7450")


@pytest.mark.parametrize(
    ("target", "goes_to"),
    [
        ("tcp://0.0.0.0:40001", "tcp://conf.example.org:40001"),
        ("zmq://[::]:40002", "zmq://conf.example.org:40002"),
        ("tcp://10.0.0.7:40003", "tcp://10.0.0.7:40003"),
        ("tcp://node-b.example.org:7450", "tcp://node-b.example.org:7450"),
        ("rtp://[2001:db8::1]:40004", "rtp://[2001:db8::1]:40004"),
    ],
)
def test_a_wildcard_host_means_the_host_reached_and_any_other_is_kept(target: str, goes_to: str) -> None:
    assert str(redirected(parse_server_url(target), REACHED)) == goes_to
