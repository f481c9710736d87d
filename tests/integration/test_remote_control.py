"""Remote control end to end, on two virtual screens: Bob's viewer on one, Ada's desktop on the other.

Synthetic input (xdotool) over Bob's viewer window must move the pointer, click and type on Ada's
display, read back with xdotool and from a text field there (a small tkinter program); a refusal, a
revoke and a forbid stop everything, and input forged by someone without a grant changes nothing.

Skipped (with the reason) where Xvfb, xdotool or tkinter is missing. Waits are generous: two cores shared.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conf_cli.client.desktop_control import EXIT_DENIED
from conf_cli.client.link import Client
from conf_cli.plugin.registry import registry
from conf_cli.testing.devices import VirtualScreen, start_screen, window_geometry
from conf_cli.testing.input import InputProbe, missing_input_tools, near, pointer, wait_for, xdotool
from conf_cli.testing.processes import ClientPool, ConfProcess, conf_command, run_conf, spawn, start_server
from conf_cli.urls import parse_server_url
from tests.helpers.terminal import Terminal

VIEWER = "conf control: Ada's desktop"
WAIT = 30.0  # generous: two cores shared by many


@pytest.fixture
def screens() -> Iterator[tuple[VirtualScreen, VirtualScreen]]:
    """The controller's screen (smaller) and the controlled one (larger), so that coordinates must scale."""
    reason = missing_input_tools()
    if reason is not None:
        pytest.skip(f"no virtual screens to drive: {reason}")
    controller = start_screen(800, 600)
    try:
        controlled = start_screen(1280, 720)
        try:
            yield controller, controlled
        finally:
            controlled.stop()
    finally:
        controller.stop()


@pytest.fixture
def meeting(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ClientPool, str]]:
    server, url = start_server()
    pool = ClientPool(url)
    try:
        yield pool, url
    finally:
        pool.stop_all()
        server.stop()


def on(monkeypatch: pytest.MonkeyPatch, screen: VirtualScreen) -> None:
    monkeypatch.setenv("DISPLAY", screen.display)  # for the next conf process started


def control(pool: ClientPool, mid: str, peer: str, name: str = "Bob") -> ConfProcess:
    args = ["control", peer, "--meeting", mid, "--server", pool.url, "--name", name]
    process = spawn([*args, "--passcode", pool.passcode, "--json"])
    pool.started.append(process)
    return process


def test_the_controller_moves_clicks_and_types_on_the_controlled_desktop(
    screens: tuple[VirtualScreen, VirtualScreen],
    meeting: tuple[ClientPool, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    mine, theirs = screens
    pool, _ = meeting
    field = InputProbe(theirs, tmp_path / "field.json", WAIT)
    try:
        on(monkeypatch, theirs)
        ada, mid = pool.create("Ada")
        on(monkeypatch, mine)
        bob = control(pool, mid, "Ada")
        asked = ada.expect("control_requested", timeout=WAIT)
        assert asked["controller"] == "Bob" and asked["controlled"] == "Ada"
        ada.send("/accept")
        assert ada.expect("control_granted", timeout=WAIT)["controller"] == "Bob"
        bob.expect("control_granted", timeout=WAIT)
        ada.expect("publish_started", lambda e: e.get("kind") == "screen", timeout=WAIT)

        window = window_geometry(mine, VIEWER, timeout=WAIT)
        assert window is not None, "the viewer window did not open"
        x, y, width, height = window  # 720x405 on 800x600: Ada's 1280x720 shrunk to fit
        assert (width, height) != (theirs.width, theirs.height)

        # A pointer move over the viewer lands at the same place, scaled, on Ada's desktop.
        xdotool(mine, "mousemove", str(x + width // 4), str(y + height // 2))
        want = (theirs.width // 4, theirs.height // 2)
        wait_for(lambda: near(pointer(theirs), want), f"the pointer did not reach {want} over there", WAIT)

        # Over the text field (Ada's 0..600 x 0..80): a click, then a double click, then typing.
        fx, fy = 300 / theirs.width, 40 / theirs.height
        xdotool(mine, "mousemove", str(x + round(fx * width)), str(y + round(fy * height)))
        wait_for(lambda: abs(pointer(theirs)[1] - 40) <= 3, "the pointer did not reach the text field", WAIT)
        xdotool(mine, "click", "1")
        wait_for(lambda: field.state()["clicks"] >= 1, "the click did not reach the text field", WAIT)
        xdotool(mine, "click", "--repeat", "2", "--delay", "80", "1")
        wait_for(lambda: field.state()["double"] >= 1, "the double click did not reach the text field", WAIT)
        xdotool(mine, "click", "4")  # the wheel, one step up
        wait_for(lambda: field.state()["wheel"] >= 1, "the wheel did not reach the text field", WAIT)
        xdotool(mine, "mousedown", "1")  # a drag: press, move, release
        for dx in (20, 40, 60):
            xdotool(mine, "mousemove", str(x + round(fx * width) + dx), str(y + round(fy * height)))
        xdotool(mine, "mouseup", "1")
        wait_for(lambda: field.state()["drag"] >= 1, "the drag did not reach the text field", WAIT)
        xdotool(mine, "type", "--delay", "40", "Hello conf")  # capitals: Shift held over there too
        wait_for(lambda: field.state()["text"] == "Hello conf", "typing did not reach the text field", WAIT)

        # Ada takes control back: both hear of it, Bob's call ends, and his input goes nowhere.
        ada.send("/revoke")
        assert ada.expect("control_stopped", timeout=WAIT)["controller"] == "Bob"  # here, at once
        revoked = ada.expect("control_revoked", timeout=WAIT)
        assert revoked["reason"] == "revoked" and revoked["by"] == "Ada"
        assert bob.expect("control_revoked", timeout=WAIT)["reason"] == "revoked"
        assert bob.wait(WAIT) == 0
        ada.latest("publish_stopped", lambda e: e.get("kind") == "screen", timeout=WAIT)
        assert field.state()["text"] == "Hello conf"
    finally:
        field.stop()


def test_a_refusal_starts_nothing(
    screens: tuple[VirtualScreen, VirtualScreen],
    meeting: tuple[ClientPool, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mine, theirs = screens
    pool, _ = meeting
    on(monkeypatch, theirs)
    ada, mid = pool.create("Ada")
    on(monkeypatch, mine)
    bob = control(pool, mid, "Ada")
    ada.expect("control_requested", timeout=WAIT)
    ada.send("n")  # the answer while a request waits
    denied = bob.expect("control_denied", timeout=WAIT)
    assert denied["reason"] == "rejected"
    assert bob.expect("left", timeout=WAIT)["reason"] == "left"  # conf control leaves once it is over
    assert bob.wait(WAIT) == EXIT_DENIED
    assert ada.expect("control_denied", timeout=WAIT)["reason"] == "rejected"
    later = ada.drain(1.0)
    assert not [e for e in later if e["type"] in ("publish_started", "control_granted")]
    assert window_geometry(mine, VIEWER, timeout=0.5) is None


def test_the_controlled_person_leaving_ends_control(
    screens: tuple[VirtualScreen, VirtualScreen],
    meeting: tuple[ClientPool, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mine, theirs = screens
    pool, _ = meeting
    host, mid = pool.create("Cy")
    on(monkeypatch, theirs)
    ada = pool.joined(mid, "Ada")
    on(monkeypatch, mine)
    bob = control(pool, mid, "Ada")
    ada.expect("control_requested", timeout=WAIT)
    ada.send("y")
    bob.expect("control_granted", timeout=WAIT)
    assert window_geometry(mine, VIEWER, timeout=WAIT) is not None
    ada.send("/leave")
    assert ada.wait(WAIT) == 0
    assert bob.expect("control_revoked", timeout=WAIT)["reason"] == "left"
    assert bob.wait(WAIT) == 0
    assert not any(e["type"].startswith("control_") for e in host.drain(0.5))  # events go to the two only


def test_asked_in_the_terminal_y_grants_and_ctrl_r_takes_it_back(
    screens: tuple[VirtualScreen, VirtualScreen],
    meeting: tuple[ClientPool, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mine, theirs = screens
    pool, _ = meeting
    _, mid = pool.create("Cy")
    on(monkeypatch, theirs)
    args = ["join", mid, "--server", pool.url, "--name", "Ada", "--passcode", pool.passcode, "--view", "none"]
    terminal = Terminal([*conf_command(), *args])
    try:
        terminal.read_until("participants (2)", timeout=WAIT)
        on(monkeypatch, mine)
        bob = control(pool, mid, "Ada")
        terminal.read_until("asks to control", timeout=WAIT)
        terminal.type("y\r")
        assert bob.expect("control_granted", timeout=WAIT)["controlled"] == "Ada"
        terminal.read_until("takes it back", timeout=WAIT)
        terminal.type("\x12")  # Ctrl-R
        revoked = bob.expect("control_revoked", timeout=WAIT)
        assert revoked["reason"] == "revoked" and revoked["by"] == "Ada"
        assert bob.wait(WAIT) == 0
        terminal.type("\x03")
        assert terminal.wait(WAIT) == 0
    finally:
        terminal.close()


async def _forge(url: str, mid: str, passcode: str, name: str) -> None:
    """Join as ``name`` and send input events with no grant (the server must drop them)."""
    client = Client(registry(), parse_server_url(url))
    await client.connect()
    try:
        await client.join(mid, name, passcode)
        for step in range(20):
            client.send({"type": "control_input", "action": "move", "x": 0.9, "y": 0.1 + step / 100})
            client.send({"type": "control_input", "action": "text", "text": "forged"})
        client.send({"type": "who"})  # answered after every forged event was handled
        async with asyncio.timeout(WAIT):
            while (await client.events.get())["type"] != "participants":
                pass
    finally:
        await client.close()


def test_forged_input_and_a_forbid(
    screens: tuple[VirtualScreen, VirtualScreen],
    meeting: tuple[ClientPool, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    mine, theirs = screens
    pool, url = meeting
    field = InputProbe(theirs, tmp_path / "field.json", WAIT)
    try:
        host, mid = pool.create("Cy")  # Cy hosts; Ada and Bob are members
        on(monkeypatch, theirs)
        ada = pool.joined(mid, "Ada")
        on(monkeypatch, mine)
        bob = control(pool, mid, "Ada")
        ada.expect("control_requested", timeout=WAIT)
        ada.send("/accept Bob")
        bob.expect("control_granted", timeout=WAIT)
        assert window_geometry(mine, VIEWER, timeout=WAIT) is not None
        xdotool(mine, "mousemove", "1", "1")  # away from the viewer: Bob's own input is still
        time.sleep(1.0)
        before = pointer(theirs)

        # Dee, in the meeting but without a grant, forges input while Bob holds one: nothing happens.
        asyncio.run(_forge(url, mid, pool.passcode, "Dee"))
        time.sleep(1.0)
        assert pointer(theirs) == before
        assert "forged" not in field.state()["text"]

        # The host forbids remote control for members: it ends at once, for both.
        host.send("/forbid control")
        assert ada.expect("control_revoked", timeout=WAIT)["reason"] == "forbidden"
        assert bob.expect("control_revoked", timeout=WAIT)["reason"] == "forbidden"
        assert bob.wait(WAIT) == 0
        on(monkeypatch, mine)
        bob2 = control(pool, mid, "Ada", name="Bo")
        assert bob2.expect("error", timeout=WAIT)["code"] == "forbidden"
        assert bob2.wait(WAIT) == 1
    finally:
        field.stop()


def test_without_a_window_system_conf_control_says_so_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    result = run_conf(
        "control", "Ada", "--meeting", "abc-defg-hjk", "--server", "tcp://127.0.0.1:9", "--json"
    )
    assert result.returncode == 1
    assert result.stderr == "conf: no window system: DISPLAY is not set; remote control needs one\n"
    assert result.stdout == ""
