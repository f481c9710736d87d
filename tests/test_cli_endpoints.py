"""Where `conf server` listens when given several transports."""

from __future__ import annotations

import pytest

from conf_cli.errors import ConfError
from conf_cli.server.edge import Endpoint
from conf_cli.server.run import endpoints_for


def test_each_further_transport_takes_the_next_free_pair_of_ports() -> None:
    assert endpoints_for(("tcp", "zmq", "rtp"), "h", 7450) == [
        Endpoint("tcp", "h", 7450),
        Endpoint("zmq", "h", 7452),
        Endpoint("rtp", "h", 7454),
    ]


def test_port_zero_lets_every_transport_pick_and_explicit_ports_win() -> None:
    assert endpoints_for(("tcp", "zmq:7460"), "h", 0) == [Endpoint("tcp", "h", 0), Endpoint("zmq", "h", 7460)]


@pytest.mark.parametrize("spec", ["tcp:x", "tcp:70000", "tcp:-1"])
def test_bad_ports_are_refused(spec: str) -> None:
    with pytest.raises(ConfError, match="expected NAME or NAME:PORT"):
        endpoints_for((spec,), "h", 0)
