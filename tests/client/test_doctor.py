"""`conf doctor`'s checks against a server in this process on loopback: the clock, the STUN port of a
tcp:// server, and what stops the checks of the path (the devices are told all the same)."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from conf_cli.client.doctor import Check, Doctor
from conf_cli.identity import KnownHosts
from conf_cli.plugin.registry import registry
from conf_cli.plugin.security import server_security
from conf_cli.plugin.transport import TransportOptions
from conf_cli.server.edge import Endpoint, Server
from conf_cli.server.hub import Hub
from conf_cli.urls import parse_server_url

SKEW = 30.0


@pytest.fixture
async def skewed(tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """A tcp:// server whose clock runs SKEW seconds ahead; its URL and key fingerprint."""
    security = server_security(registry().ciphers, "on", tmp_path / "identity.key")
    assert security is not None and security.identity is not None
    server = Server(registry(), Hub(wall_clock=lambda: time.time() + SKEW))
    (url,) = await server.start([Endpoint("tcp", "127.0.0.1", 0)], TransportOptions(security=security))
    try:
        yield url, security.identity.fingerprint
    finally:
        await server.close()


async def run(url: str, tmp_path: Path, **options: object) -> dict[str, Check]:
    doctor = Doctor(
        registry(),
        parse_server_url(url),
        known_hosts=KnownHosts(tmp_path / "known_hosts"),
        **options,  # type: ignore[arg-type]
    )
    reported: list[Check] = []
    checks = await doctor.run(reported.append)
    assert checks == reported  # each is reported as it ends
    return {check.name: check for check in checks}


async def test_a_clock_off_by_half_a_minute_is_a_warning_and_the_stun_port_answers(
    skewed: tuple[str, str], tmp_path: Path
) -> None:
    url, fingerprint = skewed
    checks = await run(url, tmp_path, expected=fingerprint)
    assert list(checks) == ["resolve", "tcp", "tls", "server", "udp", "nat", "clock", "capture", "playback"]
    clock = checks["clock"]
    offset, uncertainty = (float(word) for word in re.findall(r"[0-9]+\.[0-9]+", clock.detail))
    assert clock.status == "warn" and abs(offset - SKEW) <= uncertainty + 0.01, clock
    assert "behind the server's" in clock.detail and "timedatectl" in clock.advice
    assert checks["udp"].status == "ok" and "STUN port" in checks["udp"].detail
    # One STUN port, and no NAT on loopback: that much is told.
    assert checks["nat"].status == "ok" and checks["nat"].detail.startswith("no NAT")
    assert not (tmp_path / "known_hosts").exists()  # the doctor pins nothing


async def test_an_unpinned_key_is_a_warning_another_than_given_fails(
    skewed: tuple[str, str], tmp_path: Path
) -> None:
    url, fingerprint = skewed
    unpinned = await run(url, tmp_path)
    assert unpinned["tls"].status == "warn" and fingerprint in unpinned["tls"].detail
    assert unpinned["server"].status == "ok"
    wrong = await run(url, tmp_path, expected="SHA256:" + "A" * 43)
    assert wrong["tls"].status == "fail" and f"presented key {fingerprint}" in wrong["tls"].detail
    assert "server" not in wrong and {"capture", "playback"} <= set(wrong)


async def test_nobody_listening_fails_at_tcp(tmp_path: Path) -> None:
    checks = await run("tcp://127.0.0.1:9", tmp_path, timeout=2.0)
    assert checks["tcp"].status == "fail" and "connection refused" in checks["tcp"].detail
    assert "is `conf server` running" in checks["tcp"].advice
    assert list(checks) == ["resolve", "tcp", "capture", "playback"]
    assert checks["tcp"].line().startswith("fail  tcp       cannot connect to 127.0.0.1:9")
