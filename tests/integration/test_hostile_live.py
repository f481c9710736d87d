"""A catalogue of malformed input sent to a live server, over tcp://, zmq:// and rtp://.

Two real clients (alice and bob) share a tone with each other and chat throughout. Meanwhile hostile
peers send truncated headers, length fields of 0 and all ones, CSRC counts beyond the packet, RTCP
lengths past the datagram, forged and replayed packets, frames that never end and bytes trickled one at
a time; on rtp://, datagrams from addresses that never proved themselves and a replayed STUN request; on
zmq://, a ZMTP frame claiming 4 GiB. The server survives, closes or ignores each peer, logs each one once,
and alice and bob notice nothing: no new loss, no malformed packet in each other's track, chat delivered.

The hostile peers speak the plaintext wire (a server with ``--encryption none``) through
conf_cli.testing.hostile, so that their bytes reach each transport's own parsers; test_hostile_tcp.py
sends its catalogue inside TLS to an encrypted server, and test_encryption.py shows that TLS, CURVE and
SRTP refuse strangers' bytes before any parser sees them.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conf_cli.protocol.framing import frame
from conf_cli.protocol.rtcp import Bye, ReceiverReport, ReportBlock, SenderReport, build_compound
from conf_cli.protocol.rtp import RtpPacket
from conf_cli.testing.hostile import (
    RawLink,
    RtpRawLink,
    Trickler,
    address_of,
    closed_within,
    log_lines_about,
    open_raw_socket,
    peer_tag,
    raw_join,
    tricklers,
    zmq_stranger,
    zmtp_frame_header,
    zmtp_handshake,
)
from conf_cli.testing.processes import ClientPool, ConfProcess, drain_together, spawn

PASSCODE = "pass-123"
MALLORY_SSRC = 0x0BAD0BAD
PLAIN = ["--encryption", "none"]
Event = dict[str, Any]


@pytest.fixture(params=["tcp", "zmq", "rtp"])
def live(request: pytest.FixtureRequest) -> Iterator[tuple[ConfProcess, str, ClientPool]]:
    """A server logging at INFO level (-v), and a pool of clients for it; all stopped by PID."""
    # The plaintext wire, so that what the hostile peers send reaches each transport's own parsers; on an
    # encrypted server TLS, CURVE and SRTP refuse it earlier (tests/integration/test_encryption.py).
    options = ["--json", "--host", "127.0.0.1", "--port", "0", "--stats-interval", "1", *PLAIN]
    server = spawn(["-v", "server", *options, "--transport", request.param])
    pool: ClientPool | None = None
    try:
        url = server.expect("server_started")["urls"][0]
        pool = ClientPool(url, PASSCODE, extra=PLAIN)
        yield server, url, pool
    finally:
        if pool is not None:
            pool.stop_all()
        server.stop()


def audio_from(
    client: ConfProcess, sender: str, where: Callable[[Event], bool], timeout: float = 10
) -> Event:
    return client.expect(
        "track_stats", lambda e: e["name"] == sender and e["kind"] == "audio" and where(e), timeout=timeout
    )


def latest_audio(events: list[Event], sender: str) -> Event:
    """The newest statistics of ``sender``'s audio among ``events`` (two seconds' worth: reports come every
    second)."""
    reports = [e for e in events if e.get("type") == "track_stats" and e["name"] == sender]
    assert reports, f"no track_stats for {sender} in 2 s"
    return reports[-1]


def rtp(ssrc: int, seq: int, payload: bytes = b"\xf8\xff\xfe", **fields: Any) -> bytes:
    return bytes(RtpPacket(111, seq, seq * 960, ssrc, payload, **fields))


def with_first_byte(packet: bytes, first: int) -> bytes:
    return bytes((first,)) + packet[1:]


def hostile_member(url: str, meeting: str, alice_ssrc: int) -> RawLink:
    """Mallory joins, publishes audio, then sends every kind of bad media and control she can."""
    mallory = raw_join(url, meeting, "mallory", PASSCODE)
    mallory.send_control({"type": "publish", "kind": "audio", "ssrc": MALLORY_SSRC, "codec": "opus"})
    mallory.expect("share_started", lambda m: m["name"] == "mallory")
    good = rtp(MALLORY_SSRC, 1)
    block = ReportBlock(alice_ssrc, 0, 0, 1, 0)
    bad_media = [
        good[:5],  # a truncated header
        good[:11],
        with_first_byte(good, 0x8F),  # 15 CSRCs, none there
        with_first_byte(good, 0x90)[:12] + b"\xbe\xde\xff\xff" + good[12:],  # extension of 0xFFFF words
        b"\x81\xc9\xff\xff" + struct.pack("!I", MALLORY_SSRC),  # RTCP length past the datagram
        b"\x81\xc9\x00\x00",  # RTCP length 0: a receiver report with no room for its SSRC
        bytes(SenderReport(MALLORY_SSRC, 0, 0, 0, 0))[:-4]
        + b"\x9f\xc9\x00\x01"
        + bytes(4),  # 31 blocks claimed
        build_compound([ReceiverReport(MALLORY_SSRC, [block])])[:-8],  # cut inside its block
        b"\xa0\xc9\x00\x01\x00\x00\x00\xff",  # RTCP padding longer than the packet
    ]
    for packet in bad_media:
        mallory.send_media(packet)
    # Packets claiming alice's track (forged, or replayed from what mallory received): not hers to send.
    for seq in range(50):
        mallory.send_media(rtp(alice_ssrc, 40_000 + seq))
    # Her own packets, replayed: forwarded (they are hers), the receivers drop the duplicates.
    for seq in range(1, 4):
        for _ in range(20):
            mallory.send_media(rtp(MALLORY_SSRC, seq))
    mallory.send_media(build_compound([Bye([MALLORY_SSRC], "\xff" * 10)]))
    # Control messages that do not parse or validate: answered, until there are too many.
    for bad in (b'{"type": "chat", "text": 5}', b"[1,2]", b'{"type": "' + b"x" * 60_000 + b'"}'):
        mallory.send_control(bad)
    return mallory


def pre_hello_abuse(url: str, transport: str) -> tuple[list[socket.socket], list[Trickler], list[str]]:
    """Byte-level abuse of the server's port by peers that never become members.

    Returns the sockets (each must be closed by the server), the tricklers, and the peers that the
    server's log must name exactly once.
    """
    sockets: list[socket.socket] = []
    logged: list[str] = []

    def connect(data: bytes, *, log: bool = True) -> socket.socket:
        sock = open_raw_socket(url)
        if transport == "zmq":
            zmtp_handshake(sock)
        if data:
            sock.sendall(data)
        sockets.append(sock)
        if log:
            logged.append(peer_tag(sock))
        return sock

    trickling: list[Trickler] = []
    if transport == "zmq":
        # Below conf's own protocol: the server's ZMTP layer refuses these before any message is read
        # (a frame too large at once; one never finished, or a greeting cut short, by the heartbeat or
        # handshake timeout); it must drop each connection within seconds.
        connect(zmtp_frame_header(1 << 32), log=False)  # a frame claiming 4 GiB
        connect(zmtp_frame_header(0xFFFF_FFFF_FFFF_FFFF), log=False)  # all ones
        connect(zmtp_frame_header(1000) + b"0123456789", log=False)  # a frame that never ends
        trickling.append(Trickler(connect(zmtp_frame_header(60_000), log=False), bytes(60_000)))
        raw = open_raw_socket(url)
        raw.sendall(b"\xff" + bytes(8))  # a ZMTP greeting cut short
        sockets.append(raw)
        # ZeroMQ peers that never greet properly: each is answered with a goodbye and logged once.
        media = [rtp(1, 1)]
        logged.append(zmq_stranger(url, b"\x01stranger", [media] * 5))  # media without a greeting
        logged.append(zmq_stranger(url, b"\x01badgreet", [[b"G", b"{}"]] * 5))
        logged.append(zmq_stranger(url, b"\x01threefr", [[b"C", b"{}", b"{}"]] * 5))  # three frames
        logged.append(zmq_stranger(url, b"\x01bigkind", [[b"MM" * 5000, b""]] * 5))  # an unknown kind
        return sockets, trickling, logged
    hello = frame(json.dumps({"type": "hello", "protocol": 1}).encode())
    connect(b"\x00")  # a truncated length header, never finished
    connect(b"\x00\x00" * 5000)  # length 0 (keep-alives) and nothing else
    connect(b"\xff\xff" + bytes(100))  # length all ones (the largest frame), never finished
    connect(frame(b'{"type": "hello", "protocol": 1, "pad": "') + b"")  # a frame cut in the middle
    connect(frame(rtp(1, 1)))  # media before hello
    connect(frame(b"\x80"))  # a one-byte "RTP packet" before hello
    connect(frame(b"{not json"))
    trickling.append(Trickler(connect(b""), hello * 100))  # a byte at a time: never a whole hello in time
    after_hello = connect(hello)  # greeted, then trickles a join forever: the heartbeat timeout drops it
    join = frame(json.dumps({"type": "join", "meeting": "x", "name": "slow", "pad": "." * 500}).encode())
    trickling.append(Trickler(after_hello, join))
    return sockets, trickling, logged


def udp_abuse(url: str, alice_ssrc: int, mallory: RawLink) -> list[str]:
    """Datagrams from addresses that never proved themselves, and a replayed STUN request."""
    assert isinstance(mallory, RtpRawLink)
    logged: list[str] = []
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    replayer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        stranger.connect(address_of(url))
        for seq in range(100):
            stranger.send(rtp(alice_ssrc, 50_000 + seq))  # alice's SSRC from an unknown address
        stranger.send(b"\x81\xc9\xff\xff" + bytes(4))
        stranger.send(bytes(1600))  # longer than any datagram the server takes
        logged.append(peer_tag(stranger))
        replayer.connect(address_of(url))
        replayer.send(mallory.binding)  # mallory's own signed request, copied
        replayer.settimeout(1.0)
        with pytest.raises(TimeoutError):
            replayer.recv(2048)  # no answer: a replay from another address latches nothing
        logged.append(peer_tag(replayer))
    finally:
        stranger.close()
        replayer.close()
    return logged


def test_hostile_input_catalogue(live: tuple[ConfProcess, str, ClientPool]) -> None:
    server, url, pool = live
    transport = url.split("://")[0]
    alice, meeting = pool.create("alice")
    bob = pool.joined(meeting, "bob")
    alice.send("/share tone")
    bob.send("/share tone")
    alice_ssrc = int(alice.expect("publish_started")["ssrc"])
    bob.expect("publish_started")
    before_bob = audio_from(alice, "bob", lambda e: e["frames"] > 10)
    before_alice = audio_from(bob, "alice", lambda e: e["frames"] > 10)
    started = time.monotonic()

    with tricklers() as trickling:
        sockets, slow, logged = pre_hello_abuse(url, transport)
        trickling += slow
        mallory = hostile_member(url, meeting, alice_ssrc)
        logged.append(mallory.tag)
        if transport == "rtp":
            logged += udp_abuse(url, alice_ssrc, mallory)

        # Mallory is still a member (bad media is dropped, not punished) until she sends too much bad
        # control; she sends nothing else, so the heartbeat timeout would drop her soon anyway.
        mallory.send_control({"type": "chat", "text": "sorry"})
        alice.expect("chat", lambda e: e["from"] == "mallory" and e["text"] == "sorry")
        for _ in range(25):
            try:
                mallory.send_control(b"{}")
            except (BrokenPipeError, ConnectionResetError):
                break  # the server closed her connection after too many: what this part awaits
        assert mallory.is_closed(10)
        mallory.close()
        alice.expect("participant_left", lambda e: e["name"] == "mallory")

        # The meeting carries on meanwhile.
        alice.send("through the storm")
        bob.expect("chat", lambda e: e["text"] == "through the storm")
        bob.send("still here")
        alice.expect("chat", lambda e: e["text"] == "still here")

        # Each hostile connection is closed: at once for garbage, within the hello (5 s) or heartbeat
        # (6 s) timeout for those that stall or trickle, at once for what breaks ZMTP.
        open_ones = [peer_tag(s) for s in sockets if not closed_within(s, 15)]
        assert not open_ones, f"still open: {open_ones}"
        for sock in sockets:
            sock.close()

    # Alice and bob noticed nothing: no new loss or damage in each other's audio, all of it arrived.
    chat_after = "after the storm"
    alice.send(chat_after)
    bob.expect("chat", lambda e: e["text"] == chat_after)
    elapsed = time.monotonic() - started
    of_alice, of_bob, of_server = drain_together(alice, bob, server, seconds=2.0)
    after_bob, after_alice = latest_audio(of_alice, "bob"), latest_audio(of_bob, "alice")
    for before, after in ((before_bob, after_bob), (before_alice, after_alice)):
        assert after["packets_lost"] == before["packets_lost"], (before, after)
        assert after["malformed"] == 0 and after["decode_errors"] == 0, after
        # 50 packets/s of tone (reports come every second): at least half of them arrived and decoded.
        assert after["frames"] - before["frames"] >= 50 * (elapsed - 2) * 0.5, (elapsed, before, after)
    # What mallory sent under her own SSRC reached them only if well formed (the server drops the rest).
    of_mallory = [
        e
        for e in alice.seen + bob.seen
        if e.get("type", "").startswith("track_") and e.get("name") == "mallory"
    ]
    assert all(e.get("malformed", 0) == 0 for e in of_mallory), of_mallory
    for client in (alice, bob):
        troubles = [
            e
            for e in client.seen
            if e.get("type") in ("error", "disconnected")
            or (e.get("type") == "participant_left" and e.get("name") != "mallory")
        ]
        assert not troubles, troubles

    # The server is alive and counted what it dropped ...
    latest = [e for e in of_server if e.get("type") == "server_stats"][-1]
    stats = latest["hub"]
    assert stats["media_malformed"] >= 7 and stats["media_refused"] >= 50, stats
    assert stats["protocol_errors"] >= 20, stats
    if transport == "rtp":
        udp = latest["listeners"][url]
        assert udp["dropped_unknown"] >= 100 and udp["dropped_oversize"] >= 1, udp
        assert udp["stun_replayed"] == 1, udp
    # ... and named each hostile peer in its log exactly once, and no one else.
    lines = list(server.stderr_lines)
    for tag in logged:
        about = log_lines_about(lines, tag)
        assert len(about) == 1, (tag, about)
    named = [line for line in lines if " closing " in line or " dropping " in line]
    assert len(named) == len(logged), (named, logged)
