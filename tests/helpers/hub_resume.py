"""A hub with resume tokens and a record store, on a fixed clock."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from conf_cli.protocol.control import PROTOCOL_VERSION, encode
from conf_cli.server.directory import ClaimMeeting
from conf_cli.server.hub import Action, Ask, Deferred, Hub
from conf_cli.server.meeting import Send
from conf_cli.server.resume import ResumeKey

KEY = ResumeKey.from_identity(bytes(range(32)))


CLOCK = 1_800_000_000.0


class Store:
    """Meeting records in memory (the file store is tested on its own)."""

    def __init__(self) -> None:
        self.records: dict[str, bytes] = {}

    def save(self, meeting: str, data: bytes) -> None:
        self.records[meeting] = data

    def load(self, meeting: str) -> bytes | None:
        return self.records.get(meeting)

    def delete(self, meeting: str) -> None:
        self.records.pop(meeting, None)


class Server:
    """A hub driven as the edge drives it; every message sent is kept with its recipients."""

    def __init__(
        self, store: Store | None = None, key: ResumeKey | None = KEY, urls: list[str] | None = None
    ) -> None:
        self.store = store or Store()
        self.wall = CLOCK
        self.hub = Hub(resume_key=key, wall_clock=lambda: self.wall, records=self.store, urls=urls or [])
        self.sent: list[tuple[tuple[int, ...], dict[str, Any]]] = []
        self.other: list[Action] = []

    def keep(self, actions: Iterable[Action], now: float = 0.0) -> None:
        for action in actions:
            if isinstance(action, Deferred):
                self.keep(action.resume(action.work(), now), now)
            elif isinstance(action, Ask):  # a cluster node's directory: every claim is granted
                self.keep(action.resume(isinstance(action.question, ClaimMeeting) or None, now), now)
            elif isinstance(action, Send):
                self.sent.append((action.to, action.message))
            else:
                self.other.append(action)
        for meeting, data in self.hub.take_records():
            if data is None:
                self.store.delete(meeting)
            else:
                self.store.save(meeting, data)

    def send(self, cid: int, message: dict[str, Any], now: float = 0.0) -> None:
        self.keep(self.hub.received(cid, encode(message), now), now)

    def greet(self, cid: int, now: float = 0.0, scheme: str = "") -> None:
        self.keep(self.hub.connected(cid, now, f"10.0.0.{cid % 250}:5000", scheme), now)
        self.send(cid, {"type": "hello", "protocol": PROTOCOL_VERSION}, now)

    def to(self, cid: int, kind: str | None = None) -> list[dict[str, Any]]:
        return [m for to, m in self.sent if cid in to and (kind is None or m["type"] == kind)]

    def token(self, cid: int) -> str:
        return self.to(cid, "resume_token")[-1]["token"]

    def meeting(self) -> str:
        return next(m["meeting"] for _, m in self.sent if m["type"] == "meeting_created")


def meeting_of_three(server: Server) -> str:
    """Ada (host, 1), Bo (2) and Cy (3) in one meeting; Bo publishes video."""
    for cid in (1, 2, 3):
        server.greet(cid)
    server.send(1, {"type": "create", "name": "Ada", "passcode": "sesame"})
    meeting = server.meeting()
    for cid, name in ((2, "Bo"), (3, "Cy")):
        server.send(cid, {"type": "join", "meeting": meeting, "name": name, "passcode": "sesame"})
    server.send(2, {"type": "publish", "kind": "video", "ssrc": 77, "codec": "H264"})
    return meeting
