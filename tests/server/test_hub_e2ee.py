"""End-to-end encrypted meetings on the server: public keys in the snapshot, sealed keys relayed, refusals."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from conf_cli.server.hub import Hub
from tests.helpers.hub import MID_A, error, greet, make_hub, send, to

KEYS = {name: base64.b64encode(bytes([i + 1]) * 32).decode() for i, name in enumerate(("Ada", "Bob", "Cy"))}


pytestmark = pytest.mark.usefixtures("cheap_scrypt")


def e2ee_meeting() -> tuple[Hub, list[dict[str, Any]], list[dict[str, Any]]]:
    """Ada (1) creates an E2EE meeting, Bob (2) joins: what Ada and Bob were sent."""
    hub = make_hub(MID_A)
    greet(hub, 1)
    create = {"type": "create", "name": "Ada", "passcode": "pw-123", "e2ee": True, "e2ee_key": KEYS["Ada"]}
    ada = to(send(hub, 1, create), 1)
    greet(hub, 2)
    joining = send(
        hub,
        2,
        {"type": "join", "meeting": MID_A, "name": "Bob", "passcode": "pw-123", "e2ee_key": KEYS["Bob"]},
    )
    return hub, ada + to(joining, 1), to(joining, 2)


def test_the_snapshot_says_e2ee_and_carries_every_public_key() -> None:
    _, ada, bob = e2ee_meeting()
    assert ada[0] == {"type": "meeting_created", "meeting": MID_A, "passcode": "pw-123", "e2ee": True}
    assert ada[1]["e2ee"] is True
    assert ada[2] == {"type": "participant_joined", "name": "Bob", "role": "member", "key": KEYS["Bob"]}
    joined = bob[0]
    assert joined["type"] == "joined" and joined["e2ee"] is True
    assert [(p["name"], p["key"]) for p in joined["participants"]] == [
        ("Ada", KEYS["Ada"]),
        ("Bob", KEYS["Bob"]),
    ]


def test_a_client_without_a_key_is_refused_clearly() -> None:
    hub, _, _ = e2ee_meeting()
    greet(hub, 3)
    request = {"type": "join", "meeting": MID_A, "name": "Cy", "passcode": "pw-123"}
    assert to(send(hub, 3, request), 3) == [
        error(
            "e2ee_required",
            f"meeting {MID_A} is end-to-end encrypted and this client offered no E2EE key; "
            "join with a client that supports E2EE",
            "join",
        )
    ]
    assert hub.meeting_of(3) is None
    greet(hub, 4)
    assert to(send(hub, 4, {"type": "create", "name": "Dee", "e2ee": True}), 4) == [
        error("bad_request", "an end-to-end encrypted meeting needs your e2ee_key", "create")
    ]


def test_sealed_keys_go_each_to_its_one_recipient() -> None:
    hub, _, _ = e2ee_meeting()
    greet(hub, 3)
    send(
        hub, 3, {"type": "join", "meeting": MID_A, "name": "Cy", "passcode": "pw-123", "e2ee_key": KEYS["Cy"]}
    )
    boxes = [{"to": "bob", "box": "Ym9i"}, {"to": "Cy", "box": "Y3k="}, {"to": "Gone", "box": "eA=="}]
    actions = send(hub, 1, {"type": "e2ee_keys", "keys": boxes})
    assert to(actions, 2) == [{"type": "e2ee_key", "from": "Ada", "box": "Ym9i"}]
    assert to(actions, 3) == [{"type": "e2ee_key", "from": "Ada", "box": "Y3k="}]
    assert to(actions, 1) == []
    # Never to oneself.
    assert to(send(hub, 2, {"type": "e2ee_keys", "keys": [{"to": "Bob", "box": "eA=="}]}), 2) == []


def test_public_keys_are_not_kept_in_plain_meetings_and_sealed_keys_are_refused() -> None:
    hub = make_hub(MID_A)
    greet(hub, 1)
    created = to(send(hub, 1, {"type": "create", "name": "Ada", "e2ee_key": KEYS["Ada"]}), 1)
    assert "e2ee" not in created[1] and "key" not in created[1]["participants"][0]
    assert to(send(hub, 1, {"type": "e2ee_keys", "keys": [{"to": "Bob", "box": "eA=="}]}), 1) == [
        error("bad_request", f"meeting {MID_A} is not end-to-end encrypted", "e2ee_keys")
    ]
