"""The call relay sends an end's media only to an address that consented: attacks on a relayed call's
STUN latch by a real attacker on the path (network namespaces, real ``conf server`` and ``conf call``
processes behind two NATs whose UDP to each other is cut, so the call goes through the relay).

The attacker sits on the wide-area network between ada's NAT and the server: it reads ada's datagrams
to the relay off the wire (tcpdump on that link) and sends them from its own address.

- A copy of ada's binding, replayed: the relay refuses it, and bob's media keeps going to ada.
- ada's binding held back by the attacker (dropped on the path) and sent first from the attacker's
  address, so that it is fresh to the relay: the attacker gets consent checks it cannot answer, and no
  media.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conf_cli.latch import CHECK_SUFFIX
from conf_cli.protocol.stun import CLASS_REQUEST, StunMessage, is_stun
from conf_cli.testing.capture import capture, payloads
from conf_cli.testing.netns import NatPicture, NetLab, call_across_nats, netns_unavailable, two_nats
from conf_cli.testing.processes import ConfProcess, drain_together

SMALL = ("--width", "320", "--height", "240", "--fps", "15")
needs_netns = pytest.mark.skipif(netns_unavailable() is not None, reason=str(netns_unavailable()))
TAP_SECONDS = 12.0
"""Longer than a client's keepalive interval (10 s): the tap sees at least one fresh binding within it."""

# The attacker: sends each datagram (hex) to the relay from one socket, then reports what came back.
ATTACKER = """
import json, socket, sys, time
host, port, seconds, datagrams = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("0.0.0.0", 0))
for datagram in datagrams:
    sock.sendto(bytes.fromhex(datagram), (host, port))
print(json.dumps({"type": "sent", "datagrams": len(datagrams)}), flush=True)
media = stun = 0
checks = []
deadline = time.monotonic() + seconds
while (left := deadline - time.monotonic()) > 0:
    sock.settimeout(min(left, 0.2))
    try:
        data = sock.recv(2048)
    except TimeoutError:
        continue
    if len(data) >= 12 and data[0] >> 6 == 2:
        media += 1
    else:
        stun += 1
        checks.append(data.hex())
print(json.dumps({"type": "attacked", "media": media, "stun": stun,
                  "datagrams": checks}), flush=True)
"""


@pytest.fixture
def nats() -> Iterator[tuple[NetLab, NatPicture]]:
    with NetLab() as lab:
        yield lab, two_nats(lab)


def relayed_call(lab: NetLab, picture: NatPicture) -> tuple[ConfProcess, ConfProcess, ConfProcess, int]:
    """ada calls bob with UDP between their NATs cut: the relayed path; the relay's port."""
    for one, other in (picture.public_ips, picture.public_ips[::-1]):
        lab.iptables(picture.wan, "-A", "FORWARD", "-p", "udp", "-s", one, "-d", other, "-j", "DROP")
    server, ada, bob, _ = call_across_nats(lab, picture, ("--share", "pattern", *SMALL))
    path = ada.expect("call_path", timeout=25)
    assert path["path"] == "relayed" and path["address"].startswith(f"{picture.server_ip}:")
    assert bob.expect("call_path", timeout=20)["path"] == "relayed"
    ada.expect("track_stats", lambda e: e["name"] == "bob" and e["frames"] > 15, timeout=20)
    return server, ada, bob, int(path["address"].rsplit(":", 1)[1])


def tap(lab: NetLab, ns: str, device: str, port: int, path: Path) -> contextlib.AbstractContextManager[Path]:
    """tcpdump on ``device`` in ``ns`` for UDP to ``port`` while the block runs: the attacker's view."""
    expression = f"udp and dst port {port}"
    return capture(path, [], settle=0.5, interface=device, expression=expression, inside=lab.inside(ns))


def bindings(pcap: Path) -> list[bytes]:
    """ada's binding requests to the relay among what the tap saw (not its answers to consent checks)."""
    found = []
    for datagram in payloads(pcap):
        if not is_stun(datagram):
            continue
        message = StunMessage.parse(datagram)
        if message.message_class == CLASS_REQUEST and message.username is not None:
            found.append(datagram)
    return found


def first_bindings(pcap: Path, timeout: float = TAP_SECONDS) -> list[bytes]:
    """ada's binding requests in the tap's file as soon as there is one (tcpdump writes each packet as it
    comes), or none after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = bindings(pcap)
        except ValueError:  # the last packet half written (ProtocolError too): read it again
            found = []
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(0.2)


def attack(
    lab: NetLab,
    picture: NatPicture,
    port: int,
    datagrams: list[bytes],
    seconds: float,
    on_sent: Callable[[], None] = lambda: None,
) -> Any:
    """Send ``datagrams`` to the relay from the attacker's own address and report what came back in
    ``seconds``; ``on_sent`` is called once the attacker has sent them all."""
    attacker = lab.python(
        picture.wan,
        ["-c", ATTACKER, picture.server_ip, str(port), str(seconds), *(d.hex() for d in datagrams)],
    )
    attacker.expect("sent", timeout=20)
    on_sent()
    return attacker.expect("attacked", timeout=seconds + 20)


@contextlib.contextmanager
def held_back(lab: NetLab, picture: NatPicture) -> Iterator[None]:
    """ada's UDP to the server dropped on the wide-area network while the block runs."""
    hold = ("FORWARD", "-p", "udp", "-s", picture.public_ips[0], "-d", picture.server_ip, "-j", "DROP")
    lab.iptables(picture.wan, "-I", *hold)
    try:
        yield
    finally:
        lab.iptables(picture.wan, "-D", *hold)


def frames_in(events: list[dict[str, Any]], name: str) -> int:
    """Pictures decoded of ``name``'s video by the newest ``track_stats`` among ``events``."""
    reports = [e for e in events if e.get("type") == "track_stats" and e["name"] == name]
    assert reports, f"no track_stats for {name}"
    return int(reports[-1]["frames"])


def frames_of(client: ConfProcess, name: str, seconds: float = 2.0) -> int:
    return frames_in(client.drain(seconds), name)


def calls_stats(server: ConfProcess, where: Any) -> dict[str, int]:
    stats: dict[str, int] = server.expect("server_stats", lambda e: where(e["calls"]), timeout=15)["calls"]
    return stats


@needs_netns
def test_a_relay_binding_read_off_the_wire_and_replayed_moves_no_media(
    nats: tuple[NetLab, NatPicture], tmp_path: Path
) -> None:
    """Finding: the relay token in hex was the USERNAME and the signing key, so one binding seen on the
    path let anyone re-latch that end of the call and take its media. The attacker replays every binding
    ada sent while it watched: nothing comes back to it, and ada keeps receiving bob's video."""
    lab, picture = nats
    server, ada, bob, port = relayed_call(lab, picture)
    with tap(lab, picture.wan, "w1", port, tmp_path / "tap.pcap") as pcap:
        first_bindings(pcap)
    seen = bindings(pcap)
    assert seen, "the tap saw ada's binding"
    before = frames_of(ada, "bob")
    report = attack(lab, picture, port, seen, 6.0)
    assert report["media"] == 0, f"the attacker got {report['media']} media datagrams"
    assert frames_of(ada, "bob", 3.0) > before, "ada's video from bob goes on"
    stats = calls_stats(server, lambda s: s["stun_replayed"] >= 1)
    assert stats["relatches"] == 0
    ada.send("/leave")
    assert ada.wait() == 0
    bob.expect("call_ended")


@needs_netns
def test_an_address_that_never_answers_consent_checks_gets_no_media(
    nats: tuple[NetLab, NatPicture], tmp_path: Path
) -> None:
    """The attacker on the path drops ada's UDP to the relay while it reads it, then sends ada's binding
    from its own address before the original ever arrives, so the relay takes it as fresh. The relay sends
    the attacker consent checks, which it cannot answer without the key derived from ada's relay token,
    and never media; once ada's UDP gets through again, ada's call goes on."""
    lab, picture = nats
    server, ada, bob, port = relayed_call(lab, picture)
    with contextlib.ExitStack() as hold:
        hold.enter_context(held_back(lab, picture))
        with tap(lab, picture.wan, "w1", port, tmp_path / "tap.pcap") as pcap:
            first_bindings(pcap)
        held = bindings(pcap)
        assert held, "the tap held back ada's binding"
        # The hold is lifted only once the attacker's copies are in: ada's retransmissions of the same
        # bindings, let through before them, would make the attacker's copies replays, not fresh.
        report = attack(lab, picture, port, held, 8.0, on_sent=hold.close)
    assert report["media"] == 0, f"the attacker got {report['media']} media datagrams"
    checks = [StunMessage.parse(bytes.fromhex(d)) for d in report["datagrams"]]
    assert checks and all(c.username is not None and c.username.endswith(CHECK_SUFFIX) for c in checks)
    stats = calls_stats(server, lambda s: s["consent_failed"] >= 1)
    assert stats["relatches"] == 0
    # Both ends read over the same windows: the newest reports of the first 2 s, then of the next 3 s.
    ada_before, bob_before = drain_together(ada, bob, seconds=2.0)
    ada_after, bob_after = drain_together(ada, bob, seconds=3.0)
    assert frames_in(ada_after, "bob") > frames_in(ada_before, "bob"), "ada's video from bob goes on"
    assert frames_in(bob_after, "ada") > frames_in(bob_before, "ada"), (
        "and ada's to bob, now that her UDP gets through"
    )
    ada.send("/leave")
    assert ada.wait() == 0
    bob.expect("call_ended")
