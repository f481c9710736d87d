"""On zmq://, a meeting's media reaches its participants and nobody else (the security review, critical 1).

Each stranger is a hand-made CURVE client, as an attacker would write it: a DEALER that greets the
ROUTER, and a SUB with the same CURVE key, subscribed to the empty prefix (every topic) and to the real
SSRCs of the meeting, connected to the media port the greeting names (or, when the greeting names
none, to ``PORT + 1``, where earlier versions published media). One stranger only greets; one says
``hello`` and stops; one waits in the meeting's waiting room; one is in another meeting; one joined and
left; one joined and was kicked; one joined and had its link closed by the server. While two members
share video into the meeting and the host keeps receiving both tracks, none of them gets a single
message of the meeting's media: no RTP or RTCP on its DEALER, nothing at all on its SUB.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import zmq
from conf_crypto import CurveCipher
from conf_transport_zmq import wire
from conf_transport_zmq.keys import fetch_key

from conf_cli.protocol.rtp import is_rtcp
from conf_cli.testing.capture import free_port_pair
from conf_cli.testing.processes import ClientPool, ConfProcess, spawn

SMALL = ("--width", "320", "--height", "240", "--fps", "15")
PASSCODE = "pass-123"


class Stranger:
    """A DEALER and a SUB sharing one fresh CURVE key, driven by hand; counts every media message."""

    def __init__(
        self, context: zmq.Context[Any], url: str, topics: list[bytes], routing_id: bytes | None = None
    ) -> None:
        host, port = url.removeprefix("zmq://").rsplit(":", 1)
        self.dealer = context.socket(zmq.DEALER)
        self.sub = context.socket(zmq.SUB)
        for sock in (self.dealer, self.sub):
            sock.setsockopt(zmq.LINGER, 0)
        if routing_id is not None:
            self.dealer.setsockopt(zmq.ROUTING_ID, routing_id)
        key = asyncio.run(fetch_key(host, int(port), 5.0))
        assert key is not None, "no answer from the key service"
        CurveCipher().secure_client([self.dealer, self.sub], key)
        self.dealer.connect(f"tcp://{host}:{port}")
        self.routing_id = routing_id
        media_port = int(port) + 1
        if routing_id is None:  # greet, as a client does; a copied routing id gets no answer
            self.dealer.send_multipart([wire.GREETING, wire.client_greeting()])
            kind, payload = self._recv(10.0)
            assert kind == wire.GREETING, (kind, payload)
            media_port = json.loads(payload).get("pub_port") or media_port
        for name in [b"", *topics]:
            self.sub.setsockopt(zmq.SUBSCRIBE, name)
        self.sub.connect(f"tcp://{host}:{media_port}")
        self.controls: list[dict[str, Any]] = []
        self.media = 0  # RTP and RTCP on the DEALER
        self.published = 0  # anything on the SUB
        self.closed = False
        self.last_keepalive = 0.0

    def _recv(self, timeout: float) -> tuple[bytes, bytes]:
        if not self.dealer.poll(int(timeout * 1000)):
            raise AssertionError("no answer from the server")
        return wire.split(self.dealer.recv_multipart())

    def control(self, message: dict[str, Any]) -> None:
        self.dealer.send_multipart(wire.frames(wire.CONTROL, json.dumps(message).encode()))

    def pump(self, seconds: float, keepalive: bool = True) -> None:
        """Read both sockets for ``seconds``, sending keep-alives (unless told not to) so the link lives."""
        deadline = time.monotonic() + seconds
        poller = zmq.Poller()
        poller.register(self.dealer, zmq.POLLIN)
        poller.register(self.sub, zmq.POLLIN)
        while (remaining := deadline - time.monotonic()) > 0:
            now = time.monotonic()
            if keepalive and not self.closed and now - self.last_keepalive > 1.0:
                self.dealer.send_multipart(wire.frames(wire.KEEPALIVE, b""))
                self.last_keepalive = now
            ready = dict(poller.poll(int(min(remaining, 0.2) * 1000)))
            while self.sub in ready and self.sub.poll(0):
                self.sub.recv_multipart()
                self.published += 1
            while self.dealer in ready and self.dealer.poll(0):
                kind, payload = wire.split(self.dealer.recv_multipart())
                if kind == wire.MEDIA:
                    self.media += 1
                elif kind == wire.CONTROL:
                    self.controls.append(json.loads(payload))
                elif kind == wire.BYE:
                    self.closed = True

    def expect(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.controls:
                if message.get("type") == kind:
                    self.controls.remove(message)
                    return message
            self.pump(0.2)
        raise AssertionError(f"no {kind!r}; got {[m.get('type') for m in self.controls][-10:]}")

    def received(self) -> int:
        """Media messages since the last call (on either socket)."""
        count, self.media, self.published = self.media + self.published, 0, 0
        return count

    def close(self) -> None:
        self.dealer.close(0)
        self.sub.close(0)


@pytest.fixture
def context() -> Iterator[zmq.Context[Any]]:
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        yield ctx
    finally:
        ctx.destroy(linger=0)


def frames_of(client: ConfProcess, name: str) -> int:
    return int(
        client.expect("track_stats", lambda e: e["name"] == name and e["frames"] > 0, timeout=10)["frames"]
    )


def test_no_stranger_receives_a_meetings_media(context: zmq.Context[Any]) -> None:
    port = free_port_pair()
    server = spawn(["server", "--json", "--host", "127.0.0.1", "--port", str(port), "--transport", "zmq"])
    pool: ClientPool | None = None
    strangers: list[Stranger] = []
    try:
        url = server.expect("server_started")["urls"][0]
        pool = ClientPool(url, PASSCODE)
        ada, meeting = pool.create("ada", "--waiting-room")
        ssrcs: list[int] = []
        for name in ("pat", "sam"):  # two members sharing video
            sharer = pool.share(meeting, name, "pattern", *SMALL)
            sharer.expect("waiting")
            ada.send(f"/admit {name}")
            ssrcs.append(sharer.expect("publish_started", timeout=15)["ssrc"])
        frames_of(ada, "pat"), frames_of(ada, "sam")
        topics = [ssrc.to_bytes(4, "big") for ssrc in ssrcs]  # the SSRC topics of the old PUB socket

        def stranger() -> Stranger:
            one = Stranger(context, url, topics)
            strangers.append(one)
            return one

        def hello(one: Stranger) -> Stranger:
            one.control({"type": "hello", "protocol": 1})
            one.expect("welcome")
            return one

        def member(name: str) -> Stranger:
            """In the meeting, admitted by the host; it receives the meeting's media (the control case)."""
            one = hello(stranger())
            one.control({"type": "join", "meeting": meeting, "name": name, "passcode": PASSCODE})
            one.expect("waiting")
            ada.send(f"/admit {name}")
            one.expect("joined")
            deadline = time.monotonic() + 10
            while not one.received() and time.monotonic() < deadline:
                one.pump(0.5)
            one.pump(0.5)
            assert one.received(), f"{name} in the meeting should receive its media"
            return one

        greeted = stranger()
        said_hello = hello(stranger())
        waiting = hello(stranger())
        waiting.control({"type": "join", "meeting": meeting, "name": "wanda", "passcode": PASSCODE})
        waiting.expect("waiting")
        elsewhere = hello(stranger())
        elsewhere.control({"type": "create", "name": "mallory", "passcode": PASSCODE})
        elsewhere.expect("joined")

        leaver = member("leo")
        leaver.control({"type": "leave"})
        leaver.expect("left")
        kicked = member("kim")
        ada.send("/kick kim")
        kicked.expect("kicked")
        dropped = member("dot")
        dropped.control({"type": "no such message"})  # the server closes a link that breaks the protocol
        deadline = time.monotonic() + 10
        while not dropped.closed and time.monotonic() < deadline:
            dropped.pump(0.2, keepalive=False)
        assert dropped.closed, "the server did not close the link"

        for one in strangers:  # what was in flight before each one's last word is not counted
            one.received()
        before = {name: frames_of(ada, name) for name in ("pat", "sam")}
        for _ in range(8):  # about 4 s, while both tracks keep flowing to the host
            for one in strangers:
                one.pump(0.1, keepalive=one is not dropped)
        after = {name: frames_of(ada, name) for name in ("pat", "sam")}
        assert all(after[name] > before[name] for name in before), (before, after)

        got = {
            name: one.received()
            for name, one in zip(
                ("greeted", "hello", "waiting", "other meeting", "left", "kicked", "closed"),
                (greeted, said_hello, waiting, elsewhere, leaver, kicked, dropped),
                strict=True,
            )
        }
        assert got == dict.fromkeys(got, 0), f"media reached strangers: {got}"
    finally:
        for one in strangers:
            one.close()
        if pool is not None:
            pool.stop_all()
        server.stop()


def test_rtcp_and_rtp_both_reach_a_member_on_the_router(context: zmq.Context[Any]) -> None:
    """A member gets the meeting's RTP and RTCP as ``M`` messages addressed to its own routing id."""
    port = free_port_pair()
    server = spawn(["server", "--json", "--host", "127.0.0.1", "--port", str(port), "--transport", "zmq"])
    pool: ClientPool | None = None
    one: Stranger | None = None
    try:
        url = server.expect("server_started")["urls"][0]
        pool = ClientPool(url, PASSCODE)
        _host, meeting = pool.create("ada")
        sharer = pool.share(meeting, "pat", "pattern", *SMALL)
        ssrc = sharer.expect("publish_started", timeout=15)["ssrc"]
        one = Stranger(context, url, [])
        one.control({"type": "hello", "protocol": 1})
        one.control({"type": "join", "meeting": meeting, "name": "viv", "passcode": PASSCODE})
        one.expect("joined")
        rtp: list[bytes] = []
        rtcp: list[bytes] = []
        deadline = time.monotonic() + 10
        while (not rtp or not rtcp) and time.monotonic() < deadline:
            if one.dealer.poll(200):
                kind, payload = wire.split(one.dealer.recv_multipart())
                if kind == wire.MEDIA:
                    (rtcp if is_rtcp(payload) else rtp).append(payload)
            one.dealer.send_multipart(wire.frames(wire.KEEPALIVE, b""))
        assert rtp and int.from_bytes(rtp[0][8:12], "big") == ssrc
        assert rtcp, "the publisher's sender reports reach the member too"
        assert one.sub.poll(500) == 0
    finally:
        if one is not None:
            one.close()
        if pool is not None:
            pool.stop_all()
        server.stop()


def test_a_copied_routing_id_gets_nothing(context: zmq.Context[Any]) -> None:
    """A second connection that presents a member's routing id (as if it had learnt it) gets none of the
    media addressed to that member, who keeps receiving it."""
    port = free_port_pair()
    server = spawn(["server", "--json", "--host", "127.0.0.1", "--port", str(port), "--transport", "zmq"])
    pool: ClientPool | None = None
    ones: list[Stranger] = []
    try:
        url = server.expect("server_started")["urls"][0]
        pool = ClientPool(url, PASSCODE)
        _host, meeting = pool.create("ada")
        sharer = pool.share(meeting, "pat", "pattern", *SMALL)
        sharer.expect("publish_started", timeout=15)
        routing_id = b"\x01" + bytes(range(15))
        member = Stranger(context, url, [], routing_id=routing_id)
        ones.append(member)
        member.dealer.send_multipart([wire.GREETING, wire.client_greeting()])
        assert member._recv(10.0)[0] == wire.GREETING
        member.control({"type": "hello", "protocol": 1})
        member.control({"type": "join", "meeting": meeting, "name": "mem", "passcode": PASSCODE})
        member.expect("joined")
        copycat = Stranger(context, url, [], routing_id=routing_id)
        ones.append(copycat)
        copycat.dealer.send_multipart([wire.GREETING, wire.client_greeting()])
        member.received()
        for _ in range(20):  # about 4 s
            member.pump(0.1)
            copycat.pump(0.1)
        assert member.received() > 0 and not member.closed
        assert copycat.received() == 0 and copycat.controls == [] and not copycat.closed
    finally:
        for one in ones:
            one.close()
        if pool is not None:
            pool.stop_all()
        server.stop()
