"""The zmq:// server's own ZMTP 3.1 and CURVE (conf_transport_zmq.zmtp, .curvezmq), attacked over real
sockets.

libzmq's clients talking to it are tested everywhere else (every zmq:// test's client is one). Here a
CurveZMQ client written by hand from RFC 26, with PyNaCl, does what libzmq never would: it replays a
sealed frame, changes a byte of one, reuses a cookie on another connection, vouches for another server,
seals its HELLO for the wrong key, and sends oversized or endless frames before it is authenticated.
Each attack must end the connection (and, for a frame after the handshake, deliver nothing): each would
pass without the check it targets.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator

import nacl.bindings as sodium
import nacl.utils
import pytest
from conf_transport_zmq import curvezmq, keys, wire, zmtp

from conf_cli.errors import ProtocolError
from conf_cli.identity import curve_public_from_ed25519
from conf_cli.testing.hostile import closed_within
from conf_cli.testing.processes import ConfProcess, start_server
from tests.helpers.links import HeardClientEvents


def server_key(url: str) -> bytes:
    """The server's CURVE key: the X25519 form of the identity key its key service gives."""
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    key = asyncio.run(keys.fetch_key(host, int(port), 5.0))
    assert key is not None, "no answer from the key service"
    return curve_public_from_ed25519(key)


class CurveClient:
    """A DEALER's side of ZMTP 3.1 with CURVE, by hand, over a blocking socket."""

    def __init__(self, url: str, server: bytes, *, vouch_for: bytes | None = None) -> None:
        host, port = url.split("://", 1)[1].rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        self.server = server
        self.vouch_for = vouch_for or server
        self.public, self.secret = sodium.crypto_box_keypair()
        self.transient_public, self.transient_secret = sodium.crypto_box_keypair()
        self.nonce = 0
        self.key = b""
        self.buffer = b""
        self.cookie = b""
        self.sent: list[bytes] = []  # each whole frame sent after the handshake, as it went

    def _next(self) -> bytes:
        self.nonce += 1
        return self.nonce.to_bytes(8, "big")

    def _read(self, size: int) -> bytes:
        while len(self.buffer) < size:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed by the server")
            self.buffer += data
        out, self.buffer = self.buffer[:size], self.buffer[size:]
        return out

    def read_frame(self) -> tuple[int, bytes]:
        flags = self._read(1)[0]
        size = int.from_bytes(self._read(8), "big") if flags & zmtp.LONG else self._read(1)[0]
        return flags, self._read(size)

    def greet(self) -> None:
        self.sock.sendall(zmtp.greeting(zmtp.CURVE, as_server=False))
        zmtp.check_greeting(self._read(zmtp.GREETING_SIZE), zmtp.CURVE)

    def hello(self, server: bytes | None = None) -> bytes:
        nonce = self._next()
        box = sodium.crypto_box_easy(
            bytes(64), b"CurveZMQHELLO---" + nonce, server or self.server, self.transient_secret
        )
        return zmtp.command(b"HELLO", b"\x01\x00" + bytes(72) + self.transient_public + nonce + box)

    def welcome(self) -> bytes:
        """Read WELCOME; the server's short-term key (the cookie is kept)."""
        flags, body = self.read_frame()
        assert flags & zmtp.COMMAND and body[:8] == b"\x07WELCOME", body[:8]
        plain = sodium.crypto_box_open_easy(
            body[24:], b"WELCOME-" + body[8:24], self.server, self.transient_secret
        )
        self.cookie = plain[32:128]
        return plain[:32]

    def initiate(self, server_transient: bytes, metadata: bytes) -> bytes:
        vouch_nonce = nacl.utils.random(16)
        vouch = sodium.crypto_box_easy(
            self.transient_public + self.vouch_for, b"VOUCH---" + vouch_nonce, server_transient, self.secret
        )
        nonce = self._next()
        box = sodium.crypto_box_easy(
            self.public + vouch_nonce + vouch + metadata,
            b"CurveZMQINITIATE" + nonce,
            server_transient,
            self.transient_secret,
        )
        self.key = sodium.crypto_box_beforenm(server_transient, self.transient_secret)
        return zmtp.command(b"INITIATE", self.cookie + nonce + box)

    def handshake(self, routing_id: bytes = b"\x01attacker") -> None:
        self.greet()
        self.sock.sendall(zmtp.frame(self.hello(), zmtp.COMMAND))
        metadata = zmtp.properties({"Socket-Type": b"DEALER", "Identity": routing_id})
        self.sock.sendall(zmtp.frame(self.initiate(self.welcome(), metadata), zmtp.COMMAND))
        _flags, body = self.read_frame()
        assert body[:6] == b"\x05READY", body[:6]
        sodium.crypto_box_open_easy_afternm(body[14:], b"CurveZMQREADY---" + body[6:14], self.key)

    def seal(self, payload: bytes, more: bool = False) -> bytes:
        nonce = self._next()
        box = sodium.crypto_box_easy_afternm(
            bytes((1 if more else 0,)) + payload, b"CurveZMQMESSAGEC" + nonce, self.key
        )
        return zmtp.frame(curvezmq.MESSAGE + nonce + box)

    def send(self, *parts: bytes) -> None:
        for index, part in enumerate(parts):
            frame = self.seal(part, more=index < len(parts) - 1)
            self.sent.append(frame)
            self.sock.sendall(frame)

    def receive(self, timeout: float = 5.0) -> list[bytes]:
        """The next message's parts (PINGs from the server skipped)."""
        self.sock.settimeout(timeout)
        parts: list[bytes] = []
        while True:
            _flags, body = self.read_frame()
            assert body[:8] == curvezmq.MESSAGE
            plain = sodium.crypto_box_open_easy_afternm(body[16:], b"CurveZMQMESSAGES" + body[8:16], self.key)
            if plain[0] & 0x02:  # a command (PING)
                continue
            parts.append(plain[1:])
            if not plain[0] & 0x01:
                return parts

    def greet_conf(self) -> None:
        """conf's own greeting, answered by the server's."""
        self.send(*wire.frames(wire.GREETING, wire.client_greeting()))
        assert self.receive()[0] == wire.GREETING

    def control(self, message: dict[str, object]) -> None:
        self.send(*wire.frames(wire.CONTROL, json.dumps(message).encode()))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[ConfProcess, str, bytes]]:
    process, url = start_server("--stats-interval", "0.5", transport="zmq")
    try:
        yield process, url, server_key(url)
    finally:
        process.stop()


def test_a_hand_written_curve_client_is_answered(server: tuple[ConfProcess, str, bytes]) -> None:
    """The baseline the attacks below depart from: this client's handshake and frames are right (the
    server greets it and answers its hello), so each refusal below is the attack's doing."""
    _process, url, key = server
    client = CurveClient(url, key)
    try:
        client.handshake()
        client.greet_conf()
        client.control({"type": "hello", "protocol": 1})
        kind, payload = wire.split(client.receive())
        assert kind == wire.CONTROL and json.loads(payload)["type"] == "welcome"
    finally:
        client.close()


def test_a_replayed_frame_ends_the_connection(server: tuple[ConfProcess, str, bytes]) -> None:
    """A sealed frame sent again byte for byte (its nonce no longer grows) is refused: the connection ends
    and the replayed message does nothing (no second answer to the repeated hello)."""
    _process, url, key = server
    client = CurveClient(url, key)
    try:
        client.handshake(b"\x01replayer")
        client.greet_conf()
        client.control({"type": "hello", "protocol": 1})
        assert wire.split(client.receive())[0] == wire.CONTROL
        client.sock.sendall(client.sent[-1])
        assert closed_within(client.sock, 5)
    finally:
        client.close()


def test_a_changed_byte_ends_the_connection(server: tuple[ConfProcess, str, bytes]) -> None:
    _process, url, key = server
    client = CurveClient(url, key)
    try:
        client.handshake(b"\x01flipper")
        frame = bytearray(client.seal(b"K"))
        frame[-1] ^= 0x01  # the last byte of the ciphertext
        client.sock.sendall(bytes(frame))
        assert closed_within(client.sock, 5)
    finally:
        client.close()


def test_a_hello_for_another_server_key_is_refused(server: tuple[ConfProcess, str, bytes]) -> None:
    """A client that does not know the server's key (or a man in the middle posing as a client with
    its own) cannot get past HELLO: no WELCOME, the connection ends."""
    _process, url, _key = server
    impostor_key, _ = sodium.crypto_box_keypair()
    client = CurveClient(url, impostor_key)
    try:
        client.greet()
        client.sock.sendall(zmtp.frame(client.hello(), zmtp.COMMAND))
        assert closed_within(client.sock, 5)
    finally:
        client.close()


def test_a_vouch_for_another_server_is_refused(server: tuple[ConfProcess, str, bytes]) -> None:
    """A vouch names the server it was made for: one made for another key (relayed by a man in the
    middle between a client and the server) does not open a connection."""
    _process, url, key = server
    elsewhere, _ = sodium.crypto_box_keypair()
    client = CurveClient(url, key, vouch_for=elsewhere)
    try:
        client.greet()
        client.sock.sendall(zmtp.frame(client.hello(), zmtp.COMMAND))
        metadata = zmtp.properties({"Socket-Type": b"DEALER"})
        client.sock.sendall(zmtp.frame(client.initiate(client.welcome(), metadata), zmtp.COMMAND))
        assert closed_within(client.sock, 5)
    finally:
        client.close()


def test_a_cookie_from_another_connection_is_refused(server: tuple[ConfProcess, str, bytes]) -> None:
    """The cookie is sealed with a key of its own connection: an INITIATE otherwise right for its
    connection but carrying another connection's cookie (what an attacker replaying a recorded
    handshake would have) is refused."""
    _process, url, key = server
    first, second = CurveClient(url, key), CurveClient(url, key)
    try:
        first.greet()
        first.sock.sendall(zmtp.frame(first.hello(), zmtp.COMMAND))
        first.welcome()
        second.greet()
        second.sock.sendall(zmtp.frame(second.hello(), zmtp.COMMAND))
        second_transient = second.welcome()
        second.cookie = first.cookie
        metadata = zmtp.properties({"Socket-Type": b"DEALER"})
        second.sock.sendall(zmtp.frame(second.initiate(second_transient, metadata), zmtp.COMMAND))
        assert closed_within(second.sock, 5)
    finally:
        first.close()
        second.close()


def test_unauthenticated_peers_cannot_make_the_server_buffer(server: tuple[ConfProcess, str, bytes]) -> None:
    """Before the handshake a frame may be at most MAX_HANDSHAKE_FRAME bytes: one announced larger ends
    the connection at its header, before a byte of it is kept; a peer that stalls mid-handshake is
    dropped by the handshake timeout."""
    _process, url, _key = server
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    big = socket.create_connection((host, int(port)), timeout=5)
    stall = socket.create_connection((host, int(port)), timeout=5)
    try:
        big.sendall(zmtp.greeting(zmtp.CURVE, as_server=False) + b"\x06" + (1 << 20).to_bytes(8, "big"))
        assert closed_within(big, 3)
        stall.sendall(zmtp.greeting(zmtp.CURVE, as_server=False)[:40])
        started = time.monotonic()
        assert closed_within(stall, 10)
        assert time.monotonic() - started < 8
    finally:
        big.close()
        stall.close()


def test_a_second_connection_cannot_take_a_connected_routing_id(
    server: tuple[ConfProcess, str, bytes],
) -> None:
    """A peer that learnt a member's routing id and connects with it is refused while the member is
    connected: it never stands in for the member."""
    _process, url, key = server
    member, copycat = CurveClient(url, key), CurveClient(url, key)
    try:
        member.handshake(b"\x01member-id")
        member.greet_conf()
        copycat.greet()
        copycat.sock.sendall(zmtp.frame(copycat.hello(), zmtp.COMMAND))
        metadata = zmtp.properties({"Socket-Type": b"DEALER", "Identity": b"\x01member-id"})
        copycat.sock.sendall(zmtp.frame(copycat.initiate(copycat.welcome(), metadata), zmtp.COMMAND))
        assert closed_within(copycat.sock, 5)
        member.control({"type": "hello", "protocol": 1})
        assert wire.split(member.receive())[0] == wire.CONTROL  # the member goes on
    finally:
        member.close()
        copycat.close()


def test_frames_and_metadata_are_checked_before_use() -> None:
    """The sans-I/O parts: sizes checked before buffering, metadata bounded, greeting and socket type."""
    reader = zmtp.FrameReader(100)
    assert list(reader.feed(zmtp.frame(b"x" * 100) + zmtp.frame(b"yz", zmtp.MORE)[:3])) == [(0, b"x" * 100)]
    assert list(reader.feed(b"z")) == [(zmtp.MORE, b"yz")]
    with pytest.raises(ProtocolError, match="exceeds"):
        list(zmtp.FrameReader(100).feed(b"\x02" + (101).to_bytes(8, "big")))
    with pytest.raises(ProtocolError, match="reserved"):
        list(zmtp.FrameReader(100).feed(b"\x08\x01x"))
    values = {"Socket-Type": b"DEALER", "Identity": b"\x01id"}
    assert zmtp.peer_socket(zmtp.read_properties(zmtp.properties(values))) == b"\x01id"
    with pytest.raises(ProtocolError, match="too long"):
        zmtp.read_properties(zmtp.properties({"Identity": bytes(256)}))
    with pytest.raises(ProtocolError, match="cannot talk"):
        zmtp.peer_socket(zmtp.read_properties(zmtp.properties({"Socket-Type": b"PUB"})))
    with pytest.raises(ProtocolError, match="mechanism"):
        zmtp.check_greeting(zmtp.greeting(zmtp.NULL, as_server=False), zmtp.CURVE)
    assert zmtp.ping_answer(b"\x00\x10" + b"c" * 40) == zmtp.command(b"PONG", b"c" * 16)


def test_the_compiled_frame_is_the_python_frame() -> None:
    """The compiled seal (conf_transport_zmq._seal) gives byte for byte the frame the Python one does, for
    a short frame and a long one, and each opens with the client's key under its nonce."""
    server_public, server_secret = sodium.crypto_box_keypair()
    curve = curvezmq.CurveServer(server_public, server_secret)
    assert curvezmq._seal_frame is not None, "the compiled helper is not built (make setup)"
    curve._key = nacl.utils.random(32)
    for plain in (b"\x00" + b"s" * 50, b"\x00" + nacl.utils.random(1_200)):
        compiled = curve.seal_prefixed(plain)
        assert compiled == curve.seal_in_python(plain)
        body = compiled[2:] if len(plain) < 200 else compiled[9:]
        nonce = b"CurveZMQMESSAGES" + body[8:16]
        assert body[8:16] == curve._sent.to_bytes(8, "big")
        assert sodium.crypto_box_open_easy_afternm(body[16:], nonce, curve._key) == plain


async def test_the_client_speaks_curve_with_a_libzmq_router() -> None:
    """conf's own DEALER side against libzmq's CURVE ROUTER (pyzmq): the handshake, the greeting, media
    and control both ways in order, and ZMTP heartbeats that keep an idle link (libzmq answers the
    client's PINGs; without answers the client would end the link after SILENT_LIMIT)."""
    import zmq
    import zmq.asyncio
    from conf_crypto import CurveCipher
    from conf_transport_zmq.client import connect
    from conf_transport_zmq.limits import SILENT_LIMIT

    from conf_cli.identity import Identity
    from conf_cli.plugin.security import Security, Trust
    from conf_cli.plugin.transport import TransportOptions
    from conf_cli.protocol.rtp import RtpPacket

    identity = Identity.generate()
    context = zmq.asyncio.Context()
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    CurveCipher().secure_server(router, identity)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    service = await keys.open_service("127.0.0.1", port, identity.public_key)
    trust = Trust(f"zmq://127.0.0.1:{port}", identity.fingerprint, pin=False)
    security = Security({"curve": CurveCipher()}, trust=trust)
    heard = HeardClientEvents()
    try:
        connecting = asyncio.ensure_future(
            connect("127.0.0.1", port, heard, TransportOptions(security=security, connect_timeout=5))
        )
        routing_id, kind, _ = await asyncio.wait_for(router.recv_multipart(), 5)
        assert kind == wire.GREETING
        await router.send_multipart([routing_id, wire.GREETING, wire.server_greeting()])
        link = await asyncio.wait_for(connecting, 5)
        packets = [bytes(RtpPacket(96, seq, seq, 7, bytes(1_000))) for seq in range(100)]
        for packet in packets:
            await router.send_multipart([routing_id, packet])
        await router.send_multipart([routing_id, *wire.frames(wire.CONTROL, b'{"type": "ping"}')])
        for packet in packets[:10]:
            assert link.send_media(packet)
        link.send_control(b'{"type": "pong"}')
        for packet in packets[:10]:
            assert await asyncio.wait_for(router.recv_multipart(), 5) == [routing_id, packet]
        assert await asyncio.wait_for(router.recv_multipart(), 5) == [routing_id, b'C{"type": "pong"}']
        async with asyncio.timeout(5):
            while not heard.control:
                await asyncio.sleep(0.01)
        assert heard.media == packets and heard.control == [b'{"type": "ping"}']
        await asyncio.sleep(SILENT_LIMIT + 1)  # nothing but PINGs and PONGs
        assert not link.is_closing and not heard.closed_reasons
        link.close("done")
        assert await asyncio.wait_for(router.recv_multipart(), 5) == [routing_id, wire.BYE, b"done"]
    finally:
        service.close()
        router.close(0)
        context.term()


async def test_the_key_service_port_taken_is_one_clear_error() -> None:
    """The key service answers on the UDP port of the ROUTER's number: with that port taken by another
    socket, a server asked for it says so in one line (with --port 0 it asks the kernel for another)."""
    from conf_crypto import CurveCipher
    from conf_transport_zmq.server import ZmqListener

    from conf_cli.errors import ConfError
    from conf_cli.identity import Identity
    from conf_cli.plugin.security import Security
    from conf_cli.plugin.transport import TransportOptions

    options = TransportOptions(security=Security({"curve": CurveCipher()}, identity=Identity.generate()))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        with pytest.raises(ConfError, match=f"cannot open the ZeroMQ key service on UDP 127.0.0.1:{port}"):
            await ZmqListener.open("127.0.0.1", port, IgnoredServerEvents(), options)
        listener = await ZmqListener.open("127.0.0.1", 0, IgnoredServerEvents(), options)
        await listener.close()


class IgnoredServerEvents:
    def link_opened(self, link: object) -> None:
        pass

    def control_received(self, link: object, data: bytes) -> None:
        pass

    def media_received(self, link: object, packet: bytes) -> None:
        pass

    def keepalive_received(self, link: object) -> None:
        pass

    def link_closed(self, link: object, reason: str) -> None:
        pass
