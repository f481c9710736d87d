"""SRTP sessions (libsrtp): both directions, authentication, replays dropped; also on a live rtp:// link."""

from __future__ import annotations

import asyncio

import pytest
from conf_crypto import SrtpCipher

from conf_cli.client.link import Client
from conf_cli.errors import ConfError
from conf_cli.identity import Identity
from conf_cli.plugin.registry import create_registry
from conf_cli.plugin.security import Security, client_security
from conf_cli.plugin.transport import TransportOptions
from conf_cli.protocol.rtcp import ReceiverReport
from conf_cli.protocol.rtp import RtpPacket
from conf_cli.server.edge import Endpoint, Server
from conf_cli.urls import parse_server_url


def rtp(seq: int, payload: bytes = b"media payload " * 20) -> bytes:
    return bytes(
        RtpPacket(payload_type=96, sequence_number=seq, timestamp=seq * 3000, ssrc=0x1234, payload=payload)
    )


@pytest.mark.parametrize("profile", ["AEAD_AES_128_GCM", "AES_CM_128_HMAC_SHA1_80"])
def test_each_direction_has_its_own_key_and_replays_are_dropped(profile: str) -> None:
    cipher = SrtpCipher(profile)
    keys = cipher.new_keys()
    server, client = cipher.session(keys, server_side=True), cipher.session(keys, server_side=False)
    packet = rtp(1)
    protected = client.protect(packet)
    assert protected != packet and packet[12:] not in protected
    assert server.unprotect(protected) == packet
    assert server.unprotect(protected) is None  # the same packet again: a replay
    assert client.unprotect(protected) is None  # the other direction's key does not open it
    tampered = bytearray(client.protect(rtp(2)))
    tampered[-1] ^= 1
    assert server.unprotect(bytes(tampered)) is None
    assert server.rejected == 2
    later = client.protect(rtp(3))
    assert server.unprotect(later) == rtp(3)
    down = server.protect(rtp(7))
    assert client.unprotect(down) == rtp(7)


def test_rtcp_is_protected_too() -> None:
    cipher = SrtpCipher()
    keys = cipher.new_keys()
    server, client = cipher.session(keys, server_side=True), cipher.session(keys, server_side=False)
    report = bytes(ReceiverReport(ssrc=0x99, reports=[]))
    protected = client.protect(report)
    assert protected != report
    assert server.unprotect(protected) == report
    assert server.unprotect(protected) is None


def test_bad_keys_are_a_clear_error() -> None:
    cipher = SrtpCipher()
    with pytest.raises(ConfError, match="profile"):
        cipher.session({"profile": "NULL", "up": "", "down": ""}, server_side=False)
    with pytest.raises(ConfError, match="base64"):
        cipher.session({"profile": "AEAD_AES_128_GCM", "up": "!!", "down": "!!"}, server_side=False)


async def test_a_replayed_datagram_on_a_live_link_is_dropped() -> None:
    registry = create_registry()
    identity = Identity.generate()
    server = Server(registry)
    [url] = await server.start(
        [Endpoint("rtp", "127.0.0.1", 0)], TransportOptions(security=Security(registry.ciphers, identity))
    )
    listener = server.listeners[0]
    security = client_security(registry.ciphers, url, "on", identity.fingerprint, pin=False)
    client = Client(registry, parse_server_url(url), TransportOptions(security=security))
    try:
        await client.connect()
        await client.create("ada", "pass-123")
        link = client.link
        assert link is not None and link.srtp is not None  # type: ignore[attr-defined]
        sent: list[bytes] = []
        protect = link.srtp.protect  # type: ignore[attr-defined]
        link.srtp.protect = lambda packet: sent.append(protect(packet)) or sent[-1]  # type: ignore[attr-defined]
        assert link.send_media(rtp(1))
        await asyncio.sleep(0.3)
        before = listener.stats()
        assert before["dropped_unauthenticated"] == 0 and before["media_in"] >= 1
        link.sock.send(sent[-1])  # type: ignore[attr-defined]  # the very same datagram, from the same address
        forged = bytearray(sent[-1])
        forged[-3] ^= 0x40
        link.sock.send(bytes(forged))  # type: ignore[attr-defined]
        link.sock.send(rtp(2))  # type: ignore[attr-defined]  # plain RTP, without SRTP
        for _ in range(50):
            await asyncio.sleep(0.05)
            if listener.stats()["dropped_unauthenticated"] >= 3:
                break
        after = listener.stats()
        assert after["dropped_unauthenticated"] == 3
        assert after["media_in"] == before["media_in"]
    finally:
        await client.close()
        await server.close()


def test_a_packet_asked_for_again_passes_the_replay_check_once() -> None:
    from conf_transport_udp_rtp.resend import Resends

    from conf_cli.protocol.rtcp import Nack, ReceiverReport, build_compound

    cipher = SrtpCipher()
    keys = cipher.new_keys()
    server, client = cipher.session(keys, server_side=True), cipher.session(keys, server_side=False)
    resends = Resends()
    first = client.protect(rtp(10))
    assert server.unprotect(first) == rtp(10)
    resend = client.protect(rtp(10))  # the publisher sends it again, as a receiver lost it
    assert not resends.take(resend, 0.0)
    assert server.unprotect(resend, resent=False) is None
    nack = build_compound([ReceiverReport(ssrc=5), Nack(sender_ssrc=5, media_ssrc=0x1234, lost=[10, 11])])
    resends.forwarded(nack, 0.0)
    assert len(resends) == 2
    assert resends.take(resend, 1.0)
    assert server.unprotect(resend, resent=True) == rtp(10)
    assert not resends.take(resend, 1.0)  # used up: a third copy is a replay again
    assert server.unprotect(resend, resent=True) is None  # and the resend window has seen it too
    resends.forwarded(nack, 0.0)
    assert not resends.take(client.protect(rtp(11)), 10.0)  # too late


def test_an_index_is_never_protected_twice_with_different_bytes() -> None:
    """With AES-GCM the nonce is the SSRC and the index: other bytes under a used index reuse a key stream."""
    cipher = SrtpCipher()
    keys = cipher.new_keys()
    server, client = cipher.session(keys, server_side=True), cipher.session(keys, server_side=False)
    first = server.protect(rtp(40))
    assert first is not None and client.unprotect(first) == rtp(40)
    assert server.protect(rtp(40)) == first  # the very same bytes again (a resend): the very same packet
    assert server.protect(rtp(40, b"other bytes " * 20)) is None  # other bytes: refused
    for seq in range(41, 300):
        assert server.protect(rtp(seq)) is not None
    assert server.protect(rtp(40, b"still other bytes " * 20)) is None  # refused however much later
    assert server.protect(rtp(40)) == first  # and a faithful resend still goes
    assert server.protect(rtp(35)) is not None  # an index never used, behind the newest: new, allowed
    assert server.protect(rtp(35, b"x" * 30)) is None
    assert server.refused == 3


def test_an_index_too_old_to_send_again_is_refused_not_raised() -> None:
    cipher = SrtpCipher()
    server = cipher.session(cipher.new_keys(), server_side=True)
    assert server.protect(rtp(1)) is not None
    assert server.protect(rtp(2000)) is not None
    assert server.protect(rtp(1)) is None  # far behind the newest: libsrtp would refuse it too
    assert server.refused == 1


@pytest.mark.parametrize("path", ["compiled", "pure"])
def test_protect_refusing_one_receiver_does_not_affect_the_others(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server protects a packet for each receiver (in one batch); a receiver whose SRTP refuses it (its
    index was used for other bytes) loses that packet alone, and the server says so once for that link.
    ``pure``: without the compiled modules (libsrtp and one sendto per receiver)."""
    if path == "pure":
        from conf_crypto import srtp
        from conf_transport_udp_rtp import server as rtp_server

        monkeypatch.setattr(rtp_server, "send_many", None)
        monkeypatch.setattr(srtp, "NativeSender", None)
        monkeypatch.setattr(srtp, "protect_many", None)
    asyncio.run(_one_receiver_fails())


async def _one_receiver_fails() -> None:
    import logging

    registry = create_registry()
    identity = Identity.generate()
    server = Server(registry)
    [url] = await server.start(
        [Endpoint("rtp", "127.0.0.1", 0)], TransportOptions(security=Security(registry.ciphers, identity))
    )
    listener = server.listeners[0]
    security = client_security(registry.ciphers, url, "on", identity.fingerprint, pin=False)
    clients = [Client(registry, parse_server_url(url), TransportOptions(security=security)) for _ in range(4)]
    got: dict[int, list[bytes]] = {i: [] for i in range(4)}
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    transport_log = logging.getLogger("conf.transport.rtp")
    level = transport_log.level
    transport_log.setLevel(logging.INFO)
    transport_log.addHandler(handler)
    try:
        publisher, *receivers = clients
        await publisher.connect()
        created, _ = await publisher.create("pub", "pass-123")
        meeting = created["meeting"]
        for index, client in enumerate(receivers, start=1):
            await client.connect()
            await client.join(meeting, f"r{index}", "pass-123")
            client.media_handler = got[index].append
        publish = {"type": "publish", "kind": "video", "ssrc": 0x1234, "codec": "H264"}
        await publisher.request(publish, {"share_started"})
        await asyncio.sleep(0.3)
        participants = server.hub.meetings[meeting].participants.values()
        first = server.links[next(p.pid for p in participants if p.name == "r1")]
        assert (
            server.hub.meetings[meeting].audience(next(p.pid for p in participants if p.name == "pub"))[0]
            == first.id
        )

        for seq in range(1, 31):  # the first in the fan-out has used these indexes for other bytes
            assert first.srtp.protect(rtp(seq, b"other bytes " * 20)) is not None  # type: ignore[attr-defined]
        for seq in range(1, 31):
            assert publisher.link is not None and publisher.link.send_media(rtp(seq))
            await asyncio.sleep(0.01)
        for _ in range(50):
            await asyncio.sleep(0.05)
            if len(got[2]) >= 30 and len(got[3]) >= 30:
                break
        assert got[1] == []
        assert len(got[2]) == 30 and len(got[3]) == 30
        assert listener.stats()["protect_refused"] == 30
        assert first.protect_refused == 30  # type: ignore[attr-defined]
        said = [r for r in records if "could not be protected" in r.getMessage()]
        assert len(said) == 1
    finally:
        transport_log.removeHandler(handler)
        transport_log.setLevel(level)
        for client in clients:
            await client.close()
        await server.close()


def test_a_stream_whose_indexes_were_forgotten_is_refused_from_then_on() -> None:
    from conf_crypto.srtp import MAX_SENT_SSRCS

    cipher = SrtpCipher()
    server = cipher.session(cipher.new_keys(), server_side=True)

    def packet(ssrc: int, seq: int) -> bytes:
        return bytes(
            RtpPacket(payload_type=96, sequence_number=seq, timestamp=0, ssrc=ssrc, payload=b"x" * 40)
        )

    for ssrc in range(1, MAX_SENT_SSRCS + 2):  # one more stream than is remembered: the first is forgotten
        assert server.protect(packet(ssrc, 1)) is not None
    assert server.protect(packet(1, 2)) is None  # its used indexes are unknown now: nothing is risked
    assert server.protect(packet(MAX_SENT_SSRCS + 1, 2)) is not None
