"""Finding sound devices through sounddevice (PortAudio), with errors a person can act on.

Shared by the ``audio`` source (:mod:`.microphone`) and the ``speaker`` sink (:mod:`.speaker`).
sounddevice is imported only when called: without PortAudio this module still imports.

On Linux with PulseAudio, PortAudio sees the ``pulse`` and ``default`` devices; which PulseAudio source or
sink they use is chosen with ``PULSE_SOURCE`` / ``PULSE_SINK`` in the environment.
"""

from __future__ import annotations

from typing import Any, Literal

from conf_cli import ConfError, DeviceInfo

Direction = Literal["input", "output"]

PORTAUDIO_HINT = "install PortAudio (Debian: apt-get install libportaudio2) and the sounddevice package"


def load_sounddevice() -> Any:
    """The sounddevice module; ConfError (one line) when it or PortAudio is missing."""
    try:
        import sounddevice
    except ImportError:
        raise ConfError(f"sound devices need the sounddevice package: {PORTAUDIO_HINT}") from None
    except OSError:  # sounddevice raises OSError when the PortAudio library cannot be found
        raise ConfError(
            f"sound devices need the PortAudio library, which is not installed: {PORTAUDIO_HINT}"
        ) from None
    return sounddevice


def _channels_key(direction: Direction) -> str:
    return "max_input_channels" if direction == "input" else "max_output_channels"


def devices(direction: Direction) -> list[tuple[int, str]]:
    """``(index, name)`` of every PortAudio device that can record (``input``) or play (``output``)."""
    sd = load_sounddevice()
    try:
        found = sd.query_devices()
    except Exception as exc:  # PortAudio failing to initialise
        raise ConfError(f"cannot list sound devices: {exc}") from None
    key = _channels_key(direction)
    return [(int(d["index"]), str(d["name"])) for d in found if int(d.get(key, 0)) > 0]


def list_devices(direction: Direction) -> list[DeviceInfo]:
    """Devices for ``conf devices``: one row per device, or one unavailable row saying why there is none."""
    try:
        found = devices(direction)
    except ConfError as exc:
        return [DeviceInfo("-", f"no {direction} devices", available=False, reason=str(exc))]
    if not found:
        return [
            DeviceInfo("-", f"no {direction} devices", available=False, reason=f"no sound {direction} device")
        ]
    sd = load_sounddevice()
    default = sd.default.device[0 if direction == "input" else 1]
    return [
        DeviceInfo(str(index), name + (" (default)" if index == default else "")) for index, name in found
    ]


def resolve(device: str | int | None, direction: Direction) -> int | None:
    """The PortAudio index of ``device`` (an index, or part of a name); ``None`` means the default.

    ConfError names the device and lists what there is when nothing matches.
    """
    found = devices(direction)
    word = "microphone" if direction == "input" else "speaker"
    if not found:
        raise ConfError(
            f"no {word} found: PortAudio sees no {direction} device; "
            "start a sound server (PulseAudio) or plug one in, then see `conf devices`"
        )
    if device is None or device == "":
        return None
    known = ", ".join(f"{index} {name}" for index, name in found)
    text = str(device).strip()
    if text.isdigit():
        index = int(text)
        if any(index == i for i, _ in found):
            return index
        raise ConfError(f"no {word} with index {index} (there are: {known}); see `conf devices`")
    matches = [index for index, name in found if text.lower() in name.lower()]
    if not matches:
        raise ConfError(f"no {word} named like {text!r} (there are: {known}); see `conf devices`")
    return matches[0]
