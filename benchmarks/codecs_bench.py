"""Codec throughput on this machine: H.264 encode/decode of 720p pictures and Opus encode/decode of 20 ms.

Prints figures; asserts nothing. Each figure is a rate over one run of ``--seconds`` (noisy on shared
cores). Run with ``PYTHONPATH=.:plugins/capture python benchmarks/codecs_bench.py``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import av
import numpy as np
from conf_capture.pattern import PatternGenerator

from conf_cli.media.codecs import H264Decoder, H264Encoder, OpusDecoder, OpusEncoder


def rate(step: Callable[[int], object], seconds: float) -> tuple[float, int]:
    """Calls per second of ``step(i)`` over about ``seconds``, and how many calls that was."""
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        step(count)
        count += 1
    return count / elapsed, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="time spent on each figure")
    parser.add_argument("--bitrate", type=int, default=2_000_000, help="H.264 bit rate, bit/s")
    args = parser.parse_args()
    seconds = args.seconds
    width, height = 1280, 720

    generator = PatternGenerator(width, height)
    frames_per_s, _ = rate(lambda i: generator.render(i, time.time()), seconds)
    print(f"pattern 720p render          {1000 / frames_per_s:8.3f} ms/frame ({frames_per_s:,.0f} frames/s)")

    pictures = [generator.render(i, 1_700_000_000 + i / 30) for i in range(300)]
    encoder = H264Encoder(width, height, fps=30, bitrate=args.bitrate)
    units: list[bytes] = []

    def encode(i: int) -> None:
        units.extend(u.data for u in encoder.encode(pictures[i % len(pictures)], 1_700_000_000 + i / 30))

    fps, count = rate(encode, seconds)
    kbit = sum(map(len, units)) * 8 / 1000 / (count / 30)
    target = args.bitrate // 1000
    print(f"H.264 encode 720p pattern    {fps:8.0f} frames/s ({kbit:,.0f} kbit/s at 30 fps, target {target})")

    screen = np.random.default_rng(1).integers(0, 256, (height, width, 4), dtype=np.uint8)
    screen[:, :, :] = screen[:1, :1, :]  # flat colour with a moving block: screen-like content
    bgra_encoder = H264Encoder(width, height, fps=30, bitrate=args.bitrate)

    def encode_bgra(i: int) -> None:
        screen[100:200, (i * 8) % 1100 : (i * 8) % 1100 + 100] = 255
        bgra_encoder.encode(av.VideoFrame.from_ndarray(screen, format="bgra"), i / 30)

    fps, _ = rate(encode_bgra, seconds)
    print(f"H.264 encode 720p BGRA input {fps:8.0f} frames/s (colour conversion included)")

    decoder = H264Decoder()
    fps, _ = rate(lambda i: decoder.decode(units[i % len(units)]), seconds)
    print(f"H.264 decode 720p            {fps:8.0f} frames/s")

    wave = (np.sin(2 * np.pi * 440 * np.arange(500 * 960) / 48_000) * 10_000).astype(np.int16)
    chunks = [
        av.AudioFrame.from_ndarray(part.reshape(1, -1), format="s16", layout="mono")
        for part in np.split(wave, 500)
    ]
    for chunk in chunks:
        chunk.sample_rate = 48_000
    opus = OpusEncoder(bitrate=32_000)
    packets: list[bytes] = []
    fps, _ = rate(lambda i: packets.extend(u.data for u in opus.encode(chunks[i % 500], i * 0.02)), seconds)
    print(f"Opus encode 48 kHz mono 20ms {fps:8.0f} frames/s")

    opus_decoder = OpusDecoder()
    fps, _ = rate(lambda i: opus_decoder.decode(packets[i % len(packets)]), seconds)
    print(f"Opus decode                  {fps:8.0f} frames/s")


if __name__ == "__main__":
    main()
