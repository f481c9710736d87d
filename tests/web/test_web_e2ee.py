"""A browser in an end-to-end encrypted meeting with terminal clients, SFrame both ways.

A real headless Chromium joins an E2EE meeting of terminal clients (``--e2ee``) through the web page: it
agrees keys with them in WebCrypto (X25519, HKDF, AES-GCM), shows the security code they show, and
encrypts and decrypts sound with SFrame in an Encoded Transform worker. The terminal host decodes the
page's microphone and the page decodes a terminal client's tone; a tap between the server and the
terminal clients (``python -m conf_cli.testing.tap``, on links without link encryption so that it reads
them) sees only SFrame ciphertext, from the page and to it, which no key but the participants' opens.
All of it runs in a loopback-only network namespace, as the other browser tests do.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from conf_web.browser import Browser, chromium_path

from conf_cli.client.keyring import KeyRing, new_private_key
from conf_cli.protocol.rtp import RtpPacket
from conf_cli.protocol.sframe import (
    AES_128_GCM_SHA256_128,
    ReceiveContext,
    SFrameError,
    UnknownKey,
    parse_header,
    rtp_metadata,
)
from conf_cli.testing.netns import conf_in, inside, netns_unavailable
from conf_cli.testing.processes import ConfProcess
from conf_cli.testing.processes import test_home as conf_home

PASSCODE = "pass-123"


def _variety(png: bytes) -> float:
    """The standard deviation of a PNG's pixel values (0 for a uniform picture)."""
    import av

    with av.open(io.BytesIO(png), format="png_pipe") as container:
        frame = next(container.decode(video=0))
    return float(frame.to_ndarray(format="rgb24").std())


def _unavailable() -> str | None:
    if chromium_path() is None:
        return "chromium is not installed: run scripts/setup-system.sh --browser (make test does)"
    return netns_unavailable()


pytestmark = pytest.mark.skipif(_unavailable() is not None, reason=str(_unavailable()))


def test_a_browser_and_terminal_clients_in_an_e2ee_meeting(browser_namespace: str) -> None:
    ns = browser_namespace
    started: list[ConfProcess] = []
    browser: Browser | None = None

    def conf(*args: str) -> ConfProcess:
        process = conf_in(ns, args)
        started.append(process)
        return process

    try:
        server = conf("server", "--json", "--host", "127.0.0.1", "--port", "0", "--web-port", "0",
                      "--encryption", "none")  # fmt: skip
        tcp_url = server.expect("server_started", timeout=30)["urls"][0]
        tap = ConfProcess(
            subprocess.Popen(
                inside(ns, sys.executable, "-m", "conf_cli.testing.tap", tcp_url),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "CONF_HOME": conf_home()},
            )
        )
        started.append(tap)
        url = tap.expect("tap_started", timeout=30)["url"]
        common = ("--server", url, "--encryption", "none", "--passcode", PASSCODE, "--json", "--e2ee")
        host = conf("create", "--name", "host", *common)
        created = host.expect("meeting_created", timeout=30)
        assert created["e2ee"] is True
        meeting = created["meeting"]
        speaker = conf("share", "tone", "--meeting", meeting, "--name", "speaker", *common)
        tone = speaker.expect("publish_started", timeout=30)["ssrc"]
        pattern = conf("share", "pattern", "--meeting", meeting, "--name", "pattern", "--width", "320",
                       "--height", "240", "--fps", "15", *common)  # fmt: skip
        picture = pattern.expect("publish_started", timeout=30)["ssrc"]

        browser = Browser(
            f"{created['invite']}&name=web",
            prefix=inside(ns),
            extra_flags=["--autoplay-policy=no-user-gesture-required"],
        )
        host.expect("participant_joined", lambda e: e["name"] == "web", timeout=45)
        assert browser.wait_for("window.conf.e2ee", timeout=30) is True

        # The same security code on every screen, the page's included.
        everyone = ["host", "pattern", "speaker", "web"]
        code = host.latest("security_code", lambda e: e["participants"] == everyone, timeout=30)["code"]
        assert speaker.latest("security_code", lambda e: e["participants"] == everyone)["code"] == code
        browser.wait_for(f"window.conf.securityCode === {code!r}", timeout=30)
        assert browser.evaluate("document.getElementById('security-code').textContent") == code

        # The page decrypts the terminal's tone and plays it ...
        browser.wait_for("window.confE2ee().then(c => c.decrypted > 100)", timeout=60)
        browser.wait_for("window.confStats().then(s => s.audioSamplesReceived > 48000)", timeout=30)
        # ... and the terminal's moving pattern, and shows it.
        browser.wait_for("window.confStats().then(s => s.framesDecoded > 30)", timeout=60)
        browser.wait_for(
            "document.querySelector('.tile[data-name=\"pattern\"]')?.classList.contains('has-video')"
        )
        rect = browser.evaluate(
            "(() => { const r = document.querySelector('.tile[data-name=\"pattern\"] video')"
            ".getBoundingClientRect(); return {x: r.x, y: r.y, width: r.width, height: r.height}; })()"
        )
        assert _variety(browser.screenshot(rect)) > 20, "the pattern's tile shows no picture"
        # ... and the terminal host decrypts and decodes the page's microphone.
        mic = host.latest("share_started", lambda e: e["name"] == "web" and e["kind"] == "audio")["ssrc"]
        stats = host.expect("track_stats", lambda e: e["ssrc"] == mic and e["frames"] > 100, timeout=60)
        assert stats["undecryptable"] == 0 and stats["decode_errors"] == 0
        counts = browser.evaluate("window.confE2ee()")
        assert counts["encrypted"] > 100 and counts["failed"] == 0 and counts["refused"] == 0

        # The terminal host decrypts and decodes the page's camera too.
        camera = host.latest("share_started", lambda e: e["name"] == "web" and e["kind"] == "video")["ssrc"]
        stats = host.expect("track_stats", lambda e: e["ssrc"] == camera and e["frames"] > 30, timeout=60)
        assert stats["undecryptable"] == 0 and stats["decode_errors"] == 0
    finally:
        if browser is not None:
            browser.close()
        for process in reversed(started):
            process.stop()

    # What the tap saw of the page's microphone (on its way to the host) and of the tone (from the
    # speaker, on its way to the page): SFrames, never the same nonce twice, that no outsider's key opens.
    packets: dict[tuple[int, str, int], list[RtpPacket]] = {}  # by (link, direction, SSRC)
    for event in [*tap.seen, *tap.drain(2.0)]:
        if event.get("type") == "tapped":
            packet = RtpPacket.parse(bytes.fromhex(event["packet"]))
            packets.setdefault((event["conn"], event["direction"], packet.ssrc), []).append(packet)
    host_link, speaker_link = 1, 2  # the tap numbers links in the order they came
    pattern_link = 3
    for key in (
        (host_link, "down", mic),
        (host_link, "down", camera),
        (speaker_link, "up", tone),
        (pattern_link, "up", picture),
    ):
        assert len(packets.get(key, [])) > 50, f"the tap saw too little of {key}: {list(packets)}"
        counters: set[tuple[int, int]] = set()
        for packet in packets[key]:
            kid, ctr, at = parse_header(packet.payload)
            assert len(packet.payload) >= at + 16
            assert (kid, ctr) not in counters, "an SFrame nonce was used twice"
            counters.add((kid, ctr))
        stranger = KeyRing(meeting, "eve", new_private_key())
        guess = ReceiveContext(AES_128_GCM_SHA256_128)
        for kid in {kid for kid, _ in counters}:
            guess.add_key(kid, b"\0" * 16)
        for packet in packets[key][:50]:
            with pytest.raises(UnknownKey):
                stranger.decrypt(packet.payload, rtp_metadata(packet), "web")
            with pytest.raises(SFrameError, match="authentication"):
                guess.decrypt(packet.payload, rtp_metadata(packet))
