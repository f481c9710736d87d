"""A recorder in an end-to-end encrypted meeting: it waits for the host's admission (there is no waiting
room), is named as a recorder, holds keys like any participant and decodes what it records, while a tap
inside the server sees only SFrame ciphertext."""

from __future__ import annotations

from pathlib import Path

import av
from conf_capture.pattern import read_pattern_stamp

from conf_cli.client.media.composite import fit, layout
from conf_cli.media.codecs import H264Decoder
from conf_cli.media.h264 import H264Depacketizer
from conf_cli.protocol.sframe import parse_header
from conf_cli.testing.media import streams
from conf_cli.testing.processes import ClientPool
from tests.helpers.e2ee import code_for, tapped_server
from tests.helpers.recording import start_recorder

SIZE = (1280, 720)


def test_an_e2ee_recorder_is_admitted_by_the_host_and_records_what_the_server_cannot_read(
    tmp_path: Path,
) -> None:
    with tapped_server("tcp") as running:
        pool = ClientPool(running.url, extra=["--encryption", "none"])  # the tap reads the links in plain
        try:
            ada, meeting = pool.create("ada", "--e2ee")
            bob = pool.share(meeting, "bob", "pattern", "--width", "640", "--height", "360")
            assert bob.expect("joined")["e2ee"] is True
            video = bob.expect("publish_started")["ssrc"]

            out = tmp_path / "secret.mp4"
            recorder = start_recorder(pool, meeting, "rec", "--out", str(out), "--encryption", "none")
            # No waiting room, yet the recorder waits: it would hold the meeting's keys.
            assert recorder.expect("waiting")["name"] == "rec (recorder)"
            assert ada.expect("waiting_joined")["name"] == "rec (recorder)"
            ada.send("/admit rec (recorder)")
            assert recorder.expect("joined")["e2ee"] is True
            assert ada.expect("recording_started")["by"] == "rec (recorder)"
            # It takes part in the key agreement: everyone's security code names it.
            everyone = ["ada", "bob", "rec (recorder)"]
            assert len({code_for(client, everyone) for client in (ada, bob, recorder)}) == 1
            stats = recorder.expect(
                "track_stats", lambda e: e["ssrc"] == video and int(e["frames"]) > 15, timeout=20
            )
            assert stats["undecryptable"] == 0
            recorder.send("/leave")
            written = recorder.expect("recording_written", timeout=20)
            assert recorder.wait(20) == 0 and not written["failed"]
        finally:
            pool.stop_all()

        # The recording holds bob's decrypted picture in its one tile.
        assert {s["codec_type"] for s in streams(out)} == {"audio", "video"}
        with av.open(str(out)) as container:
            frames = list(container.decode(video=0))
        picture = frames[len(frames) // 2].to_ndarray(format="gray")
        place = fit(640, 360, layout(1, *SIZE)[0])
        tile = picture[place.y : place.y + place.height, place.x : place.x + place.width]
        assert read_pattern_stamp(tile) is not None

        # The server saw SFrame ciphertext only: every packet has an SFrame header and tag, and no
        # H.264 decoder makes a picture of what it forwarded.
        tapped = running.by_ssrc()[video]
        assert len(tapped) > 30
        for packet in tapped:
            _kid, _ctr, at = parse_header(packet.payload)
            assert len(packet.payload) >= at + 16
        depacketizer, decoder = H264Depacketizer(), H264Decoder()
        assert sum(len(decoder.decode(unit.data)) for p in tapped for unit in depacketizer.push(p)) == 0
