"""The media manager in an E2EE meeting: it sends sealed keys on every membership change, installs those
it receives, reports the security code, and says so when a key cannot be used."""

from __future__ import annotations

import json

from conf_cli.client.keyring import KeyRing, encode_key
from conf_cli.client.link import Client
from conf_cli.client.media.manager import MediaManager
from conf_cli.client.state import receive
from conf_cli.plugin.registry import create_registry
from conf_cli.plugin.transport import Link
from conf_cli.protocol.control import Message
from conf_cli.urls import parse_server_url

MEETING = "abc-defg-hjk"


class Captured(Link):
    media_ordered = True

    def __init__(self) -> None:
        super().__init__("test")
        self.control: list[Message] = []
        self.media: list[bytes] = []

    def send_control(self, data: bytes) -> None:
        self.control.append(json.loads(data))

    def send_media(self, packet: bytes) -> bool:
        self.media.append(packet)
        return True

    def close(self) -> None:
        pass

    @property
    def is_closing(self) -> bool:
        return False


def joined(me: str, participants: list[Message]) -> Message:
    """A ``joined`` as the link hands it on; the fields this test does not look at are filled in."""
    entries = [{"role": "member", **participant} for participant in participants]
    message = {"type": "joined", "name": me, "role": "member", "meeting": MEETING, "participants": entries}
    return receive({**message, "locked": False, "forbidden": []})


def e2ee_client(name: str) -> tuple[Client, Captured]:
    client = Client(create_registry(), parse_server_url("tcp://127.0.0.1:1"))
    link = Captured()
    client.link = link
    client.meeting, client.name, client.e2ee = MEETING, name, True
    return client, link


def peer(client: Client) -> str:
    return encode_key(KeyRing(MEETING, "x", client.e2ee_private).public)


async def test_keys_go_out_on_every_change_and_the_code_follows() -> None:
    ada, ada_link = e2ee_client("ada")
    bob, bob_link = e2ee_client("bob")
    ada_events: list[Message] = []
    bob_events: list[Message] = []
    ada_media = MediaManager(ada, ada_events.append)
    bob_media = MediaManager(bob, bob_events.append)
    assert ada_media.keys is not None and bob_media.keys is not None

    ada_media.handle_event(joined("ada", [{"name": "ada", "key": peer(ada)}]))
    assert ada_link.control == []  # alone: nobody to seal for
    assert ada_events[-1]["participants"] == ["ada"]

    everyone = [{"name": "ada", "key": peer(ada)}, {"name": "bob", "key": peer(bob)}]
    bob_media.handle_event(joined("bob", everyone))
    ada_media.handle_event(
        receive({"type": "participant_joined", "name": "bob", "role": "member", "key": peer(bob)})
    )
    (to_bob,) = ada_link.control[-1]["keys"]
    (to_ada,) = bob_link.control[-1]["keys"]
    assert to_bob["to"] == "bob" and to_ada["to"] == "ada"
    assert (
        ada_events[-1]
        == bob_events[-1]
        == {
            "type": "security_code",
            "code": ada_media.keys.security_code(),
            "participants": ["ada", "bob"],
        }
    )
    shown = len(bob_events)
    bob_media.handle_event(receive({"type": "e2ee_key", "from": "ada", "box": to_bob["box"]}))
    assert len(bob_events) == shown  # a key that opens is silent
    frame = ada_media.keys.encrypt(b"hi", b"")
    assert bob_media.keys.decrypt(frame, b"", "ada") == b"hi"

    # A replayed or foreign sealed key is an e2ee error; the code is not repeated for it.
    bob_media.handle_event(receive({"type": "e2ee_key", "from": "ada", "box": to_bob["box"]}))
    assert bob_events[-1]["type"] == "error" and bob_events[-1]["code"] == "e2ee"
    assert "older than one already received" in bob_events[-1]["message"]

    # A newcomer with an unusable key is reported and left out; the others still get our key.
    ada_media.handle_event(
        receive({"type": "participant_joined", "name": "eve", "role": "member", "key": "bad"})
    )
    assert ada_events[-2]["code"] == "e2ee" and "eve's e2ee key" in ada_events[-2]["message"]
    assert ada_events[-1]["participants"] == ["ada", "bob"]

    ada_media.handle_event(receive({"type": "participant_left", "name": "bob", "reason": "left"}))
    assert ada_events[-1]["participants"] == ["ada"]
    await ada_media.close()
    await bob_media.close()


async def test_a_plain_meeting_has_no_keys() -> None:
    client, link = e2ee_client("ada")
    client.e2ee = False
    events: list[Message] = []
    media = MediaManager(client, events.append)
    media.handle_event(joined("ada", [{"name": "ada"}]))
    media.handle_event(receive({"type": "participant_joined", "name": "bob", "role": "member"}))
    assert media.keys is None and link.control == [] and events == []
    await media.close()


async def test_join_always_offers_the_public_key_and_create_asks_for_e2ee() -> None:
    client, link = e2ee_client("ada")
    client.e2ee = False
    client.events.put_nowait({"type": "joined", "meeting": MEETING, "name": "ada", "e2ee": True})
    await client.join(MEETING, "ada", "pw")
    assert link.control[-1]["e2ee_key"] == peer(client) and client.e2ee is True

    client.events.put_nowait({"type": "meeting_created", "meeting": MEETING, "passcode": "pw", "e2ee": True})
    client.events.put_nowait({"type": "joined", "meeting": MEETING, "name": "ada", "e2ee": True})
    await client.create("ada", e2ee=True)
    assert link.control[-1] == {"type": "create", "name": "ada", "e2ee": True, "e2ee_key": peer(client)}

    client.events.put_nowait({"type": "meeting_created", "meeting": MEETING, "passcode": "pw"})
    client.events.put_nowait({"type": "joined", "meeting": MEETING, "name": "ada"})
    await client.create("ada")
    assert link.control[-1] == {"type": "create", "name": "ada"} and client.e2ee is False
