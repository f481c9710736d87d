"""The web service in process: its files, TLS, options, and the page's WebSocket protocol."""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import websockets
from conf_web.certs import own_certificate
from conf_web.ice import IceServer, parse_ice_server
from conf_web.service import WebConfig, WebServer, WebService, _tls_context

from conf_cli.client.keyring import encode_key, new_private_key, public_bytes
from conf_cli.client.link import Client
from conf_cli.errors import ConfError
from conf_cli.protocol.control import client_message_types
from conf_cli.protocol.stun import StunMessage, binding_success
from conf_cli.server.edge import Server
from conf_cli.server.local_link import LocalServiceContext
from conf_cli.testing.processes import run_conf
from conf_cli.urls import ServerAddress


async def _web(server: Server, **settings: Any) -> WebServer:
    running = await WebService().start(
        LocalServiceContext(server), {"host": "127.0.0.1", "web_port": 0, **settings}
    )
    server.services.append(running)  # closed with the server
    assert isinstance(running, WebServer)
    return running


def _get(url: str, context: ssl.SSLContext | None = None) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10, context=context) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


async def test_the_page_and_its_files_are_served(server: Server) -> None:
    web = await _web(server)
    (url,) = web.urls
    assert url.startswith("http://127.0.0.1:") and url.endswith("/")
    status, kind, body = await asyncio.to_thread(_get, url + "?meeting=abc-defg-hij&passcode=x")
    assert (status, kind) == (200, "text/html; charset=utf-8")
    assert b'<script src="/app.js"' in body
    status, kind, body = await asyncio.to_thread(_get, url + "app.js")
    assert (status, kind) == (200, "text/javascript; charset=utf-8") and b"RTCPeerConnection" in body
    status, kind, _ = await asyncio.to_thread(_get, url + "style.css")
    assert (status, kind) == (200, "text/css; charset=utf-8")
    for script in ("view.js", "features.js", "e2ee.js", "sframe.js", "sframe-worker.js", "h264.js"):
        status, kind, body = await asyncio.to_thread(_get, url + script)
        assert (status, kind) == (200, "text/javascript; charset=utf-8") and b'"use strict"' in body
    assert (await asyncio.to_thread(_get, url + "../etc/passwd"))[0] == 404
    assert (await asyncio.to_thread(_get, url + "static/app.js"))[0] == 404


async def test_https_with_a_given_certificate(server: Server, tmp_path: Path) -> None:
    cert, key = own_certificate(["127.0.0.1", "localhost"], tmp_path)
    assert own_certificate(["127.0.0.1"], tmp_path) == (cert, key)  # kept and reused
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    web = await _web(server, cert=cert, key=key)
    (url,) = web.urls
    assert url.startswith("https://127.0.0.1:")
    trusting = ssl.create_default_context(cafile=str(cert))
    status, _, body = await asyncio.to_thread(_get, url, trusting)
    assert status == 200 and b"conf" in body
    with pytest.raises(urllib.error.URLError):  # a browser that does not trust it is warned
        await asyncio.to_thread(_get, url, ssl.create_default_context())


def test_away_from_loopback_the_servers_own_certificate_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONF_HOME", str(tmp_path))
    assert _tls_context(WebConfig("127.0.0.1", 0)) is None  # browsers allow capture on localhost
    assert isinstance(_tls_context(WebConfig("192.0.2.7", 0)), ssl.SSLContext)
    assert (tmp_path / "server" / "web" / "cert.pem").exists()


async def test_bad_settings_are_one_clear_error(server: Server, tmp_path: Path) -> None:
    with pytest.raises(ConfError, match="--cert and --key go together"):
        await _web(server, cert=tmp_path / "c.pem")
    with pytest.raises(ConfError, match=f"no such certificate or key file: {tmp_path / 'c.pem'}$"):
        await _web(server, cert=tmp_path / "c.pem", key=tmp_path / "k.pem")
    (tmp_path / "c.pem").write_text("not a certificate")
    (tmp_path / "k.pem").write_text("not a key")
    with pytest.raises(ConfError, match="cannot use certificate"):
        await _web(server, cert=tmp_path / "c.pem", key=tmp_path / "k.pem")
    web = await _web(server)
    port = int(web.urls[0].rsplit(":", 1)[1].rstrip("/"))
    with pytest.raises(ConfError, match=f"web port {port} on 127.0.0.1 is busy"):
        await _web(server, web_port=port)


@pytest.mark.parametrize(
    ("text", "server"),
    [
        ("stun:stun.example.org", IceServer("stun:stun.example.org")),
        ("stun:10.0.0.1:3478", IceServer("stun:10.0.0.1:3478")),
        ("turn:ada:s3cret@turn.example.org:3478?transport=tcp", IceServer(
            "turn:turn.example.org:3478?transport=tcp", "ada", "s3cret")),
    ],
)  # fmt: skip
def test_ice_servers(text: str, server: IceServer) -> None:
    assert parse_ice_server(text) == server


@pytest.mark.parametrize(
    "text", ["http://x", "turn:host:3478", "stun:u:p@host", "stun:host:99999", "stun:", "stun:a b", "x" * 600]
)
def test_bad_ice_servers(text: str) -> None:
    with pytest.raises(ConfError, match="bad --ice-server"):
        parse_ice_server(text)


def test_conf_server_says_what_is_wrong_in_one_line() -> None:
    result = run_conf("server", "--port", "0", "--web-port", "0", "--ice-server", "turn:nobody")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "conf: bad --ice-server 'turn:nobody': a TURN server needs USER:PASSWORD@, or --turn-secret"
    ]


async def _next(ws: Any, kind: str) -> dict[str, Any]:
    async with asyncio.timeout(15):
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == kind:
                return message


async def _event(client: Client, kind: str) -> dict[str, Any]:
    async with asyncio.timeout(15):
        while True:
            event = await client.events.get()
            if event["type"] == kind:
                return event


class _StunServer(asyncio.DatagramProtocol):
    """Answers every Binding request with a made-up address, to spot in candidates."""

    MAPPED = ("192.0.2.99", 4242)

    def __init__(self) -> None:
        self.transport: Any = None
        self.requests = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        request = StunMessage.parse(data)
        self.requests += 1
        self.transport.sendto(bytes(binding_success(request.transaction_id, *self.MAPPED, None)), addr)


async def test_a_page_speaks_the_conf_protocol_over_its_websocket(server: Server) -> None:
    loop = asyncio.get_running_loop()
    stun_transport, stun = await loop.create_datagram_endpoint(_StunServer, local_addr=("127.0.0.1", 0))
    stun_port = stun_transport.get_extra_info("sockname")[1]
    settings = {"host": "127.0.0.1", "web_port": 0, "ice_servers": (f"stun:127.0.0.1:{stun_port}",)}
    (url,) = await server.start_services(settings)
    host = Client(server.registry, ServerAddress("local", "host", 0), transport=_local(server))
    await host.connect()
    assert host.welcome["services"] == {"web": [url]}
    created, _ = await host.create("host", passcode="pass-123")
    ws_url = url.replace("http://", "ws://") + "ws"
    try:
        async with websockets.connect(ws_url) as ws:
            ready = await _next(ws, "web_ready")
            assert ready["ice_servers"] == [{"urls": f"stun:127.0.0.1:{stun_port}"}]
            assert ready["requests"] == list(client_message_types())  # the page shows what the server has
            await ws.send("not json")
            assert (await _next(ws, "error"))["message"] == "expected a JSON object"
            await ws.send(json.dumps({"type": "web_answer", "sdp": "v=0"}))
            assert (await _next(ws, "error"))["message"] == "no offer to answer"
            await ws.send(json.dumps({"type": "publish", "kind": "video"}))
            assert "join first" in (await _next(ws, "error"))["message"]
            join = {"type": "join", "meeting": created["meeting"], "name": "web", "passcode": "nope"}
            await ws.send(json.dumps(join))
            assert (await _next(ws, "error"))["code"] == "wrong_passcode"
            await ws.send(json.dumps({**join, "passcode": "pass-123"}))
            joined = await _next(ws, "joined")
            assert [p["name"] for p in joined["participants"]] == ["host", "web"]
            assert (await _event(host, "participant_joined"))["name"] == "web"

            # The server offers: the page's three send slots, H.264 and Opus only, loopback candidates.
            offer = await _next(ws, "web_offer")
            sdp = offer["sdp"]
            assert sdp.count("m=audio") == 1 and sdp.count("m=video") == 2
            assert "H264/90000" in sdp and "opus/48000" in sdp
            assert "VP8" not in sdp and "rtx" not in sdp and "PCMU" not in sdp
            assert "127.0.0.1" in sdp and offer["tracks"] == {}
            # The server's own ICE asked the configured STUN server for its outside address.
            assert stun.requests > 0 and "192.0.2.99 4242 typ srflx" in sdp

            await ws.send(json.dumps({"type": "chat", "text": "hi from the page"}))
            chat = await _event(host, "chat")
            assert (chat["from"], chat["text"]) == ("web", "hi from the page")
            host.send({"type": "chat", "text": "hi page"})
            assert (await _next(ws, "chat"))["text"] == "hi from the page"  # everyone's, the page's too
            assert (await _next(ws, "chat"))["text"] == "hi page"
        assert (await _event(host, "participant_left"))["name"] == "web"
    finally:
        await host.close()
        stun_transport.close()


def _local(server: Server) -> Any:
    from conf_cli.server.local_link import LocalTransport

    return LocalTransport(server)


async def test_a_page_in_an_e2ee_meeting_brings_a_key(server: Server) -> None:
    (url,) = await server.start_services({"host": "127.0.0.1", "web_port": 0})
    host = Client(server.registry, ServerAddress("local", "host", 0), transport=_local(server))
    await host.connect()
    created, _ = await host.create("host", passcode="pass-123", e2ee=True)
    join = {"type": "join", "meeting": created["meeting"], "name": "web", "passcode": "pass-123"}
    try:
        async with websockets.connect(url.replace("http://", "ws://") + "ws") as ws:
            await _next(ws, "web_ready")
            await ws.send(json.dumps(join))  # a browser that cannot encrypt brings no key: refused
            assert (await _next(ws, "error"))["code"] == "e2ee_required"
            key = encode_key(public_bytes(new_private_key()))
            await ws.send(json.dumps({**join, "e2ee_key": key}))
            joined = await _next(ws, "joined")
            assert joined["e2ee"] is True
            assert (await _event(host, "participant_joined"))["key"] == key
            await _next(ws, "web_offer")
            await ws.send(json.dumps({"type": "publish", "kind": "video"}))
            started = await _event(host, "share_started")
            assert (started["name"], started["kind"]) == ("web", "video")
    finally:
        await host.close()
