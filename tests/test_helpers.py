"""The tests' own helpers: the in-memory link pair, the switch that makes skips fail, the plugins the
tests load."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conf_cli.plugin.registry import ONLY_ENV, create_registry, registry
from conf_cli.plugin.transport import Link
from conf_cli.protocol.control import PROTOCOL_VERSION, encode
from conf_cli.protocol.rtp import RtpPacket
from conf_cli.server.edge import Server
from tests.helpers.links import LinkPair, Loss
from tests.helpers.skips import FAIL_ON_SKIP_ENV

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Heard:
    """ServerEvents and ClientEvents at once: everything either end is told, in order."""

    log: list[tuple[str, Any]] = field(default_factory=list)

    def link_opened(self, link: Link) -> None:
        self.log.append(("opened", link.peer))

    def control_received(self, *args: Any) -> None:
        self.log.append(("control", args[-1]))

    def media_received(self, *args: Any) -> None:
        self.log.append(("media", args[-1]))

    def keepalive_received(self, link: Link) -> None:
        self.log.append(("keepalive", link.peer))

    def link_closed(self, link: Link, reason: str) -> None:
        self.log.append(("closed", reason))

    def closed(self, reason: str) -> None:
        self.log.append(("closed", reason))


def rtp(seq: int) -> bytes:
    return bytes(RtpPacket(96, seq, 1000, 0x1111, b"\x65picture"))


# -- the in-memory link pair ----------------------------------------------------------------------------


def test_control_crosses_both_ways_in_order_only_when_flushed() -> None:
    server, client = Heard(), Heard()
    pair = LinkPair(server, client)
    assert server.log == [("opened", "memory-client")]
    pair.client.send_control(b"one")
    pair.server.send_control(b"back")
    pair.client.send_control(b"two")
    assert pair.pending == 3 and server.log == [("opened", "memory-client")]  # nothing from inside a send
    assert pair.flush() == 3
    assert server.log[1:] == [("control", b"one"), ("control", b"two")]
    assert client.log == [("control", b"back")]
    assert (pair.client.stats.control_out, pair.server.stats.control_in) == (2, 2)
    assert pair.client.media_ordered and pair.server.media_ordered


def test_a_loss_pattern_loses_the_same_media_every_time_and_never_control() -> None:
    server, client = Heard(), Heard()
    pair = LinkPair(server, client, to_server=Loss(pattern="..x"))
    for seq in range(9):
        assert pair.client.send_media(rtp(seq))  # the sender never knows
        pair.client.send_control(b"%d" % seq)
    pair.flush()
    assert [data for kind, data in server.log if kind == "media"] == [rtp(s) for s in range(9) if s % 3 != 2]
    assert [data for kind, data in server.log if kind == "control"] == [b"%d" % s for s in range(9)]
    assert pair.client.loss is not None and (pair.client.loss.seen, pair.client.loss.lost) == (9, 3)
    assert pair.client.stats.media_out == 9 and pair.server.stats.media_in == 6
    pair.server.send_media(rtp(0))  # the other way loses nothing
    pair.flush()
    assert client.log == [("media", rtp(0))]


def test_a_seeded_loss_rate_is_the_same_on_every_run() -> None:
    def lost(seed: int) -> list[int]:
        loss = Loss(rate=0.2, seed=seed)
        return [n for n in range(1000) if loss.drops()]

    assert lost(7) == lost(7) != lost(8)
    assert 150 < len(lost(7)) < 250
    assert not any(Loss(rate=0.0).drops() for _ in range(100))
    assert all(Loss(rate=1.0).drops() for _ in range(100))
    for bad in ({"rate": 1.5}, {"pattern": ""}, {"pattern": "..o"}):
        with pytest.raises(ValueError):
            Loss(**bad)


def test_closing_delivers_what_was_sent_then_tells_both_ends() -> None:
    server, client = Heard(), Heard()
    pair = LinkPair(server, client)
    pair.client.send_control(b"last words")
    pair.client.close("leaving")
    assert pair.client.is_closing and pair.server.is_closing
    pair.client.send_control(b"after")  # ignored
    assert not pair.server.send_media(rtp(1))
    assert pair.server.stats.media_dropped == 1
    pair.client.close("again")  # once only
    pair.flush()
    assert server.log[1:] == [("control", b"last words"), ("closed", "closed by peer")]
    assert client.log == [("closed", "leaving")]


async def test_with_an_event_loop_deliveries_come_on_its_next_turn() -> None:
    server, client = Heard(), Heard()
    pair = LinkPair(server, client)
    pair.client.send_control(b"hello")
    assert server.log == [("opened", "memory-client")]
    await asyncio.sleep(0)
    assert server.log[1:] == [("control", b"hello")] and pair.pending == 0


@pytest.mark.usefixtures("cheap_scrypt")
async def test_a_real_server_over_memory_links_forwards_what_the_loss_pattern_lets_through() -> None:
    server = Server(create_registry(), call_port=None)
    ada, bob = Heard(), Heard()
    ada_pair = LinkPair(server, ada, to_server=Loss(pattern="x..."))
    bob_pair = LinkPair(server, bob)

    async def ask(pair: LinkPair, heard: Heard, message: dict[str, Any], answer: str) -> dict[str, Any]:
        pair.client.send_control(encode(message))
        async with asyncio.timeout(10):
            while True:
                for kind, data in heard.log:
                    if kind == "control" and json.loads(data)["type"] == answer:
                        heard.log.clear()
                        return json.loads(data)
                await asyncio.sleep(0.01)

    try:
        hello = {"type": "hello", "protocol": PROTOCOL_VERSION}
        await ask(ada_pair, ada, hello, "welcome")
        created = await ask(
            ada_pair, ada, {"type": "create", "name": "Ada", "passcode": "pw-123"}, "meeting_created"
        )
        await ask(bob_pair, bob, hello, "welcome")
        join = {"type": "join", "meeting": created["meeting"], "name": "Bob", "passcode": "pw-123"}
        await ask(bob_pair, bob, join, "joined")
        publish = {"type": "publish", "kind": "screen", "ssrc": 0x1111, "codec": "H264"}
        await ask(ada_pair, ada, publish, "share_started")
        for seq in range(12):
            ada_pair.client.send_media(rtp(seq))
        await asyncio.sleep(0.1)
        got = [data for kind, data in bob.log if kind == "media"]
        assert got == [rtp(seq) for seq in range(12) if seq % 4 != 0]
    finally:
        await server.close()


# -- skips fail the run where everything is installed ---------------------------------------------------


def _pytest(tmp_path: Path, fail_on_skip: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(
        "from tests.helpers import skips\n\n\ndef pytest_configure(config):\n    skips.install(config)\n"
    )
    (tmp_path / "test_some.py").write_text(
        "import pytest\n\n\ndef test_runs():\n    pass\n\n\n"
        "@pytest.mark.skipif(True, reason='needs a thing not installed')\ndef test_skips():\n    pass\n\n\n"
        "@pytest.mark.xfail(reason='known')\ndef test_xfails():\n    assert False\n"
    )
    env = {k: v for k, v in os.environ.items() if k != FAIL_ON_SKIP_ENV}
    env["PYTHONPATH"] = str(ROOT)
    if fail_on_skip is not None:
        env[FAIL_ON_SKIP_ENV] = fail_on_skip
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_some.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_skip_fails_the_run_only_where_conf_fail_on_skip_is_set(tmp_path: Path) -> None:
    relaxed = _pytest(tmp_path, None)
    assert relaxed.returncode == 0, relaxed.stdout + relaxed.stderr
    assert _pytest(tmp_path, "0").returncode == 0
    strict = _pytest(tmp_path, "1")
    assert strict.returncode == 1, strict.stdout + strict.stderr
    assert "SKIPPED test_some.py::test_skips: needs a thing not installed" in strict.stdout
    assert "test_xfails" not in strict.stdout.split("skipped tests fail this run")[1]  # an xfail is no skip


# -- only conf's own plugins ----------------------------------------------------------------------------


def test_the_tests_load_only_confs_own_plugins() -> None:
    shipped = {e.name for e in importlib.metadata.distribution("conf").entry_points if e.group == "conf"}
    assert shipped and set(os.environ[ONLY_ENV].split(",")) == shipped | {"transport_ws"}
    assert set(registry().origins) <= shipped | {"transport_ws"}
    assert "ws" in {scheme for t in registry().transports.values() for scheme in t.schemes}
