"""The hub pump: drive the sans-I/O hub as its asyncio edge would, without sockets or threads.

``send`` hands the hub one message and carries out every :class:`Deferred` (passcode hashing, which the
edge runs in a thread) inline; ``greet``, ``create`` and ``join`` walk a connection through the handshake.
Tests that create or join meetings use the ``cheap_scrypt`` fixture (tests/conftest.py).
"""

from __future__ import annotations

from itertools import count
from typing import Any

from conf_cli import __version__
from conf_cli.protocol.control import PROTOCOL_VERSION, encode
from conf_cli.server.hub import Action, Close, Deferred, Hub
from conf_cli.server.meeting import Send

MID_A = "aaa-bbbb-ccc"
MID_B = "ddd-eeee-fff"
WELCOME = {"type": "welcome", "protocol": PROTOCOL_VERSION, "server": f"conf/{__version__}", "heartbeat": 2.0}


def make_hub(*ids: str, **kwargs: Any) -> Hub:
    """A hub that hands out ``ids`` in order (then ``m-1``, ``m-2`` …) and the passcode ``sesame``."""
    queue = list(ids)
    numbers = count(1)
    return Hub(
        new_id=lambda: queue.pop(0) if queue else f"m-{next(numbers)}",
        new_passcode=lambda: "sesame",
        **kwargs,
    )


def settle(actions: list[Action], now: float = 0.0) -> list[Action]:
    """Carry out every :class:`Deferred` inline, as the edge would in a thread, and collect the rest."""
    done: list[Action] = []
    for action in actions:
        if isinstance(action, Deferred):
            done += settle(action.resume(action.work(), now), now)
        else:
            done.append(action)
    return done


def send(hub: Hub, cid: int, message: dict[str, Any] | bytes, now: float = 0.0) -> list[Action]:
    data = message if isinstance(message, bytes) else encode(message)
    return settle(hub.received(cid, data, now), now)


def greet(hub: Hub, cid: int, now: float = 0.0) -> None:
    hub.connected(cid, now, f"peer-{cid}")
    assert send(hub, cid, {"type": "hello", "protocol": PROTOCOL_VERSION}, now) == [Send((cid,), WELCOME)]


def create(hub: Hub, cid: int, name: str, passcode: str | None = "pw-123", now: float = 0.0) -> str:
    greet(hub, cid, now)
    request: dict[str, Any] = {"type": "create", "name": name}
    if passcode is not None:
        request["passcode"] = passcode
    actions = send(hub, cid, request, now)
    created = actions[0]
    assert isinstance(created, Send) and created.message["type"] == "meeting_created"
    return created.message["meeting"]


def join(
    hub: Hub, cid: int, meeting: str, name: str, passcode: str = "pw-123", now: float = 0.0
) -> list[Action]:
    greet(hub, cid, now)
    actions = send(hub, cid, {"type": "join", "meeting": meeting, "name": name, "passcode": passcode}, now)
    assert [a.message["type"] for a in actions if isinstance(a, Send)][:1] == ["joined"], actions
    return actions


def to(actions: list[Action], cid: int) -> list[dict[str, Any]]:
    """The messages ``actions`` send to ``cid``, in order."""
    return [a.message for a in actions if isinstance(a, Send) and cid in a.to]


def error(code: str, message: str, re: str, **extra: Any) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message, "re": re, **extra}


def closes(actions: list[Action]) -> list[int]:
    return [a.conn for a in actions if isinstance(a, Close)]


def three_in_a_meeting() -> Hub:
    """Ada (cid 1) hosts MID_A; Bob (2) and Cy (3) joined."""
    hub = make_hub(MID_A)
    create(hub, 1, "Ada")
    join(hub, 2, MID_A, "Bob")
    join(hub, 3, MID_A, "Cy")
    return hub
