"""The ZeroMQ transport: its framing, then real conf processes over zmq://, a server on TCP and ZeroMQ at
once, hostile input to the ROUTER port, a cross-meeting SSRC collision and a client too slow to read.
(Who receives a meeting's media: test_zmq_media_access.py.)"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import zmq
import zmq.asyncio
from conf_crypto import CurveCipher
from conf_transport_zmq import keys, wire
from conf_transport_zmq.client import connect

from conf_cli.errors import ConfError, ProtocolError
from conf_cli.plugin.transport import TransportOptions
from conf_cli.protocol.rtp import RtpPacket, is_rtcp
from conf_cli.server.resume import SEAT_GRACE
from conf_cli.testing.processes import ClientPool, ConfProcess, run_conf, spawn, start_server
from tests.helpers.links import HeardClientEvents

SMALL = ("--width", "320", "--height", "240", "--fps", "15")


def has_frames(event: dict[str, Any]) -> bool:
    return int(event["frames"]) > 0


@pytest.fixture
def zmq_server() -> Iterator[tuple[ConfProcess, str]]:
    server, url = start_server("--stats-interval", "0.5", transport="zmq")
    try:
        yield server, url
    finally:
        server.stop()


@pytest.fixture
def pool(zmq_server: tuple[ConfProcess, str]) -> Iterator[ClientPool]:
    clients = ClientPool(zmq_server[1])
    try:
        yield clients
    finally:
        clients.stop_all()


def endpoint(url: str) -> str:
    return "tcp://" + url.split("://", 1)[1]


def listener_stats(server: ConfProcess, url: str, where: Any = None) -> dict[str, int]:
    event = server.expect("server_stats", lambda e: where is None or where(e["listeners"][url]))
    return dict(event["listeners"][url])


def server_key(url: str) -> bytes:
    """The server's identity key, from its key service (a UDP datagram to the ROUTER's port)."""
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        for _ in range(10):
            sock.sendto(keys.request(), (host, int(port)))
            try:
                key = keys.read_answer(sock.recv(100))
            except TimeoutError:
                continue
            if key is not None:
                return key
    raise AssertionError("no answer from the key service")


class RawDealer:
    """A hand-made ZeroMQ client speaking the framing of docs/protocol.md, for hostile and odd input.

    It passes CURVE like a real client (hostile bytes must reach conf's own parsers)."""

    def __init__(self, context: zmq.Context[Any], url: str, **options: int) -> None:
        self.sock = context.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVTIMEO, 5000)
        for name, value in options.items():
            self.sock.setsockopt(getattr(zmq, name), value)
        CurveCipher().secure_client([self.sock], server_key(url))
        self.sock.connect(endpoint(url))

    def send(self, *frames: bytes) -> None:
        """These frames as they are, one message."""
        self.sock.send_multipart(list(frames))

    def message(self, kind: bytes, payload: bytes) -> None:
        """A message of ``kind``, framed as docs/protocol.md says."""
        self.sock.send_multipart(wire.frames(kind, payload))

    def recv(self) -> tuple[bytes, bytes]:
        return wire.split(self.sock.recv_multipart())

    def control(self, message: dict[str, Any]) -> None:
        self.message(wire.CONTROL, json.dumps(message).encode())

    def expect_control(self, kind: str) -> dict[str, Any]:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            frame_kind, payload = self.recv()
            if frame_kind == wire.CONTROL:
                message: dict[str, Any] = json.loads(payload)
                if message["type"] == kind:
                    return message
        raise AssertionError(f"no {kind!r}")


@pytest.fixture
def context() -> Iterator[zmq.Context[Any]]:
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        yield ctx
    finally:
        ctx.destroy(linger=0)


# -- framing, no network ------------------------------------------------------------------------------


def test_framing_checks_every_message() -> None:
    wire.parse_server_greeting(wire.server_greeting())
    wire.parse_client_greeting(wire.client_greeting())
    ping = b'{"type":"ping"}'
    rtp = bytes(RtpPacket(96, 1, 1, 7, b"x"))
    for kind, payload in ((wire.CONTROL, ping), (wire.MEDIA, rtp), (wire.KEEPALIVE, b"")):
        assert len(wire.frames(kind, payload)) == 1  # the link's messages: one frame each
        assert wire.split(wire.frames(kind, payload)) == (kind, payload)
    assert wire.frames(wire.MEDIA, rtp) == [rtp]  # a packet goes as it is
    for kind in (wire.GREETING, wire.BYE):  # the transport's: two frames, in every version
        assert wire.frames(kind, b"x") == [kind, b"x"] and wire.split([kind, b"x"]) == (kind, b"x")
    for bad in (
        [],
        [b""],
        [b"C", b"x", b"y"],
        [b"C", ping],  # the link's kinds are one frame
        [b"M", rtp],
        [b"X"],
        [b"Xpayload"],
        [b"G{}"],  # the transport's kinds are two
        [b"C" + bytes(65_536)],
        [rtp[:1] + bytes(65_535)],
        [b"Kpayload"],
    ):
        with pytest.raises(ProtocolError):
            wire.split(bad)
    # Version 1 sent media down on a PUB socket: its clients are refused with a reason, not left waiting.
    old = b'{"transport": "conf-zmq", "version": 1, "pub_port": 7451}'
    v2 = b'{"transport": "conf-zmq", "version": 2}'  # every message two frames
    for greeting in (b"hello", b"[]", b'{"transport": "conf-zmq", "version": 4}', old, v2, bytes(600)):
        with pytest.raises(ProtocolError):
            wire.parse_client_greeting(greeting)
        with pytest.raises(ProtocolError):
            wire.parse_server_greeting(greeting)
    assert len(wire.bye("é" * 500)) <= wire.MAX_REASON


async def test_a_client_link_reads_every_message_and_skips_malformed_ones() -> None:
    """The client's DEALER is read from the event loop in batches: a burst larger than a batch all arrives,
    in order; messages of the wrong shape from the server are counted and skipped, the link goes on; a
    goodbye closes it with the server's reason."""
    context = zmq.asyncio.Context()
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    heard = HeardClientEvents()
    try:
        connecting = asyncio.ensure_future(
            connect("127.0.0.1", port, heard, TransportOptions(connect_timeout=5))
        )
        identity, kind, _ = await asyncio.wait_for(router.recv_multipart(), 5)
        assert kind == wire.GREETING
        await router.send_multipart([identity, wire.GREETING, wire.server_greeting()])
        link = await asyncio.wait_for(connecting, 5)
        packets = [bytes(RtpPacket(96, seq, seq, 7, bytes(100))) for seq in range(200)]
        await router.send_multipart([identity, wire.MEDIA, packets[0]])  # two frames: version 2's shape
        await router.send_multipart([identity, packets[0], b"more", b"and more"])  # three
        await router.send_multipart([identity, b"X"])  # no such kind
        await router.send_multipart([identity, b""])  # empty
        for packet in packets:
            await router.send_multipart([identity, packet])
        await router.send_multipart([identity, *wire.frames(wire.CONTROL, b'{"type": "ping"}')])
        async with asyncio.timeout(10):
            while not heard.control:
                await asyncio.sleep(0.01)
        assert heard.media == packets
        assert heard.control == [b'{"type": "ping"}']
        assert link.malformed == 4
        await router.send_multipart([identity, wire.BYE, b"going away"])
        async with asyncio.timeout(10):
            while not heard.closed_reasons:
                await asyncio.sleep(0.01)
        assert heard.closed_reasons == ["closed by the server: going away"]
        assert link.is_closing
    finally:
        router.close(0)
        context.term()


async def test_connect_without_a_server_says_so_in_one_line() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConfError) as caught:
        await connect("127.0.0.1", port, None, TransportOptions(connect_timeout=0.3))  # type: ignore[arg-type]
    assert str(caught.value) == (
        f"cannot reach server zmq://127.0.0.1:{port}: no answer in 0.3 s; "
        "is `conf server --transport zmq` running, with the same --encryption setting?"
    )


# -- real processes -----------------------------------------------------------------------------------


def test_a_control_backlog_keeps_order_and_says_when_its_peer_is_too_slow() -> None:
    """What a full queue did not take waits in order and leaves as the queue takes it again; past
    CONTROL_BACKLOG_LIMIT bytes the backlog says so (its link then closes, as a TCP link would)."""
    backlog = wire.ControlBacklog()
    assert not backlog and backlog.flush(lambda data: False)  # nothing waits
    assert backlog.add(b"one") and backlog.add(b"two") and backlog.add(b"three")
    room = [True]  # the queue takes one message, then is full again
    sent: list[bytes] = []

    def send(data: bytes) -> bool:
        if not room:
            return False
        room.pop()
        sent.append(data)
        return True

    assert not backlog.flush(send) and sent == [b"one"] and backlog.bytes == len(b"twothree")
    room += [True, True]
    assert backlog.flush(send) and sent == [b"one", b"two", b"three"] and not backlog and backlog.bytes == 0
    big = bytes(wire.MAX_PAYLOAD)
    assert all(backlog.add(big) for _ in range(wire.CONTROL_BACKLOG_LIMIT // len(big)))
    assert not backlog.add(big)  # one more is past the limit


def test_meeting_over_zmq(pool: ClientPool) -> None:
    assert pool.url.startswith("zmq://127.0.0.1:")
    ada, meeting = pool.create("ada")
    bob = pool.joined(meeting, "bob")
    cy = pool.joined(meeting, "cy")
    ada.expect("participant_joined", lambda e: e["name"] == "cy")
    ada.send("hello all")
    assert bob.expect("chat")["text"] == "hello all" and cy.expect("chat")["text"] == "hello all"
    bob.send("/msg ada secret")
    assert ada.expect("chat", lambda e: e["private"])["text"] == "secret"
    ada.send("/admin bob")
    cy.expect("role_changed", lambda e: e["name"] == "bob" and e["role"] == "admin")
    bob.send("/lock")
    cy.expect("meeting_locked")
    bob.send("/end")
    for client in (ada, bob, cy):
        assert client.expect("meeting_closed")["by"] == "bob"
        assert client.wait() == 0


def test_a_killed_client_is_dropped_by_the_heartbeat(pool: ClientPool) -> None:
    ada, meeting = pool.create("ada")
    bob = pool.joined(meeting, "bob")
    cy = pool.joined(meeting, "cy")
    os.kill(bob.pid, signal.SIGKILL)
    started = time.monotonic()
    left = ada.expect("participant_left", lambda e: e["name"] == "bob", timeout=12 + SEAT_GRACE)
    # dropped after 6 s of silence; its seat is then kept SEAT_GRACE seconds for a resume that never comes
    assert left["reason"] == "timeout" and time.monotonic() - started < 10 + SEAT_GRACE
    ada.send("carry on")
    assert cy.expect("chat")["text"] == "carry on"


def test_video_reaches_every_viewer(pool: ClientPool, zmq_server: tuple[ConfProcess, str]) -> None:
    server, url = zmq_server
    ada, meeting = pool.create("ada")
    bob = pool.joined(meeting, "bob")
    sharer = pool.share(meeting, "pat", "pattern", *SMALL)
    ssrc = sharer.expect("publish_started")["ssrc"]
    for viewer in (ada, bob):
        stats = viewer.expect("track_stats", has_frames, timeout=8)
        assert stats["ssrc"] == ssrc and stats["malformed"] == 0
    counters = listener_stats(server, url, lambda c: c["links"] == 3)
    assert counters["malformed"] == 0 and counters["send_failures"] == 0


def test_tcp_and_zmq_clients_in_one_meeting() -> None:
    server = spawn(
        ["server", "--json", "--host", "127.0.0.1", "--port", "0", "--transport", "tcp", "--transport", "zmq"]
    )
    tcp_pool: ClientPool | None = None
    zmq_pool: ClientPool | None = None
    try:
        tcp_url, zmq_url = server.expect("server_started")["urls"]
        assert tcp_url.startswith("tcp://") and zmq_url.startswith("zmq://")
        tcp_pool, zmq_pool = ClientPool(tcp_url), ClientPool(zmq_url)
        ada, meeting = tcp_pool.create("ada")
        zed = zmq_pool.joined(meeting, "zed")
        ada.send("from tcp")
        assert zed.expect("chat")["text"] == "from tcp"
        zed.send("from zmq")
        ada.expect("chat", lambda e: e["text"] == "from zmq")
        # A zmq publisher reaches the TCP viewer; a TCP publisher reaches the zmq viewer.
        zmq_pool.share(meeting, "zpat", "pattern", *SMALL).expect("publish_started")
        tcp_pool.share(meeting, "tpat", "pattern", *SMALL).expect("publish_started")
        ada.expect("track_stats", lambda e: e["name"] == "zpat" and has_frames(e), timeout=8)
        zed.expect("track_stats", lambda e: e["name"] == "tpat" and has_frames(e), timeout=8)
    finally:
        for clients in (tcp_pool, zmq_pool):
            if clients is not None:
                clients.stop_all()
        server.stop()


def test_hostile_input_does_not_disturb_a_meeting(
    pool: ClientPool, zmq_server: tuple[ConfProcess, str], context: zmq.Context[Any]
) -> None:
    server, url = zmq_server
    ada, meeting = pool.create("ada")
    bob = pool.joined(meeting, "bob")
    noise = random.Random(4571)

    wrong = RawDealer(context, url)
    wrong.send(wire.GREETING, b'{"transport": "something else"}')
    kind, reason = wrong.recv()
    assert kind == wire.BYE and reason.startswith(b"bad greeting")
    older = RawDealer(context, url)  # a version 2 client reads the goodbye: G and B keep their shape
    older.send(wire.GREETING, b'{"transport": "conf-zmq", "version": 2}')
    assert older.sock.recv_multipart() == [wire.BYE, b"bad greeting: greeting version 2 is not 3"]
    early = RawDealer(context, url)
    early.control({"type": "hello", "protocol": 1})
    assert early.recv() == (wire.BYE, b"not connected; greet first")

    junk = RawDealer(context, url)
    for _ in range(300):
        frames = [noise.randbytes(noise.randrange(0, 40)) for _ in range(noise.randrange(1, 6))]
        junk.send(*frames)
    junk.send(wire.GREETING, wire.client_greeting())
    junk.message(wire.CONTROL, noise.randbytes(70_000))  # over ZMQ_MAXMSGSIZE: libzmq drops the peer
    huge = RawDealer(context, url)
    huge.send(wire.GREETING, wire.client_greeting())
    assert huge.recv()[0] == wire.GREETING
    huge.message(wire.CONTROL, b"{" + bytes(65_535))  # one byte over the limit, under MAXMSGSIZE
    huge.message(wire.MEDIA, b"\x80" + noise.randbytes(65_535))
    for _ in range(30):
        huge.message(wire.CONTROL, noise.randbytes(100))  # garbage control: the core closes it

    host, port = url.removeprefix("zmq://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as raw:  # not ZMTP at all
        raw.sendall(noise.randbytes(20_000))

    ada.send("still here")
    assert bob.expect("chat")["text"] == "still here"
    counters = listener_stats(server, url, lambda c: c["malformed"] >= 2 and c["bad_greetings"] >= 1)
    assert counters["unknown_sender"] >= 1
    bob.send("/msg ada fine")
    assert ada.expect("chat", lambda e: e["private"])["text"] == "fine"


def test_another_meetings_ssrc_stays_in_its_meeting(pool: ClientPool, context: zmq.Context[Any]) -> None:
    ada, meeting = pool.create("ada")
    sharer = pool.share(meeting, "pat", "pattern", *SMALL)
    ssrc = sharer.expect("publish_started")["ssrc"]
    ada.expect("track_stats", has_frames, timeout=8)

    # Someone in another meeting publishes a track with the same SSRC and sends garbage under it.
    mallory = RawDealer(context, pool.url)
    mallory.send(wire.GREETING, wire.client_greeting())
    assert mallory.recv()[0] == wire.GREETING
    mallory.control({"type": "hello", "protocol": 1})
    mallory.control({"type": "create", "name": "mallory", "passcode": pool.passcode})
    other = mallory.expect_control("meeting_created")["meeting"]
    witness = pool.joined(other, "witness")
    mallory.control({"type": "publish", "kind": "video", "ssrc": ssrc, "codec": "H264"})
    mallory.expect_control("share_started")
    witness.expect("track_started")
    theirs = 0
    for seq in range(200):
        mallory.message(wire.MEDIA, bytes(RtpPacket(96, 40_000 + seq, seq, ssrc, b"\x7c\x85garbage")))
        while mallory.sock.poll(0):
            kind, payload = mallory.recv()
            theirs += kind == wire.MEDIA and not is_rtcp(payload)  # RTP is only ever ada's meeting's
        time.sleep(0.002)
    assert theirs == 0

    # Each meeting keeps its own track: ada's is delivered undamaged, the witness sees mallory's.
    ada.drain(1.0)
    stats = ada.expect("track_stats", has_frames, timeout=8)
    assert stats["malformed"] == 0 and stats["decode_errors"] == 0 and stats["name"] == "pat"
    assert witness.expect("track_stats", lambda e: e["packets"] > 0, timeout=8)["name"] == "mallory"


def test_a_client_too_slow_for_media_still_gets_its_control_messages(
    pool: ClientPool, zmq_server: tuple[ConfProcess, str], context: zmq.Context[Any]
) -> None:
    """Media and control share a client's queue (its connection's unsent bytes): once media has filled it,
    media to the client is dropped, and a control message still reaches it, without closing the link."""
    server, url = zmq_server
    ada, meeting = pool.create("ada")

    def member(name: str, **options: int) -> RawDealer:
        one = RawDealer(context, url, **options)
        one.send(wire.GREETING, wire.client_greeting())
        assert one.recv()[0] == wire.GREETING
        one.control({"type": "hello", "protocol": 1})
        one.control({"type": "join", "meeting": meeting, "name": name, "passcode": pool.passcode})
        one.expect_control("joined")
        return one

    slow = member("slow", RCVHWM=1, RCVBUF=4096)  # reads nothing from here on but its own keep-alives
    flood = member("flood")
    flood.control({"type": "publish", "kind": "video", "ssrc": 0x5EED, "codec": "H264"})
    flood.expect_control("share_started")
    last_keepalive = 0.0
    for seq in range(12_000):  # about 14 MB: more than the ROUTER's queue and the socket buffers hold
        flood.message(wire.MEDIA, bytes(RtpPacket(96, seq, seq, 0x5EED, b"\x7c\x85" + bytes(1_150))))
        if time.monotonic() - last_keepalive > 1.0:
            slow.message(wire.KEEPALIVE, b"")
            flood.message(wire.KEEPALIVE, b"")
            last_keepalive = time.monotonic()
    listener_stats(server, url, lambda c: c["media_dropped"] > 0)  # slow's queue is full
    ada.send("after the flood")

    texts: list[str] = []
    kinds: set[bytes] = set()
    deadline = time.monotonic() + 20
    while "after the flood" not in texts and time.monotonic() < deadline:
        if slow.sock.poll(200):
            kind, payload = slow.recv()
            kinds.add(kind)
            if kind == wire.CONTROL and json.loads(payload).get("type") == "chat":
                texts.append(json.loads(payload)["text"])
        slow.message(wire.KEEPALIVE, b"")
    assert texts == ["after the flood"] and wire.BYE not in kinds
    assert not [e for e in ada.drain(1.0) if e["type"] == "participant_left"]  # slow is still in


def test_port_zero_prints_the_url_and_a_busy_port_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = run_conf("server", "--transport", "zmq", "--host", "127.0.0.1", "--port", str(port))
    assert busy.returncode == 1
    expected = f"conf: port {port} on 127.0.0.1 is already in use; pick another with --port"
    assert busy.stderr.strip() == expected
    server = spawn(["server", "--transport", "zmq", "--host", "127.0.0.1", "--port", "0"])
    try:
        line = server.expect("_text")["text"]
        assert line.startswith("zmq://127.0.0.1:") and int(line.rsplit(":", 1)[1]) > 0
    finally:
        server.stop()


def test_a_goodbye_reason_is_read_without_control_characters() -> None:
    """A peer's goodbye reason ends up in a log line or a message on a terminal: no ESC gets through."""
    assert (
        wire.read_bye("bye \x1b]52;c;ZXZpbA==\x07 \x9b2J".encode())
        == "bye \ufffd]52;c;ZXZpbA==\ufffd \ufffd2J"
    )
    assert wire.read_bye(b"") == "closed"
