"""End-to-end encrypted meetings with real processes: media flows and decodes between clients while a tap
inside the server sees only SFrame ciphertext it cannot open."""

from __future__ import annotations

import json
import time

import pytest

from conf_cli.client.keyring import KeyRing, new_private_key
from conf_cli.client.media.e2ee import rtp_metadata
from conf_cli.media.codecs import H264Decoder
from conf_cli.media.h264 import H264Depacketizer
from conf_cli.protocol.framing import FrameDecoder, frame
from conf_cli.protocol.sframe import (
    AES_128_GCM_SHA256_128,
    ReceiveContext,
    SFrameError,
    UnknownKey,
    parse_header,
)
from conf_cli.testing.hostile import open_raw_socket
from conf_cli.testing.processes import ClientPool, ConfProcess
from tests.helpers.e2ee import code_for, tapped_server

SMALL = ("--width", "320", "--height", "240", "--fps", "15")


def decoded(client: ConfProcess, ssrc: int) -> dict:
    return client.expect("track_stats", lambda e: e["ssrc"] == ssrc and e["frames"] > 0, timeout=20)


@pytest.mark.parametrize("transport", ["tcp", "rtp"])
def test_e2ee_meeting_media_decodes_for_members_and_is_ciphertext_on_the_server(transport: str) -> None:
    with tapped_server(transport) as running:
        pool = ClientPool(running.url, extra=["--encryption", "none"])  # the tap reads the links in plain
        try:
            ada, meeting = pool.create("ada", "--e2ee")
            assert ada.seen[-1]["e2ee"] is True
            bob = pool.share(meeting, "bob", "pattern", *SMALL)
            assert bob.expect("joined")["e2ee"] is True
            video = bob.expect("publish_started")["ssrc"]
            cy = pool.share(meeting, "cy", "tone")
            assert cy.expect("joined")["e2ee"] is True
            audio = cy.expect("publish_started")["ssrc"]

            everyone = ["ada", "bob", "cy"]
            codes = {code_for(client, everyone) for client in (ada, bob, cy)}
            assert len(codes) == 1

            # Members decode each other's pictures and sound.
            for ssrc in (video, audio):
                stats = decoded(ada, ssrc)
                assert stats["undecryptable"] == 0 and stats["decode_errors"] == 0
            assert decoded(cy, video)["undecryptable"] == 0
            assert decoded(bob, audio)["undecryptable"] == 0
        finally:
            pool.stop_all()

        tapped = running.by_ssrc()
        assert len(tapped[video]) > 30 and len(tapped[audio]) > 30
        for ssrc in (video, audio):
            counters: set[tuple[int, int]] = set()
            for packet in tapped[ssrc]:
                kid, ctr, at = parse_header(packet.payload)  # a valid SFrame header ...
                assert len(packet.payload) >= at + 16  # ... and an AES-GCM tag
                assert (kid, ctr) not in counters, "an SFrame nonce was used twice"
                counters.add((kid, ctr))
            kids = {kid for kid, _ in counters}
            assert 1 <= len(kids) <= 3  # one key per membership change the sender lived through

            # Without the key, nothing opens: no key at all, or a guessed key under the right KID.
            stranger = KeyRing(meeting, "eve", new_private_key())
            guess = ReceiveContext(AES_128_GCM_SHA256_128)
            for kid in kids:
                guess.add_key(kid, b"\0" * 16)
            for packet in tapped[ssrc][:50]:
                with pytest.raises(UnknownKey):
                    stranger.decrypt(packet.payload, rtp_metadata(packet), "bob")
                with pytest.raises(SFrameError, match="authentication"):
                    guess.decrypt(packet.payload, rtp_metadata(packet))

        # What the server forwarded is no H.264 a decoder can read.
        depacketizer, decoder = H264Depacketizer(), H264Decoder()
        pictures = 0
        for packet in tapped[video]:
            for unit in depacketizer.push(packet):
                pictures += len(decoder.decode(unit.data))
        assert pictures == 0


def test_a_client_without_e2ee_is_refused_clearly(clients: ClientPool, server_url: str) -> None:
    """A client that speaks the protocol but brings no key (an older or simpler one) is told why."""
    host, meeting = clients.create("host", "--e2ee")
    with open_raw_socket(server_url, timeout=10, tls=True) as sock:
        sock.sendall(frame(json.dumps({"type": "hello", "protocol": 1}).encode()))
        request = {"type": "join", "meeting": meeting, "name": "old", "passcode": clients.passcode}
        sock.sendall(frame(json.dumps(request).encode()))
        decoder = FrameDecoder()
        replies: list[dict] = []
        deadline = time.monotonic() + 10
        while not any(r["type"] == "error" for r in replies) and time.monotonic() < deadline:
            replies += [json.loads(payload) for payload in decoder.feed(sock.recv(65536))]
    error = next(r for r in replies if r["type"] == "error")
    assert error["code"] == "e2ee_required" and error["re"] == "join"
    assert "end-to-end encrypted" in error["message"]
    assert not [e for e in host.drain(0.5) if e["type"] == "participant_joined"]
