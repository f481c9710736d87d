"""Node records for the directory and placement tests."""

from __future__ import annotations

from typing import Any

from conf_cli.protocol.control import PROTOCOL_VERSION, encode
from conf_cli.server.directory import (
    ClusterView,
    NodeInfo,
)
from conf_cli.server.hub import Action, Ask, Deferred, Hub
from conf_cli.server.meeting import Send


def node(name: str, participants: int = 0, cpu: float = 0.0, capacity: int = 100) -> NodeInfo:
    return NodeInfo(
        name,
        (f"tcp://{name}:7450", f"zmq://{name}:7452"),
        "SHA256:" + "K" * 43,
        cpu=cpu,
        participants=participants,
        capacity=capacity,
    )


class ClusterHub:
    """A hub that is a node of a cluster, driven request by request: deferred work is done at once, the
    directory's questions wait in :attr:`asked` for the test to :meth:`answer`, and what the hub sends is
    kept in :attr:`sent` as (to whom, message)."""

    def __init__(self, hub: Hub, view: ClusterView) -> None:
        self.hub = hub
        self.view = view
        hub.cluster = view
        self.asked: list[Ask] = []
        self.sent: list[tuple[tuple[int, ...], dict[str, Any]]] = []

    def keep(self, actions: list[Action], now: float = 0.0) -> None:
        for action in actions:
            if isinstance(action, Deferred):
                self.keep(action.resume(action.work(), now), now)
            elif isinstance(action, Ask):
                self.asked.append(action)
            elif isinstance(action, Send):
                self.sent.append((action.to, action.message))

    def answer(self, answer: object) -> None:
        self.keep(self.asked.pop(0).resume(answer, 0.0))

    def last(self) -> dict[str, Any]:
        """The message the hub sent last."""
        return self.sent[-1][1]


class Node(ClusterHub):
    """Node ``a`` of a cluster, its meeting IDs handed out in order."""

    def __init__(self, reachable: bool = True, others: tuple[NodeInfo, ...] = ()) -> None:
        ids = iter(["aaa-aaaa-aaa", "bbb-bbbb-bbb", "ccc-cccc-ccc", "ddd-dddd-ddd"])
        view = ClusterView("a", "redis://r:6379/0", nodes=nodes(node("a"), *others), reachable=reachable)
        super().__init__(Hub(new_id=lambda: next(ids)), view)

    def send(self, message: dict[str, Any], cid: int = 1) -> None:
        if self.hub.meeting_of(cid) is None and cid not in self.hub._conns:
            self.hub.connected(cid, 0.0, f"10.0.0.{cid}", "tcp")
            self.keep(self.hub.received(cid, encode({"type": "hello", "protocol": PROTOCOL_VERSION}), 0.0))
        self.keep(self.hub.received(cid, encode(message), 0.0))


def nodes(*items: NodeInfo) -> dict[str, NodeInfo]:
    return {item.name: item for item in items}
