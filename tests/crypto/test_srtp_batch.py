"""The compiled SRTP sender (AEAD_AES_128_GCM) against libsrtp, packet for packet, and its batch form.

The reference is the per-packet path conf had before: :class:`SentIndexes` deciding what may be protected
and libsrtp protecting it. The compiled sender must give the very same bytes (same session keys, same
rollover counter, same nonce and tag), refuse the very same packets, and forget the same streams. The
tests that compare with libsrtp run once per AES-GCM engine this machine has (``srtp.ENGINES``).
"""

from __future__ import annotations

import base64
import os
import random
from array import array

import pytest
from conf_crypto import SrtpCipher, srtp
from conf_crypto.srtp import NativeReceiver, NativeSender, SrtpSession

from conf_cli.protocol.rtp import RtpPacket


@pytest.fixture(params=srtp.ENGINES)
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each AES-GCM engine of the compiled module: the sessions made in the test use it."""
    monkeypatch.setattr(srtp, "ENGINE", request.param)
    return str(request.param)


def cpu_flags() -> set[str]:
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def test_the_vaes_engine_is_the_default_where_the_cpu_has_its_instructions() -> None:
    needed = {"aes", "pclmulqdq", "avx512f", "avx512bw", "avx512vl", "vaes", "vpclmulqdq"}
    expected = ("vaes", "openssl") if needed <= cpu_flags() else ("openssl",)
    assert expected == srtp.ENGINES
    session = SrtpCipher().session(SrtpCipher().new_keys(), server_side=True)
    assert session.native.engine == session.native_rx.engine == expected[0]
    with pytest.raises(ValueError, match="unknown AES-GCM engine"):
        NativeSender(bytes(16), bytes(12), 512, 16, srtp.MAX_PROTECT, engine="rot13")


@pytest.mark.parametrize("seed", range(3))
def test_every_engine_gives_the_same_bytes_and_verdicts(seed: int) -> None:
    """Every payload length up to 600 bytes and random ones up to the largest, headers with CSRCs and
    extensions: each engine's SRTP packet is the same, each engine's receiver opens it, and each refuses
    the same forgeries (one bit flipped anywhere, the tag cut)."""
    rnd = random.Random(seed)
    key, salt = rnd.randbytes(16), rnd.randbytes(12)
    senders = [NativeSender(key, salt, 512, 16, srtp.MAX_PROTECT, engine=e) for e in srtp.ENGINES]
    receivers = [NativeReceiver(key, salt, 1024, srtp.MAX_UNPROTECT, engine=e) for e in srtp.ENGINES]
    sizes = list(range(601)) + [rnd.randrange(srtp.MAX_PROTECT - 100) for _ in range(200)]
    for seq, size in enumerate(sizes):
        csrcs = rnd.choice([0, 1, 3, 15])
        extension = rnd.randbytes(4 * rnd.randrange(4)) if rnd.random() < 0.3 else None
        header = bytes([0x80 | csrcs | (0x10 if extension is not None else 0), 96]) + seq.to_bytes(2, "big")
        header += rnd.randbytes(4) + b"\x00\x00\x00\x07" + rnd.randbytes(4 * csrcs)
        if extension is not None:
            header += b"\xbe\xde" + (len(extension) // 4).to_bytes(2, "big") + extension
        data = header + rnd.randbytes(max(0, size - len(header)))
        outs = [sender.protect(data) for sender in senders]
        assert outs[0] is not None and all(out == outs[0] for out in outs), f"{len(data)} bytes"
        forged = bytearray(outs[0])
        forged[rnd.randrange(len(forged))] ^= 1 << rnd.randrange(8)
        for receiver in receivers:
            assert receiver.unprotect(bytes(forged)) is None
            assert receiver.unprotect(outs[0][:-1]) is None
            assert receiver.unprotect(outs[0]) == data


def test_the_compiled_sender_is_built() -> None:
    """`make setup` builds it; without it the server falls back to libsrtp (tested below as the reference)."""
    assert NativeSender is not None
    session = SrtpCipher().session(SrtpCipher().new_keys(), server_side=True)
    assert session.native is not None


def reference(keys: dict[str, str]) -> SrtpSession:
    """A server-side session whose RTP goes through libsrtp, one packet at a time."""
    session = SrtpCipher().session(keys, server_side=True)
    session.native = None
    return session


def packet(rnd: random.Random, ssrc: int, seq: int) -> bytes:
    """An RTP packet with a random payload size, CSRC count and header extension (some malformed)."""
    csrcs = rnd.choice([0, 0, 0, 1, 15])
    extension = rnd.random() < 0.2
    header = (
        bytes([0x80 | (0x10 if extension else 0) | csrcs, 96, seq >> 8, seq & 0xFF])
        + (seq * 3000 & 0xFFFFFFFF).to_bytes(4, "big")
        + ssrc.to_bytes(4, "big")
    )
    header += b"\x11\x22\x33\x44" * csrcs
    if extension:
        header += b"\xbe\xde\x00\x01\x10\xaa\x00\x00"
    data = header + rnd.randbytes(rnd.choice([0, 1, 100, 1000, 1300, 1400]))
    if rnd.random() < 0.02:  # cut short: a header that runs past the end, or no header at all
        data = data[: rnd.randrange(0, 20)]
    return data


def walk(rnd: random.Random, ssrcs: list[int], count: int) -> list[bytes]:
    """Packets of several streams: mostly in order, some late, some far ahead, some wrapping around, and
    some sent again (the same bytes, as a resend, or other bytes under a used index)."""
    seqs: dict[int, int] = {}
    sent: dict[tuple[int, int], bytes] = {}
    out = []
    for _ in range(count):
        ssrc = rnd.choice(ssrcs)
        seq = seqs.get(ssrc, rnd.randrange(0x10000))
        move = rnd.random()
        if move < 0.75:
            seq += 1
        elif move < 0.85:
            seq -= rnd.randrange(1, 700)
        elif move < 0.9:
            seq += rnd.randrange(1, 40000)
        elif move < 0.93:
            seq += rnd.randrange(30000, 35000)
        seq &= 0xFFFF
        seqs[ssrc] = seq
        if (ssrc, seq) in sent and rnd.random() < 0.5:
            data = sent[(ssrc, seq)]
        else:
            data = sent[(ssrc, seq)] = packet(rnd, ssrc, seq)
        out.append(data)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_the_compiled_sender_gives_libsrtps_bytes(
    seed: int, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Byte for byte, and refusal for refusal, with streams forgotten (few remembered, to reach that)."""
    monkeypatch.setattr(srtp, "MAX_SENT_SSRCS", 4)
    rnd = random.Random(seed)
    keys = SrtpCipher().new_keys()
    fast, slow = SrtpCipher().session(keys, server_side=True), reference(keys)
    assert fast.native is not None and fast.native.engine == engine
    protected = refused = 0
    for data in walk(rnd, [1, 2, 3, 4, 5, 6] if seed % 2 else [0x1234, 0xFFFFFFFF], 4000):
        out = fast.protect(data)
        assert out == slow.protect(data), f"packet {data[:12].hex()} of {len(data)} bytes"
        protected += out is not None
        refused += out is None
    assert fast.refused == slow.refused == refused
    assert protected > 500 and refused > 100  # the walk reached both


def test_the_rollover_counter_follows_the_sequence_number_round(engine: str) -> None:
    keys = SrtpCipher().new_keys()
    fast, slow = SrtpCipher().session(keys, server_side=True), reference(keys)
    client = SrtpCipher().session(keys, server_side=False)
    for step in range(3 * 0x10000 + 10):  # three times round the 16-bit sequence number
        data = bytes(RtpPacket(payload_type=96, sequence_number=step & 0xFFFF, timestamp=step, ssrc=7))
        out = fast.protect(data)
        if step % 997 == 0 or step & 0xFFFF in (0xFFFF, 0, 1):
            assert out == slow.protect(data)
            assert client.unprotect(out) == data  # libsrtp's receiver agrees on the rollover counter
        else:
            slow.protect(data)


def test_a_batch_is_each_sessions_own_protection(engine: str) -> None:
    """batch_protector: slot i holds what session i's protect gives (-1 where it refuses), and each
    session's state moves as if it had protected the packet itself."""
    cipher = SrtpCipher()
    keys = [cipher.new_keys() for _ in range(5)]
    sessions = [cipher.session(k, server_side=True) for k in keys]
    references = [reference(k) for k in keys]
    protect = cipher.batch_protector(sessions)
    assert protect is not None
    stride = 2048
    out, lengths = bytearray(stride * len(sessions)), array("i", [0] * len(sessions))
    other = bytes(RtpPacket(payload_type=96, sequence_number=5, timestamp=0, ssrc=9, payload=b"o" * 50))
    assert sessions[2].protect(other) == references[2].protect(other)  # index 5 used for other bytes
    for seq in range(1, 40):
        data = bytes(RtpPacket(payload_type=96, sequence_number=seq, timestamp=0, ssrc=9, payload=b"m" * 900))
        assert protect(data, out, stride, lengths) == (4 if seq == 5 else 5)
        for index, ref in enumerate(references):
            expected = ref.protect(data)
            if expected is None:
                assert lengths[index] == -1 and (index, seq) == (2, 5)
            else:
                assert bytes(out[index * stride : index * stride + lengths[index]]) == expected
    assert [s.refused for s in sessions] == [r.refused for r in references] == [0, 0, 1, 0, 0]


def test_a_batch_needs_room_and_compiled_senders() -> None:
    cipher = SrtpCipher()
    sessions = [cipher.session(cipher.new_keys(), server_side=True) for _ in range(3)]
    protect = cipher.batch_protector(sessions)
    assert protect is not None
    data = bytes(RtpPacket(payload_type=96, sequence_number=1, timestamp=0, ssrc=9, payload=b"m" * 900))
    with pytest.raises(ValueError):  # a slot smaller than the packet and its tag
        protect(data, bytearray(3 * 920), 920, array("i", [0] * 3))
    with pytest.raises(ValueError):  # fewer lengths than sessions
        protect(data, bytearray(3 * 2048), 2048, array("i", [0] * 2))
    sessions[1].native = None  # one session protects through libsrtp only: no batch
    assert cipher.batch_protector(sessions) is None
    plain = SrtpCipher("AES_CM_128_HMAC_SHA1_80")
    assert plain.batch_protector([plain.session(plain.new_keys(), server_side=True)]) is None


def test_the_session_key_is_derived_as_libsrtp_derives_it(engine: str) -> None:
    """RFC 3711's AES-CM key derivation, checked against libsrtp through a packet it protected."""
    keys = SrtpCipher().new_keys()
    slow = reference(keys)
    data = bytes(RtpPacket(payload_type=96, sequence_number=1, timestamp=0, ssrc=0x55, payload=b"p" * 64))
    outbound = base64.b64decode(keys["down"])  # what the server protects with
    master_key, master_salt = outbound[:16], outbound[16:]
    key, salt = srtp.derive(master_key, master_salt, 0, 16), srtp.derive(master_key, master_salt, 2, 12)
    sender = NativeSender(key, salt, 512, 16, srtp.MAX_PROTECT, engine=engine)
    assert sender.protect(data) == slow.protect(data)
    wrong = NativeSender(os.urandom(16), salt, 512, 16, srtp.MAX_PROTECT, engine=engine)
    assert wrong.protect(data) != slow.protect(data)


def receiving_reference(keys: dict[str, str]) -> SrtpSession:
    """A server-side session whose RTP is checked by libsrtp (its two replay windows)."""
    session = SrtpCipher().session(keys, server_side=True)
    session.native_rx = None
    return session


@pytest.mark.parametrize("seed", range(6))
def test_the_compiled_receiver_accepts_and_drops_what_libsrtp_does(seed: int, engine: str) -> None:
    """Packets a client protected, delivered late, twice, far ahead, forged, cut short, and some marked as
    asked for again (the second replay window): the same verdict and the same plain packet each time."""
    rnd = random.Random(seed)
    keys = SrtpCipher().new_keys()
    client = SrtpCipher().session(keys, server_side=False)
    fast, slow = SrtpCipher().session(keys, server_side=True), receiving_reference(keys)
    assert fast.native_rx is not None and fast.native_rx.engine == engine
    protected = [p for p in (client.protect(data) for data in walk(rnd, [1, 2, 0xFFFFFFFF], 3000)) if p]
    accepted = dropped = 0
    for index, data in enumerate(protected):
        move = rnd.random()
        if move < 0.1 and index:
            data = protected[rnd.randrange(index)]  # an old packet again: a replay, or a late one
        elif move < 0.15:
            forged = bytearray(data)
            forged[rnd.randrange(len(forged))] ^= 1 << rnd.randrange(8)
            data = bytes(forged)
        elif move < 0.17:
            data = data[: rnd.randrange(len(data))]
        resent = rnd.random() < 0.2
        clear = fast.unprotect(data, resent=resent)
        assert clear == slow.unprotect(data, resent=resent), f"packet {index}, {len(data)} bytes, {resent=}"
        accepted += clear is not None
        dropped += clear is None
    assert fast.rejected == slow.rejected == dropped
    assert accepted > 200 and dropped > 100  # the walk reached both
