"""SFrame on RTP payloads: the publisher's side encrypts, a receiver decrypts, waits for keys, and asks
for a keyframe as soon as the missing key arrives."""

from __future__ import annotations

from conf_cli.client.keyring import KeyRing, encode_key, new_private_key
from conf_cli.client.media.e2ee import protect, rtp_metadata, unprotect
from conf_cli.client.media.receiver import RemoteTrack
from conf_cli.media.h264 import AccessUnit
from conf_cli.protocol.rtcp import Pli, parse_compound
from conf_cli.protocol.rtp import RtpPacket
from conf_cli.protocol.sframe import encode_header, parse_header

SSRC = 0x1234
SPS = bytes([0x67, 0x42, 0xC0, 0x1E])
PPS = bytes([0x68, 0xCE, 0x3C, 0x80])
IDR = bytes([0x65, 0x88, 0x84, 0x00])


def pair() -> tuple[KeyRing, KeyRing, dict | None]:
    """Bob (the sender) and Ada; bob's sealed key for Ada, not yet delivered."""
    ada = KeyRing("m", "ada", new_private_key())
    bob = KeyRing("m", "bob", new_private_key())
    ada.start([{"name": "bob", "key": encode_key(bob.public)}])
    sealed = bob.start([{"name": "ada", "key": encode_key(ada.public)}])
    return ada, bob, sealed


def rtp(seq: int, payload: bytes, marker: bool = True) -> bytes:
    return bytes(RtpPacket(96, seq, 9000, SSRC, payload, marker=marker))


def test_the_payload_is_encrypted_and_bound_to_its_header() -> None:
    ada, bob, sealed = pair()
    assert sealed is not None
    ada.open("bob", sealed["keys"][0]["box"])
    wire = RtpPacket.parse(protect(bob, rtp(100, IDR)))
    assert (wire.payload_type, wire.sequence_number, wire.timestamp, wire.ssrc, wire.marker) == (
        96,
        100,
        9000,
        SSRC,
        True,
    )
    kid, ctr, at = parse_header(wire.payload)
    assert (kid, ctr) == (bob.sender.kid, 0) and IDR not in wire.payload  # type: ignore[union-attr]
    assert len(wire.payload) == at + len(IDR) + 16
    assert len(rtp_metadata(wire)) == 11
    moved = RtpPacket.parse(bytes(wire))
    moved.sequence_number = 101  # the server may not move a payload elsewhere in the stream
    try:
        unprotect(ada, moved, "bob")
        raise AssertionError("a moved payload decrypted")
    except ValueError as exc:
        assert "authentication" in str(exc)
    assert unprotect(ada, wire, "bob").payload == IDR


def test_packets_before_the_key_are_dropped_and_the_key_brings_a_keyframe_request() -> None:
    ada, bob, sealed = pair()
    assert sealed is not None
    sent: list[bytes] = []
    receiver = RemoteTrack(
        {"name": "bob", "kind": "video", "ssrc": SSRC, "codec": "H264"},
        local_ssrc=7,
        send_media=sent.append,
        notify=lambda event: None,
        ordered=True,
        unprotect=lambda packet: unprotect(ada, packet, "bob"),
    )
    for seq, payload in enumerate((SPS, PPS, IDR)):
        receiver.receive(RtpPacket.parse(protect(bob, rtp(seq, payload, marker=payload == IDR))))
    assert receiver.no_key == 3 and receiver.stats.packets_received == 0 and receiver._queue.empty()
    stats = receiver.stats_event()
    assert (stats["no_key"], stats["undecryptable"]) == (3, 0)

    ada.open("bob", sealed["keys"][0]["box"])
    receiver.key_arrived()
    assert parse_compound(sent[-1]) == [Pli(7, SSRC)]
    receiver.key_arrived()  # once per wait, not per key
    assert len(sent) == 1

    for seq, payload in enumerate((SPS, PPS, IDR), start=3):
        receiver.receive(RtpPacket.parse(protect(bob, rtp(seq, payload, marker=payload == IDR))))
    unit = receiver._queue.get_nowait()
    assert isinstance(unit, AccessUnit) and unit.keyframe and unit.data.endswith(IDR)

    assert bob.sender is not None
    forged = RtpPacket.parse(rtp(6, encode_header(bob.sender.kid, 99) + b"x" * 20))  # no valid tag
    receiver.receive(forged)
    assert receiver.undecryptable == 1 and receiver.no_key == 3
