"""Key agreement for end-to-end encrypted meetings, without a network: rings pass messages by hand."""

from __future__ import annotations

import base64

import pytest

from conf_cli.client.keyring import (
    E2eeError,
    KeyRing,
    decode_key,
    encode_key,
    new_private_key,
    security_code,
)
from conf_cli.protocol.sframe import SFrameError, UnknownKey

MEETING = "k7m-q2xw-9fd"


class Room:
    """A relay as the server is: it hands public keys round and each sealed key to its recipient."""

    def __init__(self) -> None:
        self.rings: dict[str, KeyRing] = {}
        self.relayed: list[tuple[str, str, str]] = []  # (from, to, box)

    def join(self, name: str) -> KeyRing:
        ring = KeyRing(MEETING, name, new_private_key())
        snapshot = [{"name": n, "key": encode_key(r.public)} for n, r in self.rings.items()]
        ours = ring.start(snapshot)  # on ``joined``, before any sealed key reaches the newcomer
        others = list(self.rings.values())
        self.rings[name] = ring
        for other in others:
            self.deliver(other.me, other.peer_joined(name, encode_key(ring.public)))
        self.deliver(name, ours)
        return ring

    def leave(self, name: str) -> KeyRing:
        ring = self.rings.pop(name)
        for other in self.rings.values():
            self.deliver(other.me, other.peer_left(name))
        return ring

    def deliver(self, sender: str, request: dict | None) -> None:
        for entry in (request or {}).get("keys", []):
            self.relayed.append((sender, entry["to"], entry["box"]))
            if entry["to"] in self.rings:
                self.rings[entry["to"]].open(sender, entry["box"])


def test_everyone_decrypts_everyone_and_codes_match() -> None:
    room = Room()
    ada, bob, cy = room.join("ada"), room.join("bob"), room.join("cy")
    codes = {r.security_code() for r in (ada, bob, cy)}
    assert len(codes) == 1
    (code,) = codes
    assert len(code.split()) == 6 and all(len(g) == 5 and g.isdigit() for g in code.split())
    for sender in (ada, bob, cy):
        frame = sender.encrypt(b"hello from " + sender.me.encode(), b"rtp")
        for receiver in (ada, bob, cy):
            if receiver is not sender:
                assert receiver.decrypt(frame, b"rtp", sender.me) == b"hello from " + sender.me.encode()


def test_a_leaver_cannot_decrypt_what_is_sent_after() -> None:
    room = Room()
    ada, bob, cy = room.join("ada"), room.join("bob"), room.join("cy")
    before = ada.encrypt(b"before", b"")
    assert cy.decrypt(before, b"", "ada") == b"before"
    room.leave("cy")
    after = ada.encrypt(b"after", b"")
    assert bob.decrypt(after, b"", "ada") == b"after"
    with pytest.raises(UnknownKey):
        cy.decrypt(after, b"", "ada")
    # Nothing sealed after the leave was addressed to the leaver.
    assert all(to != "cy" for _, to, _ in room.relayed[-2:])
    # The code changes with the membership, and still matches among those present.
    assert ada.security_code() == bob.security_code() != cy.security_code()


def test_a_newcomer_cannot_decrypt_what_was_sent_before() -> None:
    room = Room()
    ada, bob = room.join("ada"), room.join("bob")
    before = ada.encrypt(b"before", b"")
    dan = room.join("dan")
    with pytest.raises(UnknownKey):
        dan.decrypt(before, b"", "ada")
    assert dan.decrypt(ada.encrypt(b"now", b""), b"", "ada") == b"now"
    assert bob.decrypt(before, b"", "ada") == b"before"  # in flight across the re-key: still readable


def test_older_keys_retire_once_a_newer_one_is_used() -> None:
    room = Room()
    ada, bob = room.join("ada"), room.join("bob")
    old = ada.encrypt(b"old", b"")
    room.join("cy")
    assert len(bob.receive.kids("ada")) == 2
    assert bob.decrypt(ada.encrypt(b"new", b""), b"", "ada") == b"new"
    assert len(bob.receive.kids("ada")) == 1
    with pytest.raises(UnknownKey):
        bob.decrypt(old, b"", "ada")


def test_a_substituted_key_shows_in_the_security_code() -> None:
    room = Room()
    ada, bob = room.join("ada"), room.join("bob")
    mallory = new_private_key()
    # A server that gives ada its own key in place of bob's: ada's code no longer matches bob's.
    ada.peer_joined("bob", encode_key(KeyRing(MEETING, "x", mallory).public))
    assert ada.security_code() != bob.security_code()


def test_sealed_keys_are_bound_to_sender_recipient_and_order() -> None:
    room = Room()
    ada, bob = room.join("ada"), room.join("bob")
    room.join("cy")
    _, _, box = next(r for r in reversed(room.relayed) if r[:2] == ("cy", "bob"))
    with pytest.raises(E2eeError, match="older than one already received"):
        bob.open("cy", box)  # a replay
    with pytest.raises(E2eeError, match="does not open"):
        bob.open("ada", box)  # claimed to come from someone else
    with pytest.raises(E2eeError, match="does not open"):
        ada.open("cy", box)  # sealed for bob, not ada
    raw = bytearray(base64.b64decode(box))
    raw[-1] ^= 1
    with pytest.raises(E2eeError, match="does not open"):
        bob.open("cy", base64.b64encode(bytes(raw)).decode())
    with pytest.raises(E2eeError, match="wrong length"):
        bob.open("cy", base64.b64encode(b"short").decode())
    with pytest.raises(E2eeError, match="not in the meeting"):
        bob.open("eve", box)


def test_a_frame_under_another_senders_key_is_refused() -> None:
    room = Room()
    ada, bob = room.join("ada"), room.join("bob")
    room.join("cy")
    frame = ada.encrypt(b"x", b"")
    with pytest.raises(E2eeError, match="under ada's key"):
        bob.decrypt(frame, b"", "cy")
    with pytest.raises(SFrameError):
        bob.decrypt(frame, b"other metadata", "ada")


def test_public_key_encoding_is_checked() -> None:
    raw = KeyRing(MEETING, "a", new_private_key()).public
    assert decode_key(encode_key(raw)) == raw
    for bad in ("", "x" * 44, encode_key(raw)[:-4], 7, "=" * 44):
        with pytest.raises(E2eeError):
            decode_key(bad)
    ring = KeyRing(MEETING, "a", new_private_key())
    with pytest.raises(E2eeError, match="same as ours"):
        ring.peer_joined("b", encode_key(ring.public))
    low_order = encode_key(bytes(32))  # well-formed, but no shared secret comes of it
    with pytest.raises(E2eeError, match="not usable"):
        ring.peer_joined("z", low_order)
    assert "z" not in ring.peers
    # In the snapshot a bad key leaves that one participant out, and ours still goes to the rest.
    other = KeyRing(MEETING, "b", new_private_key())
    fresh = KeyRing(MEETING, "c", new_private_key())
    sent = fresh.start([{"name": "z", "key": low_order}, {"name": "b", "key": encode_key(other.public)}])
    assert sent is not None and [k["to"] for k in sent["keys"]] == ["b"]
    assert fresh.unusable == ["z's e2ee key is not usable"]


def test_security_code_ignores_order() -> None:
    people = [(name, bytes([i]) * 32) for i, name in enumerate(("ada", "bob", "cy", "dee"))]
    assert security_code(MEETING, people) == security_code(MEETING, list(reversed(people)))


def test_security_code_binds_each_name_to_its_key() -> None:
    # The security review: a server that tells one participant that ada's key is bob's and bob's is
    # ada's (the same keys, the names swapped) must change the code on that screen.
    ada_key, bob_key, cy_key = (bytes([i]) * 32 for i in (1, 2, 3))
    honest = security_code(MEETING, [("ada", ada_key), ("bob", bob_key), ("cy", cy_key)])
    swapped = security_code(MEETING, [("ada", bob_key), ("bob", ada_key), ("cy", cy_key)])
    assert honest != swapped
    # Names and keys cannot be shifted into each other either: the name is length-prefixed.
    assert security_code(MEETING, [("a", b"b" + bytes(31))]) != security_code(MEETING, [("ab", bytes(32))])
    assert security_code(MEETING, [("ada", ada_key)]) != security_code("other-meeting", [("ada", ada_key)])


def test_a_swap_of_names_shows_in_the_key_rings_code() -> None:
    room = Room()
    ada, bob, cy = room.join("ada"), room.join("bob"), room.join("cy")
    # cy learns the keys from a server that swapped who is who.
    fooled = KeyRing(MEETING, "cy", cy._private)
    fooled.start(
        [
            {"name": "ada", "key": encode_key(bob.public)},
            {"name": "bob", "key": encode_key(ada.public)},
        ]
    )
    assert ada.security_code() == bob.security_code() == cy.security_code()
    assert fooled.security_code() != ada.security_code()
