"""The RTSP gateway end to end: a real ``conf server --rtsp-port``, with ffprobe, ffmpeg and conf play."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conf_rtsp.wire import Headers, Interleaved, RtspReader, RtspRequest, RtspResponse

from conf_cli.testing.processes import ClientPool, ConfProcess, conf_command, spawn, start_server
from tests.helpers.terminal import Terminal

pytestmark = pytest.mark.skipif(
    shutil.which("ffmpeg") is None, reason="needs ffmpeg (scripts/setup-system.sh)"
)

PASSCODE = "pass-123"
FPS = 25
SETUP = b"SETUP rtsp://h/files/clip.mp4/trackID=0 RTSP/1.0\r\nCSeq: 1\r\n"


def _ffmpeg(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _probe(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ffprobe", "-v", "error", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("media")
    sources = [
        "-f",
        "lavfi",
        "-i",
        f"testsrc=size=320x240:rate={FPS}",
        "-f",
        "lavfi",
        "-i",
        "sine=f=440:r=48000",
    ]
    made = _ffmpeg(
        *sources,
        "-t",
        "10",
        "-c:v",
        "libx264",
        "-bf",
        "0",
        "-g",
        str(FPS),
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "libopus",
        str(folder / "clip.mp4"),
    )
    assert made.returncode == 0, made.stderr
    # FFmpeg's default optimal Huffman tables: the gateway codes each picture again for RFC 2435.
    made = _ffmpeg(
        *sources,
        "-t",
        "10",
        "-c:v",
        "mjpeg",
        "-pix_fmt",
        "yuvj420p",
        "-c:a",
        "pcm_s16le",
        str(folder / "clip_mjpeg.avi"),
    )
    assert made.returncode == 0, made.stderr
    made = _ffmpeg(*sources, "-t", "2", "-c:v", "mpeg4", "-c:a", "aac", str(folder / "clip_mpeg4_aac.mp4"))
    assert made.returncode == 0, made.stderr
    (folder / "notes.txt").write_text("not media")
    return folder


@pytest.fixture(scope="module")
def gateway(media: Path) -> Iterator[tuple[ConfProcess, str, str]]:
    # Its tests try wrong passcodes on purpose, all from 127.0.0.1: let the rate limit allow them.
    server, _ = start_server(
        "--rtsp-port", "0", "--media-dir", str(media), "--rtsp-session-timeout", "3", "--max-failures", "1000"
    )
    urls = server.seen[-1]["urls"]
    tcp = next(u for u in urls if u.startswith("tcp://"))
    rtsp = next(u for u in urls if u.startswith("rtsp://")).rstrip("/")
    try:
        yield server, tcp, rtsp
    finally:
        server.stop()
        assert not any("Traceback" in line for line in server.stderr_lines), "\n".join(server.stderr_lines)


@pytest.fixture
def pool(gateway: tuple[ConfProcess, str, str]) -> Iterator[ClientPool]:
    clients = ClientPool(gateway[1], PASSCODE)
    try:
        yield clients
    finally:
        clients.stop_all()


class Raw:
    """A hand-driven RTSP connection."""

    def __init__(self, rtsp_url: str) -> None:
        host, port = rtsp_url.removeprefix("rtsp://").rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.reader = RtspReader()
        self.cseq = 0
        self.frames: list[Interleaved] = []
        self.responses: list[RtspResponse] = []

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, method: str, url: str, **headers: str) -> RtspResponse:
        self.cseq += 1
        items = [("CSeq", str(self.cseq)), *((k.replace("_", "-"), v) for k, v in headers.items())]
        self.send(bytes(RtspRequest(method, url, Headers(items))))
        return self.response()

    def response(self, timeout: float = 10) -> RtspResponse:
        deadline = time.monotonic() + timeout
        while not self.responses:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed")
            self._feed(data)
        return self.responses.pop(0)

    def _feed(self, data: bytes) -> None:
        for message in self.reader.feed(data):
            if isinstance(message, Interleaved):
                self.frames.append(message)
            elif isinstance(message, RtspResponse):
                self.responses.append(message)

    def collect(self, seconds: float) -> int:
        """Interleaved frames that arrive within ``seconds``."""
        before = len(self.frames)
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            self._feed(data)
        return len(self.frames) - before

    def closed_within(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return False
            except ConnectionResetError:
                return True
            if not data:
                return True
            self._feed(data)
        return False

    def close(self) -> None:
        self.sock.close()


def _video_frames(path: Path) -> int:
    result = _probe(
        "-count_frames",
        "-select_streams",
        "v:0",
        "-show_entries",
        "stream=nb_read_frames",
        "-of",
        "json",
        str(path),
    )
    assert result.returncode == 0, result.stderr
    return int(json.loads(result.stdout)["streams"][0]["nb_read_frames"])


def test_describe_gives_sdp_that_ffprobe_accepts(gateway: tuple[ConfProcess, str, str]) -> None:
    _, _, rtsp = gateway
    served = (
        ("clip.mp4", ["h264", "opus"]),
        ("clip_mjpeg.avi", ["mjpeg", "opus"]),
        ("clip_mpeg4_aac.mp4", ["h264", "opus"]),  # coded again: a meeting's codecs
    )
    for name, codecs in served:
        result = _probe(
            "-show_entries", "stream=codec_name,width,height", "-of", "json", f"{rtsp}/files/{name}"
        )
        assert result.returncode == 0, result.stderr
        streams = json.loads(result.stdout)["streams"]
        assert [s["codec_name"] for s in streams] == codecs
        assert (streams[0]["width"], streams[0]["height"]) == (320, 240)
    raw = Raw(rtsp)
    try:
        described = raw.request("DESCRIBE", f"{rtsp}/files/clip_mjpeg.avi", Accept="application/sdp")
        assert described.status == 200 and described.headers.get("Content-Type") == "application/sdp"
        assert b"m=video 0 RTP/AVP 26" in described.body and b"a=range:npt=0-10.0" in described.body
        assert raw.request("DESCRIBE", f"{rtsp}/files/missing.mp4").status == 404
        assert raw.request("DESCRIBE", f"{rtsp}/files/notes.txt").status == 415
        assert raw.request("DESCRIBE", f"{rtsp}/files/..%2Fetc%2Fpasswd").status == 404
    finally:
        raw.close()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("name", ["clip.mp4", "clip_mjpeg.avi"])
def test_three_seconds_captured_decode_with_every_frame(
    gateway: tuple[ConfProcess, str, str], tmp_path: Path, transport: str, name: str
) -> None:
    """Three seconds of each clip (three of the H.264 clip's one-second groups of pictures), played in
    real time, come whole: every frame, none that fails to decode."""
    _, _, rtsp = gateway
    out = tmp_path / "capture.mkv"
    captured = _ffmpeg(
        "-rtsp_transport", transport, "-i", f"{rtsp}/files/{name}", "-t", "3", "-c", "copy", str(out)
    )
    assert captured.returncode == 0, captured.stderr
    assert abs(_video_frames(out) - 3 * FPS) <= 1
    decoded = _ffmpeg("-i", str(out), "-f", "null", "-")
    assert decoded.returncode == 0 and decoded.stderr == "", decoded.stderr


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_ffmpeg_stops_at_the_end_of_a_file_and_seeks(
    gateway: tuple[ConfProcess, str, str], tmp_path: Path, transport: str
) -> None:
    _, _, rtsp = gateway
    out = tmp_path / "whole.mkv"
    started = time.monotonic()
    whole = _ffmpeg(
        "-rtsp_transport", transport, "-i", f"{rtsp}/files/clip_mpeg4_aac.mp4", "-c", "copy", str(out)
    )
    assert whole.returncode == 0, whole.stderr  # ended by the server's RTCP BYE, not a timeout
    assert abs(_video_frames(out) - 2 * FPS) <= 1
    assert time.monotonic() - started < 20
    out = tmp_path / "end.mkv"
    started = time.monotonic()
    seek = _ffmpeg(
        "-ss", "8", "-rtsp_transport", transport, "-i", f"{rtsp}/files/clip.mp4", "-c", "copy", str(out)
    )
    assert seek.returncode == 0, seek.stderr
    assert (
        2 * FPS - 1 <= _video_frames(out) <= 3 * FPS + 1
    )  # from the keyframe at or before 8 s (one a second)
    assert time.monotonic() - started < 8


def test_a_meeting_track_plays_with_its_passcode(
    gateway: tuple[ConfProcess, str, str], pool: ClientPool, tmp_path: Path
) -> None:
    _, _, rtsp = gateway
    host, meeting = pool.create("ada")
    sharer = pool.share(meeting, "bob", "pattern", "--fps", "20", "--width", "320", "--height", "240")
    sharer.expect("publish_started")
    url = f"{rtsp}/{meeting}/bob/video"

    raw = Raw(rtsp)
    try:
        refused = raw.request("DESCRIBE", url)
        assert refused.status == 401 and refused.headers.get("WWW-Authenticate", "").startswith("Basic")
        wrong = rtsp.replace("rtsp://", "rtsp://eve:nope@")
        assert raw.request("DESCRIBE", f"{wrong}/{meeting}/bob/video").status == 401
        assert (
            raw.request(
                "DESCRIBE", f"{rtsp.replace('rtsp://', 'rtsp://v:' + PASSCODE + '@')}/{meeting}/bob/screen"
            ).status
            == 404
        )
        odd = rtsp.replace("rtsp://", f"rtsp://%2Fkick%07:{PASSCODE}@")  # "/kick" and a bell
        assert raw.request("DESCRIBE", f"{odd}/{meeting}/bob/video").status == 200
        host.expect("participant_joined", lambda e: e["name"] == "kick (RTSP viewer)")
    finally:
        raw.close()

    credentialed = url.replace("rtsp://", f"rtsp://viewer:{PASSCODE}@")
    out = tmp_path / "meeting.mkv"
    captured = _ffmpeg("-rtsp_transport", "udp", "-i", credentialed, "-t", "5", "-c", "copy", str(out))
    assert captured.returncode == 0, captured.stderr
    frames = _video_frames(out)
    assert 5 * 20 - 10 <= frames <= 5 * 20 + 2, frames
    decoded = _ffmpeg("-i", str(out), "-f", "null", "-")
    assert decoded.returncode == 0, decoded.stderr
    host.expect("participant_joined", lambda e: e["name"] == "viewer (RTSP viewer)")
    host.expect("participant_left", lambda e: e["name"] == "viewer (RTSP viewer)")


def test_pause_stops_the_packets_and_teardown_frees_the_session(
    gateway: tuple[ConfProcess, str, str],
) -> None:
    _, _, rtsp = gateway
    url = f"{rtsp}/files/clip.mp4"
    raw = Raw(rtsp)
    try:
        assert raw.request("DESCRIBE", url).status == 200
        setup = raw.request("SETUP", f"{url}/trackID=0", Transport="RTP/AVP/TCP;unicast;interleaved=0-1")
        assert setup.status == 200, setup.reason
        assert setup.headers.get("Transport") == "RTP/AVP/TCP;unicast;interleaved=0-1"
        session = (setup.headers.get("Session") or "").split(";")[0]
        assert raw.request("PLAY", url, Session=session).status == 200
        assert raw.collect(1.0) > 10
        assert raw.request("PAUSE", url, Session=session).status == 200
        raw.collect(0.3)  # what was on its way
        assert raw.collect(1.5) == 0
        assert raw.request("GET_PARAMETER", url, Session=session).status == 200
        assert raw.request("PLAY", url, Session=session).status == 200
        assert raw.collect(1.0) > 10
        assert raw.request("TEARDOWN", url, Session=session).status == 200
        raw.collect(0.3)
        assert raw.collect(1.0) == 0
        assert raw.request("GET_PARAMETER", url, Session=session).status == 454
        assert raw.request("PLAY", url, Session=session).status == 454
    finally:
        raw.close()


def test_conf_play_counts_frames_and_pauses_over_udp(gateway: tuple[ConfProcess, str, str]) -> None:
    _, _, rtsp = gateway
    player = spawn(["play", "--json", "--udp", f"{rtsp}/files/clip.mp4"])
    try:
        stats = player.expect("rtsp_stats", lambda e: e["streams"][0]["frame"] >= 40)
        video, audio = stats["streams"]
        assert (video["media"], video["codec"], audio["codec"]) == ("video", "H264", "opus")
        assert video["packets_lost"] == 0 and video["bytes"] > 0 and audio["frame"] > 50
        player.send("pause")
        player.expect("rtsp_state", lambda e: e["state"] == "paused")
        settled = player.expect("rtsp_stats", lambda e: e["state"] == "paused")
        later = player.expect("rtsp_stats", lambda e: e["time"] >= settled["time"] + 1.5)
        assert later["streams"][0]["frame"] == settled["streams"][0]["frame"]
        player.send("play")
        player.expect("rtsp_stats", lambda e: e["streams"][0]["frame"] > later["streams"][0]["frame"] + 10)
        player.send("teardown")
        closed = player.expect("rtsp_closed")
        assert closed["streams"][0]["loss_rate"] == 0.0
        assert player.wait() == 0
    finally:
        player.stop()


def test_conf_play_stops_at_the_end_of_a_file(gateway: tuple[ConfProcess, str, str]) -> None:
    _, _, rtsp = gateway
    player = spawn(["play", "--json", f"{rtsp}/files/clip_mpeg4_aac.mp4"])  # 2 s, coded again on the way
    try:
        ended = player.expect("rtsp_stats", lambda e: e["state"] == "ended", timeout=20)
        video, audio = ended["streams"]
        assert abs(video["frame"] - 2 * FPS) <= 1 and video["packets_lost"] == 0
        assert abs(audio["frame"] - 100) <= 3  # 20 ms Opus packets
        player.expect("rtsp_closed")
        assert player.wait() == 0
    finally:
        player.stop()


def test_sessions_time_out(gateway: tuple[ConfProcess, str, str]) -> None:
    _, _, rtsp = gateway
    url = f"{rtsp}/files/clip.mp4"
    raw = Raw(rtsp)
    try:
        setup = raw.request("SETUP", f"{url}/trackID=0", Transport="RTP/AVP;unicast;client_port=9-10")
        assert setup.status == 200, setup.reason
        server_ports = (setup.headers.get("Transport") or "").split("server_port=")[1].split(";")[0]
        session, _, timeout = (setup.headers.get("Session") or "").partition(";timeout=")
        assert timeout == "3"
        loop = raw.request(
            "SETUP", f"{url}/trackID=0", Transport=f"RTP/AVP;unicast;client_port={server_ports}"
        )
        assert loop.status == 461  # the server never sends to itself
    finally:
        raw.close()  # a UDP session outlives its connection ...
    again = Raw(rtsp)
    try:
        time.sleep(1.5)
        assert again.request("GET_PARAMETER", url, Session=session).status == 200
        time.sleep(4.5)  # ... until its client has been silent for the timeout
        assert again.request("GET_PARAMETER", url, Session=session).status == 454
    finally:
        again.close()


def test_ffmpeg_record_reaches_a_meeting_participant(
    gateway: tuple[ConfProcess, str, str], pool: ClientPool, media: Path
) -> None:
    _, _, rtsp = gateway
    host, meeting = pool.create("ada")
    for transport, name in (("udp", "cam"), ("tcp", "cam2")):
        target = f"{rtsp.replace('rtsp://', f'rtsp://x:{PASSCODE}@')}/{meeting}/{name}"
        publisher = subprocess.Popen(
            [
                "ffmpeg",
                "-nostdin",
                "-v",
                "error",
                "-re",
                "-i",
                str(media / "clip.mp4"),
                "-t",
                "6",
                "-c",
                "copy",
                "-rtsp_transport",
                transport,
                "-f",
                "rtsp",
                target,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            shown = f"{name} (RTSP)"
            # Its two tracks start in either order.
            started = [host.expect("share_started", lambda e, shown=shown: e["name"] == shown) for _ in "va"]
            assert sorted(e["kind"] for e in started) == ["audio", "video"]
            video = host.expect(
                "track_stats",
                lambda e, shown=shown: e["name"] == shown and e["kind"] == "video" and e["frames"] >= 50,
            )
            assert video["decode_errors"] == 0 and video["packets_lost"] == 0
            host.expect(
                "track_stats",
                lambda e, shown=shown: e["name"] == shown and e["kind"] == "audio" and e["frames"] >= 50,
            )
            _, errors = publisher.communicate(timeout=30)
            assert publisher.returncode == 0, errors
            host.expect("participant_left", lambda e, shown=shown: e["name"] == shown)
        finally:
            if publisher.poll() is None:
                publisher.kill()
                publisher.wait()

    raw = Raw(rtsp)
    try:
        sdp = (
            b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\n"
            b"m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\n"
        )
        raw.cseq += 1
        raw.send(
            bytes(
                RtspRequest(
                    "ANNOUNCE",
                    f"{rtsp}/{meeting}/aac",
                    Headers([("CSeq", str(raw.cseq)), ("Content-Type", "application/sdp")]),
                    sdp,
                )
            )
        )
        refused = raw.response()
        assert refused.status == 415 and "Opus" in refused.reason
    finally:
        raw.close()


@pytest.mark.parametrize(
    ("request_bytes", "status", "closes"),
    [
        (b"ANNOUNCE rtsp://h/a/b RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 999999999\r\n\r\n", 413, True),
        (b"ANNOUNCE rtsp://h/a/b RTSP/1.0\r\nCSeq: 1\r\nContent-Length: -1\r\n\r\n", 400, True),
        (b"OPTIONS rtsp://h/ RTSP/1.0\r\nCSeq: 1\r\n" + b"X-Flood: yes\r\n" * 3000 + b"\r\n", 400, True),
        (b"OPTIONS rtsp://h/ RTSP/2.0\r\nCSeq: 1\r\n\r\n", 505, True),
        (b"OPTIONS rtsp://h/ RTSP/1.0\r\n\r\n", 400, False),
        (b"FLY rtsp://h/ RTSP/1.0\r\nCSeq: 1\r\n\r\n", 501, False),
        (b"PLAY rtsp://h/files/clip.mp4 RTSP/1.0\r\nCSeq: 1\r\nSession: NOSUCHSESSION\r\n\r\n", 454, False),
        (b"PLAY rtsp://h/files/clip.mp4 RTSP/1.0\r\nCSeq: 1\r\n\r\n", 454, False),
        (
            SETUP + b"Transport: RTP/AVP;unicast;client_port=0-1\r\n\r\n",
            461,
            False,
        ),
        (
            SETUP + b"Transport: RTP/AVP;unicast;client_port=70000-70001\r\n\r\n",
            461,
            False,
        ),
        (SETUP + b"Transport: RTP/AVP;multicast\r\n\r\n", 461, False),
        (SETUP + b"Transport: RTP/AVP;unicast;client_port=5000-5000\r\n\r\n", 461, False),
        (SETUP + b"Transport: RTP/AVP/TCP;interleaved=3-3\r\n\r\n", 461, False),
        (
            SETUP.replace(b"trackID=0", b"trackID=7") + b"Transport: RTP/AVP/TCP;interleaved=0-1\r\n\r\n",
            404,
            False,
        ),
        (b"DESCRIBE rtsp://h/nope RTSP/1.0\r\nCSeq: 1\r\n\r\n", 404, False),
        (b"DESCRIBE rtsp://[::1/files/clip.mp4 RTSP/1.0\r\nCSeq: 1\r\n\r\n", 404, False),
        (
            b"SETUP rtsp://h:99999/files/clip.mp4 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP\r\n\r\n",
            404,
            False,
        ),
    ],
)
def test_malformed_requests_get_an_error_never_a_crash(
    gateway: tuple[ConfProcess, str, str], request_bytes: bytes, status: int, closes: bool
) -> None:
    server, _, rtsp = gateway
    raw = Raw(rtsp)
    try:
        raw.send(request_bytes)
        assert raw.response().status == status
        assert raw.closed_within(1.0) == closes
    finally:
        raw.close()
    assert server.process.poll() is None
    healthy = Raw(rtsp)
    try:
        assert healthy.request("OPTIONS", f"{rtsp}/").status == 200
    finally:
        healthy.close()


def test_a_client_that_never_finishes_its_request_is_cut_off(gateway: tuple[ConfProcess, str, str]) -> None:
    _, _, rtsp = gateway
    raw = Raw(rtsp)
    try:
        raw.send(b"OPTIONS rtsp://h/ RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: slow")
        start = time.monotonic()
        assert raw.response(timeout=15).status == 408
        assert raw.closed_within(2.0)
        assert time.monotonic() - start < 12
    finally:
        raw.close()


def test_conf_play_in_a_terminal_pauses_plays_and_tears_down_from_the_keyboard(
    gateway: tuple[ConfProcess, str, str],
) -> None:
    _, _, rtsp = gateway
    terminal = Terminal([*conf_command(), "play", f"{rtsp}/files/clip_mjpeg.avi"])
    try:
        terminal.read_until("RTSP playing", timeout=30)
        terminal.read_until("JPEG", timeout=30)
        mark = len(terminal.screen)
        terminal.type(" ")
        terminal.read_until("RTSP paused", timeout=30, since=mark)
        mark = len(terminal.screen)
        terminal.type(" ")
        terminal.read_until("RTSP playing", timeout=30, since=mark)
        terminal.type("t")
        assert terminal.wait(timeout=30) == 0
    finally:
        terminal.close()
