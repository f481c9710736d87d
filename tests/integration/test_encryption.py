"""Link encryption on real sockets: what a capture of loopback shows, pinned keys, a man in the middle."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import threading
from pathlib import Path

import pytest
from conf_crypto import TlsCipher

from conf_cli.identity import Identity
from conf_cli.testing.capture import capture, capture_unavailable, contains, free_port_pair, payloads
from conf_cli.testing.processes import ClientPool, ConfProcess, conf_command, spawn

CHAT = "the-eagle-lands-at-noon-7fa3"
SHARE = ("--width", "320", "--height", "240", "--fps", "15")

needs_tcpdump = pytest.mark.skipif(capture_unavailable() is not None, reason=str(capture_unavailable()))


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


def serve(port: int, transport: str, identity: Path, *extra: str) -> tuple[ConfProcess, str, str]:
    """``conf server`` on ``port`` with the key in ``identity``; the process, its URL and fingerprint."""
    server = spawn(
        [
            "server",
            "--json",
            "--port",
            str(port),
            "--transport",
            transport,
            "--identity",
            str(identity),
            *extra,
        ]
    )
    started = server.expect("server_started")
    return server, started["urls"][0], started["fingerprint"]


def run_conf(*args: str, env_home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **({"CONF_HOME": str(env_home)} if env_home else {})}
    return subprocess.run(
        [*conf_command(), *args], input="", capture_output=True, text=True, timeout=60, check=False, env=env
    )


def create(url: str, *extra: str, env_home: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Create a meeting and leave at once (end of input)."""
    return run_conf("create", "--json", "--server", url, "--name", "ada", *extra, env_home=env_home)


@pytest.mark.parametrize("transport", ["tcp", "zmq", "rtp"])
def test_a_changed_key_is_refused_until_forgotten(transport: str, tmp_path: Path) -> None:
    port = free_port_pair()
    server, url, first = serve(port, transport, tmp_path / "one.key")
    try:
        trusted = create(url)
        assert trusted.returncode == 0, trusted.stderr
        assert f"first connection to {url}: its key is {first}" in trusted.stderr
        again = create(url)
        assert again.returncode == 0 and "first connection" not in again.stderr
    finally:
        server.stop()
    assert (tmp_path / "one.key").stat().st_mode & 0o777 == 0o600

    server, url, second = serve(port, transport, tmp_path / "two.key")
    try:
        assert second != first
        refused = create(url)
        assert refused.returncode == 1
        [line] = refused.stderr.strip().splitlines()
        assert "CHANGED" in line and first in line and second in line
        assert f"conf known-hosts forget {url}" in line
        assert "meeting_created" not in refused.stdout

        listed = run_conf("known-hosts", "list")
        assert f"{url} {first}" in listed.stdout
        forgot = run_conf("known-hosts", "forget", url)
        assert forgot.returncode == 0, forgot.stderr
        accepted = create(url)
        assert accepted.returncode == 0 and f"its key is {second}" in accepted.stderr
    finally:
        server.stop()


@pytest.mark.parametrize("transport", ["tcp", "zmq", "rtp"])
def test_fingerprint_option_must_match(transport: str, tmp_path: Path) -> None:
    port = free_port_pair()
    server, url, fingerprint = serve(port, transport, tmp_path / "server.key")
    other = Identity.generate().fingerprint
    try:
        wrong = create(url, "--fingerprint", other)
        assert wrong.returncode == 1
        assert f"presented key {fingerprint}, not {other}" in wrong.stderr
        assert "meeting_created" not in wrong.stdout
        right = create(url, "--fingerprint", fingerprint)
        assert right.returncode == 0, right.stderr
        assert "meeting_created" in right.stdout and "first connection" not in right.stderr
        bad = create(url, "--fingerprint", "MD5:00")
        assert bad.returncode == 1 and "bad fingerprint" in bad.stderr
    finally:
        server.stop()


@pytest.mark.parametrize("transport", ["tcp", "zmq", "rtp"])
def test_client_and_server_that_disagree_get_a_clear_error(transport: str, tmp_path: Path) -> None:
    encrypted, url, _ = serve(free_port_pair(), transport, tmp_path / "server.key")
    try:
        plain_client = create(url, "--encryption", "none")
        assert plain_client.returncode == 1
        lines = plain_client.stderr.strip().splitlines()
        assert "NOT protected" in lines[0]
        assert "encryption" in lines[-1] and "Traceback" not in plain_client.stderr
    finally:
        encrypted.stop()
    plain, url, _ = serve(free_port_pair(), transport, tmp_path / "server.key", "--encryption", "none")
    try:
        assert any("NOT protected" in line for line in plain.stderr_lines)
        encrypted_client = create(url)
        assert encrypted_client.returncode == 1
        [line] = encrypted_client.stderr.strip().splitlines()
        assert "--encryption" in line
    finally:
        plain.stop()


class TlsRelay:
    """A man in the middle: TLS to the client with its own key, TLS to the real server, bytes relayed."""

    def __init__(self, listen_port: int, target_port: int) -> None:
        self.listen_port = listen_port
        self.target_port = target_port
        self.identity = Identity.generate()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TlsRelay:
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        tls = TlsCipher()
        server_context = tls.server_context(self.identity)

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            writer.close()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            up_reader, up_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port, ssl=tls.client_context()
            )
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        async def start() -> None:
            await asyncio.start_server(handle, "127.0.0.1", self.listen_port, ssl=server_context)
            self.ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()


def test_a_man_in_the_middle_with_another_key_is_refused(tmp_path: Path) -> None:
    port, real_port = free_port_pair(), free_port_pair()
    key = tmp_path / "server.key"
    server, url, fingerprint = serve(port, "tcp", key)
    try:
        assert create(url).returncode == 0  # pinned
    finally:
        server.stop()
    server, real_url, _ = serve(real_port, "tcp", key)
    try:
        with TlsRelay(port, real_port) as relay:
            relayed = create(url)
            assert relayed.returncode == 1
            assert "CHANGED" in relayed.stderr and relay.identity.fingerprint in relayed.stderr
            assert "meeting_created" not in relayed.stdout
            # On first use, --fingerprint catches it too.
            first_use = create(url, "--fingerprint", fingerprint, env_home=tmp_path / "fresh")
            assert first_use.returncode == 1 and "not " + fingerprint in first_use.stderr
            assert "meeting_created" not in first_use.stdout
        direct = create(real_url, "--fingerprint", fingerprint)
        assert direct.returncode == 0, direct.stderr
    finally:
        server.stop()


def test_a_stranger_cannot_subscribe_to_zmq_media(tmp_path: Path) -> None:
    """The server's CURVE key is public; a fresh key pair subscribing at PORT + 1, where protocol version 1
    published media, gets nothing (the server sends media only on its members' own connections:
    tests/transports/test_zmq_media_access.py tries every kind of stranger)."""
    import zmq
    import zmq.utils.z85

    from conf_cli.identity import curve_public_from_ed25519

    port = free_port_pair()
    server, url, _ = serve(port, "zmq", tmp_path / "server.key")
    clients = ClientPool(url)
    context = zmq.Context()
    stranger = context.socket(zmq.SUB)
    try:
        public, secret = zmq.curve_keypair()
        key = Identity.load_or_create(tmp_path / "server.key").public_key
        stranger.curve_serverkey = zmq.utils.z85.encode(curve_public_from_ed25519(key))
        stranger.curve_publickey, stranger.curve_secretkey = public, secret
        stranger.setsockopt(zmq.SUBSCRIBE, b"")
        stranger.connect(f"tcp://127.0.0.1:{port + 1}")
        host, meeting = clients.create("host")
        sharer = clients.share(meeting, "bob", "pattern", *SHARE)
        sharer.expect("publish_started", timeout=30)
        host.expect("track_stats", lambda e: int(e["frames"]) > 10, timeout=30)
        assert stranger.poll(2000) == 0  # nothing for the stranger, while the member receives
    finally:
        stranger.close(0)
        context.term()
        clients.stop_all()
        server.stop()
