"""Mutated requests against a gateway in this process: every one gets an answer or a closed connection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from pathlib import Path

import pytest
from conf_rtsp.gateway import RtspGateway
from conf_rtsp.wire import RtspReader, RtspResponse

from conf_cli.plugin.registry import create_registry
from conf_cli.server.edge import Server
from conf_cli.server.local_link import LocalServiceContext

SDP = (
    b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
    b"a=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z2QADayyAoP2AiAAAAMAIAAABkHihUk=,aOvDyyLA\r\n"
    b"a=control:streamid=0\r\n"
)
SEEDS = [
    b"OPTIONS rtsp://h/ RTSP/1.0\r\nCSeq: 1\r\n\r\n",
    b"DESCRIBE rtsp://h/files/none.mp4 RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\n\r\n",
    b"DESCRIBE rtsp://u:p@h/abc-defg-hjk/ada/video RTSP/1.0\r\nCSeq: 3\r\n\r\n",
    b"SETUP rtsp://h/files/none.mp4/trackID=0 RTSP/1.0\r\nCSeq: 4\r\n"
    b"Transport: RTP/AVP;unicast;client_port=5000-5001\r\n\r\n",
    b"SETUP rtsp://h/abc-defg-hjk/cam/streamid=0 RTSP/1.0\r\nCSeq: 5\r\n"
    b"Transport: RTP/AVP/TCP;unicast;interleaved=0-1;mode=record\r\n\r\n",
    b"PLAY rtsp://h/files/none.mp4 RTSP/1.0\r\nCSeq: 6\r\nSession: 12345678;timeout=60\r\n"
    b"Range: npt=0-\r\n\r\n",
    b"ANNOUNCE rtsp://h/abc-defg-hjk/cam RTSP/1.0\r\nCSeq: 7\r\nContent-Type: application/sdp\r\n"
    b"Content-Length: %d\r\n\r\n" % len(SDP) + SDP,
    b"$\x00\x00\x0c\x80\x60\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01",
    b"GET_PARAMETER rtsp://h/ RTSP/1.0\r\nCSeq: 8\r\nSession: x\r\n\r\n",
]


def _mutate(rng: random.Random, data: bytes) -> bytes:
    blob = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        choice = rng.random()
        position = rng.randrange(len(blob)) if blob else 0
        if choice < 0.4 and blob:
            blob[position] = rng.randrange(256)
        elif choice < 0.6:
            blob[position:position] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif choice < 0.8 and blob:
            del blob[position : position + rng.randint(1, 8)]
        else:
            blob[position:position] = rng.choice([b"\r\n", b":", b"-1", b"99999999", b"$", b";", b"="])
    return bytes(blob)


async def _exchange(port: int, data: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        parser = RtspReader()
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(0.3):
                while chunk := await reader.read(65536):
                    for message in parser.feed(chunk):
                        assert isinstance(message, RtspResponse)
                        assert 200 <= message.status < 600
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def test_mutated_requests_never_break_the_gateway(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    loop = asyncio.get_running_loop()
    problems: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: problems.append(context))
    server = Server(create_registry())
    gateway = RtspGateway(LocalServiceContext(server), "127.0.0.1", 0, tmp_path)
    await gateway.start()
    rng = random.Random(2326)
    try:
        with caplog.at_level(logging.ERROR):
            for _ in range(30):
                batch = [_mutate(rng, rng.choice(SEEDS)) for _ in range(10)]
                await asyncio.gather(*(_exchange(gateway.port, data) for data in batch))
            await _exchange(gateway.port, b"OPTIONS rtsp://h/ RTSP/1.0\r\nCSeq: 1\r\n\r\n")
        stats = gateway.stats
        assert stats["connections"] == 301
        assert stats["requests"] > 50 and stats["requests"] + stats["bad_requests"] > 200
        assert problems == []
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    finally:
        await gateway.close()
        await server.close()
    assert gateway.sessions == {} and gateway.connections == set()
