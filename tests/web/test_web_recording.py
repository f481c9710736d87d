"""The web page's header says who records: a real headless Chromium in a meeting that a `conf record`
recorder joins, then leaves."""

from __future__ import annotations

from pathlib import Path

import pytest
from conf_web.browser import Browser, chromium_path

from conf_cli.testing.netns import conf_in, inside, netns_unavailable
from conf_cli.testing.processes import ConfProcess

PASSCODE = "pass-123"


def _unavailable() -> str | None:
    if chromium_path() is None:
        return "chromium is not installed: run scripts/setup-system.sh --browser (make test does)"
    return netns_unavailable()


pytestmark = pytest.mark.skipif(_unavailable() is not None, reason=str(_unavailable()))


def test_the_page_shows_rec_by_the_recorder_while_it_records(browser_namespace: str, tmp_path: Path) -> None:
    ns = browser_namespace
    started: list[ConfProcess] = []
    browser: Browser | None = None

    def conf(*args: str) -> ConfProcess:
        process = conf_in(ns, args)
        started.append(process)
        return process

    try:
        server = conf("server", "--json", "--host", "127.0.0.1", "--port", "0", "--web-port", "0")
        url = server.expect("server_started", timeout=30)["urls"][0]
        host = conf("create", "--json", "--server", url, "--name", "host", "--passcode", PASSCODE)
        created = host.expect("meeting_created", timeout=30)
        browser = Browser(f"{created['invite']}&name=web", prefix=inside(ns))
        host.expect("participant_joined", lambda e: e["name"] == "web", timeout=45)
        browser.wait_for("window.conf.me === 'web'")
        assert browser.evaluate("document.getElementById('recording').hidden") is True

        out = str(tmp_path / "meeting.mp4")
        recorder = conf(
            "record", created["meeting"], "--json", "--server", url, "--name", "rec", "--passcode", PASSCODE,
            "--out", out,
        )  # fmt: skip
        recorder.expect("joined", timeout=30)
        browser.wait_for("!document.getElementById('recording').hidden")
        assert (
            browser.evaluate("document.getElementById('recording').textContent") == "● REC by rec (recorder)"
        )
        browser.wait_for("document.getElementById('chat-log').textContent.includes('being recorded by rec')")

        recorder.send("/leave")
        recorder.expect("recording_written", timeout=30)
        browser.wait_for("document.getElementById('recording').hidden")
    finally:
        if browser is not None:
            browser.close()
        for process in reversed(started):
            process.stop()
