"""The RTP/UDP transport: real conf processes over rtp://, hostile datagrams, a cut network, an impaired
media path (through conf_cli.testing.relay), and a client behind a NAT (conf_cli.testing.netns)."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from conf_cli.protocol.rtp import RtpPacket
from conf_cli.server.resume import SEAT_GRACE
from conf_cli.testing.netns import NetLab, netns_unavailable, two_nats
from conf_cli.testing.processes import ClientPool, ConfProcess, spawn, start_server
from conf_cli.testing.relay import start_relay

SMALL = ("--width", "320", "--height", "240", "--fps", "15")


@pytest.fixture
def rtp_server() -> Iterator[tuple[ConfProcess, str]]:
    server, url = start_server("--stats-interval", "0.5", transport="rtp")
    try:
        yield server, url
    finally:
        server.stop()


@pytest.fixture
def pool(rtp_server: tuple[ConfProcess, str]) -> Iterator[ClientPool]:
    clients = ClientPool(rtp_server[1])
    try:
        yield clients
    finally:
        clients.stop_all()


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def share(pool: ClientPool, meeting: str, name: str, kind: str, *extra: str) -> ConfProcess:
    args = ["share", kind, "--meeting", meeting, "--server", pool.url, "--name", name]
    process = spawn([*args, "--passcode", pool.passcode, "--json", *extra])
    pool.started.append(process)
    process.expect("joined")
    return process


def has_frames(event: dict[str, Any]) -> bool:
    return int(event["frames"]) > 0


def udp_stats(server: ConfProcess, url: str, where: Any, timeout: float = 5.0) -> dict[str, int]:
    event = server.expect("server_stats", lambda e: where(e["listeners"][url]), timeout=timeout)
    stats: dict[str, int] = event["listeners"][url]
    return stats


# -- real processes ------------------------------------------------------------------------------------


def test_meeting_over_rtp(pool: ClientPool) -> None:
    assert pool.url.startswith("rtp://127.0.0.1:")
    host, meeting = pool.create("host")
    guest = pool.joined(meeting, "guest")
    host.expect("participant_joined", lambda e: e["name"] == "guest")
    guest.send("hello over udp")
    host.expect("chat", lambda e: e["text"] == "hello over udp" and e["from"] == "guest")
    host.send("/end")
    for process in (host, guest):
        process.expect("meeting_closed")
        assert process.wait() == 0


def test_shared_video_arrives_and_strangers_are_dropped(
    pool: ClientPool, rtp_server: tuple[ConfProcess, str]
) -> None:
    server, url = rtp_server
    host, meeting = pool.create("host")
    viewer = pool.joined(meeting, "viewer")
    sharer = share(pool, meeting, "bob", "pattern", *SMALL)
    published = sharer.expect("publish_started")
    stats = viewer.expect("track_stats", has_frames, timeout=5)
    assert stats["ssrc"] == published["ssrc"] and stats["malformed"] == 0
    host.expect("track_stats", has_frames, timeout=5)
    # Sender reports answer the receivers' XR reference times: the round trip becomes known.
    timed = viewer.expect("track_stats", lambda e: "rtt_ms" in e, timeout=6)
    assert 0 <= timed["rtt_ms"] < 100

    # A stranger sprays RTP claiming bob's SSRC from an address that never proved itself.
    before = udp_stats(server, url, lambda s: s["bindings"] >= 3)
    spray = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for seq in range(200):
            packet = RtpPacket(96, seq, 0, published["ssrc"], b"\x65" + bytes(100))
            spray.sendto(bytes(packet), ("127.0.0.1", port_of(url)))
        spray.sendto(bytes(2000), ("127.0.0.1", port_of(url)))  # too long
        spray.sendto(b"hello", ("127.0.0.1", port_of(url)))  # neither RTP nor STUN
    finally:
        spray.close()
    after = udp_stats(server, url, lambda s: s["dropped_unknown"] >= before["dropped_unknown"] + 200)
    assert after["dropped_oversize"] >= 1 and after["dropped_malformed"] >= 1
    # ... and the viewer never saw them: no damage to the track.
    later = viewer.expect("track_stats", lambda e: e["frames"] > stats["frames"], timeout=5)
    assert later["malformed"] == 0 and later["decode_errors"] == 0


def test_a_client_cut_off_is_dropped_and_the_others_carry_on(pool: ClientPool) -> None:
    host, meeting = pool.create("host")
    guest = pool.joined(meeting, "guest")
    frozen = pool.joined(meeting, "frozen")
    os.kill(frozen.pid, signal.SIGSTOP)
    try:
        # 6 s of silence, then its seat is kept SEAT_GRACE seconds for a resume
        left = host.expect("participant_left", lambda e: e["name"] == "frozen", timeout=12 + SEAT_GRACE)
        assert left["reason"] == "timeout"
    finally:
        os.kill(frozen.pid, signal.SIGKILL)
        frozen.wait(5)
    guest.send("still here")
    host.expect("chat", lambda e: e["text"] == "still here")


def test_media_survives_loss_delay_and_reordering(pool: ClientPool) -> None:
    from conf_cli.client.media.publisher import find_source_factory
    from conf_cli.plugin.registry import registry

    try:
        find_source_factory(registry().sources, "tone")
        with_audio = True
    except Exception:  # the capture plugin without its tone source: check the video alone
        with_audio = False
    _, meeting = pool.create("host")
    with start_relay(
        "127.0.0.1", port_of(pool.url), loss=0.05, delay=0.05, jitter=0.01, reorder=0.02, seed=7
    ) as relay:
        relay.set_cut(True)  # the first keyframe is lost on the way to the viewer
        viewer = spawn(
            [
                "join",
                meeting,
                "--server",
                f"rtp://127.0.0.1:{relay.port}",
                "--name",
                "viewer",
                "--passcode",
                pool.passcode,
                "--json",
            ]
        )
        pool.started.append(viewer)
        relay.set_cut(False)
        viewer.expect("joined", timeout=10)
        relay.set_cut(True)
        share(pool, meeting, "cam", "pattern", *SMALL)
        if with_audio:
            share(pool, meeting, "mic", "tone", "--frequency", "440")
        viewer.expect("track_started", lambda e: e["kind"] == "video")
        time.sleep(0.5)
        relay.set_cut(False)
        # The viewer missed the first keyframe: it must ask for one and then decode pictures. How fast
        # that recovery is (against the publisher's periodic keyframes, every 2 s) is measured in
        # benchmarks, not here: track_stats come once a second, too coarse to time it.
        first = viewer.expect("track_stats", lambda e: e["kind"] == "video" and has_frames(e), timeout=8)
        assert first["keyframe_requests"] >= 1

        events = viewer.drain(8.0)
        audio = [e for e in events if e.get("type") == "track_stats" and e["kind"] == "audio"]
        video = [e for e in events if e.get("type") == "track_stats" and e["kind"] == "video"]
        if with_audio:
            assert len(audio) >= 4
            assert all(e["fps"] > 30 for e in audio[1:])  # 50 frames/s sent; 5% lost and concealed
            assert audio[-1]["packets_lost"] > 0 and audio[-1]["jitter_ms"] > 1
        assert len(video) >= 4 and video[-1]["nacks"] > 0  # losses were asked for again
        # pictures keep coming: on average at least 6 a second of the 15 sent (a loss that neither the
        # NACK nor its retries repaired costs a keyframe's round trip; the rest is the host's load)
        assert video[-1]["frames"] - video[0]["frames"] >= 6 * (len(video) - 1), video
        stalls = sum(1 for a, b in itertools.pairwise(video) if b["frames"] == a["frames"])
        assert stalls <= 2
        counters = relay.stats()
        assert counters["downstream"]["dropped"] > 0 and counters["downstream"]["reordered"] > 0


# -- a client behind a NAT -----------------------------------------------------------------------------


@pytest.mark.skipif(netns_unavailable() is not None, reason=str(netns_unavailable()))
def test_a_client_behind_nat_sends_and_receives_media() -> None:
    with NetLab() as lab:
        picture = two_nats(lab, count=1)
        server = lab.conf(
            picture.server,
            ["server", "--json", "--host", picture.server_ip, "--port", "0", "--transport", "rtp"],
        )
        url = server.expect("server_started")["urls"][0]
        common = ("--server", url, "--passcode", "nat-pass", "--json")
        inside = lab.conf(picture.server, ["create", "--name", "inside", *common])
        meeting = inside.expect("meeting_created")["meeting"]
        inside.send("/share pattern width=320 height=240 fps=15")
        behind = lab.conf(
            picture.clients[0],
            ["share", "pattern", "--meeting", meeting, "--name", "behind", *common, *SMALL],
        )
        behind.expect("joined")
        got = behind.expect("track_stats", lambda e: e["name"] == "inside" and has_frames(e), timeout=10)
        assert got["malformed"] == 0
        sent = inside.expect("track_stats", lambda e: e["name"] == "behind" and has_frames(e), timeout=10)
        assert sent["malformed"] == 0
