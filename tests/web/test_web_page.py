"""The meeting page as people see it, at a desktop's and a phone's size, against terminal participants.

A real headless Chromium joins a meeting of terminal clients in machine mode (a host, a camera and a
speaker), all inside a loopback-only network namespace as in test_web_browser.py. The page's geometry is
read from the DOM and its screenshots decoded: at 1280x720 and at 390x844, in the grid and in the speaker
view, every tile and the control bar lie inside the window and overlap nothing, the join form is gone,
and the tiles carry the names the terminal host's ``/who`` lists. The page's controls are then driven
against the terminal participants: the active speaker, microphone states, chat both ways, the keyboard,
and the host's controls (mute, kick) from the page.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from conf_web.browser import Browser, chromium_path

from conf_cli.testing.netns import conf_in, inside, netns_unavailable
from conf_cli.testing.processes import ConfProcess

PASSCODE = "pass-123"
DESKTOP = (1280, 720)
PHONE = (390, 844)


def _unavailable() -> str | None:
    if chromium_path() is None:
        return "chromium is not installed: run scripts/setup-system.sh --browser (make test does)"
    return netns_unavailable()


pytestmark = pytest.mark.skipif(_unavailable() is not None, reason=str(_unavailable()))

# Where everything is on the page, in CSS pixels of the window.
GEOMETRY = """(() => {
  const box = (el) => {
    const r = el.getBoundingClientRect();
    return {x: r.left, y: r.top, w: r.width, h: r.height};
  };
  const shown = (el) => Boolean(el) && getComputedStyle(el).display !== 'none'
    && el.getClientRects().length > 0;
  const panel = document.querySelector('.panel:not([hidden])');
  return {
    width: innerWidth, height: innerHeight,
    page: [document.documentElement.scrollWidth, document.documentElement.scrollHeight],
    form: shown(document.getElementById('join-form')),
    tiles: [...document.querySelectorAll('#videos .tile')].map((t) => ({...box(t),
      name: t.dataset.name, kind: t.dataset.kind, mic: t.dataset.mic,
      video: t.classList.contains('has-video'),
      speaker: t.classList.contains('active-speaker'), main: t.classList.contains('main'),
      label: t.querySelector('.name').textContent, aria: t.getAttribute('aria-label')})),
    controls: box(document.getElementById('controls')),
    buttons: [...document.querySelectorAll('#controls button')].filter(shown).map((b) => ({...box(b),
      id: b.id, name: (b.getAttribute('aria-label') || b.textContent).trim()})),
    panel: panel ? box(panel) : null,
  };
})()"""


def _inside(box: dict[str, Any], width: int, height: int, what: str) -> None:
    right, bottom = box["x"] + box["w"], box["y"] + box["h"]
    assert box["x"] >= -0.5 and box["y"] >= -0.5 and right <= width + 0.5 and bottom <= height + 0.5, (
        f"{what} at {box} is not inside the {width}x{height} window"
    )


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    across = min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"])
    down = min(a["y"] + a["h"], b["y"] + b["h"]) - max(a["y"], b["y"])
    return across > 0.5 and down > 0.5


def _check_layout(browser: Browser, size: tuple[int, int], names: set[str], me: str) -> dict[str, Any]:
    """Every tile and the control bar inside the window, nothing overlapping, no form, one tile per name."""
    width, height = size
    geo: dict[str, Any] = browser.evaluate(GEOMETRY)
    assert (geo["width"], geo["height"]) == size
    assert geo["page"] == [width, height], "the page scrolls: something is larger than the window"
    assert geo["form"] is False, "the join form is still shown in the meeting"
    people = [t for t in geo["tiles"] if t["kind"] == "person"]
    assert {t["name"] for t in people} == names
    for tile in people:
        assert tile["label"] == (f"{me} (you)" if tile["name"] == me else tile["name"])
        assert tile["aria"].startswith(tile["label"])
    _inside(geo["controls"], width, height, "the control bar")
    for tile in geo["tiles"]:
        _inside(tile, width, height, f"{tile['name']}'s {tile['kind']} tile")
        assert tile["w"] >= 60 and tile["h"] >= 34, f"{tile['name']}'s tile is too small to see: {tile}"
        assert not _overlap(tile, geo["controls"]), f"{tile['name']}'s tile lies under the control bar"
    for i, a in enumerate(geo["tiles"]):
        for b in geo["tiles"][i + 1 :]:
            assert not _overlap(a, b), f"the tiles of {a['name']} and {b['name']} overlap: {a} {b}"
    for button in geo["buttons"]:
        _inside(button, width, height, f"the {button['id']} button")
        assert button["name"], f"the {button['id']} button has no name a screen reader can say"
    for i, a in enumerate(geo["buttons"]):
        for b in geo["buttons"][i + 1 :]:
            assert not _overlap(a, b), f"the buttons {a['id']} and {b['id']} overlap"
    return geo


def _picture(png: bytes) -> Any:
    import av

    with av.open(io.BytesIO(png), format="png_pipe") as container:
        frame = next(container.decode(video=0))
    return frame.to_ndarray(format="rgb24")


def _check_screenshot(browser: Browser, geo: dict[str, Any]) -> None:
    """The screenshot is the window's size; the camera's tile shows a picture, the control bar its icons."""
    image = _picture(browser.screenshot())
    assert image.shape[:2] == (geo["height"], geo["width"])
    camera = next(t for t in geo["tiles"] if t["name"] == "camera" and t["kind"] == "person")
    x, y, w, h = (int(camera[k]) for k in ("x", "y", "w", "h"))
    assert image[y + 2 : y + h - 2, x + 2 : x + w - 2].std() > 20, "the camera's tile shows no picture"
    bar = geo["controls"]
    x, y, w, h = (int(bar[k]) for k in ("x", "y", "w", "h"))
    assert image[y : y + h, x : x + w].std() > 10, "the control bar shows nothing"


def _speaker_view(browser: Browser, size: tuple[int, int], names: set[str]) -> None:
    browser.evaluate("document.getElementById('toggle-view').click(); true")
    browser.wait_for("document.querySelector('#videos.speaker .tile.main') !== null")
    geo = _check_layout(browser, size, names, "web")
    main = next(t for t in geo["tiles"] if t["main"])
    assert all(main["w"] * main["h"] > 2 * t["w"] * t["h"] for t in geo["tiles"] if not t["main"])
    browser.evaluate("document.getElementById('toggle-view').click(); true")
    browser.wait_for("document.querySelector('#videos.speaker') === null")


def test_the_page_is_a_meeting_at_desktop_and_phone_sizes(browser_namespace: str) -> None:
    ns = browser_namespace

    def _conf(*args: str) -> ConfProcess:
        return conf_in(ns, args)

    started: list[ConfProcess] = []
    browser: Browser | None = None
    try:
        server = _conf("server", "--json", "--host", "127.0.0.1", "--port", "0", "--web-port", "0")
        started.append(server)
        tcp_url = server.expect("server_started", timeout=30)["urls"][0]
        host = _conf("create", "--json", "--server", tcp_url, "--name", "host", "--passcode", PASSCODE)
        started.append(host)
        created = host.expect("meeting_created", timeout=30)
        meeting = created["meeting"]
        host.expect("joined")
        common = ("--meeting", meeting, "--server", tcp_url, "--passcode", PASSCODE, "--json")
        camera = _conf("share", "pattern", "--name", "camera", "--width", "320", "--height", "240",
                       "--fps", "15", *common)  # fmt: skip
        speaker = _conf("share", "tone", "--name", "speaker", *common)
        started += [camera, speaker]
        camera.expect("publish_started", timeout=30)
        speaker.expect("publish_started", timeout=30)

        browser = Browser(
            f"{created['invite']}&name=web",
            prefix=inside(ns),
            extra_flags=["--autoplay-policy=no-user-gesture-required"],
        )
        browser.viewport(*DESKTOP)
        host.expect("participant_joined", lambda e: e["name"] == "web", timeout=45)
        host.send("/who")
        names = {p["name"] for p in host.expect("participants")["participants"]}
        assert names == {"host", "camera", "speaker", "web"}

        # The page shows the camera's picture, and outlines the speaker (the one sending a tone): the
        # server's active speaker, the one the terminal participants are told of too.
        browser.wait_for("window.confStats().then(s => s.framesDecoded > 10)", timeout=60)
        browser.wait_for(
            "document.querySelector('.tile[data-name=\"camera\"]')?.classList.contains('has-video')"
        )
        browser.wait_for(
            "document.querySelector('.tile[data-name=\"speaker\"]')?.classList.contains('active-speaker')",
            timeout=30,
        )
        assert host.latest("active_speaker")["name"] == "speaker"
        assert browser.evaluate("document.querySelectorAll('.tile.active-speaker').length") == 1
        # Microphones: the speaker's is on, the host's (a terminal without audio) off.
        tiles = 'document.querySelector(\'.tile[data-kind="person"][data-name="{}"]\')'
        assert browser.evaluate(tiles.format("speaker") + ".dataset.mic") == "on"
        assert browser.evaluate(tiles.format("host") + ".dataset.mic") == "off"
        assert "microphone off" in browser.evaluate(tiles.format("host") + ".getAttribute('aria-label')")

        # The desktop: a grid, then the speaker view, all inside 1280x720.
        geo = _check_layout(browser, DESKTOP, names, "web")
        assert all(t["w"] >= 240 for t in geo["tiles"]), "four tiles at 1280x720 should be large"
        _check_screenshot(browser, geo)
        _speaker_view(browser, DESKTOP, names)

        # A phone: the same, at 390x844.
        browser.viewport(*PHONE, mobile=True)
        browser.wait_for("innerWidth === 390 && innerHeight === 844")
        browser.wait_for("getComputedStyle(document.querySelector('#controls .label')).width === '1px'")
        geo = _check_layout(browser, PHONE, names, "web")
        _check_screenshot(browser, geo)
        _speaker_view(browser, PHONE, names)

        # Chat on the phone: the panel covers the stage, not the control bar; both ways.
        browser.evaluate("document.getElementById('toggle-chat').click(); true")
        geo = browser.evaluate(GEOMETRY)
        assert geo["panel"] is not None
        _inside(geo["panel"], *PHONE, "the chat panel")
        assert not _overlap(geo["panel"], geo["controls"])
        assert browser.evaluate("document.activeElement.id") == "chat-input"
        browser.evaluate(
            "document.getElementById('chat-input').value = 'hello from the phone';"
            "document.getElementById('chat-form').requestSubmit(); true"
        )
        host.expect("chat", lambda e: e["from"] == "web" and e["text"] == "hello from the phone")
        host.send("hello from the terminal")
        browser.wait_for(
            "document.getElementById('chat-log').textContent.includes('hello from the terminal')"
        )
        browser.press("Escape")  # the keyboard closes the panel, and gives focus back to its button
        browser.wait_for("document.getElementById('panel-chat').hidden")
        assert browser.evaluate("document.activeElement.id") == "toggle-chat"

        # Back at the desktop's size: muting shows on the tiles, on the page and on the terminal.
        browser.viewport(*DESKTOP)
        browser.wait_for("innerWidth === 1280")
        browser.evaluate("document.getElementById('toggle-audio').click(); true")
        host.expect("share_stopped", lambda e: e["name"] == "web" and e["kind"] == "audio")
        browser.wait_for(tiles.format("web") + ".dataset.mic === 'off'")
        host.send("/forbid audio speaker")
        host.expect("share_stopped", lambda e: e["name"] == "speaker" and e["reason"] == "forbidden")
        browser.wait_for(tiles.format("speaker") + ".dataset.mic === 'forbidden'")

        # The host's controls, from the page: made host, the page lets the speaker speak again, then
        # removes the camera, with the keyboard only.
        assert browser.evaluate("document.getElementById('end').hidden") is True
        host.send("/host web")
        browser.wait_for("!document.getElementById('end').hidden")
        browser.evaluate("document.getElementById('toggle-people').focus(); true")
        browser.press("Enter")
        browser.wait_for("!document.getElementById('panel-people').hidden")
        browser.evaluate(
            "document.querySelector('[aria-label=\"Allow speaker\\'s microphone\"]').focus(); true"
        )
        browser.press("Enter")
        host.expect(
            "permission_changed", lambda e: e.get("name") == "speaker" and e["allowed"] and e["by"] == "web"
        )
        # The list is drawn again once the page hears who may speak now; then the page removes the camera.
        browser.wait_for("document.querySelector('[aria-label=\"Mute speaker\"]') !== null")
        browser.wait_for("document.querySelector('[aria-label=\"Remove camera from the meeting\"]') !== null")
        browser.evaluate(
            "document.querySelector('[aria-label=\"Remove camera from the meeting\"]').focus(); true"
        )
        browser.press("Enter")
        assert camera.expect("kicked", timeout=30)["by"] == "web"
        browser.wait_for("!document.querySelector('.tile[data-name=\"camera\"]')")
        _check_layout(browser, DESKTOP, names - {"camera"}, "web")

        # The waiting room, from the page: turned on, and someone let in.
        browser.evaluate("document.getElementById('toggle-waiting').click(); true")
        assert host.expect("waiting_room_changed")["by"] == "web"
        late = _conf("join", meeting, "--name", "late", "--json", "--server", tcp_url, "--passcode", PASSCODE)
        started.append(late)
        late.expect("waiting", timeout=30)
        browser.wait_for("document.querySelector('[aria-label=\"Let late in\"]') !== null")
        browser.evaluate("document.querySelector('[aria-label=\"Let late in\"]').click(); true")
        late.expect("joined", timeout=30)
        browser.wait_for("document.querySelector('.tile[data-name=\"late\"]') !== null")
        _check_layout(browser, DESKTOP, names - {"camera"} | {"late"}, "web")
    finally:
        if browser is not None:
            browser.close()
        for process in reversed(started):
            process.stop()
