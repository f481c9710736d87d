"""`conf doctor` in network namespaces: a client behind a NAT, a server on a public network reached by
name, and what the doctor says when the path is healthy, when UDP is blocked, and when the server's key
changed since the client pinned it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conf_cli.testing.devices import VirtualSound, missing_sound_tools, virtual_sound
from conf_cli.testing.netns import NatPicture, NetLab, netns_unavailable, two_nats
from conf_cli.testing.processes import ConfProcess

needs_netns = pytest.mark.skipif(netns_unavailable() is not None, reason=str(netns_unavailable()))
PORT = 7450
URL = f"rtp://confserver:{PORT}"
CHECKS = ["resolve", "tcp", "tls", "udp", "server", "nat", "clock", "capture", "playback"]


@pytest.fixture
def lab() -> Iterator[tuple[NetLab, NatPicture]]:
    with NetLab() as made:
        picture = two_nats(made, count=1)
        made.hosts(picture.clients[0], [f"{picture.server_ip} confserver"])
        yield made, picture


@pytest.fixture
def sound(tmp_path: Path) -> Iterator[VirtualSound]:
    missing = missing_sound_tools()
    if missing is not None:
        pytest.fail(missing)  # the set-up installs PulseAudio: its absence is a broken machine, not a skip
    with virtual_sound(tmp_path) as started:
        yield started


def serve(lab: NetLab, picture: NatPicture, *extra: str) -> ConfProcess:
    server = lab.conf(
        picture.server,
        ["server", "--json", "--host", picture.server_ip, "--port", str(PORT), "--transport", "rtp", *extra],
    )
    server.expect("server_started", timeout=30)
    return server


def doctor(
    lab: NetLab, picture: NatPicture, home: Path, *args: str, env: dict[str, str] | None = None
) -> Any:
    """Run ``conf doctor --json`` in the client's namespace to its end: its checks by name, its exit code."""
    process = lab.conf(
        picture.clients[0], ["doctor", URL, "--json", *args], env={"CONF_HOME": str(home), **(env or {})}
    )
    code = process.wait(timeout=60)
    checks = {e["check"]: e for e in process.drain(1.0) if e.get("type") == "doctor_check"}
    return checks, code, process


@needs_netns
def test_on_a_healthy_path_every_line_is_ok(
    lab: tuple[NetLab, NatPicture], sound: VirtualSound, tmp_path: Path
) -> None:
    netlab, picture = lab
    server = serve(netlab, picture)
    fingerprint = server.seen[-1]["fingerprint"]
    checks, code, _ = doctor(netlab, picture, tmp_path / "home", "--fingerprint", fingerprint, env=sound.env)
    assert list(checks) == CHECKS
    assert {name: check["status"] for name, check in checks.items()} == dict.fromkeys(CHECKS, "ok"), checks
    assert code == 0
    assert checks["resolve"]["detail"] == f"confserver is {picture.server_ip}"
    assert picture.public_ips[0] in checks["udp"]["detail"]  # the server saw the NAT's address
    assert "endpoint-independent" in checks["nat"]["detail"]
    assert "microphone: " in checks["capture"]["detail"]


@needs_netns
def test_with_udp_blocked_it_says_to_use_tcp(lab: tuple[NetLab, NatPicture], tmp_path: Path) -> None:
    netlab, picture = lab
    server = serve(netlab, picture)
    netlab.iptables(picture.clients[0], "-A", "OUTPUT", "-p", "udp", "-j", "DROP")
    fingerprint = server.seen[-1]["fingerprint"]
    checks, code, _ = doctor(
        netlab, picture, tmp_path / "home", "--fingerprint", fingerprint, "--timeout", "3"
    )
    assert code == 1
    assert [checks[name]["status"] for name in ("resolve", "tcp", "tls")] == ["ok", "ok", "ok"]
    udp = checks["udp"]
    assert udp["status"] == "fail" and "tcp://" in udp["advice"], udp
    assert checks["server"]["status"] == "skip"


@needs_netns
def test_a_changed_server_key_names_the_pin_to_forget(lab: tuple[NetLab, NatPicture], tmp_path: Path) -> None:
    netlab, picture = lab
    home = tmp_path / "home"
    server = serve(netlab, picture, "--identity", str(tmp_path / "first.key"))
    # The client joins once: it trusts the key on first use and pins it.
    first = netlab.conf(
        picture.clients[0],
        ["create", "--json", "--server", URL, "--name", "ada"],
        env={"CONF_HOME": str(home)},
    )
    first.expect("joined", timeout=30)
    first.stop()
    assert URL in (home / "known_hosts").read_text()
    server.stop()

    serve(netlab, picture, "--identity", str(tmp_path / "second.key"))  # the key was replaced
    checks, code, _ = doctor(netlab, picture, home)
    assert code == 1
    tls = checks["tls"]
    assert tls["status"] == "fail" and "has CHANGED" in tls["detail"], tls
    assert f"`conf known-hosts forget {URL}`" in tls["advice"] and str(home / "known_hosts") in tls["advice"]
    assert "server" not in checks  # nothing more is tried with a server whose key is not trusted


@needs_netns
def test_a_nat_that_maps_per_destination_is_told_and_fails_nothing(
    lab: tuple[NetLab, NatPicture], tmp_path: Path
) -> None:
    netlab, picture = lab
    server = serve(netlab, picture)
    # A new random port for every new flow: a mapping per destination (a "symmetric" NAT).
    netlab.iptables(
        picture.routers[0],
        "-t",
        "nat",
        "-I",
        "POSTROUTING",
        "1",
        "-o",
        "up0",
        "-j",
        "MASQUERADE",
        "--random-fully",
    )
    fingerprint = server.seen[-1]["fingerprint"]
    checks, code, _ = doctor(netlab, picture, tmp_path / "home", "--fingerprint", fingerprint)
    nat = checks["nat"]
    assert nat["status"] == "warn" and "maps per destination" in nat["detail"], nat
    assert "relay" in nat["advice"]
    assert checks["udp"]["status"] == "ok" and code == 0  # meetings work through it
