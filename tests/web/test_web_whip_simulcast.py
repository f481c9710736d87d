"""Simulcast over WHIP with a client no one here wrote: headless Chromium publishes three encodings
(``rid`` q, h and f, a quarter, a half and the whole of a 1280x720 canvas) through the ``whip-whep``
library from npm, in a loopback-only namespace. The server takes the three RIDs as the layers of one
track: a terminal subscriber capped at 300 kbit/s decodes the 320x180 layer while the unconstrained host
decodes 1280x720, the server's stats show the three layers arriving, and a layer nobody receives is no
longer forwarded (dynacast: a browser's encoding cannot be paused over WHIP, so the server drops it).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conf_web.browser import Browser, chromium_path

from conf_cli.testing.netns import conf_in, inside
from conf_cli.testing.npm import npm_package, npm_unavailable
from conf_cli.testing.processes import ConfProcess

PASSCODE = "pass-123"
WHIP_WHEP = ("whip-whep", "1.2.0")

PAGE = """<!doctype html>
<meta charset="utf-8"><title>WHIP simulcast</title>
<script type="module">
import { WHIPClient } from "./whip.js";

// A 1280x720 canvas with a moving square, 15 frames a second.
function picture(width, height) {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  let tick = 0;
  const draw = () => {
    context.fillStyle = "#2040c0";
    context.fillRect(0, 0, width, height);
    context.fillStyle = "#f0f0f0";
    context.fillRect((tick++ * 16) % width, height / 3, height / 6, height / 6);
  };
  draw();
  setInterval(draw, 1000 / 15);
  return canvas.captureStream(15).getVideoTracks()[0];
}

// rids "q", "h" and "f": a quarter, a half and the whole picture, listed in the order asked for.
window.publish = async (url, token, width, height, order) => {
  const pc = new RTCPeerConnection({bundlePolicy: "max-bundle"});
  const scale = {q: 4, h: 2, f: 1};
  pc.addTransceiver(picture(width, height), {
    direction: "sendonly",
    sendEncodings: order.map((rid) => ({rid, scaleResolutionDownBy: scale[rid]})),
  });
  const client = new WHIPClient();
  try {
    await client.publish(pc, url, token);
  } catch (e) {
    pc.close();
    return String(e.message);
  }
  window.publisher = {client, pc, offer: pc.localDescription.sdp, answer: pc.remoteDescription.sdp};
  return "published";
};

// What Chromium sends of each encoding: {rid: [frameWidth, frameHeight, framesEncoded]}.
window.layers = async () => {
  const out = {};
  (await window.publisher.pc.getStats()).forEach((s) => {
    if (s.type === "outbound-rtp" && s.kind === "video" && s.rid) {
      out[s.rid] = [s.frameWidth || 0, s.frameHeight || 0, s.framesEncoded || 0];
    }
  });
  return out;
};
</script>
"""


def _unavailable() -> str | None:
    if chromium_path() is None:
        return "chromium is not installed: run scripts/setup-system.sh --browser (make test does)"
    if shutil.which("ip") is None:
        return "the browser test runs in a network namespace, which needs iproute2"
    return npm_unavailable()


pytestmark = pytest.mark.skipif(_unavailable() is not None, reason=str(_unavailable()))


def _site(folder: Path) -> Path:
    shutil.copy(npm_package(*WHIP_WHEP) / "whip.js", folder / "whip.js")
    (folder / "index.html").write_text(PAGE)
    return folder


def video(name: str, **wanted: Any) -> Callable[[dict[str, Any]], bool]:
    """A ``track_stats`` of ``name``'s video with pictures decoded and each field in ``wanted`` as given."""

    def match(event: dict[str, Any]) -> bool:
        if event.get("name") != name or event.get("kind") != "video" or not event.get("frames"):
            return False
        return all(event.get(key) == value for key, value in wanted.items())

    return match


def _publisher(server: ConfProcess, where: Callable[[dict[str, Any]], bool], timeout: float) -> Any:
    """The WHIP publisher's part of the next ``server_stats`` for which ``where`` holds: its ``layers``
    (lowest first: the RID meant for each, the RID it carries, packets forwarded) and its ``rids``."""

    def match(event: dict[str, Any]) -> bool:
        publishers = event.get("services", {}).get("web", {}).get("whip", [])
        return len(publishers) == 1 and "layers" in publishers[0] and where(publishers[0])

    return server.expect("server_stats", match, timeout=timeout)["services"]["web"]["whip"][0]


def _rid(publisher: dict[str, Any], rid: str) -> dict[str, Any]:
    return next(r for r in publisher["rids"] if r["rid"] == rid)


class Meeting:
    """A server with the web service in a loopback-only namespace, a host, a subscriber capped at
    300 kbit/s, and a Chromium page that publishes over WHIP."""

    def __init__(self, ns: str, folder: Path) -> None:
        self.started: list[ConfProcess] = []
        self.site: subprocess.Popen[str] | None = None
        self.browser: Browser | None = None
        self.server = self._conf(
            ns,
            ["server", "--json", "--host", "127.0.0.1", "--port", "0", "--web-port", "0",
             "--stats-interval", "1"],
        )  # fmt: skip
        tcp_url, self.web_url = self.server.expect("server_started", timeout=30)["urls"]
        self.host = self._conf(
            ns, ["create", "--json", "--server", tcp_url, "--name", "host", "--passcode", PASSCODE]
        )
        self.id = self.host.expect("meeting_created", timeout=30)["meeting"]
        self.host.expect("joined")
        self.capped = self._conf(
            ns,
            ["join", self.id, "--json", "--server", tcp_url, "--name", "capped", "--passcode", PASSCODE,
             "--max-bitrate", "300k"],
        )  # fmt: skip
        self.capped.expect("joined", timeout=30)
        self.site = subprocess.Popen(
            inside(ns, sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
                   "--directory", str(_site(folder))),
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        assert self.site.stdout is not None
        page_url = self.site.stdout.readline().split("(", 1)[1].split(")", 1)[0]
        self.browser = Browser(page_url, prefix=inside(ns))
        self.browser.wait_for("typeof window.publish === 'function'", timeout=45)

    def _conf(self, ns: str, args: list[str]) -> ConfProcess:
        process = conf_in(ns, args)
        self.started.append(process)
        return process

    def publish(self, width: int, height: int, order: str) -> dict[str, Any]:
        """Chromium publishes a ``width`` x ``height`` canvas as RIDs in ``order``; the ``share_started``."""
        assert self.browser is not None
        url = f"{self.web_url}whip/{self.id}?name=cam"
        rids = ", ".join(f"'{rid}'" for rid in order)
        published = self.browser.evaluate(
            f"publish('{url}', '{PASSCODE}', {width}, {height}, [{rids}])", timeout=60
        )
        assert published == "published"
        return self.host.expect("share_started", lambda e: e["name"] == "cam (WHIP)", timeout=30)

    def close(self) -> None:
        if self.browser is not None:
            self.browser.close()
        if self.site is not None:
            self.site.terminate()
            self.site.wait(timeout=10)
        for process in reversed(self.started):
            process.stop()


def test_chromium_simulcast_over_whip_gives_each_subscriber_its_layer(
    browser_namespace: str, tmp_path: Path
) -> None:
    meeting = Meeting(browser_namespace, tmp_path)
    try:
        browser, server, host, capped = meeting.browser, meeting.server, meeting.host, meeting.capped
        assert browser is not None
        shared = meeting.publish(1280, 720, "qhf")
        offer, answer = (
            browser.evaluate("window.publisher.offer"),
            browser.evaluate("window.publisher.answer"),
        )
        assert "a=simulcast:send q;h;f" in offer
        # The answer takes the three RIDs (RFC 8853) and the RID header extension (RFC 8852).
        assert "a=simulcast:recv q;h;f" in answer
        assert all(f"a=rid:{rid} recv" in answer for rid in "qhf")
        assert "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id" in answer
        # One track with three layers, lowest first, the highest under the track's SSRC.
        assert len(shared["layers"]) == 3 and shared["layers"][-1]["ssrc"] == shared["ssrc"]

        # Chromium encodes all three: a quarter, a half and the whole of the canvas.
        sizes = browser.wait_for(
            "layers().then(l => (l.q && l.h && l.f && l.q[2] > 10 && l.h[2] > 10 && l.f[2] > 10) ? l : null)",
            timeout=90,
        )
        assert {rid: tuple(size[:2]) for rid, size in sizes.items()} == {
            "q": (320, 180),
            "h": (640, 360),
            "f": (1280, 720),
        }

        # The capped subscriber decodes the 320x180 layer (layer 0), the host the 1280x720 one (layer 2),
        # both under the track's one SSRC.
        low = capped.expect("track_stats", video("cam (WHIP)", layer=0, width=320, height=180), timeout=90)
        top = host.expect("track_stats", video("cam (WHIP)", layer=2, width=1280, height=720), timeout=90)
        assert low["ssrc"] == top["ssrc"] == shared["ssrc"]
        assert low["decode_errors"] == 0 and top["decode_errors"] == 0

        # The server receives the three RIDs on the one track, each the layer of its size; the middle
        # layer, which nobody receives, is not forwarded (dynacast: dropped at the server), the others are.
        first = _publisher(
            server,
            lambda p: (
                all(r["received"] > 0 for r in p["rids"])
                and not p["layers"][1]["active"]
                and p["layers"][2]["feed"] == "f"
            ),
            timeout=30,
        )
        assert [layer["rid"] for layer in first["layers"]] == ["q", "h", "f"]
        assert first["layers"][-1]["ssrc"] == shared["ssrc"]
        assert [(r["rid"], r["width"], r["height"]) for r in first["rids"]] == [
            ("q", 320, 180),
            ("h", 640, 360),
            ("f", 1280, 720),
        ]
        middle = _rid(first, "h")["received"]
        later = _publisher(server, lambda p: _rid(p, "h")["received"] > middle + 30, timeout=30)
        assert later["layers"][1]["forwarded"] == first["layers"][1]["forwarded"]
        assert _rid(later, "h")["paused"] > _rid(first, "h")["paused"]
        assert later["layers"][0]["forwarded"] > first["layers"][0]["forwarded"]
        assert later["layers"][2]["forwarded"] > first["layers"][2]["forwarded"]

        # Once the capped subscriber leaves, nobody wants the low layer either: its forwarding stops.
        capped.send("/leave")
        capped.wait()
        gone = _publisher(server, lambda p: not p["layers"][0]["active"], timeout=30)
        low_in = _rid(gone, "q")["received"]
        after = _publisher(server, lambda p: _rid(p, "q")["received"] > low_in + 20, timeout=30)
        assert after["layers"][0]["forwarded"] == gone["layers"][0]["forwarded"]
        assert after["layers"][2]["forwarded"] > gone["layers"][2]["forwarded"]
        host.expect("track_stats", video("cam (WHIP)", layer=2, height=720), timeout=10)
        assert after["unknown_rid"] == 0
    finally:
        meeting.close()


def test_rids_listed_highest_first_are_told_apart_by_their_picture_size(
    browser_namespace: str, tmp_path: Path
) -> None:
    """A page may list its encodings highest first (``f;h;q``): the server learns the order from the
    picture sizes in the streams' parameter sets, so the capped subscriber still gets 320x180."""
    meeting = Meeting(browser_namespace, tmp_path)
    try:
        assert meeting.browser is not None
        shared = meeting.publish(1280, 720, "fhq")
        assert "a=simulcast:recv f;h;q" in meeting.browser.evaluate("window.publisher.answer")
        low = meeting.capped.expect(
            "track_stats", video("cam (WHIP)", layer=0, width=320, height=180), timeout=90
        )
        top = meeting.host.expect(
            "track_stats", video("cam (WHIP)", layer=2, width=1280, height=720), timeout=90
        )
        assert low["ssrc"] == top["ssrc"] == shared["ssrc"]
        stats = _publisher(meeting.server, lambda p: p["layers"][0]["forwarded"] > 0, timeout=30)
        assert [layer["rid"] for layer in stats["layers"]] == ["q", "h", "f"]
    finally:
        meeting.close()
