"""A layer per subscriber end to end: real `conf` processes and codecs over rtp:// (SRTP), tcp:// (TLS)
and zmq:// (CURVE), a subscriber whose downlink the impairment relay limits to 400 kbit/s.

A publisher shares a 720p15 pattern as three simulcast layers (1280x720 at 1.2 Mbit/s, 640x360 at 400
kbit/s, 320x180 at 120 kbit/s). The host receives directly; the other subscriber's every byte goes through
the relay, which limits what it receives to 400 kbit/s once both receive 720p. The limited subscriber moves
to a layer that fits (its client sees a queue building in the video it receives and tells the server, which
moves it down at once; on rtp:// its receiver reports' loss would too, later), decodes the smaller picture
at a bit rate under the limit with low loss, while the host keeps the top layer. The longest wait between
two decoded pictures (``freeze_ms``) is printed (``-s``); benchmarks/adaptive.py prints it as a
figure (a timed assertion would fail on a loaded machine).
"""

from __future__ import annotations

import pytest

from conf_cli.testing.downlink import run_downlink_scenario

LIMIT = 400_000
MOVED_WITHIN = {"rtp": 5.0, "tcp": 9.0, "zmq": 9.0}
"""Seconds from the limit to the subscriber's ``layer_switched`` (on tcp:// and zmq:// that event comes over
the congested connection itself, 1.0-2.5 s on a quiet machine, 2.4-4.2 s before the relay's TCP path held
no more than its datagram queue, and 6.7 s once in a full test run then; before
subscribers told their own downlink, tcp:// took about 8 s and zmq:// had no signal). benchmarks/adaptive.py
prints the figure; this bound only says the move comes within seconds."""
HOLD = {"rtp": 10.0, "tcp": 14.0, "zmq": 14.0}
"""Seconds the limit is held: long enough after the latest allowed move for the settled figures."""


@pytest.mark.parametrize("transport", ["rtp", "tcp", "zmq"])
def test_a_subscriber_limited_to_400k_moves_to_a_layer_that_fits_while_the_host_keeps_720p(
    transport: str,
) -> None:
    result = run_downlink_scenario(transport, limit=LIMIT, hold=HOLD[transport])
    print(
        f"\n{transport}: switched after {result.switched_after} s to layer {result.layer} {result.size}, "
        f"loss after {result.loss_after} at {result.bitrate_after} bit/s, longest freeze {result.freeze} s "
        f"(before the limit {result.freeze_before} s), host layers {result.host_layers}"
    )
    # the server moved it down (a layer_switched to a layer under the top), within seconds
    assert result.switched_after is not None and result.switched_after <= MOVED_WITHIN[transport], (
        result.timeline
    )
    # it ends on a lower layer, decoding the smaller pictures ...
    assert result.layer is not None and result.layer < 2, result.timeline
    assert result.size is not None and result.size[1] <= 360, result.timeline
    # ... at a rate the limit carries, with under 2 % lost once settled
    assert result.bitrate_after is not None and result.bitrate_after < LIMIT, result.timeline
    assert result.loss_after is not None and result.loss_after < 0.02, result.timeline
    # the host, with no limit, kept the top layer throughout
    assert result.host_layers and set(result.host_layers) == {2}, result.host_layers
