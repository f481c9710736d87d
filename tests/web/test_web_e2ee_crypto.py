"""The page's end-to-end encryption against conf's own, in a real Chromium, as an attacker would try it.

The page's keyring (static/e2ee.js) and SFrame (static/sframe.js) run in headless Chromium's WebCrypto;
conf's (conf_cli.client.keyring, conf_cli.protocol.sframe) run here. They agree keys and the security
code both ways, each decrypts what the other encrypts, and the page refuses what a lying server might
hand it: a sealed key replayed, meant for someone else or passed off as another sender's, a key ID
another sender owns, a low-order public key, a frame moved to another place in a stream, a replayed
frame. The page is a local file: nothing goes over a network.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from conf_web.browser import Browser, BrowserError, chromium_path
from conf_web.media import FRAME_PPS, FRAME_SPS, Outbound, SealedVideo

from conf_cli.client.keyring import KeyRing, encode_key, new_private_key
from conf_cli.media.h264 import H264Depacketizer, H264Packetizer, split_annexb
from conf_cli.protocol.rtp import RtpPacket
from conf_cli.protocol.sframe import SFrameError
from conf_cli.testing.netns import inside, netns_unavailable

MEETING = "k7m-q2xw-9fd"


def _unavailable() -> str | None:
    if chromium_path() is None:
        return "chromium is not installed: run scripts/setup-system.sh --browser (make test does)"
    return netns_unavailable()


pytestmark = pytest.mark.skipif(_unavailable() is not None, reason=str(_unavailable()))


@pytest.fixture
def page(browser_namespace: str, tmp_path: Path) -> Iterator[Browser]:
    static = resources.files("conf_web").joinpath("static")
    scripts = "".join(
        f'<script src="{Path(str(static.joinpath(name))).as_uri()}"></script>'
        for name in ("sframe.js", "e2ee.js", "h264.js")
    )
    html = tmp_path / "keys.html"
    html.write_text(f"<!doctype html><html><body>{scripts}</body></html>")
    browser = Browser(html.as_uri(), prefix=inside(browser_namespace))
    try:
        browser.wait_for("typeof E2ee === 'object' && typeof SFrame === 'object'")
        yield browser
    finally:
        browser.close()


def _js(browser: Browser, body: str) -> Any:
    """Run ``body`` (statements of an async function) in the page; its return value."""
    return browser.evaluate(f"(async () => {{ {body} }})()")


def _refused(browser: Browser, body: str) -> str:
    """The message the page's promise fails with when running ``body``."""
    with pytest.raises(BrowserError) as failed:
        _js(browser, body)
    return str(failed.value)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_the_page_agrees_keys_and_codes_with_conf_and_refuses_what_a_server_might_forge(
    page: Browser,
) -> None:
    web_key = _js(
        page,
        "window.ring = await E2ee.KeyRing.create(); window.got = {}; window.mine = null;"
        "ring.onreceive = (name, kid, base) => { got[kid] = {name, base: E2ee.b64(base)}; };"
        "ring.onsend = (kid, base) => { mine = {kid, base: E2ee.b64(base)}; };"
        "return ring.publicText;",
    )
    ada = KeyRing(MEETING, "ada", new_private_key())
    bob = KeyRing(MEETING, "bob", new_private_key())
    ada_key, bob_key = encode_key(ada.public), encode_key(bob.public)
    everyone = [
        {"name": "ada", "key": ada_key},
        {"name": "bob", "key": bob_key},
        {"name": "web", "key": web_key},
    ]
    ada_keys = ada.start(everyone)
    bob.start(everyone)
    assert ada_keys is not None

    # The page joins: it seals a sender key for each of the others, who open it.
    sent = _js(page, f"return await ring.start({MEETING!r}, 'web', {json.dumps(everyone)});")
    boxes = {k["to"]: k["box"] for k in sent["keys"]}
    assert set(boxes) == {"ada", "bob"}
    kid = _js(page, "return mine.kid;")
    assert ada.open("web", boxes["ada"]) == kid == bob.open("web", boxes["bob"])

    # ... and opens ada's; everyone computes the same security code.
    ada_box = next(k["box"] for k in ada_keys["keys"] if k["to"] == "web")
    assert _js(page, f"return await ring.open('ada', {ada_box!r});") == ada.sender.kid
    code = ada.security_code()
    assert code == bob.security_code() == _js(page, "return await ring.securityCode();")

    # Media: conf's SFrame opens in the page and the page's in conf, bound to the same metadata.
    meta = bytes(range(11))
    frame = ada.encrypt(b"an opus frame", meta)
    page_kid = ada.sender.kid
    plain = _js(
        page,
        f"window.k = await SFrame.deriveKey({page_kid}, E2ee.unb64(got[{page_kid}].base));"
        f"window.meta = new Uint8Array({list(meta)});"
        f"const p = await SFrame.decrypt(k, E2ee.unb64({_b64(frame)!r}), meta);"
        "return new TextDecoder().decode(p);",
    )
    assert plain == "an opus frame"
    # The same frame again (a replay), or moved to another place in the stream, does not open.
    assert "already received" in _refused(
        page, f"await SFrame.decrypt(k, E2ee.unb64({_b64(frame)!r}), meta);"
    )
    moved = ada.encrypt(b"another", meta)
    other_place = list(bytes([0x80]) + meta[1:])  # the marker bit set
    assert "OperationError" in _refused(
        page, f"await SFrame.decrypt(k, E2ee.unb64({_b64(moved)!r}), new Uint8Array({other_place}));"
    )
    sealed = _js(
        page,
        "const s = await SFrame.deriveKey(mine.kid, E2ee.unb64(mine.base));"
        "return E2ee.b64(await SFrame.encrypt(s, 9, new TextEncoder().encode('from the page'), meta));",
    )
    assert ada.decrypt(base64.b64decode(sealed), meta, "web") == b"from the page"
    with pytest.raises(SFrameError):
        ada.decrypt(base64.b64decode(sealed), bytes(11), "web")

    # A server that replays the sealed key, passes ada's off as bob's, or gives the page a key sealed
    # for someone else, is refused.
    assert "older than one already received" in _refused(page, f"await ring.open('ada', {ada_box!r});")
    assert "does not open" in _refused(page, f"await ring.open('bob', {ada_box!r});")
    for_bob = next(k["box"] for k in ada.rekey()["keys"] if k["to"] == "bob")  # type: ignore[index]
    assert "does not open" in _refused(page, f"await ring.open('ada', {for_bob!r});")
    assert "not in the meeting" in _refused(page, f"await ring.open('eve', {ada_box!r});")
    # A key ID already ada's, sealed by bob (a forger among the participants), is refused too.
    # (bob's ring holds none of ada's keys but her newest, so it can be made to reuse the one the page has)
    taken = page_kid.to_bytes(4, "big")
    bob._random = lambda n, real=bob._random: taken if n == 4 else real(n)  # type: ignore[method-assign]
    bob_keys = bob.rekey()
    assert bob_keys is not None
    bob_box = next(k["box"] for k in bob_keys["keys"] if k["to"] == "web")
    assert "reuses the key ID of ada's" in _refused(page, f"await ring.open('bob', {bob_box!r});")

    # A low-order public key (all zeros) gives no shared secret: that participant is left out.
    zero = _b64(bytes(32))
    assert "not usable" in _refused(page, f"await ring.peerJoined('mallory', {zero!r});")
    assert _js(page, "return ring.peers.has('mallory');") is False


def test_the_pages_h264_framing_is_conf_s(page: Browser) -> None:
    """The page's RTP packetisation of a frame depacketises in conf to the same NAL units, and a sealed
    payload it wraps for Chromium's packetiser comes out of the web service's unwrapping unchanged."""
    import random

    rng = random.Random(7)
    nals = [
        b"\x67" + bytes(rng.randrange(1, 256) for _ in range(12)),  # SPS
        b"\x68" + bytes(rng.randrange(1, 256) for _ in range(4)),  # PPS
        b"\x65" + bytes(rng.randrange(1, 256) for _ in range(3000)),  # an IDR slice: FU-A fragments
    ]
    frame = b"".join(b"\x00\x00\x00\x01" + nal for nal in nals)
    payloads = _js(
        page,
        f"return H264.packetize(E2ee.unb64({_b64(frame)!r}), 800).map((p) => E2ee.b64(p));",
    )
    assert all(len(base64.b64decode(p)) <= 800 for p in payloads) and len(payloads) == 2 + 4
    depacketizer = H264Depacketizer()
    units = []
    for i, payload in enumerate(payloads):
        packet = RtpPacket(96, i, 9000, 1, base64.b64decode(payload), marker=i == len(payloads) - 1)
        units += depacketizer.push(packet)
    assert len(units) == 1 and units[0].keyframe
    assert split_annexb(units[0].data) == nals

    sealed = bytes([0, 0, 0, 1, 0, 0, 3, 0, 0, 2, 0, 0]) + bytes(rng.randrange(256) for _ in range(700))
    wrapped = base64.b64decode(_js(page, f"return E2ee.b64(H264.wrap(E2ee.unb64({_b64(sealed)!r})));"))
    assert wrapped[:4] == b"\x00\x00\x00\x01" and b"\x00\x00\x01" not in wrapped[4:]
    assert SealedVideo().payloads(1, wrapped[4:]) == [sealed]

    # Towards the page: what the service makes of a terminal's sealed payloads, as Chromium's
    # depacketiser hands it to the transform, gives the page those payloads back, and the page puts
    # conf's packetisation of a frame back together.
    conf_payloads = H264Packetizer(mtu=1000).packetize(nals)
    slot = Outbound(mid="3", kind="video", ssrc=5, payload_type=102)
    slot.assign(9, "ada", "video")
    annexb = b""
    for i, payload in enumerate(conf_payloads):
        sent = RtpPacket.parse(slot.rewrite(bytes(RtpPacket(96, i, 3000, 9, payload)), sealed=True) or b"")
        inner = sent.payload
        if inner[0] & 0x1F == 24:  # the STAP-A of a frame's first packet: its units one by one
            at, parts = 1, []
            while at < len(inner):
                size = int.from_bytes(inner[at : at + 2], "big")
                parts.append(inner[at + 2 : at + 2 + size])
                at += 2 + size
            assert parts[:2] == [FRAME_SPS, FRAME_PPS]
        else:
            parts = [inner]
        annexb += b"".join(b"\x00\x00\x00\x01" + part for part in parts)
    opened = _js(
        page,
        f"return H264.sealedPayloads(E2ee.unb64({_b64(annexb)!r})).map((u) => E2ee.b64(u.subarray(11)));",
    )
    assert [base64.b64decode(p) for p in opened] == conf_payloads
    frame_back = _js(
        page,
        f"return E2ee.b64(H264.depacketize({json.dumps([_b64(p) for p in conf_payloads])}.map(E2ee.unb64)));",
    )
    assert split_annexb(base64.b64decode(frame_back)) == nals
