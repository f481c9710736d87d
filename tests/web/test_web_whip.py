"""WHIP and WHEP over real sockets against a real ``conf server --web-port``, as clients and attackers
would use them: the credential (passcode or access token) checked by the hub and counted by its attempt
limiter, CORS, the session's resource (trickle PATCH, DELETE with its bearer only), bounded requests,
the limit per address, and E2EE meetings refused. The SDP offers come from aiortc; media itself is
proven with Chromium in test_web_whip_browser.py.
"""

from __future__ import annotations

import asyncio
import http.client
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conf_cli.testing.processes import ClientPool, ConfProcess, run_conf, spawn, start_server

PASSCODE = "pass-123"


class Web:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = str(parts.hostname), int(parts.port or 80)

    def request(
        self, method: str, path: str, body: bytes | str = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    def post(
        self, path: str, bearer: str | None, offer: str | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        headers = {"Content-Type": "application/sdp", "Origin": "https://elsewhere.example"}
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        return self.request("POST", path, offer if offer is not None else make_offer(), headers)


def make_offer(kinds: tuple[str, ...] = ("audio", "video")) -> str:
    """A WHIP client's offer (aiortc's): send-only audio and video, H.264 among the codecs."""

    async def offer() -> str:
        from aiortc import RTCPeerConnection

        pc = RTCPeerConnection()
        for kind in kinds:
            pc.addTransceiver(kind, direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = str(pc.localDescription.sdp)
        await pc.close()
        return sdp

    return asyncio.run(offer())


@pytest.fixture
def token_key(tmp_path: Path) -> Path:
    return tmp_path / "token.key"


def _start(*extra: str) -> tuple[ConfProcess, ClientPool, Web]:
    server, url = start_server("--web-port", "0", *extra)
    return server, ClientPool(url, PASSCODE), Web(server.seen[0]["urls"][1])


@pytest.fixture
def lab(token_key: Path) -> Iterator[tuple[ClientPool, Web]]:
    server, pool, web = _start("--token-key", str(token_key), "--max-failures", "50")
    try:
        yield pool, web
    finally:
        pool.stop_all()
        server.stop()


def test_whip_publisher_joins_by_passcode_or_token_and_delete_ends_it(
    lab: tuple[ClientPool, Web], token_key: Path
) -> None:
    pool, web = lab
    host, meeting = pool.create("host")

    # CORS: a page of another origin may ask, and sees the Location header.
    status, headers, _ = web.request(
        "OPTIONS",
        f"/whip/{meeting}",
        headers={"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"},
    )
    assert status == 204
    assert headers["access-control-allow-origin"] == "*"
    assert (
        "POST" in headers["access-control-allow-methods"]
        and "DELETE" in headers["access-control-allow-methods"]
    )
    assert "authorization" in headers["access-control-allow-headers"].lower()

    # The passcode, and a name from the query.
    status, headers, answer = web.post(f"/whip/{meeting}?name=obs", PASSCODE)
    assert status == 201, answer
    assert headers["content-type"] == "application/sdp"
    assert (
        headers["access-control-allow-origin"] == "*"
        and "Location" in headers["access-control-expose-headers"]
    )
    assert answer.startswith(b"v=0") and b"H264" in answer and b"opus" in answer
    assert b"a=candidate:" in answer  # gathered before answering
    location = headers["location"]
    assert location.startswith(f"/whip/{meeting}/")
    host.expect("participant_joined", lambda e: e["name"] == "obs (WHIP)")
    started = {host.expect("share_started", lambda e: e["name"] == "obs (WHIP)")["kind"] for _ in range(2)}
    assert started == {"audio", "video"}

    # Trickled candidates are taken; other bodies are not.
    fragment = "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=mid:0\r\n"
    fragment += "a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\na=end-of-candidates\r\n"
    trickle = {"Authorization": f"Bearer {PASSCODE}", "Content-Type": "application/trickle-ice-sdpfrag"}
    assert web.request("PATCH", location, fragment, trickle)[0] == 204
    assert web.request("PATCH", location, "x", {**trickle, "Content-Type": "text/plain"})[0] == 415

    # Only the bearer it was made with ends the session.
    assert web.request("DELETE", location, headers={"Authorization": "Bearer guess"})[0] == 401
    assert web.request("DELETE", location + "x", headers={"Authorization": f"Bearer {PASSCODE}"})[0] == 404
    assert web.request("DELETE", location, headers={"Authorization": f"Bearer {PASSCODE}"})[0] == 200
    host.expect("participant_left", lambda e: e["name"] == "obs (WHIP)")
    assert web.request("DELETE", location, headers={"Authorization": f"Bearer {PASSCODE}"})[0] == 404

    # An access token: the name is the token's, with the tag.
    done = run_conf("token", "create", "--token-key", str(token_key), "--meeting", meeting, "--name", "grace")
    token = done.stdout.strip()
    status, _, answer = web.post(f"/whip/{meeting}?name=ignored", token)
    assert status == 201, answer
    host.expect("participant_joined", lambda e: e["name"] == "grace (WHIP)")
    # ... which is refused for another meeting.
    assert web.post("/whip/zzz-zzzz-zzz", token)[0] in (401, 404)

    # What a token lets its holder share holds for WHIP too: only the audio, or nothing at all.
    def token_for(name: str, can_publish: str) -> str:
        args = ["--meeting", meeting, "--name", name, "--can-publish", can_publish]
        return run_conf("token", "create", "--token-key", str(token_key), *args).stdout.strip()

    assert web.post(f"/whip/{meeting}", token_for("radio", "audio"))[0] == 201
    host.expect("participant_joined", lambda e: e["name"] == "radio (WHIP)")
    assert host.expect("share_started", lambda e: e["name"] == "radio (WHIP)")["kind"] == "audio"
    status, _, body = web.post(f"/whip/{meeting}", token_for("kiosk", ""))
    assert status == 403 and b"video" in body, body
    host.expect("participant_left", lambda e: e["name"] == "kiosk (WHIP)")
    assert not [
        e for e in host.seen if e["type"] == "share_started" and e.get("name", "").startswith("kiosk")
    ]
    assert [e["kind"] for e in host.seen if e["type"] == "share_started" and e["name"] == "radio (WHIP)"] == [
        "audio"
    ]


def test_whip_and_whep_refuse_what_they_cannot_take(lab: tuple[ClientPool, Web]) -> None:
    pool, web = lab
    host, meeting = pool.create("host")
    camera = spawn(
        ["share", "pattern", "--meeting", meeting, "--server", pool.url, "--name", "camera",
         "--passcode", PASSCODE, "--json", "--width", "320", "--height", "240", "--fps", "10"]
    )  # fmt: skip
    pool.started.append(camera)

    status, headers, _ = web.post(f"/whip/{meeting}", None)
    assert status == 401 and headers["www-authenticate"] == "Bearer"
    assert web.post(f"/whip/{meeting}", "wrong")[0] == 401
    assert web.post("/whip/zzz-zzzz-zzz", PASSCODE)[0] == 404
    status, _, _ = web.request(
        "POST",
        f"/whip/{meeting}",
        "v=0",
        {"Content-Type": "text/plain", "Authorization": f"Bearer {PASSCODE}"},
    )
    assert status == 415
    assert web.post(f"/whip/{meeting}", PASSCODE, "x" * (64 * 1024 + 1))[0] == 413
    assert web.post(f"/whip/{meeting}?name=" + "n" * 60, PASSCODE)[0] == 400
    assert web.post(f"/whip/{meeting}?name=%1b%5b31m", PASSCODE)[0] == 400  # no control characters
    assert web.request("GET", f"/whip/{meeting}")[0] == 404  # websockets' side: not a page
    assert web.request("PUT", f"/whip/{meeting}", headers={"Authorization": f"Bearer {PASSCODE}"})[0] == 405

    # WHEP: an unknown participant or kind, then the camera, which is shared.
    assert web.post(f"/whep/{meeting}/nobody/video", PASSCODE, make_offer(("video",)))[0] == 404
    assert web.post(f"/whep/{meeting}/camera/smell", PASSCODE, make_offer(("video",)))[0] == 404
    camera.expect("publish_started", timeout=60)
    offer = make_offer(("video",)).replace("a=sendonly", "a=recvonly")
    status, headers, answer = web.post(f"/whep/{meeting}/camera/video?name=tv", PASSCODE, offer)
    assert status == 201, answer
    assert b"a=sendonly" in answer and b"H264" in answer
    assert headers["location"].startswith(f"/whep/{meeting}/camera/video/")
    host.expect("participant_joined", lambda e: e["name"] == "tv (WHEP)")

    # The active speaker's player: the same credential, an answer, and a resource DELETE ends.
    assert web.post(f"/whep/{meeting}/speaker", "wrong", offer)[0] == 401
    assert web.request("PUT", f"/whep/{meeting}/speaker")[0] == 405
    status, headers, answer = web.post(f"/whep/{meeting}/speaker?name=wall", PASSCODE, offer)
    assert status == 201 and b"a=sendonly" in answer and b"H264" in answer, answer
    location = headers["location"]
    assert location.startswith(f"/whep/{meeting}/speaker/")
    host.expect("participant_joined", lambda e: e["name"] == "wall (WHEP)")
    assert web.request("DELETE", location, headers={"Authorization": "Bearer wrong"})[0] == 401
    assert web.request("DELETE", location, headers={"Authorization": f"Bearer {PASSCODE}"})[0] == 200
    host.expect("participant_left", lambda e: e["name"] == "wall (WHEP)")

    # A malformed request line or header is a 400, not a stalled or crashed service.
    with socket.create_connection((web.host, web.port), timeout=10) as raw:
        raw.sendall(b"POST /whip/x HTTP/1.1\r\nBad Header\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.1 400")
    assert web.request("OPTIONS", f"/whip/{meeting}")[0] == 204


def test_an_e2ee_meeting_refuses_whip_and_whep_with_409(lab: tuple[ClientPool, Web]) -> None:
    pool, web = lab
    _, meeting = pool.create("host", "--e2ee")
    status, _, body = web.post(f"/whip/{meeting}", PASSCODE)
    assert status == 409 and b"end-to-end encrypted" in body
    assert web.post(f"/whep/{meeting}/host/audio", PASSCODE)[0] == 409
    assert web.post(f"/whep/{meeting}/speaker", PASSCODE)[0] == 409


def test_guessing_the_passcode_over_whip_is_rate_limited_like_joins() -> None:
    server, pool, web = _start("--max-failures", "3")
    try:
        _, meeting = pool.create("host")
        codes = [web.post(f"/whip/{meeting}", f"guess-{n}")[0] for n in range(3)]
        assert codes == [401, 401, 401]
        # Past the limit, even the right passcode waits: the attacker learns nothing more.
        status, headers, body = web.post(f"/whip/{meeting}", PASSCODE)
        assert status == 429 and int(headers["retry-after"]) > 0, body
        assert b"too many failed attempts" in body
        assert web.post(f"/whep/{meeting}/host/audio", "guess")[0] == 429
    finally:
        pool.stop_all()
        server.stop()


def test_one_address_gets_its_share_of_whip_sessions() -> None:
    server, pool, web = _start("--web-max-pages-per-address", "1")
    try:
        _, meeting = pool.create("host")
        status, headers, _ = web.post(f"/whip/{meeting}?name=a", PASSCODE)
        assert status == 201
        status, _, body = web.post(f"/whip/{meeting}?name=b", PASSCODE)
        assert status == 503 and b"too many" in body
        web.request("DELETE", headers["location"], headers={"Authorization": f"Bearer {PASSCODE}"})
        assert web.post(f"/whip/{meeting}?name=b", PASSCODE)[0] == 201
    finally:
        pool.stop_all()
        server.stop()


def simulcast_offer(*lines: str, extension: bool = True) -> str:
    """An aiortc offer of video alone, with ``lines`` (a=rid, a=simulcast) and the RID header extension
    added to its m-section, as a simulcasting WHIP client sends."""
    added = (["a=extmap:9 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"] if extension else []) + list(lines)
    return make_offer(("video",)).replace("a=mid:0\r\n", "a=mid:0\r\n" + "".join(f"{x}\r\n" for x in added))


def test_whip_takes_a_simulcast_offer_and_refuses_one_it_cannot_take(lab: tuple[ClientPool, Web]) -> None:
    """An offer of three RIDs is answered with them and published as one track of three layers; one the
    server cannot take is refused with 400 and the reason, before anyone joins, and the server goes on."""
    pool, web = lab
    host, meeting = pool.create("host")
    refused = {
        "too many rids": simulcast_offer(*[f"a=rid:{r} send" for r in "abcd"], "a=simulcast:send a;b;c;d"),
        "a rid not declared": simulcast_offer("a=rid:q send", "a=simulcast:send q;zz"),
        "a restriction to no H.264": simulcast_offer("a=rid:q send pt=97", "a=simulcast:send q"),
        "a layered rid": simulcast_offer("a=rid:q send", "a=rid:h send depend=q", "a=simulcast:send q;h"),
        "no RID extension": simulcast_offer("a=rid:q send", "a=simulcast:send q", extension=False),
        "a malformed rid": simulcast_offer("a=rid:q\x1b[31m send", "a=simulcast:send q\x1b[31m"),
    }
    for what, offer in refused.items():
        status, headers, body = web.post(f"/whip/{meeting}?name=bad", PASSCODE, offer)
        assert status == 400, (what, body)
        assert body.startswith(b"cannot take this simulcast: "), body
        assert headers["access-control-allow-origin"] == "*"
    # Nobody joined for them, and the server still answers a good simulcast offer.
    status, _, answer = web.post(
        f"/whip/{meeting}?name=obs",
        PASSCODE,
        simulcast_offer(
            "a=rid:q send", "a=rid:h send", "a=rid:f send max-height=720", "a=simulcast:send q;h;f"
        ),
    )
    assert status == 201, answer
    text = answer.decode()
    assert "a=simulcast:recv q;h;f" in text
    assert "a=rid:q recv" in text and "a=rid:f recv max-height=720" in text
    assert "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id" in text
    joined = host.expect("participant_joined", lambda e: "(WHIP" in e["name"])
    assert joined["name"] == "obs (WHIP)"
    shared = host.expect("share_started", lambda e: e["name"] == "obs (WHIP)")
    assert shared["kind"] == "video" and [layer["height"] for layer in shared["layers"]] == [180, 360, 720]
    assert shared["layers"][-1]["ssrc"] == shared["ssrc"]
