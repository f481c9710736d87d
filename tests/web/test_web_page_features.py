"""The meeting's features on the web page, driven against terminal participants in machine mode.

A real headless Chromium joins a meeting of terminal clients (a host and a member, ``conf create`` and
``conf join --json``) inside a loopback-only namespace. The page shows the controls of exactly the
requests the server takes (``web_ready``'s ``requests``): where the server has hands, reactions, polls,
breakout rooms, the spotlight, renaming and asks to unmute, each is used from the page and from the
terminals, and what each side sees is checked on the other; where it has none of them, the page shows
none of their controls.
"""

from __future__ import annotations

import pytest
from conf_web.browser import Browser, chromium_path

from conf_cli.protocol.control import client_message_types
from conf_cli.testing.netns import conf_in, inside, netns_unavailable
from conf_cli.testing.processes import ConfProcess

PASSCODE = "pass-123"
FEATURES = {"hand", "lower_hand", "react", "poll_start", "vote", "poll_close", "breakout_create",
            "breakout_assign", "breakout_open", "breakout_broadcast", "breakout_close", "spotlight",
            "rename", "ask_unmute"}  # fmt: skip


def _unavailable() -> str | None:
    if chromium_path() is None:
        return "chromium is not installed: run scripts/setup-system.sh --browser (make test does)"
    return netns_unavailable()


pytestmark = pytest.mark.skipif(_unavailable() is not None, reason=str(_unavailable()))


def _click(browser: Browser, selector: str) -> None:
    browser.wait_for(f"document.querySelector({selector!r}) !== null")
    browser.evaluate(f"document.querySelector({selector!r}).click(); true")


def _log_has(browser: Browser, text: str) -> None:
    browser.wait_for(f"document.getElementById('chat-log').textContent.includes({text!r})")


def test_the_page_offers_the_meeting_features_the_server_has(browser_namespace: str) -> None:
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
        ada = conf(
            "join", created["meeting"], "--json", "--server", url, "--name", "ada", "--passcode", PASSCODE
        )
        ada.expect("joined", timeout=30)
        browser = Browser(f"{created['invite']}&name=web", prefix=inside(ns))
        host.expect("participant_joined", lambda e: e["name"] == "web", timeout=45)
        browser.wait_for("window.conf.me === 'web'")
        shown = "!document.getElementById('{}').hidden"

        if not set(client_message_types()) >= FEATURES:
            # This server takes none of these requests: the page offers none of them.
            assert FEATURES.isdisjoint(client_message_types())
            assert browser.evaluate(shown.format("toggle-hand")) is False
            assert browser.evaluate(shown.format("toggle-reactions")) is False
            return

        # Hands: the page's, then ada's; the queue shows on the tiles, in order.
        assert browser.evaluate(shown.format("toggle-hand")) is True
        _click(browser, "#toggle-hand")
        assert host.expect("hand_raised", lambda e: e["name"] == "web")["position"] == 1
        ada.send("/hand")
        host.expect("hand_raised", lambda e: e["name"] == "ada")
        tile_hand = "document.querySelector('.tile[data-name=\"{}\"] .hand')"
        browser.wait_for(tile_hand.format("ada") + ".textContent.endsWith('2')")
        assert browser.evaluate(tile_hand.format("web") + ".textContent").endswith("1")
        assert "hand raised, 2nd" in browser.evaluate(
            "document.querySelector('.tile[data-name=\"ada\"]').getAttribute('aria-label')"
        )
        _click(browser, "#toggle-hand")
        host.expect("hand_lowered", lambda e: e["name"] == "web")
        browser.wait_for(tile_hand.format("ada") + ".textContent.endsWith('1')")

        # Reactions both ways.
        _click(browser, "#toggle-reactions")
        _click(browser, "#reaction-menu button[data-emoji='👏']")
        host.expect("reaction", lambda e: e["name"] == "web" and e["emoji"] == "👏")
        assert browser.evaluate("document.getElementById('reaction-menu').hidden") is True
        ada.send("/react 🎉")
        browser.wait_for("document.getElementById('reactions').textContent.includes('🎉 ada')")

        # A poll the terminal host asks: the page votes, changes its vote, and sees the results.
        host.send("/poll Lunch? | pizza | soup")
        browser.wait_for("!document.getElementById('poll').hidden")
        assert browser.evaluate("document.getElementById('poll-question').textContent") == "Lunch?"
        _click(browser, "#poll .option:nth-of-type(1)")
        browser.wait_for(
            "document.querySelector('#poll .option[aria-pressed=\"true\"]')?.textContent === 'pizza'"
        )
        _click(browser, "#poll .option:nth-of-type(2)")
        browser.wait_for(
            "document.querySelector('#poll .option[aria-pressed=\"true\"]')?.textContent === 'soup'"
        )
        host.send("/poll close")
        closed = host.expect("poll_closed")
        assert closed["counts"] == [0, 1] and closed["voters"] == 1
        browser.wait_for("document.getElementById('poll').textContent.includes('soup: 1 (your vote)')")

        # The host's spotlight puts ada large on the page; asked to unmute, the page's person agrees.
        host.send("/spotlight ada")
        browser.wait_for("document.querySelector('.tile.main')?.dataset.name === 'ada'")
        host.send("/spotlight off")
        browser.wait_for("document.querySelector('#videos.speaker') === null")
        _click(browser, "#toggle-audio")
        host.expect("share_stopped", lambda e: e["name"] == "web" and e["kind"] == "audio")
        host.send("/ask-unmute web")
        browser.wait_for("!document.getElementById('prompt').hidden")
        assert "host asks you" in browser.evaluate("document.getElementById('prompt-text').textContent")
        _click(browser, "#prompt .prompt-buttons button")
        host.expect("share_started", lambda e: e["name"] == "web" and e["kind"] == "audio")

        # Made host, the page runs the meeting: lowers a hand, renames, polls, and breakout rooms.
        host.send("/host web")
        browser.wait_for("window.conf.role === 'host'")
        _click(browser, "#toggle-people")
        _click(browser, '[aria-label="Lower ada\'s hand"]')
        assert host.expect("hand_lowered", lambda e: e["name"] == "ada")["by"] == "web"
        _click(browser, "[aria-label='Rename ada']")
        browser.evaluate(
            "document.querySelector('[aria-label=\"New name for ada\"]').value = 'ada2';"
            "document.querySelector('form.rename').requestSubmit(); true"
        )
        renamed = host.expect("participant_renamed")
        assert (renamed["name"], renamed["new_name"], renamed["by"]) == ("ada", "ada2", "web")
        browser.wait_for("document.querySelector('.tile[data-name=\"ada2\"]') !== null")
        assert browser.evaluate("document.querySelector('.tile[data-name=\"ada\"]')") is None

        browser.evaluate(
            "const f = document.getElementById('poll-form'); f.question.value = 'Tea?';"
            "f.options.value = 'yes\\nno'; f.requestSubmit(); true"
        )
        assert host.expect("poll_started")["options"] == ["yes", "no"]
        ada.send("/vote 1")
        ada.expect("vote_recorded")
        # (until the page has drawn the new poll, its foot holds the last one's "Dismiss")
        browser.wait_for("document.querySelector('#poll .poll-foot button')?.textContent === 'Close poll'")
        _click(browser, "#poll .poll-foot button")
        assert host.expect("poll_closed")["counts"] == [1, 0]

        _click(browser, "[aria-label='Make the breakout rooms']")
        browser.wait_for("document.querySelector('[aria-label=\"Breakout room for ada2\"]') !== null")
        browser.evaluate(
            "const s = document.querySelector('[aria-label=\"Breakout room for ada2\"]');"
            "s.value = '2'; s.dispatchEvent(new Event('change')); true"
        )
        browser.wait_for("window.conf.breakout?.assignments.get('ada2') === 2")
        _click(browser, "[aria-label='Open the breakout rooms']")
        assert ada.expect("breakout_moved", lambda e: e["name"] == "ada2")["room"] == 2
        browser.wait_for("document.querySelector('[aria-label=\"Message to every room\"]') !== null")
        browser.evaluate(
            "document.querySelector('[aria-label=\"Message to every room\"]').value = 'two minutes left';"
            "document.querySelector('[aria-label=\"Send to every room\"]').click(); true"
        )
        assert ada.expect("breakout_broadcast")["text"] == "two minutes left"
        _click(browser, "[aria-label='Bring everyone back to the main room']")
        ada.expect("breakout_closed")
        _log_has(browser, "Breakout rooms closed by web")
    finally:
        if browser is not None:
            browser.close()
        for process in reversed(started):
            process.stop()
