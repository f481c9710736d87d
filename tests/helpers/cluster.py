"""A directory and cluster nodes started on it for the cluster, cascade and failover tests."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from conf_cli.plugin.registry import create_registry
from conf_cli.server.directory import REFRESH_INTERVAL
from conf_cli.testing.directories import Directory
from conf_cli.testing.processes import (
    ClientPool,
    ConfProcess,
    run_conf,
    spawn,
)

PASSCODE = "cluster-pass-1"


SMALL = ("--width", "320", "--height", "240", "--fps", "10")


SETTLE = REFRESH_INTERVAL + 1.5
"""Long enough for every node to have written its record and read the others' once."""


STATS = ("--stats-interval", "0.5")
"""Every node reports its ``server_stats`` (what it has read of the directory) twice a second."""


class Cluster:
    """A directory and the nodes started on it; everything stopped by process ID at the end."""

    def __init__(self, directory: Directory, transport: str = "tcp") -> None:
        self.directory = directory
        self.transport = transport
        self.nodes: dict[str, tuple[ConfProcess, str]] = {}
        self.clients = ClientPool("", PASSCODE)
        """Every client names the URL of the node it goes to."""

    def node(self, name: str, *extra: str) -> str:
        """Start node ``name`` and wait until it listens; its URL."""
        self.start(name, extra=extra)
        return self.url(name)

    def start(self, *names: str, extra: Sequence[str] = ()) -> None:
        """Start the nodes ``names`` (each with ``extra``) side by side, then wait until each listens."""
        spawned = [(name, self._spawn(name, *extra)) for name in names]
        for name, process in spawned:
            self.nodes[name] = (process, "")  # stopped at the end even if it never listens
        for name, process in spawned:
            self._listening(name, process.expect("server_started")["urls"])

    def _spawn(self, name: str, *extra: str) -> ConfProcess:
        args = ["server", "--json", "--host", "127.0.0.1", "--port", "0", "--transport", self.transport]
        return spawn([*args, "--cluster", self.directory.url, "--node", name, *STATS, *extra])

    def _listening(self, name: str, urls: list[str]) -> None:
        self.nodes[name] = (self.nodes[name][0], urls[0])

    def url(self, name: str) -> str:
        return self.nodes[name][1]

    def client(self, node: str, name: str, meeting: str | None = None, *extra: str) -> ConfProcess:
        return self.clients.client(name, meeting, *extra, url=self.url(node))

    def share(self, node: str, meeting: str, name: str, kind: str, *extra: str) -> ConfProcess:
        return self.clients.share(meeting, name, kind, *extra, url=self.url(node))

    def two_nodes_and_a_meeting(self, read: bool = False) -> tuple[ConfProcess, str]:
        """Nodes a and b, both in the directory (``read``: and a has read b's record), and Ada's meeting
        created through a (which holds it); Ada's client and the meeting's ID."""
        self.start("a", "b")
        self.wait_status(lambda s: node_names(s) == {"a", "b"}, timeout=15)
        if read:
            self.reads("a", "b")
        ada = self.client("a", "Ada")
        meeting = str(ada.expect("meeting_created")["meeting"])
        ada.expect("joined")
        return ada, meeting

    def reads(self, name: str, *others: str, timeout: float = 15) -> None:
        """Wait until node ``name`` has read the records of ``others`` (its welcome lists their URLs)."""
        self.nodes[name][0].expect(
            "server_stats",
            lambda e: set(others) <= set(e.get("cluster", {}).get("nodes", [])),
            timeout=timeout,
        )

    def plant(self, node: str, urls: list[str], fingerprint: str, meeting: str) -> None:
        """Write a node record for ``node`` at ``urls`` under ``fingerprint`` and a claim of ``meeting`` by
        it straight into the directory, as a directory that lies would hold them."""

        async def write() -> None:
            factory = create_registry().cluster_backend_for(self.directory.url)
            backend = await factory.connect(self.directory.url, timeout=2.0)
            record = {"name": node, "urls": urls, "fingerprint": fingerprint}
            try:
                await backend.put_node(node, json.dumps(record).encode(), 120)
                assert await backend.claim(meeting, node, 120)
            finally:
                await backend.close()

        asyncio.run(write())

    def status(self) -> dict[str, Any]:
        done = run_conf("cluster", "status", "--cluster", self.directory.url, "--json")
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    def wait_status(self, ok: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        status = self.status()
        while not ok(status):
            assert time.monotonic() < deadline, (
                f"the directory never came to that within {timeout} s: {status}"
            )
            time.sleep(0.3)
            status = self.status()
        return status

    def close(self) -> None:
        self.clients.stop_all()
        for process, _ in self.nodes.values():
            process.stop()
        self.directory.close()


def node_names(status: dict[str, Any]) -> set[str]:
    return {node["name"] for node in status["nodes"]}
