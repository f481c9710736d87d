"""Publisher congestion control end to end: real `conf` processes, a real server, a rate-limited relay.

A publisher shares a 720p30 pattern at 1.5 Mbit/s (three simulcast layers, 2.15 Mbit/s in all; one layer
with ``--no-simulcast``) through the impairment relay; the relay then limits its uplink to 600 kbit/s, and
later lifts the limit. With simulcast the top layer pauses and the middle one shrinks; the receiver moves
down to a layer still sent, and back up once the top layer returns. On rtp:// and zmq:// the server's RFC
8888 feedback (a block for each layer) drives the estimate, on tcp:// the publisher's send queue does. The
figures are printed (``-s``) for the record.
"""

from __future__ import annotations

import pytest

from conf_cli.testing.uplink import run_uplink_scenario

LIMIT = 600_000


@pytest.mark.parametrize(
    ("transport", "simulcast", "adapt_within"),
    [("rtp", True, 3.5), ("tcp", True, 5.0), ("zmq", True, 3.5), ("rtp", False, 3.5)],
    ids=["rtp", "tcp", "zmq", "rtp-no-simulcast"],
)
def test_a_limited_uplink_brings_the_target_under_the_limit_and_it_climbs_back_when_lifted(
    transport: str, simulcast: bool, adapt_within: float
) -> None:
    result = run_uplink_scenario(transport, limit=LIMIT, hold=9.0, release=12.0, simulcast=simulcast)
    print(
        f"\n{transport} (simulcast {simulcast}): target before {result.before}, "
        f"under {LIMIT} after {result.adapted_after} s, "
        f"receiver loss after {result.loss_after} at {result.received_bitrate} bit/s, "
        f"over {result.climb} again {result.climbed_after} s after the limit lifted"
    )
    assert result.before > LIMIT  # it really sent more than the limit before
    # the publishing rate (every track's encoder target) falls under the limit, within seconds
    assert result.adapted_after is not None and result.adapted_after <= adapt_within, result.timeline
    # once adapted, what the receiver gets arrives: under 2 % lost
    assert result.loss_after is not None and result.loss_after < 0.02, result.timeline
    # the relay did carry the media at the limited rate (the limit was real)
    assert result.received_bitrate is not None and result.received_bitrate < LIMIT * 1.1
    # the limit lifted, the target climbs back over 1.5 times the old limit within 10 s
    assert result.climbed_after is not None and result.climbed_after <= 10.0, result.timeline
    if simulcast:  # the receiver moved down to a layer still sent, and back to the top one
        assert result.layers_limited and min(result.layers_limited) < 2, result.layers_limited
        assert result.layers_after and result.layers_after[-1] == 2, result.layers_after
