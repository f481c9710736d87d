"""rtp:// media goes only to addresses that consented: attacks on the STUN latch by a real attacker over
real sockets on loopback, against a real ``conf server`` and real clients, and a real NAT rebinding.

- A copy of a client's binding request, read off the wire (a tap on the path), replayed from another
  address, or used to forge fresh requests from what travels in the clear: nobody gets the media.
- A participant who holds her own link's key aims her media at a victim's address: the victim, which
  never answers, gets a few small consent checks and no media.
- A client whose source port changes mid-meeting (the relay's rebinding) gets its media back once its
  new address answers the consent check.
"""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conf_transport_udp_rtp.latch import CHECK_BURST, CHECK_RATE, CONSENT_TIMEOUT, request_transaction

from conf_cli.protocol.stun import CLASS_REQUEST, StunMessage, binding_request, is_stun
from conf_cli.testing.hostile import RtpRawLink, raw_join
from conf_cli.testing.processes import ClientPool, ConfProcess, spawn, start_server
from conf_cli.testing.relay import start_relay

SMALL = ("--width", "320", "--height", "240", "--fps", "15")
PLAIN = ("--encryption", "none")
Event = dict[str, Any]


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def udp_stats(server: ConfProcess, url: str, where: Any, timeout: float = 10.0) -> dict[str, int]:
    event = server.expect("server_stats", lambda e: where(e["listeners"][url]), timeout=timeout)
    stats: dict[str, int] = event["listeners"][url]
    return stats


def is_media(datagram: bytes) -> bool:
    return len(datagram) >= 8 and datagram[0] >> 6 == 2


def collect(sock: socket.socket, seconds: float) -> list[bytes]:
    """Everything that arrives on ``sock`` in the next ``seconds``."""
    received: list[bytes] = []
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(min(remaining, 0.2))
        try:
            received.append(sock.recv(2048))
        except TimeoutError:
            continue
    return received


def frames_of(client: ConfProcess, name: str) -> int:
    """The newest frame count of ``name``'s video as ``client`` reports it (every event of 2 s read)."""
    events = client.drain(2.0)
    reports = [e for e in events if e.get("type") == "track_stats" and e["name"] == name]
    assert reports, f"no track_stats for {name} in 2 s"
    return int(reports[-1]["frames"])


def join_through(pool: ClientPool, meeting: str, port: int) -> ConfProcess:
    """``viewer`` joins ``meeting`` through the relay on ``port``."""
    args = ["join", meeting, "--server", f"rtp://127.0.0.1:{port}", "--name", "viewer"]
    viewer = spawn([*args, "--passcode", pool.passcode, "--json"])
    pool.started.append(viewer)
    viewer.expect("joined")
    return viewer


@pytest.fixture
def rtp_server() -> Iterator[tuple[ConfProcess, str]]:
    server, url = start_server("--stats-interval", "0.5", transport="rtp")
    try:
        yield server, url
    finally:
        server.stop()


def test_a_binding_read_off_the_wire_gives_no_one_the_media(rtp_server: tuple[ConfProcess, str]) -> None:
    """Finding: anyone who saw one binding datagram could take a link's media. A tap between the viewer
    and the server keeps every datagram the viewer sends; the attacker replays each binding request from
    its own address and forges fresh ones from everything the requests show in the clear (the USERNAME,
    as text and as hex bytes, was the old key). Nothing comes back to the attacker, and the viewer's
    video goes on."""
    server, url = rtp_server
    pool = ClientPool(url)
    attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        _, meeting = pool.create("host")
        with start_relay("127.0.0.1", port_of(url), capture=True) as tap:
            viewer = join_through(pool, meeting, tap.port)
            pool.share(meeting, "cam", "pattern", *SMALL).expect("publish_started")
            viewer.expect("track_stats", lambda e: e["name"] == "cam" and e["frames"] > 0, timeout=10)
            requests = [
                d
                for d in tap.captured()
                if is_stun(d) and StunMessage.parse(d).message_class == CLASS_REQUEST
            ]
            assert requests, "the tap saw the viewer's binding"
            before = udp_stats(server, url, lambda s: True)

            attacker.connect(("127.0.0.1", port_of(url)))
            for request in requests:
                attacker.send(request)  # verbatim, from another address
            username = StunMessage.parse(requests[-1]).username
            assert username is not None
            keys = [username.encode()]
            if all(c in "0123456789abcdef" for c in username):
                keys.append(bytes.fromhex(username))
            forged = 0
            for key in keys:  # fresh, signed with what was in the clear, numbered past any real one
                for _ in range(3):
                    transaction = b"\x7f\xff\xff\xff" + secrets.token_bytes(8)
                    attacker.send(bytes(binding_request(transaction, username, key)))
                    forged += 1
            received = collect(attacker, 4.0)
            assert [d for d in received if is_media(d)] == [], "the viewer's media went to the attacker"
            assert received == [], "no answer, not even a consent check: nothing was proved"
            after = udp_stats(
                server,
                url,
                lambda s: (
                    s["stun_replayed"] >= before["stun_replayed"] + len(requests)
                    and s["stun_refused"] >= before["stun_refused"] + forged
                ),
            )
            assert after["relatches"] == before["relatches"]
            seen = frames_of(viewer, "cam")
            time.sleep(2.0)
            assert frames_of(viewer, "cam") > seen + 10, "the viewer's video goes on"
    finally:
        attacker.close()
        pool.stop_all()


def test_media_cannot_be_aimed_at_an_address_that_does_not_consent() -> None:
    """Finding: a signed request from any address moved the link's media there. Mallory holds her own
    link's key (she is a participant) and sends fresh signed requests from a victim's address (on
    loopback, from the victim's socket: spoofing needs raw sockets) for 8 s. The victim never answers:
    it gets only consent checks, each under 120 bytes, at most CHECK_BURST + CHECK_RATE per second of
    them, and none of the meeting's media, which keeps going to mallory's own socket."""
    server = spawn(["server", "--json", "--host", "127.0.0.1", "--port", "0", "--transport", "rtp", *PLAIN])
    pool: ClientPool | None = None
    victim = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    mallory: RtpRawLink | None = None
    try:
        url = server.expect("server_started")["urls"][0]
        pool = ClientPool(url, extra=PLAIN)
        alice, meeting = pool.create("alice")
        alice.send("/share pattern width=320 height=240 fps=15")
        alice.expect("publish_started")
        link = raw_join(url, meeting, "mallory", pool.passcode)
        assert isinstance(link, RtpRawLink)
        mallory = link
        assert any(is_media(d) for d in collect(mallory.udp, 3.0)), "mallory gets the meeting's media"

        credentials = mallory.credentials
        victim.bind(("127.0.0.1", 0))
        victim.connect(("127.0.0.1", port_of(url)))
        victim.setblocking(False)
        got: list[bytes] = []
        started = time.monotonic()
        number = 1_000
        while time.monotonic() - started < 8.0:
            number += 1
            victim.send(credentials.request(request_transaction(number)))
            time.sleep(0.1)
            while True:
                try:
                    got.append(victim.recv(2048))
                except BlockingIOError:
                    break
        victim.setblocking(True)
        got += collect(victim, 5.0)  # the checks still due
        elapsed = time.monotonic() - started

        assert [d for d in got if is_media(d)] == [], "media reached the victim"
        assert got, "the victim's address was checked"
        assert all(StunMessage.parse(d).message_class == CLASS_REQUEST for d in got)  # checks only
        assert all(len(d) < 120 for d in got), [len(d) for d in got]
        assert len(got) <= CHECK_BURST + CHECK_RATE * elapsed + 1, len(got)
        assert any(is_media(d) for d in collect(mallory.udp, 2.0)), "mallory's media stays with mallory"
    finally:
        victim.close()
        if mallory is not None:
            mallory.close()
        if pool is not None:
            pool.stop_all()
        server.stop()


def test_a_client_whose_port_changes_keeps_its_media(rtp_server: tuple[ConfProcess, str]) -> None:
    """A NAT rebinding mid-meeting (the relay gives the viewer a new source port): the viewer's next
    keep-alive comes from the new port, it answers the server's consent check there, the server re-latches
    and the video flows again."""
    server, url = rtp_server
    pool = ClientPool(url)
    try:
        _, meeting = pool.create("host")
        with start_relay("127.0.0.1", port_of(url)) as relay:
            viewer = join_through(pool, meeting, relay.port)
            pool.share(meeting, "cam", "pattern", *SMALL).expect("publish_started")
            viewer.expect("track_stats", lambda e: e["name"] == "cam" and e["frames"] > 0, timeout=10)
            before = udp_stats(server, url, lambda s: True)
            relay.rebind()
            udp_stats(server, url, lambda s: s["relatches"] > before["relatches"], timeout=30)
            seen = frames_of(viewer, "cam")
            time.sleep(2.0)
            assert frames_of(viewer, "cam") > seen + 10, "the video flows to the new port"
    finally:
        pool.stop_all()


@pytest.mark.slow
def test_consent_expires_when_the_media_path_dies_and_comes_back_with_it(
    rtp_server: tuple[ConfProcess, str],
) -> None:
    """UDP between the viewer and the server is cut (the control connection stays up) for longer than the
    consent timeout: the server stops sending the viewer media (consent expired) instead of sending into
    the void forever; when the path comes back, the viewer's keep-alive proves it again and video flows."""
    server, url = rtp_server
    pool = ClientPool(url)
    try:
        _, meeting = pool.create("host")
        with start_relay("127.0.0.1", port_of(url)) as relay:
            viewer = join_through(pool, meeting, relay.port)
            pool.share(meeting, "cam", "pattern", *SMALL).expect("publish_started")
            viewer.expect("track_stats", lambda e: e["name"] == "cam" and e["frames"] > 0, timeout=10)
            before = udp_stats(server, url, lambda s: True)
            relay.set_cut(True)
            expired = udp_stats(
                server,
                url,
                lambda s: s["consent_expired"] > before["consent_expired"],
                timeout=CONSENT_TIMEOUT + 15,
            )
            assert expired["consent_checks"] > before["consent_checks"]
            dropped = udp_stats(server, url, lambda s: s["send_dropped"] > expired["send_dropped"] + 50)
            assert dropped["consent_expired"] == expired["consent_expired"]
            relay.set_cut(False)
            udp_stats(server, url, lambda s: s["bindings"] > dropped["bindings"], timeout=20)
            seen = frames_of(viewer, "cam")
            time.sleep(2.0)
            assert frames_of(viewer, "cam") > seen + 10, "the video flows again"
    finally:
        pool.stop_all()
