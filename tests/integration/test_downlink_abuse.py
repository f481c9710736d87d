"""A subscriber's ``downlink`` request attacked over real sockets (rtp://, TLS and real SRTP): raw
participants against a real server.

A raw publisher sends a simulcast track (three layers, each packet a keyframe marked with its layer); two
raw subscribers receive it. Mallory floods the server with ``downlink`` requests (two bursts of thousands,
as fast as the socket takes them) and malformed ones. The server takes one every 0.2 s at most and ignores
the rest (``server_stats``' ``downlink_ignored``), answers the malformed ones with errors and keeps
serving; her own layer falls (the request works), the other subscriber keeps the top layer (she moves
nobody else), and the publisher is not flooded with keyframe requests.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from conf_cli.testing.hostile import srtp_join
from conf_cli.testing.processes import ClientPool, ConfProcess, start_server
from tests.helpers.raw_simulcast import LAYERS, TRACK, Publisher, layers_received

FLOOD = 3000


def server_stats(server: ConfProcess) -> dict[str, Any]:
    events = [e for e in server.drain(1.2) if e.get("type") == "server_stats"]
    assert events, "the server wrote no server_stats"
    return events[-1]


@pytest.fixture
def meeting() -> Iterator[tuple[ConfProcess, str, ClientPool, str]]:
    server, url = start_server("--stats-interval", "0.5", transport="rtp")
    clients = ClientPool(url)
    try:
        _, meeting = clients.create("host")
        yield server, url, clients, meeting
    finally:
        clients.stop_all()
        server.stop()


def test_a_downlink_flood_is_rate_limited_and_moves_only_its_senders_layer(
    meeting: tuple[ConfProcess, str, ClientPool, str],
) -> None:
    server, url, clients, meeting_id = meeting
    publisher_link = srtp_join(url, meeting_id, "pub", clients.passcode)
    victim = srtp_join(url, meeting_id, "victim", clients.passcode)
    mallory = srtp_join(url, meeting_id, "mallory", clients.passcode)
    publisher_link.send_control(
        {"type": "publish", "kind": "video", "ssrc": TRACK, "codec": "H264", "layers": LAYERS}
    )
    publisher_link.expect("share_started", lambda e: e.get("ssrc") == TRACK)
    publisher = Publisher(publisher_link)
    try:
        # both receive the top layer
        assert 2 in layers_received(victim, 2.0)
        assert 2 in layers_received(mallory, 0.5)
        plis_before = publisher.plis
        # the flood, and requests no server may take
        flood = [{"type": "downlink", "bitrate": 10_000}] * FLOOD
        for burst in range(2):  # two bursts 0.3 s apart: a queue that lasts, as far as the server knows
            if burst:
                time.sleep(0.3)
            for message in flood:
                mallory.send_control(message)
        for bitrate in (None, 0, "x", 10**12):
            bad = {"type": "downlink"} if bitrate is None else {"type": "downlink", "bitrate": bitrate}
            mallory.send_control(bad)
            mallory.expect("error", timeout=10)
        mallory.send_control({"type": "who"})  # still served
        mallory.expect("participants", timeout=10)
        time.sleep(0.5)
        victim_layers = layers_received(victim, 1.5)
        mallory_layers = layers_received(mallory, 0.5)
        stats = server_stats(server)
    finally:
        publisher.stop()
        for link in (publisher_link, victim, mallory):
            link.close()
    # her own layer fell to the lowest; the victim still gets only the top layer
    assert mallory_layers and set(mallory_layers[-10:]) == {0}, mallory_layers
    assert victim_layers and set(victim_layers) == {2}, victim_layers
    # nearly all of the flood was ignored, and the publisher was asked for a keyframe a few times at most
    assert stats["hub"]["downlink_ignored"] >= 2 * FLOOD - 50, stats["hub"]
    assert publisher.plis - plis_before <= 5
