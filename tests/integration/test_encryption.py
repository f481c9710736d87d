"""Link encryption on real sockets: what a capture of loopback shows, pinned keys, a man in the middle."""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conf_cli.testing import ClientPool, ConfProcess, run_conf, spawn, start_server
from conf_cli.testing_capture import capture, contains, free_port_pair, payloads

CHAT = "the-eagle-lands-at-noon-7fa3"
SHARE = ("--width", "320", "--height", "240", "--fps", "15")

needs_tcpdump = pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")


def media_chunks(recording: Path) -> list[bytes]:
    """Slices of received H.264 payload (from the recording) that a plaintext capture must contain.

    Bytes 20-51 of a recorded frame (a 4-byte length, the NAL header, then payload) lie inside one RTP
    packet's payload whether the NAL unit travelled whole or in fragments."""
    import av

    chunks: list[bytes] = []
    with av.open(str(recording)) as container:
        for packet in container.demux(video=0):
            data = bytes(packet)
            if len(data) > 200:
                chunks.append(data[20:52])
    assert len(chunks) >= 5, f"only {len(chunks)} frames recorded"
    return chunks[:20]


def meeting_traffic(url: str, record: Path, *extra: str) -> None:
    """A meeting: a host, a viewer that records, a pattern shared, one chat line."""
    clients = ClientPool(url)
    try:
        host, meeting = clients.create("host", *extra)
        viewer = clients.joined(meeting, "viewer", "--record", str(record), *extra)
        sharer = clients.share(meeting, "bob", "pattern", *SHARE, *extra)
        sharer.expect("publish_started", timeout=30)
        viewer.expect("track_stats", lambda e: int(e["frames"]) > 10, timeout=30)
        host.send(CHAT)
        assert viewer.expect("chat")["text"] == CHAT
        viewer.send("/leave")
        viewer.expect("left")
        viewer.wait(15)
    finally:
        clients.stop_all()


@needs_tcpdump
@pytest.mark.parametrize("encryption", ["on", "none"])
@pytest.mark.parametrize("transport", ["tcp", "zmq", "rtp"])
def test_capture_holds_no_plaintext(transport: str, encryption: str, tmp_path: Path) -> None:
    port = free_port_pair()
    pcap = tmp_path / "lo.pcap"
    record = tmp_path / "rec"
    with capture(pcap, [port, port + 1]):
        server = spawn(
            ["server", "--json", "--port", str(port), "--transport", transport, "--encryption", encryption]
        )
        try:
            url = server.expect("server_started")["urls"][0]
            meeting_traffic(url, record, "--encryption", encryption)
        finally:
            server.stop()
    sent = payloads(pcap)
    assert sum(map(len, sent)) > 50_000, "the capture missed the meeting"
    [recording] = list(record.iterdir())
    chunks = media_chunks(recording)
    if encryption == "on":
        assert not contains(sent, CHAT.encode())
        assert not contains(sent, b'"type"')
        assert not any(contains(sent, chunk) for chunk in chunks)
    else:  # the same checks fail without encryption: they can tell
        assert contains(sent, CHAT.encode())
        assert contains(sent, b'"type"')
        assert sum(contains(sent, chunk) for chunk in chunks) >= len(chunks) // 2
