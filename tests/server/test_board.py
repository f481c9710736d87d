"""The server's call rules, without a network: ringing, accept, decline, busy, timeout, hang-up, paths."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from conf_cli.errors import RequestRefused
from conf_cli.server.call_board import CallBoard
from conf_cli.server.meeting import Send

KEY_A = "A" * 42 + "Q"
KEY_B = "B" * 42 + "Q"
COMMIT_A = "C" * 42 + "Q"  # the commitment the caller sends instead of its key


def board() -> CallBoard:
    numbers = itertools.count(1)
    calls = CallBoard(new_id=lambda: f"c{next(numbers)}", stun_port=3478)
    for cid, name in ((1, "ada"), (2, "bob"), (3, "cy")):
        calls.handle(cid, {"type": "online", "name": name}, 0.0)
    return calls


def to(sends: list[Send]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    for send in sends:
        for cid in send.to:
            out.setdefault(cid, []).append(send.message)
    return out


def call(calls: CallBoard, caller: int, callee: str, now: float = 0.0, **extra: Any) -> dict[int, Any]:
    message = {"type": "call", "to": callee, "commitment": COMMIT_A, "candidates": ["10.0.0.1:4000"], **extra}
    return to(calls.handle(caller, message, now))


def accept(calls: CallBoard, cid: int, call_id: str) -> dict[int, Any]:
    message = {"type": "call_accept", "call": call_id, "key": KEY_B, "candidates": ["10.0.1.1:5000"]}
    return to(calls.handle(cid, message, 1.0))


def test_online_names_are_unique_and_report_the_stun_port() -> None:
    with pytest.raises(RequestRefused) as refused:
        CallBoard().handle(1, {"type": "online", "name": "ada"}, 0)  # no call port: no calls
    assert refused.value.code == "unavailable"
    calls = board()
    assert to(calls.handle(4, {"type": "online", "name": "dan"}, 0))[4] == [
        {"type": "online", "name": "dan", "stun_port": 3478}
    ]
    with pytest.raises(RequestRefused) as refused:
        calls.handle(5, {"type": "online", "name": "ada"}, 0)
    assert refused.value.code == "name_taken"
    with pytest.raises(RequestRefused) as refused:
        calls.handle(9, {"type": "call", "to": "ada", "commitment": COMMIT_A, "candidates": []}, 0)
    assert refused.value.code == "not_online"


def test_a_call_rings_and_once_accepted_both_get_keys_candidates_and_relay_tokens() -> None:
    calls = board()
    rung = call(calls, 1, "bob")
    assert rung[1] == [{"type": "call_ringing", "call": "c1", "peer": "bob", "timeout": 30.0}]
    assert rung[2][0]["type"] == "call_incoming" and rung[2][0]["peer"] == "ada"
    assert rung[2][0]["commitment"] == COMMIT_A and rung[2][0]["candidates"] == ["10.0.0.1:4000"]
    assert "key" not in rung[2][0]  # the callee sees only the caller's commitment before it answers
    with pytest.raises(RequestRefused):  # nothing to reveal before the callee has answered
        calls.handle(1, {"type": "call_reveal", "call": "c1", "key": KEY_A}, 0.5)
    accepted = accept(calls, 2, "c1")
    for cid, key, candidates, peer in (
        (1, KEY_B, ["10.0.1.1:5000"], "bob"),
        (2, None, ["10.0.0.1:4000"], "ada"),
    ):
        (message,) = accepted[cid]
        assert message["type"] == "call_accepted" and message["stun_port"] == 3478 and message["peer"] == peer
        assert message.get("key") == key and message["candidates"] == candidates
        assert len(bytes.fromhex(message["relay"])) == 16
    # The caller's key reaches the callee only now, once, and only from the caller.
    with pytest.raises(RequestRefused):
        calls.handle(2, {"type": "call_reveal", "call": "c1", "key": KEY_B}, 1.5)
    revealed = to(calls.handle(1, {"type": "call_reveal", "call": "c1", "key": KEY_A}, 1.5))
    assert revealed == {2: [{"type": "call_reveal", "call": "c1", "key": KEY_A}]}
    with pytest.raises(RequestRefused):
        calls.handle(1, {"type": "call_reveal", "call": "c1", "key": KEY_A}, 1.5)
    assert accepted[1][0]["relay"] != accepted[2][0]["relay"]
    assert calls.relay.stats.allocations == 1
    # Only the callee accepts, once.
    with pytest.raises(RequestRefused):
        accept(calls, 2, "c1")
    # Path reports travel between the two ends; the caller chooses.
    assert to(calls.handle(2, {"type": "call_connected", "call": "c1"}, 2))[1] == [
        {"type": "call_connected", "call": "c1"}
    ]
    assert to(calls.handle(1, {"type": "call_path", "call": "c1", "path": "direct"}, 2))[2] == [
        {"type": "call_path", "call": "c1", "path": "direct"}
    ]
    with pytest.raises(RequestRefused):
        calls.handle(2, {"type": "call_path", "call": "c1", "path": "relayed"}, 2)
    assert calls.stats.direct == 1
    ended = to(calls.handle(2, {"type": "call_hangup", "call": "c1"}, 3))
    assert ended[1][0] == {"type": "call_ended", "call": "c1", "peer": "bob", "reason": "hangup"}
    assert ended[2][0]["type"] == "call_ended"
    assert calls.relay.stats.allocations == 0 and not calls.in_call(1) and not calls.in_call(2)


def test_decline_busy_unknown_and_self() -> None:
    calls = board()
    call(calls, 1, "bob")
    declined = to(calls.handle(2, {"type": "call_decline", "call": "c1"}, 1))
    assert declined[1] == [{"type": "call_declined", "call": "c1", "peer": "bob", "reason": "declined"}]
    assert declined[2][0]["type"] == "call_ended"
    call(calls, 1, "bob")  # c2 rings bob
    busy = call(calls, 3, "bob")
    assert busy[3] == [{"type": "call_declined", "call": "c3", "peer": "bob", "reason": "busy"}]
    assert 2 not in busy
    with pytest.raises(RequestRefused) as refused:
        call(calls, 1, "cy")
    assert refused.value.code == "busy"
    with pytest.raises(RequestRefused) as refused:
        call(calls, 3, "zed")
    assert refused.value.code == "unknown_peer"
    with pytest.raises(RequestRefused):
        call(calls, 3, "cy")
    with pytest.raises(RequestRefused) as refused:
        calls.handle(3, {"type": "call_hangup", "call": "c2"}, 1)  # not cy's call
    assert refused.value.code == "unknown_call"


def test_an_unanswered_call_times_out() -> None:
    calls = board()
    call(calls, 1, "bob", now=10.0, timeout=5)
    assert calls.tick(14.9) == []
    timed_out = to(calls.tick(15.0))
    assert timed_out[1] == [{"type": "call_declined", "call": "c1", "peer": "bob", "reason": "timeout"}]
    assert timed_out[2] == [{"type": "call_ended", "call": "c1", "peer": "ada", "reason": "timeout"}]
    assert not calls.in_call(1) and calls.stats.declined == 1


def test_a_lost_connection_ends_its_call_and_takes_its_name() -> None:
    calls = board()
    call(calls, 1, "bob")
    assert to(calls.disconnected(2))[1] == [
        {"type": "call_declined", "call": "c1", "peer": "bob", "reason": "offline"}
    ]
    call(calls, 1, "cy")
    accept(calls, 3, "c2")
    assert to(calls.disconnected(1))[3] == [
        {"type": "call_ended", "call": "c2", "peer": "ada", "reason": "disconnected"}
    ]
    assert calls.name_of(1) is None
    calls.handle(7, {"type": "online", "name": "ada"}, 0)  # the name is free again
