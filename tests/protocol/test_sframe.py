"""SFrame against the test vectors of RFC 9605 appendix C, plus replay, tampering and bounds."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conf_cli.protocol.sframe import (
    AES_128_GCM_SHA256_128,
    MAX_KEYS,
    REPLAY_WINDOW,
    SUITES,
    Aead,
    ReceiveContext,
    SendContext,
    SFrameError,
    UnknownKey,
    derive_key_salt,
    encode_header,
    parse_header,
)


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


# RFC 9605 C.1: a selection covering every KID and CTR length, inline values and the extremes.
HEADERS = [
    (0x0, 0x0, "00"),
    (0x0, 0x7, "07"),
    (0x7, 0x0, "70"),
    (0x0, 0x8, "0808"),
    (0x0, 0xFF, "08ff"),
    (0x0, 0x100, "090100"),
    (0x8, 0x0, "8008"),
    (0xFF, 0x1, "81ff"),  # the config byte 0x81: KID of 1 byte, CTR 1 inline
    (0x0001000000000000, 0x0001000000000000, "ee0100000000000001000000000000"),
    (0x0001000000000000, 0x0000FFFFFFFFFFFF, "ed01000000000000ffffffffffff"),
    (0x00FFFFFFFFFFFFFF, 0x0, "e0ffffffffffffff"),
    (0x00FFFFFFFFFFFFFF, 0xFF, "e8ffffffffffffffff"),
    (0x00FFFFFFFFFFFFFF, 0x10000, "eaffffffffffffff010000"),
    (0x0100000000000000, 0x0, "f00100000000000000"),
    (0x0100000000000000, 0x100000000, "fc01000000000000000100000000"),
    (0x0100000000000000, 0x0100000000000000, "ff01000000000000000100000000000000"),
    (0xFFFFFFFFFFFFFFFF, 0x1, "f1ffffffffffffffff"),
    (0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF, "ffffffffffffffffffffffffffffffffff"),
]


@pytest.mark.parametrize(("kid", "ctr", "header"), HEADERS)
def test_header_vectors(kid: int, ctr: int, header: str) -> None:
    assert encode_header(kid, ctr) == h(header)
    assert parse_header(h(header) + b"rest") == (kid, ctr, len(h(header)))


def test_header_bounds() -> None:
    with pytest.raises(SFrameError, match="KID"):
        encode_header(1 << 64, 0)
    with pytest.raises(SFrameError, match="CTR"):
        encode_header(0, -1)
    with pytest.raises(SFrameError, match="empty"):
        parse_header(b"")
    with pytest.raises(SFrameError, match="KID needs 8 bytes"):
        parse_header(h("f0 01020304"))
    with pytest.raises(SFrameError, match="CTR needs 2 bytes"):
        parse_header(h("09 01"))


# RFC 9605 C.2: the AES-CTR + HMAC AEAD on its own.
AEAD_KEY = h(
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f"
)
NONCE = h("101112131415161718191a1b")
AAD = h("4945544620534672616d65205747")
PT = h("64726166742d696574662d736672616d652d656e63")
AEAD_CT = {
    1: "6339af04ada1d064688a442b8dc69d5b6bfa40f4bef0583e8081069cc60705",
    2: "6339af04ada1d064688a442b8dc69d5b6bfa40f4be6e93b7da076927bb",
    3: "6339af04ada1d064688a442b8dc69d5b6bfa40f4be09480509",
}


@pytest.mark.parametrize("suite_id", sorted(AEAD_CT))
def test_ctr_hmac_aead_vectors(suite_id: int) -> None:
    aead = Aead(SUITES[suite_id], AEAD_KEY)
    assert aead.encrypt(NONCE, AAD, PT) == h(AEAD_CT[suite_id])
    assert aead.decrypt(NONCE, AAD, h(AEAD_CT[suite_id])) == PT


# RFC 9605 C.3: whole SFrame encryption, every suite.
KID, CTR, BASE_KEY = 0x123, 0x4567, h("000102030405060708090a0b0c0d0e0f")
SFRAME = {
    1: (
        "3f7d9a7c83ae8e1c8a11ae695ab59314b367e359fadac7b9c46b2bc6f81f46e16b96f0811868d59402b7e870102720b3",
        "50b29329a04dc0f184ac3168",
        "9901234567449408b6f490086165b9d6f62b24ae1a59a56486b4ae8ed036b88912e24f11",
    ),
    2: (
        "e2ec5c797540310483b16bf6e7a570d2a27d192fe869c7ccd8584a8d9dab91549fbe553f5113461ec6aa83bf3865553e",
        "e68ac8dd3d02fbcd368c5577",
        "99012345673f31438db4d09434e43afa0f8a2f00867a2be085046a9f5cb4f101d607",
    ),
    3: (
        "2c5703089cbb8c583475e4fc461d97d18809df79b6d550f78eb6d50ffa80d89211d57909934f46f5405e38cd583c69fe",
        "38c16e4f5159700c00c7f350",
        "990123456717fc8af28a5a695afcfc6c8df6358a17e26b2fcb3bae32e443",
    ),
    4: (
        "d34f547f4ca4f9a7447006fe7fcbf768",
        "75234edefe07819026751816",
        "9901234567b7412c2513a1b66dbb48841bbaf17f598751176ad847681a69c6d0b091c07018ce4adb34eb",
    ),
    5: (
        "d3e27b0d4a5ae9e55df01a70e6d4d28d969b246e2936f4b7a5d9b494da6b9633",
        "84991c167b8cd23c93708ec7",
        "990123456794f509d36e9beacb0e261d99c7d1e972f1fed787d4049f17ca21353c1cc24d56ceabced279",
    ),
}


@pytest.mark.parametrize("suite_id", sorted(SFRAME))
def test_sframe_vectors(suite_id: int) -> None:
    cs = SUITES[suite_id]
    key, salt, ct = SFRAME[suite_id]
    assert derive_key_salt(cs, KID, BASE_KEY) == (h(key), h(salt))
    sender = SendContext(cs, KID, BASE_KEY, ctr=CTR)
    assert sender.encrypt(PT, AAD) == h(ct)
    assert sender.ctr == CTR + 1
    receiver = ReceiveContext(cs)
    receiver.add_key(KID, BASE_KEY, owner="ada")
    got = receiver.decrypt(h(ct), AAD)
    assert (got.plaintext, got.kid, got.ctr, got.owner) == (PT, KID, CTR, "ada")


def pair(kid: int = 9) -> tuple[SendContext, ReceiveContext]:
    receiver = ReceiveContext(AES_128_GCM_SHA256_128)
    receiver.add_key(kid, b"k" * 16)
    return SendContext(AES_128_GCM_SHA256_128, kid, b"k" * 16), receiver


def test_tampering_is_refused() -> None:
    sender, receiver = pair()
    frame = sender.encrypt(b"picture", b"meta")
    for at in range(len(frame)):
        bad = bytearray(frame)
        bad[at] ^= 0x01
        with pytest.raises(SFrameError):
            receiver.decrypt(bytes(bad), b"meta")
    with pytest.raises(SFrameError, match="authentication"):
        receiver.decrypt(frame, b"other metadata")
    with pytest.raises(SFrameError, match="shorter than its tag"):
        receiver.decrypt(frame[:5], b"meta")
    assert receiver.decrypt(frame, b"meta").plaintext == b"picture"


def test_wrong_key_and_unknown_kid() -> None:
    sender, _ = pair()
    stranger = ReceiveContext(AES_128_GCM_SHA256_128)
    stranger.add_key(9, b"x" * 16)
    frame = sender.encrypt(b"picture")
    with pytest.raises(SFrameError, match="authentication"):
        stranger.decrypt(frame)
    stranger.remove_key(9)
    with pytest.raises(UnknownKey) as caught:
        stranger.decrypt(frame)
    assert caught.value.kid == 9


def test_replay_window() -> None:
    sender, receiver = pair()
    frames = [sender.encrypt(i.to_bytes(2, "big")) for i in range(REPLAY_WINDOW + 10)]
    # Out of order within the window is fine; each counter once.
    assert receiver.decrypt(frames[5]).plaintext == b"\x00\x05"
    assert receiver.decrypt(frames[2]).plaintext == b"\x00\x02"
    with pytest.raises(SFrameError, match="already received"):
        receiver.decrypt(frames[5])
    with pytest.raises(SFrameError, match="already received"):
        receiver.decrypt(frames[2])
    receiver.decrypt(frames[REPLAY_WINDOW + 9])
    with pytest.raises(SFrameError, match="older than the replay window"):
        receiver.decrypt(frames[3])
    assert receiver.decrypt(frames[10]).ctr == 10  # still inside the window, never seen
    with pytest.raises(SFrameError, match="already received"):
        receiver.decrypt(frames[REPLAY_WINDOW + 9])


def test_key_count_is_bounded() -> None:
    receiver = ReceiveContext(AES_128_GCM_SHA256_128)
    for kid in range(MAX_KEYS):
        receiver.add_key(kid, b"k")
    with pytest.raises(SFrameError, match="more than"):
        receiver.add_key(MAX_KEYS, b"k")
    receiver.add_key(0, b"other")  # replacing a key is not adding one
    assert receiver.kids()[:2] == [0, 1]


@given(st.integers(0, (1 << 64) - 1), st.integers(0, (1 << 64) - 1))
def test_any_header_round_trips_in_the_fewest_bytes(kid: int, ctr: int) -> None:
    header = encode_header(kid, ctr)
    assert parse_header(header + b"x") == (kid, ctr, len(header))
    long = (0 if kid < 8 else (kid.bit_length() + 7) // 8) + (0 if ctr < 8 else (ctr.bit_length() + 7) // 8)
    assert len(header) == 1 + long


@given(st.binary(max_size=64))
def test_arbitrary_bytes_raise_only_sframe_errors(data: bytes) -> None:
    _, receiver = pair(kid=0)
    try:
        receiver.decrypt(data, b"meta")
    except SFrameError:
        return
    raise AssertionError("arbitrary bytes decrypted")
