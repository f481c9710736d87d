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


class Node:
    """A hub that is node ``a`` of a cluster, driven request by request; the directory's answers are
    given by the test."""

    def __init__(self, reachable: bool = True, others: tuple[NodeInfo, ...] = ()) -> None:
        ids = iter(["aaa-aaaa-aaa", "bbb-bbbb-bbb", "ccc-cccc-ccc", "ddd-dddd-ddd"])
        self.hub = Hub(new_id=lambda: next(ids))
        self.view = ClusterView("a", "redis://r:6379/0", nodes=nodes(node("a"), *others), reachable=reachable)
        self.hub.cluster = self.view
        self.asked: list[Ask] = []
        self.sent: list[dict[str, Any]] = []

    def keep(self, actions: list[Action], now: float = 0.0) -> None:
        for action in actions:
            if isinstance(action, Deferred):
                self.keep(action.resume(action.work(), now), now)
            elif isinstance(action, Ask):
                self.asked.append(action)
            elif isinstance(action, Send):
                self.sent.append(action.message)

    def answer(self, answer: object) -> None:
        self.keep(self.asked.pop(0).resume(answer, 0.0))

    def send(self, message: dict[str, Any], cid: int = 1) -> None:
        if self.hub.meeting_of(cid) is None and cid not in self.hub._conns:
            self.hub.connected(cid, 0.0, f"10.0.0.{cid}", "tcp")
            self.keep(self.hub.received(cid, encode({"type": "hello", "protocol": PROTOCOL_VERSION}), 0.0))
        self.keep(self.hub.received(cid, encode(message), 0.0))

    def last(self) -> dict[str, Any]:
        return self.sent[-1]


def nodes(*items: NodeInfo) -> dict[str, NodeInfo]:
    return {item.name: item for item in items}
