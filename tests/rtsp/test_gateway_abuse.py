"""The RTSP gateway against clients without credentials who try to stall or crowd it out.

- A flood of DESCRIBEs on files: files are probed in worker threads, once per version of a file, so
  control requests keep their answers coming.
- One address holding many connections: it gets its own limit, well below the server's, so players at
  other addresses still get in.
- Credentials in request URLs never reach the logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import av
import pytest
from conf_rtsp import connection as rtsp_connection
from conf_rtsp.gateway import RtspGateway
from conf_rtsp.wire import RtspReader, RtspResponse

from conf_cli.addresses import address_group
from conf_cli.errors import ConfError
from conf_cli.plugin.registry import create_registry
from conf_cli.server.edge import Server
from conf_cli.server.local_link import LocalServiceContext
from conf_cli.testing.processes import run_conf, spawn
from conf_cli.urls import redact_url

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("media")
    if shutil.which("ffmpeg") is None:
        return folder
    made = subprocess.run(
        [
            *("ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10"),
            *("-f", "lavfi", "-i", "sine=f=440:r=48000", "-t", "1", "-c:v", "libx264", "-c:a", "libopus"),
            str(folder / "a.mp4"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    for name in ("b.mp4", "c.mp4"):
        shutil.copy(folder / "a.mp4", folder / name)
    return folder


@pytest.fixture
async def gateway(media: Path) -> AsyncIterator[RtspGateway]:
    server = Server(create_registry())
    running = RtspGateway(LocalServiceContext(server), "127.0.0.1", 0, media)
    await running.start()
    try:
        yield running
    finally:
        await running.close()
        await server.close()


class _Rtsp:
    """An RTSP connection driven by hand, from a chosen local address."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.parser = RtspReader()
        self.cseq = 0
        self.waiting: list[RtspResponse] = []

    @classmethod
    async def open(cls, port: int, source: str = "127.0.0.1") -> _Rtsp:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        return cls(reader, writer)

    async def request(self, method: str, url: str, *headers: str) -> RtspResponse:
        self.cseq += 1
        lines = [f"{method} {url} RTSP/1.0", f"CSeq: {self.cseq}", *headers, "", ""]
        self.writer.write("\r\n".join(lines).encode())
        return await self.response()

    async def response(self) -> RtspResponse:
        async with asyncio.timeout(30):
            while not self.waiting:
                data = await self.reader.read(65536)
                if not data:
                    raise ConnectionError("closed")
                self.waiting += [m for m in self.parser.feed(data) if isinstance(m, RtspResponse)]
        return self.waiting.pop(0)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


@pytest.fixture
def opens(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """Every file FFmpeg opens, with the thread that opened it."""
    seen: list[tuple[str, str]] = []
    real = av.open

    def recording(path: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append((Path(str(path)).name, threading.current_thread().name))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(av, "open", recording)
    yield seen


@needs_ffmpeg
async def test_a_describe_flood_probes_each_file_once_and_off_the_event_loop(
    gateway: RtspGateway, media: Path, opens: list[tuple[str, str]]
) -> None:
    # The attack: anonymous clients DESCRIBE files as fast as the server answers, while a player's
    # control requests (OPTIONS here) measure the round trip. Before the fix every DESCRIBE opened its
    # file with FFmpeg on the event loop, and the round trips grew from about 1 ms to hundreds.
    loop_thread = threading.current_thread().name
    names = ["a.mp4", "b.mp4", "c.mp4"]
    answers: list[int] = []

    async def flood(number: int) -> None:
        client = await _Rtsp.open(gateway.port)
        try:
            for i in range(12):
                name = names[(number + i) % len(names)]
                answers.append((await client.request("DESCRIBE", f"rtsp://h/files/{name}")).status)
        finally:
            await client.close()

    round_trips: list[float] = []

    async def control() -> None:
        client = await _Rtsp.open(gateway.port)
        try:
            while len(answers) < 8 * 12:
                started = time.monotonic()
                assert (await client.request("OPTIONS", "rtsp://h/")).status == 200
                round_trips.append(time.monotonic() - started)
                await asyncio.sleep(0.01)
        finally:
            await client.close()

    await asyncio.gather(control(), *(flood(n) for n in range(8)))
    assert answers == [200] * (8 * 12)
    probes = [(name, thread) for name, thread in opens]
    # Each file was opened once, however many DESCRIBEs named it; never on the event loop's thread.
    assert sorted(name for name, _ in probes) == names
    assert all(thread != loop_thread and thread.startswith("conf-rtsp-probe") for _, thread in probes)
    assert gateway.probes.probed == 3
    # Generous: the machine is shared; a probe on the loop for each of 96 DESCRIBEs took far longer.
    assert round_trips and max(round_trips) < 2.0, max(round_trips)

    # A file that changes is probed again; one that does not is still remembered.
    stat = (media / "a.mp4").stat()
    os.utime(media / "a.mp4", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    client = await _Rtsp.open(gateway.port)
    try:
        for name in ("a.mp4", "b.mp4", "a.mp4"):
            assert (await client.request("DESCRIBE", f"rtsp://h/files/{name}")).status == 200
    finally:
        await client.close()
    assert [name for name, _ in opens].count("a.mp4") == 2 and gateway.probes.probed == 4


async def test_a_file_that_is_not_media_is_refused_and_remembered(
    gateway: RtspGateway, media: Path, opens: list[tuple[str, str]]
) -> None:
    (media / "notes.txt").write_text("not media")
    client = await _Rtsp.open(gateway.port)
    try:
        for _ in range(3):
            response = await client.request("DESCRIBE", "rtsp://h/files/notes.txt")
            assert response.status == 415 and "notes.txt" in response.reason
    finally:
        await client.close()
    assert [name for name, _ in opens] == ["notes.txt"]


def _connect(port: int, source: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    return sock


def _options(sock: socket.socket) -> bytes:
    """The answer to an OPTIONS, or what the server sent before closing (b"" for nothing)."""
    with contextlib.suppress(OSError):
        sock.sendall(b"OPTIONS rtsp://h/ RTSP/1.0\r\nCSeq: 1\r\n\r\n")
    data = b""
    with contextlib.suppress(OSError):
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def test_one_address_gets_its_limit_while_another_still_gets_in() -> None:
    # The attack: one client opens connection after connection to take every slot of the server's
    # (256 in all) and lock every player out. Now one address holds at most
    # --rtsp-max-connections-per-address of them.
    server = spawn(
        [
            *("server", "--json", "--host", "127.0.0.1", "--port", "0", "--rtsp-port", "0"),
            *("--rtsp-max-connections-per-address", "4"),
        ]
    )
    held: list[socket.socket] = []
    try:
        rtsp = next(u for u in server.expect("server_started")["urls"] if u.startswith("rtsp://"))
        port = int(rtsp.rstrip("/").rsplit(":", 1)[1])
        for _ in range(4):
            held.append(_connect(port, "127.0.0.1"))
            assert _options(held[-1]).startswith(b"RTSP/1.0 200")
        refused = _connect(port, "127.0.0.1")
        answer = _options(refused)
        refused.close()
        assert answer.startswith(b"RTSP/1.0 503") and b"too many RTSP connections from 127.0.0.1" in answer
        other = _connect(port, "127.0.0.2")  # another address (any 127/8 address works on Linux)
        assert _options(other).startswith(b"RTSP/1.0 200")
        other.close()
        held.pop().close()  # a slot given back is free again
        deadline = time.monotonic() + 10
        while True:
            again = _connect(port, "127.0.0.1")
            answer = _options(again)
            again.close()
            if answer.startswith(b"RTSP/1.0 200") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert answer.startswith(b"RTSP/1.0 200")
    finally:
        for sock in held:
            sock.close()
        server.stop()


def test_the_limit_per_address_is_checked() -> None:
    result = run_conf("server", "--port", "0", "--rtsp-port", "0", "--rtsp-max-connections-per-address", "0")
    assert result.returncode != 0 and "--rtsp-max-connections-per-address" in result.stderr


async def test_a_failed_request_with_credentials_logs_no_passcode(
    gateway: RtspGateway, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fault of the gateway's own while it joins a meeting for a player: the request is answered 500
    # and logged as a warning, with its URL. The URL carries the passcode; the log must not.
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the hub is gone")

    monkeypatch.setattr(rtsp_connection, "join_meeting", broken)
    client = await _Rtsp.open(gateway.port)
    try:
        with caplog.at_level(logging.INFO, logger="conf.rtsp"):
            response = await client.request("DESCRIBE", "rtsp://tv:s3cret-pass@h/abc-defg-hjk/ada/video")
            assert response.status == 500
            client.writer.write(b"DESCRIBE  rtsp://tv:s3cret-pass@h/abc-defg-hjk/ada/video\r\n\r\n")
            assert (await client.response()).status == 400  # malformed: logged as it is refused
    finally:
        await client.close()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "rtsp://tv:***@h/abc-defg-hjk/ada/video" in logged and "malformed RTSP start line" in logged
    assert "s3cret" not in logged


def test_conf_play_never_prints_the_passcode() -> None:
    result = run_conf("play", "--json", "rtsp://tv:s3cret-pass@/abc-defg-hjk/ada/video")
    assert result.returncode != 0
    assert "rtsp://tv:***@" in result.stderr and "s3cret" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("rtsp://tv:pass@h:8554/m/ada/video", "rtsp://tv:***@h:8554/m/ada/video"),
        ("DESCRIBE rtsp://:p%40ss@h/x RTSP/1.0", "DESCRIBE rtsp://:***@h/x RTSP/1.0"),
        ("rtsp://tv:a@b@h/x", "rtsp://tv:***@h/x"),
        ("turn:ada:s3cret@turn.example.org:3478", "turn:ada:***@turn.example.org:3478"),
        ("rtsp://h/files/a:b.mp4", "rtsp://h/files/a:b.mp4"),
        ("rtsp://viewer@h/x", "rtsp://viewer@h/x"),
    ],
)
def test_urls_lose_their_passwords(text: str, shown: str) -> None:
    assert redact_url(text) == shown


def test_a_url_given_as_a_file_or_camera_is_shown_without_its_password() -> None:
    from conf_capture.file import open_media

    with pytest.raises(ConfError) as refused:
        open_media("rtsp://tv:s3cret-pass@127.0.0.1:8554/files/clip.mp4")
    assert str(refused.value) == "no such file: rtsp://tv:***@127.0.0.1:8554/files/clip.mp4"
    result = run_conf("server", "--port", "0", "--web-port", "0", "--ice-server", "turn:ada:s3cret@")
    assert result.returncode == 1 and "turn:ada:***@" in result.stderr and "s3cret" not in result.stderr


@pytest.mark.parametrize(
    ("host", "group"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:1:2:3", "2001:db8:1:2::/64"),  # the same client, another address of its /64
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("::1", "::1"),
        ("fe80::1%eth0", "fe80::/64"),
        ("?", "?"),
    ],
)
def test_limits_count_an_ipv6_client_by_its_64(host: str, group: str) -> None:
    assert address_group(host) == group
