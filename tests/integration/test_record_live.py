"""`conf record --hls DIR` and `--rtmp URL`: the composite live, read back by ffprobe (HLS while the
playlist grows and after; RTMP from Debian's nginx with its RTMP module, started here on a free port)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from conf_cli.testing.media import streams
from conf_cli.testing.processes import ClientPool
from tests.helpers.recording import start_recorder

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def segments(folder: Path) -> int:
    playlist = folder / "index.m3u8"
    if not playlist.exists():
        return 0
    return sum(1 for line in playlist.read_text().splitlines() if line.endswith(".ts"))


def test_hls_plays_while_the_playlist_grows_and_after(clients: ClientPool, tmp_path: Path) -> None:
    _host, meeting = clients.create("host")
    clients.share(meeting, "ada", "pattern", "--width", "640", "--height", "360").expect("publish_started")
    clients.share(meeting, "cy", "tone").expect("publish_started")
    folder = tmp_path / "live"
    recorder = start_recorder(clients, meeting, "live", "--hls", str(folder))
    recorder.expect("joined")
    deadline = time.monotonic() + 30
    while segments(folder) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert segments(folder) >= 2
    playlist = (folder / "index.m3u8").read_text()
    assert "#EXT-X-ENDLIST" not in playlist  # still growing
    growing = subprocess.run(  # a live playlist: ffprobe reads its streams without waiting for the end
        [
            *(shutil.which("ffprobe") or "ffprobe", "-v", "error"),
            *("-show_entries", "stream=codec_type,codec_name", "-of", "csv=p=0", str(folder / "index.m3u8")),
        ],
        capture_output=True,
        text=True,
        timeout=40,
    )
    assert set(growing.stdout.split()) == {"aac,audio", "h264,video"}, growing.stderr

    recorder.send("/leave")
    written = recorder.expect("recording_written", timeout=20)
    assert recorder.wait(20) == 0 and not written["failed"]
    assert "#EXT-X-ENDLIST" in (folder / "index.m3u8").read_text()
    done = streams(folder / "index.m3u8")
    video = next(s for s in done if s["codec_type"] == "video")
    assert {s["codec_type"] for s in done} == {"audio", "video"}
    assert abs(int(str(video["nb_read_frames"])) - written["frames"]) <= 2


def test_rtmp_push_reaches_nginx_and_reads_back(clients: ClientPool, tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "nginx.conf"
    config.write_text(
        f"load_module {RTMP_MODULE};\n"
        f"pid {tmp_path}/nginx.pid;\n"
        f"error_log {tmp_path}/error.log;\n"
        "events {}\n"
        f"rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; record off; }} }} }}\n"
    )
    nginx = subprocess.Popen(
        [NGINX, "-p", str(tmp_path), "-c", str(config), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        _host, meeting = clients.create("host")
        clients.share(meeting, "ada", "pattern", "--width", "640", "--height", "360").expect(
            "publish_started"
        )
        url = f"rtmp://127.0.0.1:{port}/live/meeting"
        recorder = start_recorder(clients, meeting, "push", "--rtmp", url)
        recorder.expect("joined")
        time.sleep(2)
        probe = subprocess.run(
            [
                *(shutil.which("ffprobe") or "ffprobe", "-v", "error", "-rw_timeout", "10000000"),
                *("-show_entries", "stream=codec_type,codec_name", "-of", "csv=p=0", url),
            ],
            capture_output=True,
            text=True,
            timeout=40,
        )
        assert set(probe.stdout.split()) == {"aac,audio", "h264,video"}, probe.stderr
        recorder.send("/leave")
        written = recorder.expect("recording_written", timeout=20)
        assert recorder.wait(20) == 0 and not written["failed"]
    finally:
        nginx.terminate()
        nginx.wait(10)
