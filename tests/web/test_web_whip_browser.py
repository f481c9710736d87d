"""WHIP and WHEP against a client no one here wrote: headless Chromium's own WebRTC stack driven by the
``whip-whep`` library from the npm registry (WHIPClient, WHEPClient), in a loopback-only namespace.

The page that uses the library is served by the test on another port than the web service's, so every
request it makes is cross-origin: the CORS preflight and headers are exercised as a real page needs
them. The library trickles its ICE candidates with PATCH, which the server takes.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conf_web.browser import Browser, chromium_path

from conf_cli.testing.netns import conf_in, inside
from conf_cli.testing.npm import npm_package, npm_unavailable
from conf_cli.testing.processes import ConfProcess

PASSCODE = "pass-123"
NS = f"confwhip{os.getpid()}"
WHIP_WHEP = ("whip-whep", "1.2.0")

PAGE = """<!doctype html>
<meta charset="utf-8"><title>WHIP and WHEP</title>
<video id="player" autoplay muted playsinline></video>
<script type="module">
import { WHIPClient } from "./whip.js";
import { WHEPClient } from "./whep.js";

// Colour bars on a canvas, redrawn 15 times a second, for the camera.
const BARS = ["#c0c0c0", "#c0c000", "#00c0c0", "#00c000", "#c000c0", "#c00000", "#0000c0"];
function bars() {
  const canvas = document.createElement("canvas");
  canvas.width = 320;
  canvas.height = 240;
  const context = canvas.getContext("2d");
  let tick = 0;
  const draw = () => {
    BARS.forEach((colour, i) => {
      context.fillStyle = colour;
      context.fillRect(i * 320 / 7, 0, 320 / 7 + 1, 240);
    });
    context.fillStyle = "#000000";
    context.fillRect((tick++ * 4) % 320, 200, 16, 16);  // something moves: frames keep coming
  };
  draw();
  setInterval(draw, 1000 / 15);
  return canvas.captureStream(15).getVideoTracks()[0];
}

// Publish the bars and the fake microphone with WHIP.
// With layers: the camera offered as simulcast (three RIDs, highest first), as OBS and others may.
window.publish = async (url, token, layers = false) => {
  const audio = await navigator.mediaDevices.getUserMedia({audio: true});
  const pc = new RTCPeerConnection({bundlePolicy: "max-bundle"});
  pc.addTransceiver(audio.getAudioTracks()[0], {direction: "sendonly"});
  const sendEncodings = layers
    ? [{rid: "f"}, {rid: "h", scaleResolutionDownBy: 2}, {rid: "q", scaleResolutionDownBy: 4}]
    : undefined;
  pc.addTransceiver(bars(), {direction: "sendonly", sendEncodings});
  const client = new WHIPClient();
  try {
    await client.publish(pc, url, token);
  } catch (e) {
    pc.close();
    return String(e.message);
  }
  window.publisher = {client, pc, offer: pc.localDescription.sdp};
  return "published";
};
window.unpublish = async () => { await window.publisher.client.stop(); return true; };

// Play one meeting track with WHEP.
window.play = async (url, token) => {
  const pc = new RTCPeerConnection({bundlePolicy: "max-bundle"});
  pc.addTransceiver("video", {direction: "recvonly"});
  pc.addTransceiver("audio", {direction: "recvonly"});
  pc.ontrack = (event) => {
    const player = document.getElementById("player");
    if (event.track.kind === "video") player.srcObject = new MediaStream([event.track]);
  };
  const client = new WHEPClient();
  await client.view(pc, url, token);
  window.player = {client, pc};
  return "playing";
};
window.framesDecoded = async () => {
  if (!window.player) return 0;
  let frames = 0;
  (await window.player.pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") frames = s.framesDecoded || 0;
  });
  return frames;
};
window.sentCodec = async () => {
  let codec = "";
  const stats = await window.publisher.pc.getStats();
  stats.forEach((s) => {
    if (s.type === "outbound-rtp" && s.kind === "video" && s.codecId) codec = stats.get(s.codecId).mimeType;
  });
  return codec;
};
</script>
"""


def _unavailable() -> str | None:
    if chromium_path() is None:
        return "chromium is not installed: run scripts/setup-system.sh --browser (make test does)"
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return "the browser test runs in a network namespace, which needs root and iproute2"
    return npm_unavailable()


pytestmark = pytest.mark.skipif(_unavailable() is not None, reason=str(_unavailable()))


@pytest.fixture
def namespace() -> Iterator[str]:
    subprocess.run(["ip", "netns", "del", NS], capture_output=True, timeout=10, check=False)
    subprocess.run(["ip", "netns", "add", NS], check=True, capture_output=True, timeout=10)
    try:
        subprocess.run(["ip", "-n", NS, "link", "set", "lo", "up"], check=True, timeout=10)
        yield NS
    finally:
        subprocess.run(["ip", "netns", "del", NS], capture_output=True, timeout=10, check=False)


def _site(folder: Path) -> Path:
    """The page and the library's two modules, from the npm package."""
    package = npm_package(*WHIP_WHEP)
    for name in ("whip.js", "whep.js"):
        shutil.copy(package / name, folder / name)
    (folder / "index.html").write_text(PAGE)
    return folder


def _bar_colours(recording: Path) -> list[tuple[int, int, int]]:
    """The mean colour of each of the seven bars, above the moving square, in the recording's last frame."""
    import av

    deadline = time.monotonic() + 15  # the host closes the file just after it reports track_ended
    while True:
        try:
            with av.open(str(recording)) as container:
                frame = None
                for frame in container.decode(video=0):  # noqa: B007 (the last one is kept)
                    pass
            break
        except av.error.InvalidDataError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    assert frame is not None
    picture = frame.to_ndarray(format="rgb24")
    height, width = picture.shape[:2]
    colours = []
    for bar in range(7):
        left, right = bar * width // 7 + 4, (bar + 1) * width // 7 - 4
        block = picture[height // 8 : height // 2, left:right].reshape(-1, 3).mean(axis=0)
        colours.append((int(block[0]), int(block[1]), int(block[2])))
    return colours


def _not_blank(png: bytes) -> float:
    import av

    with av.open(io.BytesIO(png), format="png_pipe") as container:
        frame = next(container.decode(video=0))
    return float(frame.to_ndarray(format="rgb24").std())


def test_chromium_publishes_with_whip_and_plays_with_whep(namespace: str, tmp_path: Path) -> None:
    started: list[ConfProcess] = []
    site: subprocess.Popen[str] | None = None
    browser: Browser | None = None
    try:
        server = conf_in(NS, ["server", "--json", "--host", "127.0.0.1", "--port", "0", "--web-port", "0"])
        started.append(server)
        tcp_url, web_url = server.expect("server_started", timeout=30)["urls"]
        recordings = tmp_path / "recordings"
        recordings.mkdir()
        host = conf_in(
            NS,
            ["create", "--json", "--server", tcp_url, "--name", "host", "--passcode", PASSCODE,
             "--record", str(recordings)],
        )  # fmt: skip
        started.append(host)
        meeting = host.expect("meeting_created", timeout=30)["meeting"]
        host.expect("joined")
        camera = conf_in(
            NS,
            ["share", "pattern", "--meeting", meeting, "--server", tcp_url, "--name", "camera",
             "--passcode", PASSCODE, "--json", "--width", "320", "--height", "240", "--fps", "15"],
        )  # fmt: skip
        started.append(camera)
        camera.expect("publish_started", timeout=30)

        # The page is served from another origin than the web service's.
        site = subprocess.Popen(
            inside(NS, sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
                   "--directory", str(_site(tmp_path))),
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        assert site.stdout is not None
        line = site.stdout.readline()  # "Serving HTTP on 127.0.0.1 port N (http://127.0.0.1:N/) ..."
        page_url = line.split("(", 1)[1].split(")", 1)[0]
        assert page_url != web_url
        browser = Browser(
            page_url, prefix=inside(NS), extra_flags=["--autoplay-policy=no-user-gesture-required"]
        )
        browser.wait_for("typeof window.publish === 'function'", timeout=45)

        # A wrong passcode: the library reports the server's 401.
        refused = browser.evaluate(f"publish('{web_url}whip/{meeting}?name=cam', 'wrong')", timeout=60)
        assert "401" in refused

        # The right one: the publisher appears as "cam (WHIP)" and the terminal host decodes its
        # camera (H.264) and microphone (Opus).
        assert browser.evaluate(f"publish('{web_url}whip/{meeting}?name=cam', '{PASSCODE}')", timeout=60) == (
            "published"
        )
        host.expect("participant_joined", lambda e: e["name"] == "cam (WHIP)", timeout=30)
        for kind, codec in (("video", "H264"), ("audio", "opus")):
            stats = host.expect(
                "track_stats",
                lambda e, kind=kind: e["name"] == "cam (WHIP)" and e["kind"] == kind and e["frames"] > 20,
                timeout=60,
            )
            assert stats["codec"] == codec
            assert stats["decode_errors"] == 0
        assert browser.evaluate("sentCodec()") == "video/H264"

        # WHEP: the page plays the terminal client's pattern and decodes it.
        assert browser.evaluate(
            f"play('{web_url}whep/{meeting}/camera/video', '{PASSCODE}')", timeout=60
        ) == ("playing")
        host.expect("participant_joined", lambda e: e["name"] == "viewer (WHEP)", timeout=30)
        browser.wait_for("framesDecoded().then(n => n > 30)", timeout=60)
        rect = browser.wait_for(
            "(() => { const v = document.getElementById('player'); if (v.videoWidth === 0) return null;"
            " const r = v.getBoundingClientRect();"
            " return {x: r.x, y: r.y, width: r.width, height: r.height}; })()",
            timeout=30,
        )
        assert _not_blank(browser.screenshot({**rect, "scale": 1})) > 10

        # A second publisher offers simulcast (three RIDs, highest first) of a 320x240 picture: the server
        # takes the three, Chromium sends only the whole picture for one so small, and the layers whose
        # RIDs send nothing carry it, so the host (put on the highest layer) decodes it.
        second = f"publish('{web_url}whip/{meeting}?name=layers', '{PASSCODE}', true)"
        browser.evaluate("window.first = window.publisher; true")
        assert browser.evaluate(second, timeout=60) == "published"
        assert "a=simulcast:send" in browser.evaluate("window.publisher.offer")
        host.expect(
            "track_stats",
            lambda e: e["name"] == "layers (WHIP)" and e["kind"] == "video" and e["frames"] > 20,
            timeout=60,
        )
        browser.evaluate("window.publisher = window.first; true")

        # DELETE on the publisher's resource ends it: it leaves the meeting.
        browser.evaluate("unpublish()")
        host.expect("participant_left", lambda e: e["name"] == "cam (WHIP)", timeout=30)

        # What the host recorded of the WHIP camera is the colour bars the page drew and Chromium encoded:
        # grey, yellow, cyan, green, magenta, red, blue from left to right.
        host.expect("track_ended", lambda e: e["name"] == "cam (WHIP)" and e["kind"] == "video", timeout=30)
        (recording,) = [p for p in recordings.iterdir() if p.name.startswith("cam_WHIP-video")]
        grey, yellow, cyan, green, magenta, red, blue = _bar_colours(recording)
        assert min(grey) > 150 and max(grey) - min(grey) < 30
        assert yellow[0] > 150 and yellow[1] > 150 and yellow[2] < 80
        assert cyan[0] < 80 and cyan[1] > 150 and cyan[2] > 150
        assert green[1] > 150 and green[0] < 80 and green[2] < 80
        assert magenta[0] > 150 and magenta[2] > 150 and magenta[1] < 80
        assert red[0] > 150 and red[1] < 80 and red[2] < 80
        assert blue[2] > 150 and blue[0] < 80 and blue[1] < 80
    finally:
        if browser is not None:
            browser.close()
        if site is not None:
            site.terminate()
            site.wait(timeout=10)
        for process in reversed(started):
            process.stop()
