"""libopus through ctypes: what PyAV's Opus codecs do not expose (DTX, in-band FEC decoding, concealment).

FFmpeg's Opus decoder never reads the in-band FEC (LBRR) data of a packet and its libopus encoder
wrapper has no DTX switch, so conf drives libopus directly: the copy bundled with PyAV's wheels (always
there where conf runs), else the system's ``libopus.so.0``. :class:`Encoder` and :class:`Decoder` are
one mono 48 kHz state each, 16-bit samples in and out as NumPy arrays.

- :meth:`Encoder.encode` returns one packet per 20 ms frame; with DTX on, a frame of silence comes out
  as a packet of at most :data:`DTX_PACKET_BYTES` bytes, which a sender does not transmit.
- :meth:`Decoder.decode` with ``fec=True`` decodes the LBRR copy of the *previous* frame carried by a
  packet (RFC 6716 section 2.1.7): how a lost frame is rebuilt from the packet after it.
- :meth:`Decoder.conceal` runs Opus packet loss concealment for frames nothing can rebuild.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
from functools import cache

import numpy as np
import numpy.typing as npt

__all__ = ["DTX_PACKET_BYTES", "Decoder", "Encoder", "OpusError", "has_fec", "library_version"]

SAMPLE_RATE = 48_000
MAX_PACKET = 1500
MAX_FRAME_SAMPLES = 5760  # 120 ms at 48 kHz
DTX_PACKET_BYTES = 2
"""An encoded frame this short is DTX (silence): not worth sending (as WebRTC does)."""

_APPLICATIONS = {"voip": 2048, "audio": 2049, "lowdelay": 2051}
_SET_BITRATE = 4002
_SET_INBAND_FEC = 4012
_SET_PACKET_LOSS_PERC = 4014
_SET_DTX = 4016


class OpusError(RuntimeError):
    """libopus refused a call (its error code is in the message)."""


@cache
def _lib() -> ctypes.CDLL:
    import av  # the wheel's own libopus sits in av.libs beside the package

    bundled = sorted(glob.glob(os.path.join(os.path.dirname(av.__file__), os.pardir, "av.libs", "libopus*")))
    candidates = [*bundled, ctypes.util.find_library("opus") or "libopus.so.0"]
    errors = []
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
        except OSError as exc:
            errors.append(str(exc))
            continue
        _declare(lib)
        return lib
    raise OpusError("cannot load libopus: " + "; ".join(errors))


def _declare(lib: ctypes.CDLL) -> None:
    p, i, c_p = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
    lib.opus_encoder_create.argtypes = [ctypes.c_int32, i, i, ctypes.POINTER(i)]
    lib.opus_encoder_create.restype = p
    lib.opus_encoder_destroy.argtypes = [p]
    lib.opus_encode.argtypes = [p, ctypes.POINTER(ctypes.c_int16), i, c_p, ctypes.c_int32]
    lib.opus_encode.restype = ctypes.c_int32
    lib.opus_decoder_create.argtypes = [ctypes.c_int32, i, ctypes.POINTER(i)]
    lib.opus_decoder_create.restype = p
    lib.opus_decoder_destroy.argtypes = [p]
    lib.opus_decode.argtypes = [p, c_p, ctypes.c_int32, ctypes.POINTER(ctypes.c_int16), i, i]
    lib.opus_decode.restype = i
    lib.opus_get_version_string.restype = c_p
    if hasattr(lib, "opus_packet_has_lbrr"):
        lib.opus_packet_has_lbrr.argtypes = [c_p, ctypes.c_int32]
        lib.opus_packet_has_lbrr.restype = i


def library_version() -> str:
    """The loaded libopus's version string, e.g. ``libopus 1.5.2``."""
    return bytes(_lib().opus_get_version_string()).decode()


def has_fec(packet: bytes) -> bool:
    """Whether an Opus packet carries in-band FEC (LBRR) data for the frame before it.

    libopus 1.5 answers exactly; an older one is asked nothing and SILK or hybrid packets (the modes that
    can carry LBRR) are assumed to."""
    if not packet:
        return False
    lib = _lib()
    if hasattr(lib, "opus_packet_has_lbrr"):
        return int(lib.opus_packet_has_lbrr(packet, len(packet))) > 0
    return packet[0] >> 3 < 16


def _ctl(state: int, request: int, value: int) -> None:
    result = _lib().opus_encoder_ctl(ctypes.c_void_p(state), ctypes.c_int(request), ctypes.c_int(value))
    if result != 0:
        raise OpusError(f"opus_encoder_ctl({request}, {value}) failed with {result}")


class Encoder:
    """A libopus encoder, 48 kHz mono, with in-band FEC and DTX as asked."""

    def __init__(
        self,
        bitrate: int = 32_000,
        application: str = "voip",
        *,
        fec: bool = True,
        dtx: bool = True,
        packet_loss: int = 10,
    ) -> None:
        self._state: int | None = None
        if application not in _APPLICATIONS:
            raise ValueError(f"Opus application {application!r} is not one of {', '.join(_APPLICATIONS)}")
        error = ctypes.c_int(0)
        state = _lib().opus_encoder_create(SAMPLE_RATE, 1, _APPLICATIONS[application], ctypes.byref(error))
        if not state or error.value != 0:
            raise OpusError(f"opus_encoder_create failed with {error.value}")
        self._state = state
        self._out = ctypes.create_string_buffer(MAX_PACKET)
        self.set_bitrate(bitrate)
        _ctl(state, _SET_INBAND_FEC, int(fec))
        _ctl(state, _SET_PACKET_LOSS_PERC, max(0, min(100, packet_loss)) if fec else 0)
        _ctl(state, _SET_DTX, int(dtx))

    def set_bitrate(self, bitrate: int) -> None:
        assert self._state is not None
        _ctl(self._state, _SET_BITRATE, bitrate)

    def encode(self, pcm: npt.NDArray[np.int16]) -> bytes:
        """One Opus packet for ``pcm`` (960 mono samples for 20 ms)."""
        if self._state is None:
            raise OpusError("the encoder is closed")
        samples = np.ascontiguousarray(pcm, dtype=np.int16).reshape(-1)
        pointer = samples.ctypes.data_as(ctypes.POINTER(ctypes.c_int16))
        size = _lib().opus_encode(self._state, pointer, len(samples), self._out, MAX_PACKET)
        if size < 0:
            raise OpusError(f"opus_encode failed with {size}")
        return self._out.raw[:size]

    def close(self) -> None:
        if self._state is not None:
            _lib().opus_encoder_destroy(self._state)
            self._state = None

    def __del__(self) -> None:
        self.close()


class Decoder:
    """A libopus decoder, 48 kHz mono; bad packets raise :class:`OpusError`."""

    def __init__(self) -> None:
        self._state: int | None = None
        error = ctypes.c_int(0)
        state = _lib().opus_decoder_create(SAMPLE_RATE, 1, ctypes.byref(error))
        if not state or error.value != 0:
            raise OpusError(f"opus_decoder_create failed with {error.value}")
        self._state = state
        self._pcm = np.zeros(MAX_FRAME_SAMPLES, dtype=np.int16)

    def _run(self, data: bytes | None, samples: int, fec: bool) -> npt.NDArray[np.int16]:
        if self._state is None:
            raise OpusError("the decoder is closed")
        pointer = self._pcm.ctypes.data_as(ctypes.POINTER(ctypes.c_int16))
        count = _lib().opus_decode(self._state, data, len(data) if data else 0, pointer, samples, int(fec))
        if count < 0:
            raise OpusError(f"opus_decode failed with {count}")
        return self._pcm[:count].copy()

    def decode(self, packet: bytes, *, fec: bool = False, samples: int = 960) -> npt.NDArray[np.int16]:
        """The samples of ``packet``; with ``fec``, those of the frame before it, from its FEC data
        (``samples`` long: the lost frame's duration)."""
        if not packet:
            raise OpusError("empty Opus packet")
        return self._run(packet, samples if fec else MAX_FRAME_SAMPLES, fec)

    def conceal(self, samples: int = 960) -> npt.NDArray[np.int16]:
        """``samples`` of packet loss concealment (a multiple of 2.5 ms) for a frame that is lost."""
        return self._run(None, samples, False)

    def close(self) -> None:
        if self._state is not None:
            _lib().opus_decoder_destroy(self._state)
            self._state = None

    def __del__(self) -> None:
        self.close()
