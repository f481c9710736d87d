"""The interactive view talking to a hostile server, through a real pseudo-terminal.

A server (or a peer, through a server that does not filter) picks names, chat, reasons and error texts.
Here a real conf server runs in this process and the test writes hostile messages straight onto the
terminal client's link, past every check the server makes: ESC sequences that would set the clipboard
(OSC 52) or the window title, C1 control characters, and rich markup that would draw a link. The client
must never write those bytes to its terminal, and must draw the markup as the text it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator

from conf_cli.plugin.registry import registry
from conf_cli.protocol.control import encode
from conf_cli.server.edge import Endpoint, Server
from conf_cli.testing.processes import conf_command
from tests.helpers.terminal import Terminal

OSC52 = "\x1b]52;c;ZXZpbCBjbGlwYm9hcmQ=\x07"  # "evil clipboard"
TITLE = "\x1b]0;pwned\x07"
C1_CSI = "\x9b2J"
LINK = "[link=https://evil.example/]click me[/link]"
EVIL_NAME = f"[link=https://evil.example/]mallory[/link]{TITLE}"
# What must never reach the terminal: the attacker's sequences, and any hyperlink (OSC 8) at all.
FORBIDDEN_BYTES = [OSC52.encode(), TITLE.encode(), C1_CSI.encode(), b"\x1b]8;", b"\x1b]52", b"\x1b]0;"]


@contextlib.contextmanager
def server_in_process() -> Iterator[tuple[Server, asyncio.AbstractEventLoop, str]]:
    loop = asyncio.new_event_loop()
    server = Server(registry())
    ready = threading.Event()
    urls: list[str] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        urls.extend(loop.run_until_complete(server.start([Endpoint("tcp", "127.0.0.1", 0)])))
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="hostile-server", daemon=True)
    thread.start()
    assert ready.wait(10.0), "the server did not start"
    try:
        yield server, loop, urls[0]
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(10.0)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10.0)


def test_hostile_text_from_the_server_never_reaches_the_terminal_raw() -> None:
    with server_in_process() as (server, loop, url):
        terminal = Terminal(
            [*conf_command(), "create", "--server", url, "--name", "ada", "--encryption", "none"]
        )
        try:
            terminal.read_until("participants (1)", timeout=20)
            deadline = time.monotonic() + 10
            while not server.links and time.monotonic() < deadline:
                time.sleep(0.05)
            (link,) = server.links.values()

            def inject(message: dict) -> None:
                data = encode(message)  # as a server that does not filter would send it
                loop.call_soon_threadsafe(link.send_control, data)

            inject({"type": "participant_joined", "name": EVIL_NAME, "role": "member"})
            chat = f"copy {OSC52} {C1_CSI} and {LINK} end-of-chat"
            inject({"type": "chat", "from": EVIL_NAME, "text": chat, "private": False})
            inject(
                {
                    "type": "share_started",
                    "name": EVIL_NAME,
                    "kind": f"video{OSC52}",
                    "ssrc": 5,
                    "codec": "H264",
                }
            )
            inject({"type": "error", "code": "bad_request", "message": f"refused {OSC52} {LINK}"})
            terminal.read_until("end-of-chat")
            terminal.read_until("participants (2)")
            inject({"type": "kicked", "by": EVIL_NAME})  # said again by the client on leaving
            terminal.wait(20)
            terminal.read_until("removed you from the meeting")
        finally:
            terminal.close()
    screen = terminal.screen
    leaked = [forbidden for forbidden in FORBIDDEN_BYTES if forbidden in screen]
    assert leaked == [], f"reached the terminal: {leaked}"
    # The markup is drawn as the text it is, in the chat and in the line printed on leaving.
    assert b"[link=https://evil.example/]click me[/link]" in screen
    assert b"conf: [link=https://evil.example/]mallory[/link]" in screen
