"""`conf server --rtsp-port`: the gateway listens on the server's --host, and its options are checked."""

from __future__ import annotations

from conf_cli.testing.processes import run_conf, spawn


def test_the_gateway_listens_on_the_servers_host() -> None:
    server = spawn(["server", "--json", "--host", "127.0.0.2", "--port", "0", "--rtsp-port", "0"])
    try:
        urls = server.expect("server_started")["urls"]
        assert urls[0].startswith("tcp://127.0.0.2:")
        assert urls[1].startswith("rtsp://127.0.0.2:") and urls[1].endswith("/")
    finally:
        server.stop()


def test_bad_options_are_one_line() -> None:
    result = run_conf("server", "--port", "0", "--media-dir", "/tmp")
    assert result.returncode == 1
    assert result.stderr.strip() == "conf: --media-dir needs --rtsp-port: files are served over RTSP"
    result = run_conf("server", "--port", "0", "--rtsp-port", "0", "--media-dir", "/no/such/folder")
    assert result.returncode == 1
    assert result.stderr.strip() == "conf: --media-dir /no/such/folder: no such folder"
    result = run_conf("server", "--port", "0", "--rtsp-port", "0", "--workers", "2")
    assert result.returncode == 1 and "one worker" in result.stderr
