"""A real headless Chromium in a meeting with terminal clients, all inside a loopback-only namespace.

The server, the terminal clients and the browser run in a network namespace of their own that has only
``lo``, so that ICE offers nothing but 127.0.0.1 and no packet leaves the machine; the test drives them
from outside (the clients through their pipes, the browser through its DevTools pipe).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conf_web.browser import Browser, chromium_path
from conf_web.certs import own_certificate

from conf_cli.testing.netns import conf_in, inside
from conf_cli.testing.processes import ConfProcess, run_conf

PASSCODE = "pass-123"
NS = f"confweb{os.getpid()}"


def _unavailable() -> str | None:
    if chromium_path() is None:
        return "chromium is not installed: run scripts/setup-system.sh --browser (make test does)"
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return "the browser test runs in a network namespace, which needs root and iproute2"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, timeout=10, check=False)
    return None if probe.returncode == 0 else "ip netns is unavailable here"


pytestmark = pytest.mark.skipif(_unavailable() is not None, reason=str(_unavailable()))


def _in_ns(*args: str) -> list[str]:
    return inside(NS, *args)


def _conf(*args: str) -> ConfProcess:
    return conf_in(NS, args)


@pytest.fixture
def namespace() -> Iterator[str]:
    subprocess.run(["ip", "netns", "del", NS], capture_output=True, timeout=10, check=False)
    subprocess.run(["ip", "netns", "add", NS], check=True, capture_output=True, timeout=10)
    try:
        subprocess.run(["ip", "-n", NS, "link", "set", "lo", "up"], check=True, timeout=10)
        yield NS
    finally:
        subprocess.run(["ip", "netns", "del", NS], capture_output=True, timeout=10, check=False)


def _not_blank(png: bytes) -> float:
    """The standard deviation of a PNG's pixel values (0 for a uniform picture)."""
    import av

    with av.open(io.BytesIO(png), format="png_pipe") as container:
        frame = next(container.decode(video=0))
    return float(frame.to_ndarray(format="rgb24").std())


def test_a_browser_meets_terminal_clients(namespace: str) -> None:
    started: list[ConfProcess] = []
    browser: Browser | None = None
    try:
        server = _conf("server", "--json", "--host", "127.0.0.1", "--port", "0", "--web-port", "0")
        started.append(server)
        tcp_url, web_url = server.expect("server_started", timeout=30)["urls"]
        assert web_url.startswith("http://127.0.0.1:")

        host = _conf("create", "--json", "--server", tcp_url, "--name", "host", "--passcode", PASSCODE)
        started.append(host)
        created = host.expect("meeting_created", timeout=30)
        meeting = created["meeting"]
        assert created["invite"] == f"{web_url}?meeting={meeting}&passcode={PASSCODE}"
        host.expect("joined")
        camera = _conf(
            "share", "pattern", "--meeting", meeting, "--server", tcp_url, "--name", "camera",
            "--passcode", PASSCODE, "--json", "--width", "320", "--height", "240", "--fps", "15",
        )  # fmt: skip
        started.append(camera)
        camera.expect("publish_started", timeout=30)

        # A wrong passcode: the page says so and stays on the form.
        browser = Browser(
            f"{web_url}?meeting={meeting}&name=web&passcode=wrong",
            prefix=_in_ns(),
            extra_flags=["--autoplay-policy=no-user-gesture-required"],
        )
        error = browser.wait_for("document.getElementById('form-error')?.textContent", timeout=45)
        assert "passcode" in error.lower()
        assert browser.evaluate("document.getElementById('meeting-view').hidden") is True

        # The invite link itself, with a name: the page joins at once.
        browser.navigate(f"{created['invite']}&name=web")
        host.expect("participant_joined", lambda e: e["name"] == "web", timeout=45)

        # The browser decodes the terminal client's pattern ...
        browser.wait_for("window.confStats().then(s => s.framesDecoded > 10)", timeout=60)
        # ... and the terminal host decodes the browser's camera and microphone.
        for kind in ("video", "audio"):
            host.expect(
                "track_stats",
                lambda e, kind=kind: e["name"] == "web" and e["kind"] == kind and e["frames"] > 5,
                timeout=60,
            )

        # The browser shares its screen (Chromium's fake one), then stops.
        browser.evaluate("document.getElementById('toggle-screen').click(); true")
        host.expect(
            "track_stats",
            lambda e: e["name"] == "web" and e["kind"] == "screen" and e["frames"] > 5,
            timeout=60,
        )
        browser.evaluate("document.getElementById('toggle-screen').click(); true")
        host.expect("share_stopped", lambda e: e["name"] == "web" and e["kind"] == "screen", timeout=30)

        # A terminal client starts a tone after the browser joined: the page negotiates a new track and
        # hears it.
        tone = _conf(
            "share", "tone", "--meeting", meeting, "--server", tcp_url, "--name", "speaker",
            "--passcode", PASSCODE, "--json",
        )  # fmt: skip
        started.append(tone)
        tone.expect("publish_started", timeout=30)
        browser.wait_for("window.confStats().then(s => s.audioSamplesReceived > 48000)", timeout=60)
        assert browser.evaluate("document.querySelectorAll('audio').length") == 1

        # A screenshot shows the remote video, not a blank tile.
        rect = browser.wait_for(
            "(() => { const v = document.querySelector('.tile.has-video:not(.local) video');"
            " if (!v || v.videoWidth === 0) return null; const r = v.getBoundingClientRect();"
            " return {x: r.x, y: r.y, width: r.width, height: r.height}; })()",
            timeout=30,
        )
        assert _not_blank(browser.screenshot(rect)) > 20

        # Chat both ways.
        host.send("hello from the terminal")
        browser.wait_for(
            "document.getElementById('chat-log').textContent.includes('hello from the terminal')"
        )
        browser.evaluate(
            "document.getElementById('chat-input').value = 'hello from the browser';"
            "document.getElementById('chat-form').requestSubmit(); true"
        )
        host.expect("chat", lambda e: e["from"] == "web" and e["text"] == "hello from the browser")

        # Forbids apply to the browser as to anyone: its camera stops, and starting it again is refused.
        host.send("/forbid video web")
        host.expect("share_stopped", lambda e: e["name"] == "web" and e["reason"] == "forbidden")
        browser.wait_for("document.getElementById('toggle-video').textContent === 'Start camera'")
        assert browser.evaluate("document.querySelectorAll('#chat-log li.error').length") == 0
        browser.evaluate("document.getElementById('toggle-video').click(); true")
        refusal = browser.wait_for("document.querySelector('#chat-log li.error')?.textContent")
        assert "forb" in refusal
        browser.wait_for("document.getElementById('toggle-video').textContent === 'Start camera'")
        host.send("/permit video web")
        browser.wait_for("document.getElementById('chat-log').textContent.includes('video allowed for web')")
        browser.evaluate("document.getElementById('toggle-video').click(); true")
        host.expect("share_started", lambda e: e["name"] == "web" and e["kind"] == "video")

        # Roles: made an admin, the page shows the leaders' controls.
        assert browser.evaluate("document.getElementById('end').hidden") is True
        host.send("/admin web")
        browser.wait_for("!document.getElementById('end').hidden")
        # ... and an admin's powers: the page removes a member.
        browser.evaluate(
            "[...document.querySelectorAll('#participants li')]"
            ".find(li => li.firstChild.textContent === 'camera')"
            ".querySelector('button:last-child').click(); true"
        )
        assert camera.expect("kicked", timeout=30)["by"] == "web"
        browser.wait_for("document.getElementById('chat-log').textContent.includes('camera left (kicked)')")

        # The host ends the meeting: the page says so.
        host.send("/end")
        text = browser.wait_for("document.getElementById('ended').hidden ? '' : "
                                "document.getElementById('ended-text').textContent")  # fmt: skip
        assert "ended by host" in text
    finally:
        if browser is not None:
            browser.close()
        for process in reversed(started):
            process.stop()


def test_a_browser_joins_over_https(namespace: str, tmp_path: Path) -> None:
    cert, key = own_certificate(["127.0.0.1"], tmp_path)
    started: list[ConfProcess] = []
    browser: Browser | None = None
    try:
        server = _conf(
            "server", "--json", "--host", "127.0.0.1", "--port", "0", "--web-port", "0",
            "--cert", str(cert), "--key", str(key),
        )  # fmt: skip
        started.append(server)
        tcp_url, web_url = server.expect("server_started", timeout=30)["urls"]
        assert web_url.startswith("https://127.0.0.1:")
        host = _conf("create", "--json", "--server", tcp_url, "--name", "host", "--passcode", PASSCODE)
        started.append(host)
        invite = host.expect("meeting_created", timeout=30)["invite"]
        assert invite.startswith(web_url)
        # The certificate is self-signed: this browser is told to accept it, as a person would.
        browser = Browser(f"{invite}&name=web", prefix=_in_ns(), extra_flags=["--ignore-certificate-errors"])
        host.expect("participant_joined", lambda e: e["name"] == "web", timeout=45)
        assert browser.evaluate("location.protocol") == "https:"
        host.expect(
            "track_stats",
            lambda e: e["name"] == "web" and e["kind"] == "video" and e["frames"] > 5,
            timeout=60,
        )
    finally:
        if browser is not None:
            browser.close()
        for process in reversed(started):
            process.stop()


def test_a_personal_link_with_a_token_joins_without_the_passcode(namespace: str, tmp_path: Path) -> None:
    """`?token=` alone: the page takes the meeting and the name from the token, and the server the role."""
    started: list[ConfProcess] = []
    browser: Browser | None = None
    try:
        server = _conf("server", "--json", "--host", "127.0.0.1", "--port", "0", "--web-port", "0")
        started.append(server)
        tcp_url, web_url = server.expect("server_started", timeout=30)["urls"]
        host = _conf("create", "--json", "--server", tcp_url, "--name", "host", "--passcode", PASSCODE)
        started.append(host)
        meeting = host.expect("meeting_created", timeout=30)["meeting"]
        host.expect("joined")

        # A token of another server's key: refused, and the page says why.
        foreign = run_conf(
            "token",
            "create",
            "--meeting",
            meeting,
            "--name",
            "web",
            "--token-key",
            str(tmp_path / "other.key"),
        ).stdout.strip()
        browser = Browser(f"{web_url}?token={foreign}", prefix=_in_ns())
        error = browser.wait_for("document.getElementById('form-error')?.textContent", timeout=45)
        assert "signed with another key" in error
        assert browser.evaluate("document.getElementById('passcode').closest('label').hidden") is True

        token = run_conf("token", "create", "--meeting", meeting, "--name", "webby", "--role", "admin")
        browser.navigate(f"{web_url}?token={token.stdout.strip()}")
        joined = host.expect("participant_joined", timeout=45)
        assert (joined["name"], joined["role"]) == ("webby", "admin")
        browser.wait_for("!document.getElementById('end').hidden")  # an admin's controls
    finally:
        if browser is not None:
            browser.close()
        for process in reversed(started):
            process.stop()
