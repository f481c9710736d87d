"""STUN messages against the RFC 5769 test vectors, round trips, and every malformed case."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conf_cli.errors import ProtocolError
from conf_cli.protocol.stun import (
    BINDING,
    CLASS_REQUEST,
    CLASS_SUCCESS,
    MAX_STUN_BYTES,
    StunMessage,
    binding_request,
    binding_success,
    is_stun,
)

PASSWORD = b"VOkJxbRl1RmTxUk/WvJxBt"
TRANSACTION = bytes.fromhex("b7e7a701bc34d686fa87dfae")

# RFC 5769 section 2.1: sample request (SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME "evtj:h6vY",
# MESSAGE-INTEGRITY, FINGERPRINT); padding bytes are spaces.
REQUEST = bytes.fromhex(
    """
    000100582112a442b7e7a701bc34d686fa87dfae
    80220010 5354554e20746573742063 6c69656e74
    00240004 6e0001ff
    80290008 932ff9b151263b36
    00060009 6576746a3a68367659202020
    00080014 9aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2
    80280004 e57a3bcf
    """
)

# RFC 5769 section 2.2: sample IPv4 response, mapped address 192.0.2.1 port 32853.
RESPONSE_V4 = bytes.fromhex(
    """
    0101003c2112a442b7e7a701bc34d686fa87dfae
    8022000b 7465737420766563746f7220
    00200008 0001a147e112a643
    00080014 2b91f599fd9e90c38c7489f92af9ba53f06be7d7
    80280004 c07d4c96
    """
)

# RFC 5769 section 2.3: sample IPv6 response, 2001:db8:1234:5678:11:2233:4455:6677 port 32853.
RESPONSE_V6 = bytes.fromhex(
    """
    010100482112a442b7e7a701bc34d686fa87dfae
    8022000b 7465737420766563746f7220
    00200014 0002a1470113a9faa5d3f179bc25f4b5bed2b9d9
    00080014 a382954e4be67bf11784c97c8292c275bfe3ed41
    80280004 c8fb0b4c
    """
)


def test_rfc5769_request() -> None:
    message = StunMessage.parse(REQUEST)
    assert (message.method, message.message_class) == (BINDING, CLASS_REQUEST)
    assert message.transaction_id == TRANSACTION
    assert message.username == "evtj:h6vY"
    assert message.software == "STUN test client"
    assert message.fingerprint
    assert message.check_integrity(PASSWORD)
    assert not message.check_integrity(b"wrong password")
    assert [kind for kind, _ in message.attributes] == [0x8022, 0x0024, 0x8029, 0x0006]


@pytest.mark.parametrize(
    ("data", "address"),
    [
        (RESPONSE_V4, ("192.0.2.1", 32853)),
        (RESPONSE_V6, ("2001:db8:1234:5678:11:2233:4455:6677", 32853)),
    ],
)
def test_rfc5769_responses(data: bytes, address: tuple[str, int]) -> None:
    message = StunMessage.parse(data)
    assert (message.method, message.message_class) == (BINDING, CLASS_SUCCESS)
    assert message.software == "test vector"
    assert message.xor_mapped_address == address
    assert message.check_integrity(PASSWORD)


@pytest.mark.parametrize("data", [REQUEST, RESPONSE_V4, RESPONSE_V6])
def test_rfc5769_vectors_are_rewritten_byte_for_byte(data: bytes) -> None:
    parsed = StunMessage.parse(data)
    again = StunMessage(
        parsed.method,
        parsed.message_class,
        parsed.transaction_id,
        parsed.attributes,
        key=PASSWORD,
        fingerprint=True,
        padding_byte=0x20,
    )
    assert bytes(again) == data


def test_binding_response_built_from_parts_matches_the_vector() -> None:
    built = binding_success(TRANSACTION, "192.0.2.1", 32853, PASSWORD, software="test vector")
    built.padding_byte = 0x20
    assert bytes(built) == RESPONSE_V4
    built6 = binding_success(
        TRANSACTION, "2001:db8:1234:5678:11:2233:4455:6677", 32853, PASSWORD, software="test vector"
    )
    built6.padding_byte = 0x20
    assert bytes(built6) == RESPONSE_V6


def test_binding_request_round_trip_with_a_binary_key() -> None:
    token = bytes(range(16))
    data = bytes(binding_request(b"\x01" * 12, token.hex(), token))
    assert is_stun(data)
    message = StunMessage.parse(data)
    assert message.username == token.hex() and message.check_integrity(token)
    assert message.fingerprint and not message.check_integrity(bytes(16))


def test_unsigned_message_fails_integrity() -> None:
    data = bytes(StunMessage(BINDING, CLASS_REQUEST, b"\x00" * 12))
    assert data == bytes.fromhex("000100002112a442") + b"\x00" * 12
    assert not StunMessage.parse(data).check_integrity(b"key")


def test_rtp_and_short_data_are_not_stun() -> None:
    assert not is_stun(bytes.fromhex("80e01234deadbeef12345678") + bytes(20))
    assert not is_stun(REQUEST[:19])
    assert not is_stun(REQUEST[:4] + b"\x00\x00\x00\x00" + REQUEST[8:])


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes((data[index] ^ 0x01,)) + data[index + 1 :]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (REQUEST[:10], "too short"),
        (REQUEST + bytes(4), "length field says"),
        (b"\xc0" + REQUEST[1:], "top two bits"),
        (REQUEST[:4] + b"\x21\x12\xa4\x43" + REQUEST[8:], "magic cookie"),
        (REQUEST[:2] + b"\x00\x57" + REQUEST[4:], "not a multiple of 4"),
        (_flip(REQUEST, 30), "FINGERPRINT does not match"),
        (bytes(MAX_STUN_BYTES + 4), "exceeds"),
        (
            bytes.fromhex("000100082112a442") + TRANSACTION + bytes.fromhex("00060010 41414141"),
            "runs past the end",
        ),
        (
            bytes.fromhex("000100082112a442") + TRANSACTION + bytes.fromhex("80280004 00000000"),
            "FINGERPRINT",
        ),
        (
            bytes.fromhex("000100082112a442") + TRANSACTION + bytes.fromhex("00080004 00000000"),
            "MESSAGE-INTEGRITY is 4 bytes",
        ),
    ],
)
def test_malformed(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        StunMessage.parse(data)


def test_tampered_body_fails_integrity_but_not_parsing_without_fingerprint() -> None:
    signed = bytes(StunMessage(BINDING, CLASS_REQUEST, TRANSACTION, [(0x0006, b"user")], key=b"k"))
    tampered = _flip(signed, 24)
    message = StunMessage.parse(tampered)
    assert not message.check_integrity(b"k")
    assert StunMessage.parse(signed).check_integrity(b"k")


def test_bad_addresses() -> None:
    bad_family = StunMessage(BINDING, CLASS_SUCCESS, TRANSACTION, [(0x0020, bytes.fromhex("00030000"))])
    with pytest.raises(ProtocolError, match="family"):
        _ = StunMessage.parse(bytes(bad_family)).xor_mapped_address
    short = StunMessage(BINDING, CLASS_SUCCESS, TRANSACTION, [(0x0020, bytes.fromhex("0001000001"))])
    with pytest.raises(ProtocolError, match="IPv4 address is 1 bytes"):
        _ = StunMessage.parse(bytes(short)).xor_mapped_address


def test_too_many_attributes() -> None:
    many = StunMessage(BINDING, CLASS_REQUEST, TRANSACTION, [(0x8000, b"")] * 65)
    with pytest.raises(ProtocolError, match="more than 64"):
        StunMessage.parse(bytes(many))


def test_writing_refuses_bad_fields() -> None:
    with pytest.raises(ValueError, match="transaction ID"):
        bytes(StunMessage(BINDING, CLASS_REQUEST, b"short"))
    with pytest.raises(ValueError, match="exceeds"):
        bytes(StunMessage(BINDING, CLASS_REQUEST, TRANSACTION, [(0x8000, bytes(1600))]))


@given(st.binary(max_size=200))
def test_fuzz_never_raises_anything_but_protocol_error(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        message = StunMessage.parse(b"\x00\x01" + len(data).to_bytes(2, "big") + REQUEST[4:20] + data)
        with contextlib.suppress(ProtocolError):
            _ = message.username, message.xor_mapped_address, message.error_code, message.mapped_address
