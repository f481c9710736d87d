"""A connection's phases, the hub's routing verdicts, the route version, and the forwarder built on them."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from conf_cli.protocol.control import PROTOCOL_VERSION, encode
from conf_cli.protocol.rtcp import ReceiverReport
from conf_cli.protocol.rtp import RtpPacket
from conf_cli.server import passcode as passcode_module
from conf_cli.server.forwarding import Forwarder
from conf_cli.server.hub import Action, Deferred, Hub, Phase, Routed, Verdict, _Connection

VIDEO = 0x1111


@pytest.fixture(autouse=True)
def cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passcode_module, "_SCRYPT", {"n": 2, "r": 1, "p": 1})


def ask(hub: Hub, cid: int, message: dict[str, Any]) -> list[Action]:
    """Send ``message`` from ``cid``; run deferred work inline, as the edge would in a thread."""
    pending, done = hub.received(cid, encode(message), 0.0), []
    while pending:
        action = pending.pop(0)
        if isinstance(action, Deferred):
            pending += action.resume(action.work(), 0.0)
        else:
            done.append(action)
    return done


def enter(hub: Hub, cid: int, name: str, meeting: str | None = None) -> str:
    """Connect ``cid``, say hello, then create a meeting (or join ``meeting``); the meeting's ID."""
    hub.connected(cid, 0.0, f"10.0.0.{cid}:5000")
    ask(hub, cid, {"type": "hello", "protocol": PROTOCOL_VERSION})
    if meeting is None:
        created = ask(hub, cid, {"type": "create", "name": name, "passcode": "pw-1234"})
        return str(created[0].message["meeting"])  # type: ignore[union-attr]
    ask(hub, cid, {"type": "join", "meeting": meeting, "name": name, "passcode": "pw-1234"})
    return meeting


def rtp(ssrc: int, seq: int) -> bytes:
    return bytes(RtpPacket(96, seq, 1000, ssrc, b"\x65payload"))


def publishing() -> tuple[Hub, str]:
    """Ada (1) hosts and publishes VIDEO; Bob (2) joined."""
    hub = Hub()
    meeting = enter(hub, 1, "Ada")
    enter(hub, 2, "Bob", meeting)
    ask(hub, 1, {"type": "publish", "kind": "screen", "ssrc": VIDEO, "codec": "H264"})
    return hub, meeting


# -- phases ---------------------------------------------------------------------------------------


def test_a_connection_moves_only_along_its_legal_transitions() -> None:
    conn = _Connection(1, "peer", 0.0, 0.0)
    assert conn.phase is Phase.OPENED
    conn.advance(Phase.GREETED)
    with pytest.raises(ValueError, match="no transition from GREETED to OPENED"):
        conn.advance(Phase.OPENED)
    conn.advance(Phase.CLOSED)
    with pytest.raises(ValueError, match="no transition from CLOSED to GREETED"):
        conn.advance(Phase.GREETED)


def test_hello_greets_and_disconnecting_closes() -> None:
    hub = Hub()
    hub.connected(1, 0.0)
    conn = hub._conns[1]
    assert conn.phase is Phase.OPENED
    ask(hub, 1, {"type": "hello", "protocol": PROTOCOL_VERSION})
    assert conn.phase is Phase.GREETED
    hub.disconnected(1)
    assert conn.phase is Phase.CLOSED


def test_membership_is_read_from_the_meeting() -> None:
    hub = Hub()
    meeting_id = enter(hub, 1, "Ada")
    ask(hub, 1, {"type": "set_waiting_room", "enabled": True})
    enter(hub, 2, "Bob", meeting_id)
    meeting, bob = hub.meetings[meeting_id], hub._conns[2]
    assert bob.waiting is meeting and bob.meeting is None
    ask(hub, 1, {"type": "admit", "name": "Bob"})
    assert bob.waiting is None and bob.meeting is meeting
    ask(hub, 1, {"type": "kick", "name": "Bob"})
    assert bob.meeting is None and hub.meeting_of(2) is None


# -- routing verdicts -----------------------------------------------------------------------------


def test_route_gives_a_verdict_and_says_what_may_be_cached() -> None:
    hub, _ = publishing()
    first = hub.route(1, rtp(VIDEO, 1), 1.0)
    assert first == Routed(Verdict.FORWARDED, (2,), track=first.track, cacheable=True)
    assert first.track is not None and first.track.ssrc == VIDEO
    stolen = hub.route(2, rtp(VIDEO, 2), 1.0)
    assert (stolen.verdict, stolen.to, stolen.cacheable) == (Verdict.REFUSED, (), True)
    short = hub.route(1, rtp(VIDEO, 3)[:10], 1.0)
    assert (short.verdict, short.cacheable) == (Verdict.MALFORMED, False)
    garbage_rtcp = hub.route(1, b"\x81\xc9\xff\xff" + bytes(8), 1.0)
    assert (garbage_rtcp.verdict, garbage_rtcp.cacheable) == (Verdict.MALFORMED, False)
    hub.connected(9, 0.0)
    assert hub.route(9, rtp(VIDEO, 4), 1.0).verdict is Verdict.CLOSE
    assert hub.stats.media_refused == 1 and hub.stats.media_malformed == 2


def test_a_resend_is_routed_point_to_point_and_not_cached() -> None:
    hub, _ = publishing()
    assert hub.route(1, rtp(VIDEO, 5), 1.0).cacheable
    again = hub.route(1, rtp(VIDEO, 5), 1.1)  # unasked: nowhere
    assert (again.verdict, again.to, again.resend, again.cacheable) == (Verdict.FORWARDED, (), True, False)


def test_rtcp_routes_are_its_parts() -> None:
    hub, _ = publishing()
    routed = hub.route(2, bytes(ReceiverReport(0x42, [])), 1.0)
    assert routed.verdict is Verdict.FORWARDED and not routed.cacheable
    assert [forward.to for forward in routed.forwards] == [(1,)]


# -- the route version ----------------------------------------------------------------------------


def test_the_version_changes_with_participants_and_tracks_only() -> None:
    hub, meeting_id = publishing()
    version = hub.version.value
    for message in (
        {"type": "ping"},
        {"type": "chat", "text": "hi"},
        {"type": "who"},
        {"type": "set_role", "name": "Bob", "role": "admin"},
        {"type": "lock"},
        {"type": "unlock"},
    ):
        ask(hub, 1, message)
    hub.connected(7, 0.0)
    ask(hub, 7, {"type": "hello", "protocol": PROTOCOL_VERSION})
    hub.disconnected(7)
    assert hub.version.value == version
    ask(hub, 2, {"type": "publish", "kind": "audio", "ssrc": 0x2222, "codec": "opus"})
    assert hub.version.value > version
    version = hub.version.value
    enter(hub, 3, "Cy", meeting_id)
    assert hub.version.value > version
    version = hub.version.value
    ask(hub, 3, {"type": "leave"})
    assert hub.version.value > version
    assert hub.generation == hub.version.value


# -- the forwarder --------------------------------------------------------------------------------


class FakeLink:
    listener = None

    def __init__(self, cid: int) -> None:
        self.id, self.peer = cid, f"peer-{cid}"
        self.got: list[bytes] = []

    def send_media(self, packet: bytes) -> bool:
        self.got.append(packet)
        return True


def test_the_forwarder_keeps_routes_until_the_meeting_changes() -> None:
    hub, meeting_id = publishing()
    links: dict[int, Any] = {cid: FakeLink(cid) for cid in (1, 2, 3)}
    malformed: list[tuple[int, str]] = []
    forwarder = Forwarder(hub, links, lambda link, what: malformed.append((link.id, what)))
    assert forwarder.media(links[1], rtp(VIDEO, 1), 1.0)
    assert forwarder.media(links[1], rtp(VIDEO, 2), 1.0)  # from the cache
    assert len(links[2].got) == 2 and forwarder.take_active() == {1}
    enter(hub, 3, "Cy", meeting_id)  # a newcomer: the cached route is stale
    assert forwarder.media(links[1], rtp(VIDEO, 3), 1.0)
    assert len(links[2].got) == 3 and len(links[3].got) == 1


def test_the_forwarder_hears_malformed_from_the_verdict_not_refused() -> None:
    hub, _ = publishing()
    links: dict[int, Any] = {cid: FakeLink(cid) for cid in (1, 2)}
    malformed: list[tuple[int, str]] = []
    forwarder = Forwarder(hub, links, lambda link, what: malformed.append((link.id, what)))
    assert forwarder.media(links[2], rtp(VIDEO, 1), 1.0)  # Bob sends as Ada's track: refused
    assert forwarder.media(links[2], rtp(VIDEO, 2), 1.0)  # refused again, from the cache
    assert malformed == [] and hub.stats.media_refused == 2
    assert forwarder.media(links[2], b"\x81\xc9\xff\xff" + bytes(8), 1.0)
    assert malformed == [(2, "malformed RTP or RTCP")]
    hub.connected(9, 0.0)
    assert not forwarder.media(FakeLink(9), rtp(VIDEO, 3), 1.0)  # media before hello: close
    assert links[1].got == []


def test_the_forwarder_forgets_a_closed_links_routes() -> None:
    hub, _ = publishing()
    links: dict[int, Any] = {cid: FakeLink(cid) for cid in (1, 2)}
    forwarder = Forwarder(hub, links)
    forwarder.media(links[1], rtp(VIDEO, 1), 1.0)
    assert 1 in forwarder._routes
    forwarder.forget(links[1])
    assert 1 not in forwarder._routes


# -- layering -------------------------------------------------------------------------------------


def test_remote_control_does_not_import_the_meeting_rules() -> None:
    code = "import sys, conf_cli.server.remote_control; sys.exit('conf_cli.server.meeting' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
