"""A raw simulcast publisher against a real rtp:// server (TLS control, real SRTP), and what a raw
subscriber receives of its track: the server's layer choices seen from outside, with no encoder."""

from __future__ import annotations

import threading
import time

from conf_cli.protocol.rtcp import Pli, parse_compound
from conf_cli.protocol.rtp import RtpPacket, is_rtcp
from conf_cli.testing.hostile import SrtpRawLink

TRACK = 0x5A5A0002
LAYERS = [
    {"ssrc": 0x5A5A0000, "width": 320, "height": 180, "bitrate": 120_000},
    {"ssrc": 0x5A5A0001, "width": 640, "height": 360, "bitrate": 400_000},
    {"ssrc": TRACK, "width": 1280, "height": 720, "bitrate": 1_200_000},
]


class Publisher:
    """Sends a packet of each layer every 20 ms, each an IDR slice whose fifth byte is its layer (a non-IDR
    slice for the layers in ``without_keyframes``: a switch to one of those never completes); notes when
    the server itself asked for a keyframe of which layer."""

    def __init__(self, link: SrtpRawLink, without_keyframes: frozenset[int] = frozenset()) -> None:
        self.link = link
        self.without_keyframes = without_keyframes
        self.plis = 0
        self.asked: list[tuple[float, int]] = []
        """(when, layer SSRC) of each keyframe request from the server."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        seq = 0
        start = time.monotonic()
        while not self._stop.is_set():
            seq += 1
            ts = int((time.monotonic() - start) * 90_000)  # the capture time, as an encoder's would be
            for index, layer in enumerate(LAYERS):
                nal = b"\x41" if index in self.without_keyframes else b"\x65"
                payload = nal + b"idr" + bytes([index]) * 32
                self.link.send_media(bytes(RtpPacket(96, seq & 0xFFFF, ts, layer["ssrc"], payload)))
            for packet in self.link.media(0.02):
                if is_rtcp(packet):
                    # the server's own (a receiver's, passed on, carries that receiver's SSRC)
                    asked = [p for p in parse_compound(packet) if isinstance(p, Pli) and p.sender_ssrc == 0]
                    self.plis += len(asked)
                    self.asked += [(time.monotonic(), p.media_ssrc) for p in asked]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def layers_received(link: SrtpRawLink, seconds: float) -> list[int]:
    """The layers of the track's packets ``link`` receives over ``seconds``, in order."""
    got: list[int] = []
    for packet in link.media(seconds):
        if not is_rtcp(packet) and len(packet) > 16 and int.from_bytes(packet[8:12], "big") == TRACK:
            got.append(packet[16])
    return got
