"""libopus through ctypes: DTX, in-band FEC, concealment; and the Opus encoder's levels."""

from __future__ import annotations

import av
import numpy as np
import pytest

from conf_cli.media import libopus
from conf_cli.media.codecs import OpusDecoder, OpusEncoder


def frame_of(samples: np.ndarray, pts: int) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(samples.astype(np.int16).reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = 48_000
    frame.pts = pts
    return frame


def speech_like(seconds: float) -> np.ndarray:
    t = np.arange(round(48_000 * seconds))
    return np.sin(2 * np.pi * 300 * t / 48_000) * 12_000 * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t / 48_000))


def encode_all(encoder: OpusEncoder, samples: np.ndarray) -> list:
    units = []
    for start in range(0, len(samples), 960):
        units += encoder.encode(frame_of(samples[start : start + 960], start))
    return units


def test_the_library_loads_and_says_its_version() -> None:
    assert libopus.library_version().startswith("libopus ")


def test_speech_carries_in_band_fec_and_a_steady_silence_is_not_sent_with_dtx() -> None:
    speech = encode_all(OpusEncoder(dtx=True), speech_like(1.0))
    assert len(speech) == 50
    assert sum(libopus.has_fec(unit.data) for unit in speech) >= 25
    assert all(unit.level is not None and unit.level < 30 for unit in speech)

    encoder = OpusEncoder(dtx=True)
    silence = encode_all(encoder, np.zeros(48_000 * 2))
    assert len(silence) < 30  # DTX: a few packets while it settles, then one every 400 ms
    assert encoder.silent_frames == 100 - len(silence)
    assert [u.pts for u in silence] == sorted(u.pts for u in silence)


def test_without_dtx_every_frame_is_sent() -> None:
    assert len(encode_all(OpusEncoder(), np.zeros(48_000))) == 50


def test_a_lost_frame_comes_back_from_fec_close_to_the_original() -> None:
    units = encode_all(OpusEncoder(), speech_like(1.0))
    index = next(i for i in range(25, 50) if libopus.has_fec(units[i].data))
    reference, damaged = OpusDecoder(), OpusDecoder()
    for unit in units[:index]:
        want = reference.decode(unit.data)
        if unit is not units[index - 1]:
            damaged.decode(unit.data)
    rebuilt = damaged.decode_fec(units[index].data)[0].to_ndarray().astype(np.float64)
    concealed = OpusDecoder()
    for unit in units[: index - 1]:
        concealed.decode(unit.data)
    guess = concealed.conceal()[0].to_ndarray().astype(np.float64)
    original = want[0].to_ndarray().astype(np.float64)
    assert rebuilt.shape == original.shape == guess.shape == (1, 960)
    error_fec = np.mean((rebuilt - original) ** 2)
    error_plc = np.mean((guess - original) ** 2)
    assert error_fec < error_plc  # FEC is the real frame at a lower rate; PLC is a guess


def test_damaged_packets_are_counted_not_raised() -> None:
    decoder = OpusDecoder()
    assert decoder.decode(b"") == []
    assert decoder.decode(bytes([0xFF, 0xFF])) == []  # code 3 with a zero frame count
    assert decoder.errors == 1
    with pytest.raises(ValueError):
        libopus.Encoder(application="karaoke")
