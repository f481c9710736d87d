"""Hostile peers for tests: raw connections to a conf server that send what no good client would.

:func:`open_raw_link` opens a link speaking conf's plain wire protocol on any built-in transport
(``tcp://``, ``zmq://``, ``rtp://``) with nothing but the standard library, pyzmq and conf's own encoders,
so a test can send malformed frames, packets and messages at the byte level. :func:`open_raw_socket`
is a bare TCP connection to a server's port for abuse below the framing (truncated headers, trickled
bytes), and :func:`zmtp_handshake` does ZeroMQ's own handshake (ZMTP 3.0, NULL mechanism) over one.

Links are encrypted by default (TLS, CURVE, SRTP): :func:`open_raw_socket` speaks TLS when asked, and
the other helpers speak the plaintext wire of a server started with ``--encryption none``, except
:class:`SrtpRawLink`: an ``rtp://`` link with TLS and real SRTP (the ``srtp`` cipher plugin), for attacks
that must get past the server's media authentication, and a receiver that counts exactly what it gets.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from conf_cli.protocol.control import encode
from conf_cli.protocol.framing import FrameDecoder, frame, is_control
from conf_cli.protocol.rtp import is_rtcp
from conf_cli.protocol.stun import StunMessage

Message = dict[str, Any]


def address_of(url: str) -> tuple[str, int]:
    """``(host, port)`` of a server URL such as ``tcp://127.0.0.1:7450``."""
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    return host.strip("[]"), int(port)


def open_raw_socket(url: str, timeout: float = 5.0, *, tls: bool = False) -> socket.socket:
    """A TCP connection to the server's port (the control port for ``rtp://``, ZMTP for ``zmq://``).

    With ``tls`` it speaks TLS first, as conf's own clients do on an encrypted server (the default), so
    what is sent then reaches conf's own parsers; the server's key is not checked."""
    sock = socket.create_connection(address_of(url), timeout=timeout)
    if not tls:
        return sock
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context.wrap_socket(sock)


def peer_tag(sock: socket.socket) -> str:
    """How the server's log names the peer behind ``sock``: its address as the server sees it."""
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """True if the server closes ``sock`` within ``seconds`` (what it sends meanwhile is read and dropped)."""
    deadline = time.monotonic() + seconds
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            if not sock.recv(65536):
                return True
    except TimeoutError:
        return False
    except OSError:  # reset by the server
        return True
    return False


class Trickler:
    """Sends ``data`` one byte every ``interval`` seconds from a thread until the socket fails or stop()."""

    def __init__(self, sock: socket.socket, data: bytes, interval: float = 0.25) -> None:
        self.sock = sock
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(data, interval), daemon=True)
        self._thread.start()

    def _run(self, data: bytes, interval: float) -> None:
        for byte in data:
            if self._stop.wait(interval):
                return
            try:
                self.sock.send(bytes((byte,)))
            except OSError:
                return
            self.sent += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


# -- ZMTP 3.0 (the wire protocol under ZeroMQ), enough to misbehave below ZeroMQ's message layer --------


def zmtp_handshake(sock: socket.socket, socket_type: bytes = b"DEALER") -> None:
    """Greet as a ZMTP 3.0 peer with the NULL mechanism and send READY; the server's replies are not read."""
    greeting = b"\xff" + bytes(8) + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\x00") + b"\x00" + bytes(31)
    properties = b"\x0bSocket-Type" + len(socket_type).to_bytes(4, "big") + socket_type
    ready = b"\x05READY" + properties
    sock.sendall(greeting + b"\x04" + bytes((len(ready),)) + ready)


def zmtp_frame_header(size: int, more: bool = False) -> bytes:
    """The header of a ZMTP message frame of ``size`` bytes (the long form: an 8-byte size)."""
    return bytes((0x02 | (0x01 if more else 0),)) + size.to_bytes(8, "big")


# -- raw links -----------------------------------------------------------------------------------------


class RawLink:
    """A conf connection with no client logic: what is sent is exactly what the test asks for."""

    tag: str
    """How the server's log names this peer."""

    def send_control(self, message: Message | bytes) -> None:
        raise NotImplementedError

    def send_media(self, packet: bytes) -> None:
        raise NotImplementedError

    def receive(self, timeout: float) -> list[Message]:
        """Control messages that arrive within ``timeout`` seconds (media is read and dropped)."""
        raise NotImplementedError

    def is_closed(self, timeout: float) -> bool:
        """Whether the server closes this link within ``timeout`` seconds."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def expect(
        self, kind: str, where: Callable[[Message], bool] | None = None, timeout: float = 10.0
    ) -> Message:
        deadline = time.monotonic() + timeout
        seen: list[Message] = []
        while (remaining := deadline - time.monotonic()) > 0:
            for message in self.receive(min(remaining, 0.5)):
                seen.append(message)
                if message.get("type") == kind and (where is None or where(message)):
                    return message
        raise AssertionError(f"no {kind!r} within {timeout} s; got {seen[-10:]}")


def _encoded(message: Message | bytes) -> bytes:
    return message if isinstance(message, bytes) else encode(message)


class TcpRawLink(RawLink):
    """``tcp://``: RFC 4571 frames on one connection (in TLS with ``tls``)."""

    def __init__(self, url: str, *, tls: bool = False) -> None:
        self.sock = open_raw_socket(url, tls=tls)
        self.tag = peer_tag(self.sock)
        self.decoder = FrameDecoder()
        self._eof = False

    def send_control(self, message: Message | bytes) -> None:
        self.sock.sendall(frame(_encoded(message)))

    def send_media(self, packet: bytes) -> None:
        self.sock.sendall(frame(packet))

    def _frames(self, timeout: float) -> list[bytes]:
        if self._eof:
            return []
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return []
        except OSError:
            data = b""
        if not data:
            self._eof = True
            return []
        return self.decoder.feed(data)

    def receive(self, timeout: float) -> list[Message]:
        return [json.loads(p) for p in self._frames(timeout) if is_control(p)]

    def receive_all(self, timeout: float) -> tuple[list[Message], list[bytes]]:
        """The control messages and the media packets (RTP, RTCP) that arrive within ``timeout`` seconds,
        each in the order they came: what a test counts at a receiver."""
        frames = self._frames(timeout)
        return [json.loads(p) for p in frames if is_control(p)], [
            p for p in frames if p and not is_control(p)
        ]

    def is_closed(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self._eof and (remaining := deadline - time.monotonic()) > 0:
            self._frames(remaining)
        return self._eof

    def close(self) -> None:
        self.sock.close()


class RtpRawLink(TcpRawLink):
    """``rtp://``: control as on TCP after the server's token frame; media over UDP once a STUN Binding
    request signed with the key derived from the token has latched the UDP socket's address (after the
    socket answered the server's consent check)."""

    def __init__(self, url: str, *, tls: bool = False) -> None:
        from conf_transport_udp_rtp.latch import Credentials, request_transaction

        super().__init__(url, tls=tls)
        token_frame = self._first_frame()
        self.token = token_frame[1:17]
        self.keys: dict[str, str] | None = json.loads(token_frame[17:]) if len(token_frame) > 17 else None
        self.credentials = Credentials.of(self.token)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.connect(address_of(url))
        self.binding = self.credentials.request(request_transaction(1))
        self._bind()

    def _first_frame(self) -> bytes:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            frames = self._frames(1.0)
            if frames:
                assert len(frames) == 1, "the token frame comes alone, before any conf message"
                return frames[0]
        raise AssertionError("no token frame from the rtp:// server")

    def _bind(self) -> None:
        from conf_transport_udp_rtp.latch import answer_check

        self.udp.settimeout(0.5)
        host, port = self.udp.getpeername()[:2]
        for _ in range(20):
            self.udp.send(self.binding)
            try:
                while True:  # the consent check comes first, then the answer to our request
                    data = self.udp.recv(2048)
                    answer = answer_check(data, self.credentials, host, port)
                    if answer is not None:
                        self.udp.send(answer)
                        continue
                    response = StunMessage.parse(data)
                    if response.check_integrity(self.credentials.key):
                        return
            except TimeoutError:
                continue
        raise AssertionError("the rtp:// server never answered the STUN Binding request")

    def send_media(self, packet: bytes) -> None:
        self.udp.send(packet)

    def close(self) -> None:
        super().close()
        self.udp.close()


class SrtpRawLink(RtpRawLink):
    """``rtp://`` as an encrypting client speaks it: control in TLS, media in SRTP with the link's keys.

    What is sent is still exactly what the test asks for, protected by libsrtp as it is, whatever it says
    (other bytes under an index already sent too: a hostile client has no reason to refuse);
    :meth:`media` returns what arrived on the UDP socket, authenticated and decrypted."""

    def __init__(self, url: str) -> None:
        import base64

        import pylibsrtp
        from conf_crypto.srtp import PROFILES, SrtpCipher  # the cipher plugin: test code only

        super().__init__(url, tls=True)
        if self.keys is None:
            raise AssertionError("the rtp:// server sent no SRTP keys (is it running --encryption none?)")
        self.srtp = SrtpCipher(self.keys["profile"]).session(self.keys, server_side=False)
        policy = pylibsrtp.Policy(
            key=base64.b64decode(self.keys["up"]),
            ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
            srtp_profile=PROFILES[self.keys["profile"]][0],
        )
        policy.allow_repeat_tx = True
        self._tx = pylibsrtp.Session(policy)
        self.unauthenticated = 0

    def send_media(self, packet: bytes) -> None:
        rtcp = is_rtcp(packet)
        self.udp.send(self._tx.protect_rtcp(packet) if rtcp else self._tx.protect(packet))

    def media(self, timeout: float) -> list[bytes]:
        """The RTP and RTCP packets that arrive within ``timeout`` seconds, decrypted (STUN is skipped;
        what fails authentication is counted in ``unauthenticated``)."""
        packets: list[bytes] = []
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            self.udp.settimeout(remaining)
            try:
                data = self.udp.recv(2048)
            except TimeoutError:
                break
            except OSError:
                break
            if not data or data[0] >> 6 != 2:
                continue
            plain = self.srtp.unprotect(data)
            if plain is None:
                self.unauthenticated += 1
            else:
                packets.append(plain)
        return packets


def srtp_join(url: str, meeting: str, name: str, passcode: str) -> SrtpRawLink:
    """An :class:`SrtpRawLink` that said hello and joined ``meeting`` as ``name``."""
    link = SrtpRawLink(url)
    link.send_control({"type": "hello", "protocol": 1})
    link.send_control({"type": "join", "meeting": meeting, "name": name, "passcode": passcode})
    link.expect("joined", timeout=15)
    return link


class ZmqRawLink(RawLink):
    """``zmq://``: a DEALER sending messages framed as :mod:`conf_transport_zmq.wire` says, greeted at the
    transport level."""

    def __init__(self, url: str, routing_id: bytes | None = None) -> None:
        import zmq
        from conf_transport_zmq import wire

        host, port = address_of(url)
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self.dealer = context.socket(zmq.DEALER)
        self.dealer.setsockopt(zmq.LINGER, 0)
        self.routing_id = routing_id or b"\x01" + secrets.token_bytes(7)
        self.dealer.setsockopt(zmq.ROUTING_ID, self.routing_id)
        self.dealer.connect(f"tcp://{host}:{port}")
        self.tag = f"zmq id {self.routing_id.hex()[:16]}"
        self._closed = False
        self.wire = wire
        self.send_frames(wire.frames(wire.GREETING, wire.client_greeting()))
        if not self.dealer.poll(10_000) or self.dealer.recv_multipart()[0] != wire.GREETING:
            raise AssertionError("the zmq:// server did not answer the greeting")

    def send_frames(self, frames: list[bytes]) -> None:
        self.dealer.send_multipart(frames)

    def send_control(self, message: Message | bytes) -> None:
        self.send_frames(self.wire.frames(self.wire.CONTROL, _encoded(message)))

    def send_media(self, packet: bytes) -> None:
        self.send_frames(self.wire.frames(self.wire.MEDIA, packet))

    def receive(self, timeout: float) -> list[Message]:
        messages: list[Message] = []
        wait = int(timeout * 1000)
        while not self._closed and self.dealer.poll(wait):
            wait = 0
            kind, payload = self.wire.split(self.dealer.recv_multipart())
            if kind == self.wire.BYE:
                self._closed = True
            elif kind == self.wire.CONTROL:
                messages.append(json.loads(payload))
        return messages

    def is_closed(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self._closed and (remaining := deadline - time.monotonic()) > 0:
            self.receive(remaining)
        return self._closed

    def close(self) -> None:
        self.dealer.close(0)


def zmq_stranger(url: str, routing_id: bytes, messages: list[list[bytes]]) -> str:
    """A DEALER that sends ``messages`` as they are (no greeting first), then closes; its log tag."""
    import zmq

    host, port = address_of(url)
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    dealer = context.socket(zmq.DEALER)
    try:
        dealer.setsockopt(zmq.LINGER, 2000)
        dealer.setsockopt(zmq.ROUTING_ID, routing_id)
        dealer.connect(f"tcp://{host}:{port}")
        for message in messages:
            dealer.send_multipart(message)
        dealer.poll(2000)  # the server's answer (a goodbye), or nothing: either way it has them
    finally:
        dealer.close()
    return f"zmq id {routing_id.hex()[:16]}"


def open_raw_link(url: str) -> RawLink:
    """A raw link to the server at ``url``, connected (and, on ``rtp://``, with its UDP address latched)."""
    scheme = url.split("://", 1)[0]
    if scheme == "tcp":
        return TcpRawLink(url)
    if scheme == "rtp":
        return RtpRawLink(url)
    if scheme == "zmq":
        return ZmqRawLink(url)
    raise ValueError(f"no raw link for {scheme}://")


def raw_join(url: str, meeting: str, name: str, passcode: str) -> RawLink:
    """A raw link that said hello and joined ``meeting`` as ``name``."""
    link = open_raw_link(url)
    link.send_control({"type": "hello", "protocol": 1})
    link.send_control({"type": "join", "meeting": meeting, "name": name, "passcode": passcode})
    link.expect("joined", timeout=15)
    return link


def log_lines_about(lines: list[str], tag: str) -> list[str]:
    """The lines of a server's log that name the peer ``tag`` (an address not followed by more digits)."""
    pattern = re.compile(re.escape(tag) + r"(?![0-9])")
    return [line for line in lines if pattern.search(line)]


@contextlib.contextmanager
def tricklers() -> Any:
    """Collects :class:`Trickler` objects and stops them all at the end."""
    started: list[Trickler] = []
    try:
        yield started
    finally:
        for trickler in started:
            trickler.stop()
