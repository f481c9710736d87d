"""The gateway's participants in process: a viewer asks for a keyframe, a publisher fixes up its H.264."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conf_rtsp.meeting import Announced, Publisher, Refused, Viewer, join_meeting

from conf_cli.client.link import Client
from conf_cli.plugin.registry import create_registry
from conf_cli.protocol.rtcp import Pli, parse_compound
from conf_cli.protocol.rtp import RtpPacket, is_rtcp
from conf_cli.server.edge import Server
from conf_cli.server.local_link import LocalServiceContext, LocalTransport
from conf_cli.urls import ServerAddress

SPS = b"\x67\x42\xc0\x1f\xaa"
PPS = b"\x68\xce\x3c\x80"


async def _until(condition: Any, timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def _event(client: Client, kind: str) -> dict[str, Any]:
    async with asyncio.timeout(5):
        while True:
            event = await client.events.get()
            if event["type"] == kind:
                return event


async def _meeting() -> tuple[Server, Client, str]:
    registry = create_registry()
    server = Server(registry)
    host = Client(registry, ServerAddress("local", "host", 0), transport=LocalTransport(server))
    await host.connect()
    created, _ = await host.create("ada", passcode="secret")
    return server, host, created["meeting"]


async def test_a_viewer_needs_the_passcode_and_asks_for_a_keyframe_when_it_plays() -> None:
    server, host, meeting = await _meeting()
    try:
        with pytest.raises(Refused) as refused:
            await join_meeting(
                LocalServiceContext(server), meeting, ["eve (RTSP viewer)"], "wrong", "rtsp test"
            )
        assert refused.value.status == 401
        with pytest.raises(Refused) as missing:
            await join_meeting(
                LocalServiceContext(server), "zzz-zzzz-zzz", ["eve (RTSP viewer)"], "secret", "rtsp test"
            )
        assert missing.value.status == 404

        received: list[bytes] = []
        host.media_handler = received.append
        host.send({"type": "publish", "kind": "video", "ssrc": 0xABCD, "codec": "H264"})
        await _event(host, "share_started")
        client, joined = await join_meeting(
            LocalServiceContext(server), meeting, ["ada", "tv (RTSP viewer)"], "secret", "rtsp test"
        )
        assert joined["name"] == "tv (RTSP viewer)"  # "ada" is taken
        ended: list[str] = []
        viewer = Viewer(client, joined, "ADA", "video", ended.append)
        sent: list[tuple[bytes, bool]] = []
        viewer.sink = lambda packet, rtcp: sent.append((packet, rtcp))
        assert viewer.ssrc == 0xABCD and viewer.codec == "H264"
        received.clear()
        viewer.play()
        await _until(lambda: any(is_rtcp(p) for p in received))
        (pli,) = [part for p in received if is_rtcp(p) for part in parse_compound(p)]
        assert isinstance(pli, Pli) and pli.media_ssrc == 0xABCD

        assert host.link is not None
        host.link.send_media(bytes(RtpPacket(96, 7, 90, 0xABCD, b"\x65frame", marker=True)))
        host.link.send_media(bytes(RtpPacket(96, 8, 90, 0x9999, b"\x65other")))
        await _until(lambda: sent)
        assert RtpPacket.parse(sent[0][0]).sequence_number == 7 and len(sent) == 1

        host.send({"type": "end"})
        await _until(lambda: ended)
        await viewer.close()
    finally:
        await host.close()
        await server.close()


async def test_a_publisher_restamps_its_packets_and_puts_parameter_sets_before_keyframes() -> None:
    server, host, meeting = await _meeting()
    try:
        received: list[RtpPacket] = []
        host.media_handler = lambda data: None if is_rtcp(data) else received.append(RtpPacket.parse(data))
        client, _ = await join_meeting(
            LocalServiceContext(server), meeting, ["cam (RTSP)"], "secret", "rtsp test"
        )
        stream = Announced("streamid=0", "video", "H264", 97, parameter_sets=[SPS, PPS])
        publisher = Publisher(client, [stream], lambda reason: None)
        publisher.receive(stream, bytes(RtpPacket(97, 100, 5000, 0x1234, b"\x65early")))  # before RECORD
        publisher.start()
        started = await _event(host, "share_started")
        assert (started["name"], started["ssrc"]) == ("cam (RTSP)", stream.ssrc)

        idr_start = bytes((0x7C, 0x85)) + b"first half"  # FU-A, start bit, NAL type 5
        idr_end = bytes((0x7C, 0x45)) + b"second half"
        sent = ((100, idr_start, False), (101, idr_end, True), (102, b"\x41p-frame", True))
        for seq, payload, marker in sent:
            publisher.receive(stream, bytes(RtpPacket(97, seq, 9000, 0x1234, payload, marker=marker)))
        publisher.receive(stream, bytes(RtpPacket(98, 103, 9000, 0x1234, b"\x41wrong type")))
        await _until(lambda: len(received) == 4)
        sets, first, second, third = received
        assert {p.ssrc for p in received} == {stream.ssrc} and {p.payload_type for p in received} == {96}
        assert [p.sequence_number for p in received] == [100, 101, 102, 103]
        assert sets.payload == bytes((0x78,)) + b"\x00\x05" + SPS + b"\x00\x04" + PPS  # STAP-A
        assert sets.timestamp == first.timestamp == 9000
        assert first.payload == idr_start and second.marker and third.payload == b"\x41p-frame"
        await publisher.close()
    finally:
        await host.close()
        await server.close()


async def test_an_end_to_end_encrypted_meeting_is_refused_without_joining() -> None:
    registry = create_registry()
    server = Server(registry)
    host = Client(registry, ServerAddress("local", "host", 0), transport=LocalTransport(server))
    try:
        await host.connect()
        created, _ = await host.create("ada", passcode="secret", e2ee=True)
        with pytest.raises(Refused) as refused:
            await join_meeting(
                LocalServiceContext(server), created["meeting"], ["eve (RTSP viewer)"], "secret", "rtsp test"
            )
        assert refused.value.status == 403 and "end-to-end encrypted" in str(refused.value)
        assert [p.name for p in server.hub.meetings[created["meeting"]].participants.values()] == ["ada"]
    finally:
        await host.close()
        await server.close()


async def test_a_viewer_waits_in_the_waiting_room_until_the_host_admits_it() -> None:
    registry = create_registry()
    server = Server(registry)
    host = Client(registry, ServerAddress("local", "host", 0), transport=LocalTransport(server))
    try:
        await host.connect()
        created, _ = await host.create("ada", passcode="secret", waiting_room=True)
        meeting = created["meeting"]
        joining = asyncio.create_task(
            join_meeting(LocalServiceContext(server), meeting, ["eve (RTSP viewer)"], "secret", "rtsp")
        )
        assert (await _event(host, "waiting_joined"))["name"] == "eve (RTSP viewer)"
        host.send({"type": "admit", "name": "eve (RTSP viewer)"})
        client, joined = await joining
        assert joined["type"] == "joined" and joined["name"] == "eve (RTSP viewer)"
        await client.close()

        denied = asyncio.create_task(
            join_meeting(LocalServiceContext(server), meeting, ["mal (RTSP viewer)"], "secret", "rtsp")
        )
        await _event(host, "waiting_joined")
        host.send({"type": "deny", "name": "mal (RTSP viewer)"})
        with pytest.raises(Refused) as refused:
            await denied
        assert refused.value.status == 403
    finally:
        await host.close()
        await server.close()
