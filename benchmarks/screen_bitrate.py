"""Bit rate of a 1280x720 @ 30 fps screen share: conf's H.264 encoder against one JPEG per frame.

Method: two contents, ``--seconds`` long each, are encoded frame by frame:

* ``pattern``: conf's own ``pattern`` source (a panning, colourful picture with a bouncing box and a
  changing stamp): much more motion than a desktop, close to the worst case for a screen share;
* ``desktop``: a synthetic desktop drawn with numpy: a wallpaper, a side bar, an editor window whose text
  (grey-level glyphs, as anti-aliased text looks) scrolls for one second and then rests for two, a
  blinking caret and a mouse pointer gliding around; like reading or presenting a document.

Each content goes through conf's :class:`~conf_cli.media.codecs.H264Encoder` (libx264 ultrafast,
zerolatency, constrained baseline, the bit rate conf uses for a share, ``--bitrate``), is decoded back,
and its PSNR is taken against the source over every R, G and B sample of every frame (the mean squared
error of all frames together). The same frames then go through PyAV's ``mjpeg`` encoder at a fixed
quantiser, searched for the coarsest one whose PSNR is at least H.264's: "JPEG per frame at like
quality" (if even the finest quantiser falls short, the ratio printed is a lower bound). Both include
the loss of 4:2:0 chroma. Printed: kbit/s and PSNR of each, and the ratio.
Figures are printed, never asserted.

Run: ``.venv/bin/python benchmarks/screen_bitrate.py [--seconds 10] [--bitrate 1500000]``
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Iterator
from fractions import Fraction

import av
import numpy as np
import numpy.typing as npt
from conf_capture.pattern import PatternGenerator

from conf_cli.client.media.publisher import DEFAULT_VIDEO_BITRATE
from conf_cli.media.codecs import H264Decoder, H264Encoder

WIDTH, HEIGHT, FPS = 1280, 720, 30
Picture = npt.NDArray[np.uint8]


# -- contents ---------------------------------------------------------------------------------------------


def pattern_frames(count: int) -> Iterator[av.VideoFrame]:
    generator = PatternGenerator(WIDTH, HEIGHT)
    for index in range(count):
        yield generator.render(index, 1_700_000_000 + index / FPS)


class Desktop:
    """A synthetic desktop: static chrome, a scrolling document, a caret and a pointer."""

    GLYPH_W, GLYPH_H, LINE_H = 8, 14, 20
    TEXT_X, TEXT_Y, TEXT_W, TEXT_H = 300, 110, 900, 560

    def __init__(self, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        base = np.empty((HEIGHT, WIDTH, 3), np.uint8)
        ys = np.linspace(0, 1, HEIGHT)[:, None]
        base[..., 0] = (30 + 40 * ys).astype(np.uint8)  # a quiet gradient wallpaper
        base[..., 1] = (60 + 50 * ys).astype(np.uint8)
        base[..., 2] = (110 + 60 * ys).astype(np.uint8)
        base[:28] = (40, 40, 48)  # top bar
        base[60:700, 40:1240] = (246, 246, 246)  # the window
        base[60:92, 40:1240] = (222, 224, 230)  # its title bar
        base[92:700, 40:260] = (235, 238, 242)  # side bar with a list of entries
        for row in range(20):
            y = 110 + row * 28
            base[y : y + 16, 56:72] = rng.integers(40, 220, 3)  # an icon
            self._text(base, rng, 80, y + 1, int(rng.integers(8, 20)), colour=60)
        self.base = base
        glyphs = self._glyphs(rng)
        lines = 400
        document = np.full((lines * self.LINE_H, self.TEXT_W), 246, np.uint8)
        for line in range(lines):
            length = int(rng.integers(0, self.TEXT_W // self.GLYPH_W - 4))
            codes = rng.integers(0, len(glyphs), length)
            codes[rng.random(length) < 0.17] = -1  # spaces between words
            for column, code in enumerate(codes):
                if code >= 0:
                    y, x = line * self.LINE_H + 3, column * self.GLYPH_W
                    document[y : y + self.GLYPH_H, x : x + self.GLYPH_W] = glyphs[code]
        self.document = document
        self.pointer = self._pointer()

    def _glyphs(self, rng: np.random.Generator) -> list[Picture]:
        """Ninety-odd letter-like shapes: strokes on a 4x6 grid, upscaled and softened as by anti-aliasing."""
        glyphs = []
        for _ in range(94):
            cells = (rng.random((6, 4)) < 0.45).astype(np.float32)
            big = np.kron(cells, np.ones((2, 2), np.float32))  # 12x8
            padded = np.pad(big, ((1, 1), (0, 0)))  # 14x8
            soft = padded.copy()
            soft[1:-1] = (padded[:-2] + 2 * padded[1:-1] + padded[2:]) / 4
            soft[:, 1:-1] = (soft[:, :-2] + 2 * soft[:, 1:-1] + soft[:, 2:]) / 4
            glyphs.append((246 - soft * 216).astype(np.uint8))
        return glyphs

    def _text(self, picture: Picture, rng: np.random.Generator, x: int, y: int, n: int, colour: int) -> None:
        for i in range(n):
            if rng.random() > 0.15:
                picture[y + 3 : y + 12, x + i * 8 + 1 : x + i * 8 + 7] = colour

    def _pointer(self) -> npt.NDArray[np.bool_]:
        arrow = np.zeros((19, 12), bool)
        for row in range(19):
            arrow[row, : min(row + 1, 12) if row < 12 else max(0, 16 - row)] = True
        return arrow

    def frame(self, index: int) -> av.VideoFrame:
        t = index / FPS
        cycle, phase = divmod(t, 3.0)
        scrolled = cycle * FPS + min(phase, 1.0) * FPS  # one second of scrolling, two of rest
        offset = int(scrolled * 4) % (self.document.shape[0] - self.TEXT_H)
        picture = self.base.copy()
        view = self.document[offset : offset + self.TEXT_H]
        picture[self.TEXT_Y : self.TEXT_Y + self.TEXT_H, self.TEXT_X : self.TEXT_X + self.TEXT_W] = view[
            ..., None
        ]
        if int(t * 2) % 2 == 0:  # a caret blinking twice a second
            picture[400:416, 700:702] = 20
        px = int(640 + 400 * math.sin(t * 0.7))
        py = int(360 + 220 * math.sin(t * 1.1))
        area = picture[py : py + 19, px : px + 12]
        area[self.pointer[: area.shape[0], : area.shape[1]]] = 10
        return av.VideoFrame.from_ndarray(picture, format="rgb24")


def desktop_frames(count: int) -> Iterator[av.VideoFrame]:
    desktop = Desktop()
    for index in range(count):
        yield desktop.frame(index)


# -- encoding and measuring -------------------------------------------------------------------------------


def rgb(frame: av.VideoFrame) -> Picture:
    return frame.to_ndarray(format="rgb24")  # type: ignore[return-value]


def psnr(squared_error: float, samples: int) -> float:
    mse = squared_error / samples
    return float("inf") if mse == 0 else 10 * math.log10(255**2 / mse)


def squared_error(a: Picture, b: Picture) -> float:
    diff = a.astype(np.int32) - b.astype(np.int32)
    return float(np.einsum("ijk,ijk->", diff, diff, dtype=np.int64))


def h264(frames: list[av.VideoFrame], references: list[Picture], bitrate: int) -> tuple[float, float, float]:
    """(kbit/s, PSNR dB, encode ms per frame) of conf's H.264 encoder."""
    encoder = H264Encoder(WIDTH, HEIGHT, FPS, bitrate)
    decoder = H264Decoder()
    size, error, spent = 0, 0.0, 0.0
    for index, (frame, reference) in enumerate(zip(frames, references, strict=True)):
        start = time.perf_counter()
        units = encoder.encode(frame, capture_time=index / FPS)
        spent += time.perf_counter() - start
        for unit in units:
            size += len(unit.data)
            for decoded in decoder.decode(unit.data):
                error += squared_error(rgb(decoded), reference)
    seconds = len(frames) / FPS
    return (
        size * 8 / seconds / 1000,
        psnr(error, len(frames) * WIDTH * HEIGHT * 3),
        spent / len(frames) * 1000,
    )


def mjpeg(frames: list[av.VideoFrame], references: list[Picture], quantiser: int) -> tuple[float, float]:
    """(kbit/s, PSNR dB) of one JPEG per frame at a fixed quantiser (1 finest .. 31 coarsest)."""
    encoder = av.CodecContext.create("mjpeg", "w")
    assert isinstance(encoder, av.VideoCodecContext)
    encoder.width, encoder.height, encoder.pix_fmt = WIDTH, HEIGHT, "yuvj420p"
    encoder.time_base = Fraction(1, FPS)
    encoder.options = {"qmin": str(quantiser), "qmax": str(quantiser)}
    encoder.open()
    decoder = av.CodecContext.create("mjpeg", "r")
    size, error = 0, 0.0
    for index, (frame, reference) in enumerate(zip(frames, references, strict=True)):
        yuv = frame.reformat(format="yuvj420p")
        yuv.pts = index
        for packet in encoder.encode(yuv):
            size += packet.size
            for decoded in decoder.decode(packet):
                assert isinstance(decoded, av.VideoFrame)
                error += squared_error(rgb(decoded), reference)
    seconds = len(frames) / FPS
    return size * 8 / seconds / 1000, psnr(error, len(frames) * WIDTH * HEIGHT * 3)


def matching_mjpeg(
    frames: list[av.VideoFrame], references: list[Picture], target: float
) -> tuple[int, float, float]:
    """The coarsest JPEG quantiser whose PSNR reaches ``target``: (quantiser, kbit/s, PSNR)."""
    low, high = 1, 31
    best = (1, *mjpeg(frames, references, 1))
    if best[2] < target:
        return best  # even the finest JPEG falls short: report it
    while low < high:  # PSNR falls as the quantiser grows
        middle = (low + high + 1) // 2
        kbps, quality = mjpeg(frames, references, middle)
        if quality >= target:
            low, best = middle, (middle, kbps, quality)
        else:
            high = middle - 1
    return best


def run(seconds: float, bitrate: int) -> None:
    count = max(1, round(seconds * FPS))
    print(
        f"{WIDTH}x{HEIGHT} @ {FPS} fps, {count} frames per content; H.264 target {bitrate / 1000:.0f} kbit/s"
    )
    print(f"{'content':<8} {'codec':<22} {'kbit/s':>8} {'PSNR dB':>8}")
    for name, source in (("desktop", desktop_frames), ("pattern", pattern_frames)):
        references = [rgb(frame) for frame in source(count)]
        frames = [av.VideoFrame.from_ndarray(picture, format="rgb24") for picture in references]  # as grabbed
        h_kbps, h_psnr, h_ms = h264(frames, references, bitrate)
        quantiser, j_kbps, j_psnr = matching_mjpeg(frames, references, h_psnr)
        print(f"{name:<8} {'H.264 (conf)':<22} {h_kbps:>8.0f} {h_psnr:>8.2f}   encode {h_ms:.1f} ms/frame")
        print(f"{name:<8} {f'MJPEG q={quantiser}':<22} {j_kbps:>8.0f} {j_psnr:>8.2f}")
        bound = "at least " if j_psnr < h_psnr else ""  # even the finest JPEG is worse than H.264
        ratio = f"{bound}{j_kbps / h_kbps:.1f}x"
        print(f"{name:<8} JPEG per frame needs {ratio} the bit rate of H.264 at like quality")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of each content")
    parser.add_argument("--bitrate", type=int, default=DEFAULT_VIDEO_BITRATE, help="H.264 target, bit/s")
    args = parser.parse_args()
    run(args.seconds, args.bitrate)


if __name__ == "__main__":
    main()
