"""A layer switch whose keyframe does not come is asked for again on time, over real sockets (rtp://, TLS
and real SRTP): a raw publisher sends a simulcast track whose middle layer never carries a keyframe, and a
raw subscriber caps itself to that layer. The server asks the publisher for the middle layer's keyframe
again every :data:`KEYFRAME_RETRY` seconds (within the edge's :data:`RETRY_POLL` of it), not at the next
of its half-second ticks: a lost keyframe request costs its retry time, not up to a tick more.
"""

from __future__ import annotations

import itertools
import statistics
import time

from conf_cli.server.edge import RETRY_POLL, TICK_SECONDS
from conf_cli.server.simulcast import KEYFRAME_RETRY
from conf_cli.testing.hostile import srtp_join
from conf_cli.testing.processes import ClientPool, start_server
from tests.helpers.raw_simulcast import LAYERS, TRACK, Publisher, layers_received

MIDDLE = LAYERS[1]["ssrc"]


def test_a_keyframe_a_switch_waits_for_is_asked_again_when_due_not_at_the_tick() -> None:
    server, url = start_server(transport="rtp")
    clients = ClientPool(url)
    try:
        _, meeting = clients.create("host")
        publisher_link = srtp_join(url, meeting, "pub", clients.passcode)
        viewer = srtp_join(url, meeting, "viewer", clients.passcode)
        publisher_link.send_control(
            {"type": "publish", "kind": "video", "ssrc": TRACK, "codec": "H264", "layers": LAYERS}
        )
        publisher_link.expect("share_started", lambda e: e.get("ssrc") == TRACK)
        publisher = Publisher(publisher_link, without_keyframes=frozenset({1}))
        try:
            assert 2 in layers_received(viewer, 2.0)  # the top layer, whose packets are keyframes
            viewer.send_control({"type": "receive", "max_bitrate": 600_000})  # the middle layer fits
            capped = time.monotonic()
            time.sleep(3.5)
            still = layers_received(viewer, 0.3)
        finally:
            publisher.stop()
            for link in (publisher_link, viewer):
                link.close()
    finally:
        clients.stop_all()
        server.stop()
    # no keyframe of the middle layer ever came: the viewer stays on its old layer, and the server asks
    assert still and set(still) == {2}, still
    asks = [when for when, ssrc in publisher.asked if ssrc == MIDDLE and when >= capped]
    assert len(asks) >= 6, asks
    gaps = [later - earlier for earlier, later in itertools.pairwise(asks)]
    # every ask after the first is due KEYFRAME_RETRY after the one before; the edge looks every
    # RETRY_POLL. Asked at the tick instead, the gaps would be whole ticks (0.5 s) apart.
    assert min(gaps) >= KEYFRAME_RETRY - 0.05, gaps
    assert statistics.median(gaps) < min(TICK_SECONDS, KEYFRAME_RETRY + RETRY_POLL + 0.03), gaps
