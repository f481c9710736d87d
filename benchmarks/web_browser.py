"""What a browser costs the server, and how soon it sees a picture.

In a loopback-only network namespace (root needed): a real ``conf server --web-port``, a ``conf share
pattern`` (640x480@30) and ``conf share tone`` publishing, and a terminal client receiving. The server's
CPU is read from /proc over ``--duration`` seconds, first without a browser, then with a headless
Chromium (fake camera and microphone) joined through the invite link: the difference is what one
browser costs (SRTP, aiortc's RTP bookkeeping and the rewrites; nothing is decoded or encoded). Also
printed: the time from starting the browser to its first decoded frame, and the frame rates each way.

    .venv/bin/python benchmarks/web_browser.py --duration 10
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time

from conf_web.browser import Browser

from conf_cli.testing.netns import conf_in, inside
from conf_cli.testing.processes import ConfProcess

NS = f"confwebbench{os.getpid()}"
PASSCODE = "bench-pass"


def in_ns(*args: str) -> list[str]:
    return inside(NS, *args)


def conf(*args: str) -> ConfProcess:
    return conf_in(NS, args)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu(pid: int, seconds: float) -> float:
    """The server's CPU use over ``seconds``, in percent of one core."""
    before, start = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100 * (cpu_seconds(pid) - before) / (time.monotonic() - start)


def latest_fps(process: ConfProcess, name: str, kind: str) -> float:
    stats = [e for e in process.drain(1.5) if e.get("type") == "track_stats"]
    mine = [e for e in stats if e["name"] == name and e["kind"] == kind]
    return float(mine[-1]["fps"]) if mine else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="Seconds per measurement.")
    args = parser.parse_args()
    subprocess.run(["ip", "netns", "add", NS], check=True, timeout=10)
    started: list[ConfProcess] = []
    browser: Browser | None = None
    try:
        subprocess.run(["ip", "-n", NS, "link", "set", "lo", "up"], check=True, timeout=10)
        server = conf("server", "--json", "--host", "127.0.0.1", "--port", "0", "--web-port", "0")
        started.append(server)
        tcp_url, _ = server.expect("server_started", timeout=30)["urls"]
        host = conf("create", "--json", "--server", tcp_url, "--name", "host", "--passcode", PASSCODE)
        started.append(host)
        created = host.expect("meeting_created", timeout=30)
        meeting = created["meeting"]
        common = ("--meeting", meeting, "--server", tcp_url, "--passcode", PASSCODE, "--json")
        pattern = conf("share", "pattern", *common, "--name", "camera", "--width", "640", "--height", "480")
        tone = conf("share", "tone", *common, "--name", "speaker")
        started += [pattern, tone]
        pattern.expect("publish_started", timeout=30)
        tone.expect("publish_started", timeout=30)
        time.sleep(2)
        alone = server_cpu(server.pid, args.duration)

        launched = time.monotonic()
        browser = Browser(
            f"{created['invite']}&name=web",
            prefix=in_ns(),
            extra_flags=["--autoplay-policy=no-user-gesture-required"],
        )
        browser.wait_for("document.readyState === 'complete'", timeout=60)
        loaded = time.monotonic() - launched
        browser.wait_for("window.conf.me", timeout=60)
        joined = time.monotonic() - launched
        browser.wait_for("window.conf.pc && window.conf.pc.connectionState === 'connected'", timeout=60)
        connected = time.monotonic() - launched
        browser.wait_for("window.confStats().then(s => s.framesDecoded > 0)", timeout=60)
        first_frame = time.monotonic() - launched
        time.sleep(2)
        decoded_before = browser.evaluate("window.confStats().then(s => s.framesDecoded)")
        with_browser = server_cpu(server.pid, args.duration)
        decoded = browser.evaluate("window.confStats().then(s => s.framesDecoded)") - decoded_before
        web_video_fps = latest_fps(host, "web", "video")

        print(f"server CPU, 2 publishers + 1 terminal receiver:  {alone:5.1f} % of a core")
        print(f"server CPU, the same + 1 browser:                {with_browser:5.1f} % of a core")
        print(f"one browser costs the server                     {with_browser - alone:5.1f} % of a core")
        print(
            f"browser start to: page loaded {loaded * 1000:.0f} ms, joined {joined * 1000:.0f} ms, "
            f"WebRTC connected {connected * 1000:.0f} ms, first decoded frame {first_frame * 1000:.0f} ms"
        )
        print(f"browser decodes the 640x480@30 pattern at        {decoded / args.duration:5.1f} fps")
        print(f"the terminal decodes the browser's camera at     {web_video_fps:5.1f} fps")
    finally:
        if browser is not None:
            browser.close()
        for process in reversed(started):
            process.stop()
        subprocess.run(["ip", "netns", "del", NS], capture_output=True, timeout=10, check=False)


if __name__ == "__main__":
    main()
