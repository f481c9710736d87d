"""Publisher to receiver in one process: real capture, codecs, RTP, jitter buffer, feedback and recording."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import av
import numpy as np
import pytest
from conf_capture.recorder import MatroskaRecorder

from conf_cli.client.link import Client
from conf_cli.client.media.manager import MediaManager
from conf_cli.client.media.publisher import Publisher, find_source_factory
from conf_cli.client.media.receiver import RemoteTrack
from conf_cli.client.state import receive
from conf_cli.media.source import CapturedFrame, Pacer, Source
from conf_cli.plugin.registry import create_registry
from conf_cli.protocol.control import Message, encode
from conf_cli.protocol.rtcp import Nack, Pli, parse_compound
from conf_cli.protocol.rtp import RtpPacket, is_rtcp
from conf_cli.urls import parse_server_url

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("conf_capture.pattern") is None, reason="the pattern source is not installed"
)


class SineSource(Source):
    """20 ms frames of a 440 Hz sine at 48 kHz, paced in real time."""

    kind = "audio"

    def __init__(self) -> None:
        self._pacer = Pacer(0.02)
        self._n = 0

    def read(self) -> CapturedFrame | None:
        if not self._pacer.wait():
            return None
        t = (np.arange(960) + self._n * 960) / 48_000
        self._n += 1
        samples = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 48_000
        return CapturedFrame(frame, 0.02 * self._n)

    def close(self) -> None:
        self._pacer.stop()


class Wire:
    """Carries a publisher's packets to a receiver, dropping the ones it is told to."""

    def __init__(self) -> None:
        self.receiver: RemoteTrack | None = None
        self.rtp: list[RtpPacket] = []
        self.rtcp: list[bytes] = []
        self.drop_next = 0

    def send(self, data: bytes) -> None:
        if is_rtcp(data):
            self.rtcp.append(data)
            return
        packet = RtpPacket.parse(data)
        self.rtp.append(packet)
        if self.drop_next:
            self.drop_next -= 1
            return
        if self.receiver is not None:
            self.receiver.receive(packet)


def start(source_name: str, source: Source, wire: Wire, events: list[Message]) -> Publisher:
    publisher = Publisher(
        source_name, source, send_control=events.append, send_media=wire.send, notify=events.append
    )
    publisher.start()
    return publisher


async def wait_for(condition: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.02)


async def test_video_flows_recovers_from_loss_with_a_pli_and_is_recorded(tmp_path: Path) -> None:
    factory = find_source_factory(create_registry().sources, "pattern")
    source = factory.open({"width": 320, "height": 240, "fps": 30})
    wire, feedback, events = Wire(), Wire(), []
    publisher = start("pattern", source, wire, events)
    await wait_for(lambda: publisher.tracks)
    track = publisher.tracks[False]
    assert events[0] == {"type": "publish", "kind": "video", "ssrc": track.ssrc, "codec": "H264"}

    receiver = RemoteTrack(
        {"name": "bob", "kind": "video", "ssrc": track.ssrc, "codec": "H264"},
        local_ssrc=7,
        send_media=feedback.send,
        notify=events.append,
        recorder=MatroskaRecorder(tmp_path / f"bob-video-{track.ssrc}.mkv"),
    )
    wire.receiver = receiver
    receiver.start()
    assert parse_compound(feedback.rtcp[0]) == [Pli(7, track.ssrc)]
    publisher.feedback(Pli(7, track.ssrc))  # what the server would route back
    await wait_for(lambda: receiver.meter.frames >= 10)

    wire.drop_next = 1  # lose a packet: the picture is damaged and the next ones cannot be decoded
    await wait_for(lambda: receiver.keyframe_requests >= 2)
    before = receiver.meter.frames
    for request in feedback.rtcp[1:]:
        for part in parse_compound(request):
            publisher.feedback(part)
    await wait_for(lambda: receiver.meter.frames >= before + 10)
    # The receiver NACKed the hole too; the resent packet counts as received once it is back.
    assert receiver.nacks_sent >= 1 and receiver.stats.packets_lost <= 1 and receiver.decode_errors == 0

    # A NACK is answered with the very packet from the sender's history.
    sent = wire.rtp[-3]
    wire.receiver = None
    count = len(wire.rtp)
    publisher.feedback(Nack(7, track.ssrc, [sent.sequence_number]))
    assert wire.rtp[count] == sent

    await publisher.stop()
    await receiver.close("stopped")
    assert events[-1]["type"] == "track_ended" and events[-1]["reason"] == "stopped"
    stopped = [e for e in events if e["type"] == "publish_stopped"]
    assert stopped[0]["reason"] == "stopped" and stopped[0]["frames"] > 20
    assert {"type": "unpublish", "kind": "video"} in events
    recording = tmp_path / f"bob-video-{track.ssrc}.mkv"
    with av.open(str(recording)) as container:
        assert sum(1 for _ in container.decode(video=0)) >= 20


async def test_audio_is_encoded_sent_and_decoded() -> None:
    wire, events = Wire(), []
    publisher = start("sine", SineSource(), wire, events)
    await wait_for(lambda: publisher.tracks)
    track = publisher.tracks[True]
    assert (track.kind, track.codec) == ("audio", "opus")
    receiver = RemoteTrack(
        {"name": "bob", "kind": "audio", "ssrc": track.ssrc, "codec": "opus"},
        local_ssrc=7,
        send_media=wire.send,
        notify=events.append,
    )
    wire.receiver = receiver
    receiver.start()
    await asyncio.sleep(1.2)
    stats = receiver.stats_event()
    assert stats["frames"] >= 40 and stats["fps"] >= 40 and stats["decode_errors"] == 0
    assert wire.rtp[0].payload_type == 111 and wire.rtp[0].marker
    assert [p.timestamp - wire.rtp[0].timestamp for p in wire.rtp[:3]] == [0, 960, 1920]
    await publisher.stop()
    await receiver.close("stopped")


async def test_malformed_media_is_counted_never_raised() -> None:
    client = Client(create_registry(), parse_server_url("tcp://127.0.0.1:1"))
    client.name = "me"
    events: list[Message] = []
    media = MediaManager(client, events.append)
    media.handle_event(
        receive({"type": "share_started", "name": "bob", "kind": "video", "ssrc": 5, "codec": "H264"})
    )
    assert events == [{"type": "track_started", "name": "bob", "kind": "video", "ssrc": 5, "codec": "H264"}]
    garbage = [b"", b"\x80", b"\x80\x60\x00\x01" + b"\x00" * 4, b"\x81\xc9\x00\x09junk", bytes(range(256))]
    good_header = bytes(RtpPacket(payload_type=96, sequence_number=1, timestamp=0, ssrc=5, payload=b"\x7c"))
    for data in [*garbage, good_header[:11], good_header + b"\xff" * 3, b"\xa0" + good_header[1:]]:
        client.media_received(data)
    receiver = media.receivers[5]
    assert media.malformed + media.unknown + receiver.malformed >= 5
    await media.close()
    assert events[-1]["type"] == "track_ended" and events[-1]["reason"] == "closed"


async def test_a_servers_malformed_events_start_nothing_and_raise_nothing() -> None:
    client = Client(create_registry(), parse_server_url("tcp://127.0.0.1:1"))
    client.name = "me"
    events: list[Message] = []
    media = MediaManager(client, events.append)
    for event in [
        {"type": "joined", "tracks": 5},
        {"type": "joined", "tracks": [5, None, "x", {"name": "bob", "ssrc": "7"}]},
        {"type": "joined", "tracks": [{"name": "bob", "ssrc": 1 << 40}, {"name": "bob", "ssrc": True}]},
        {"type": "share_started", "name": "me", "ssrc": "x"},
        {"type": "share_started", "name": "bob", "ssrc": -1},
        {"type": "share_stopped", "name": "bob", "ssrc": [1]},
        {"type": "participant_left", "name": {"a": 1}},
    ]:
        client.control_received(encode(event))  # the link checks it, once, and hands on what it makes of it
        media.handle_event(client.events.get_nowait())
    assert media.receivers == {} and events == []
    track = {"name": "bob", "kind": "audio", "ssrc": 7, "codec": "opus"}
    snapshot = {"meeting": "abc-defg-hjk", "participants": [], "locked": False, "forbidden": []}
    media.handle_event(
        receive({"type": "joined", "name": "me", "role": "member", **snapshot, "tracks": [track]})
    )
    assert list(media.receivers) == [7]
    await media.close()
