"""Hostile field contents sent to a live server over real sockets (the security review: a meeting made
unjoinable by long control-character codecs; terminal escapes in chat and names; chat floods).

Hostile peers speak the plaintext wire (``--encryption none``) through conf_cli.testing.hostile, so what
they send reaches the server's own parsers; the real clients beside them are ``conf`` processes.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from conf_cli.server.meeting import MEDIA_KINDS
from conf_cli.testing.hostile import RawLink, open_raw_link, raw_join
from conf_cli.testing.processes import ClientPool, spawn

PASSCODE = "pass-123"
PLAIN = ["--encryption", "none"]
CONTROLS = "".join(chr(c) for c in (*range(1, 0x20), 0x7F, *range(0x80, 0xA0)))
HOSTILE_CODEC = "\x01" * 256  # the longest "str" there was: \u0001 is 6 bytes of JSON, 1.5 kB a codec
OSC52 = "\x1b]52;c;ZXZpbCBjbGlwYm9hcmQ=\x07"
REFUSED = "control characters (C0, DEL, C1) are not allowed"
Event = dict[str, Any]


@pytest.fixture
def live() -> Iterator[tuple[str, ClientPool]]:
    server = spawn(["server", "--json", "--host", "127.0.0.1", "--port", "0", "--transport", "tcp", *PLAIN])
    pool: ClientPool | None = None
    try:
        url = server.expect("server_started")["urls"][0]
        pool = ClientPool(url, PASSCODE, extra=PLAIN)
        yield url, pool
    finally:
        if pool is not None:
            pool.stop_all()
        server.stop()


@contextlib.contextmanager
def kept_alive(links: list[RawLink]) -> Iterator[None]:
    """Ping ``links`` every second from a thread, so that the server keeps them past its heartbeat timeout."""
    stop = threading.Event()

    def ping() -> None:
        while not stop.wait(1.0):
            for link in links:
                with contextlib.suppress(OSError):
                    link.send_control({"type": "ping"})

    thread = threading.Thread(target=ping, name="keep-alive", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
        for link in links:
            link.close()


def received_for(link: RawLink, seconds: float) -> list[Event]:
    """Every control message ``link`` gets for ``seconds``."""
    deadline = time.monotonic() + seconds
    got: list[Event] = []
    while (remaining := deadline - time.monotonic()) > 0:
        got += link.receive(remaining)
    return got


def errors_of(link: RawLink, count: int, timeout: float = 10.0) -> list[Event]:
    """The next ``count`` error messages ``link`` gets (what else comes is read and dropped)."""
    deadline = time.monotonic() + timeout
    errors: list[Event] = []
    while len(errors) < count and (remaining := deadline - time.monotonic()) > 0:
        errors += [e for e in link.receive(min(remaining, 0.5)) if e.get("type") == "error"]
    assert len(errors) >= count, f"{len(errors)} errors of {count} within {timeout} s: {errors}"
    return errors[:count]


def test_control_character_codecs_cannot_make_a_meeting_unjoinable(live: tuple[str, ClientPool]) -> None:
    """Twenty members each publish three tracks whose codec is 256 control characters: 20 x 3 x 1.5 kB of
    snapshot, more than one control frame, had the server taken them. Each is refused with the reason,
    and a real client still joins and gets its /who answered."""
    url, clients = live
    host, meeting = clients.create("host")
    mallories = [raw_join(url, meeting, f"mallory{n}", PASSCODE) for n in range(20)]
    with kept_alive(mallories):
        for n, mallory in enumerate(mallories):
            for k, kind in enumerate(MEDIA_KINDS):
                ssrc = 0x0BAD0000 + 3 * n + k
                mallory.send_control({"type": "publish", "kind": kind, "ssrc": ssrc, "codec": HOSTILE_CODEC})
        bob = clients.joined(meeting, "bob")
        assert len(bob.latest("joined")["participants"]) == 22
        bob.send("/who")
        listed = bob.expect("participants")
        assert len(listed["participants"]) == 22 and listed["tracks"] == []
        host.send("/who")
        assert len(host.expect("participants")["participants"]) == 22
        for mallory in mallories:
            assert [e["message"] for e in errors_of(mallory, len(MEDIA_KINDS))] == [
                "publish.codec must be one of H264, opus"
            ] * len(MEDIA_KINDS)
        assert bob.process.poll() is None and host.process.poll() is None


def test_terminal_escapes_in_chat_and_names_are_refused_and_reach_nobody(
    live: tuple[str, ClientPool],
) -> None:
    url, clients = live
    host, meeting = clients.create("host")
    bob = clients.joined(meeting, "bob")
    mallory = raw_join(url, meeting, "mallory", PASSCODE)
    for text in (
        f"copy this {OSC52}",
        "\x1b]0;pwned\x07\x1b[2J",
        "\x9b2J C1 clear screen",
        "two\nlines",
    ):
        mallory.send_control({"type": "chat", "text": text})
        refused = mallory.expect("error")
        assert refused["code"] == "bad_request" and REFUSED in refused["message"], refused
    # Names: nobody joins as an escape sequence or as markup longer than a name may be.
    for name in (f"eve{OSC52}", "eve\x1b[31m", "[link=https://evil.example/]" + "x" * 40 + "[/link]"):
        eve = open_raw_link(url)
        try:
            eve.send_control({"type": "hello", "protocol": 1})
            eve.send_control({"type": "join", "meeting": meeting, "name": name, "passcode": PASSCODE})
            refused = eve.expect("error")
            assert refused["code"] == "bad_request" and "join.name" in refused["message"], refused
        finally:
            eve.close()
    mallory.send_control({"type": "chat", "text": "plain words"})
    assert bob.expect("chat", lambda e: e["from"] == "mallory")["text"] == "plain words"
    received = [
        e
        for e in [*bob.seen, *host.drain(1.0), *host.seen]
        if e.get("type") in ("chat", "participant_joined")
    ]
    assert not any(any(ch in str(e) for ch in CONTROLS) for e in received)
    assert not any(e.get("name", "").startswith("eve") for e in received)
    mallory.close()


def test_a_chat_flood_is_refused_past_the_burst(live: tuple[str, ClientPool]) -> None:
    from conf_cli.server.meeting import CHAT_BURST

    url, clients = live
    host, meeting = clients.create("host")
    bob = clients.joined(meeting, "bob")
    mallory = raw_join(url, meeting, "mallory", PASSCODE)
    try:
        flood = 40
        for n in range(flood):
            mallory.send_control({"type": "chat", "text": f"flood {n}", "id": n})
        limited = [e for e in received_for(mallory, 3.0) if e.get("type") == "error"]
        assert limited and all(e["code"] == "rate_limited" for e in limited), limited
        assert all(e["retry_after"] > 0 and "too fast" in e["message"] for e in limited)
        got = [e for e in bob.drain(3.0) if e.get("type") == "chat" and e["from"] == "mallory"]
        # The burst, and what the rate lets through while the flood is sent (seconds on a loaded machine).
        assert CHAT_BURST <= len(got) < flood and len(got) + len(limited) == flood
        # Bob's and the host's own chat still flows.
        bob.send("still here")
        assert host.expect("chat", lambda e: e["from"] == "bob")["text"] == "still here"
    finally:
        mallory.close()
