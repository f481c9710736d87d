"""The cost of `conf record`: four 720p30 H.264 streams decoded, tiled and encoded again at 720p30.

Prints the CPU time per second of recording as a fraction of one core (below 1.0: real time fits in
one core). Runs in one process, without a network (no encryption involved).
Usage: python benchmarks/composite.py [--seconds N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import av

from conf_cli.client.media.composite import Composite
from conf_cli.client.media.recording import CompositeRecorder, Target, open_outputs
from conf_cli.media.codecs import H264Decoder

FPS = 30
TILES = 4


def encoded_streams(seconds: float) -> list[list[bytes]]:
    """Four 720p30 H.264 streams (lavfi test sources), encoded once beforehand."""
    streams = []
    for index in range(TILES):
        source = av.open(f"testsrc2=size=1280x720:rate={FPS}:duration={seconds}", format="lavfi")
        encoder = av.CodecContext.create("libx264", "w")
        encoder.width, encoder.height, encoder.pix_fmt = 1280, 720, "yuv420p"
        encoder.options = {"preset": "ultrafast", "tune": "zerolatency"}
        units = []
        for frame in source.decode(video=0):
            frame = frame.reformat(format="yuv420p")
            frame.pts = None
            units += [bytes(packet) for packet in encoder.encode(frame)]
        units += [bytes(packet) for packet in encoder.encode(None)]
        streams.append(units)
        source.close()
        print(f"stream {index}: {len(units)} pictures", file=sys.stderr)
    return streams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the streams (10)")
    seconds = parser.parse_args().seconds
    streams = encoded_streams(seconds)
    composite = Composite(1280, 720)
    sinks = [
        composite.sinks_for({"name": f"peer {i}", "kind": "video", "ssrc": i + 1})[0] for i in range(TILES)
    ]
    decoders = [H264Decoder() for _ in range(TILES)]
    with TemporaryDirectory() as folder:
        outputs = open_outputs([Target("file", str(Path(folder) / "bench.mp4"))], 1280, 720, FPS)
        recorder = CompositeRecorder(composite, outputs, FPS)
        frames = min(len(units) for units in streams)
        cpu, wall = time.process_time(), time.perf_counter()
        for index in range(frames):
            for tile, decoder, units in zip(sinks, decoders, streams, strict=True):
                for picture in decoder.decode(units[index]):
                    tile.write(picture)
            recorder.tick(index / FPS)
        used, took = time.process_time() - cpu, time.perf_counter() - wall
        recorder.stop()
    recorded = frames / FPS
    print(f"{TILES} tiles of 1280x720@{FPS} -> 1280x720@{FPS} H.264+AAC, {frames} frames ({recorded:.1f} s)")
    print(f"cpu fraction of one core: {used / recorded:.2f}  (wall {took / recorded:.2f} of real time)")


if __name__ == "__main__":
    main()
