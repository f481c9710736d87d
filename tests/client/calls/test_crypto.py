"""Call keys: both ends agree, media round-trips through SRTP, tampering and strangers are refused."""

from __future__ import annotations

import pytest

from conf_cli.client.calls.crypto import KeyPair, SrtpPair, decode_key
from conf_cli.errors import ConfError, ProtocolError
from conf_cli.plugin.registry import registry
from conf_cli.protocol.rtcp import Pli
from conf_cli.protocol.rtp import RtpPacket

CIPHERS = registry().ciphers


def test_both_ends_derive_mirrored_keys_and_the_same_sas() -> None:
    caller, callee = KeyPair(), KeyPair()
    mine = caller.derive("c1", callee.public, caller=True)
    theirs = callee.derive("c1", caller.public, caller=False)
    assert mine.send == theirs.receive and mine.receive == theirs.send and mine.send != mine.receive
    assert mine.check == theirs.check and mine.sas == theirs.sas and len(mine.sas) == 6
    # Another call (or a key swapped by someone in the middle) gives other keys and other digits.
    assert caller.derive("c2", callee.public, caller=True).send != mine.send
    mallory = KeyPair()
    assert mallory.derive("c1", callee.public, caller=True).check != mine.check


def test_srtp_round_trip_and_refusals() -> None:
    caller, callee = KeyPair(), KeyPair()
    a = SrtpPair(caller.derive("c1", callee.public, caller=True), CIPHERS)
    b = SrtpPair(callee.derive("c1", caller.public, caller=False), CIPHERS)
    plain = bytes(RtpPacket(96, 7, 1000, 42, b"frame" * 40))
    sealed = a.protect(plain)
    assert sealed != plain and plain[40:80] not in sealed
    assert b.unprotect(sealed) == plain
    assert a.protect(plain) == sealed  # a NACKed packet may be sent again ...
    with pytest.raises(ProtocolError):
        b.unprotect(sealed)  # ... but a replay is refused on arrival
    rtcp = bytes(Pli(1, 42))
    assert b.unprotect(a.protect(rtcp)) == rtcp
    tampered = bytearray(a.protect(bytes(RtpPacket(96, 8, 1000, 42, b"x" * 50))))
    tampered[20] ^= 1
    with pytest.raises(ProtocolError):
        b.unprotect(bytes(tampered))
    with pytest.raises(ProtocolError):
        a.unprotect(a.protect(bytes(RtpPacket(96, 9, 1000, 42, b"y" * 50))))  # our own keys are one-way


def test_bad_keys_are_protocol_errors() -> None:
    with pytest.raises(ProtocolError):
        decode_key("A" * 10)
    with pytest.raises(ProtocolError):
        KeyPair().derive("c1", "A" * 43, caller=True)  # the all-zero point


def test_without_the_srtp_cipher_plugin_a_call_cannot_carry_media() -> None:
    keys = KeyPair().derive("c1", KeyPair().public, caller=True)
    with pytest.raises(ConfError, match="no 'srtp' cipher plugin"):
        SrtpPair(keys, {})
