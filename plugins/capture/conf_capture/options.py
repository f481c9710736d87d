"""Reading source and sink options (strings from the command line, or typed values) with clear errors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from conf_cli import ConfError


def opt_int(options: Mapping[str, Any], key: str, default: int, minimum: int = 1) -> int:
    """An integer option at least ``minimum``."""
    value = options.get(key)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfError(f"option {key!r} must be a whole number, not {value!r}") from None
    if number < minimum:
        raise ConfError(f"option {key!r} must be at least {minimum}, not {number}")
    return number


def opt_float(options: Mapping[str, Any], key: str, default: float, minimum: float = 0.0) -> float:
    """A number option greater than ``minimum``."""
    value = options.get(key)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfError(f"option {key!r} must be a number, not {value!r}") from None
    if not number > minimum:
        raise ConfError(f"option {key!r} must be more than {minimum:g}, not {number:g}")
    return number


def opt_bool(options: Mapping[str, Any], key: str, default: bool) -> bool:
    """A yes/no option (``1/0``, ``true/false``, ``yes/no``, ``on/off``)."""
    value = options.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfError(f"option {key!r} must be yes or no, not {value!r}")


def opt_str(options: Mapping[str, Any], key: str, default: str | None = None) -> str | None:
    """A string option, ``default`` when absent or empty."""
    value = options.get(key)
    if value is None or value == "":
        return default
    return str(value)


def opt_size(options: Mapping[str, Any], default: tuple[int, int]) -> tuple[int, int]:
    """A picture size from ``size`` (``1280x720``) or ``width``/``height``; both even, 16 at least."""
    size = options.get("size")
    if size:
        try:
            width_text, height_text = str(size).lower().split("x")
            width, height = int(width_text), int(height_text)
        except ValueError:
            raise ConfError(f"option 'size' must look like 1280x720, not {size!r}") from None
    else:
        width = opt_int(options, "width", default[0], 16)
        height = opt_int(options, "height", default[1], 16)
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise ConfError(f"picture size {width}x{height} must be even and at least 16x16")
    return width, height


def opt_region(options: Mapping[str, Any], key: str = "region") -> tuple[int, int, int, int] | None:
    """A screen region ``x,y,w,h`` (string or sequence), or ``None`` when absent."""
    value = options.get(key)
    if value is None or value == "":
        return None
    parts: Sequence[Any] = str(value).replace(" ", "").split(",") if isinstance(value, str) else value
    try:
        x, y, w, h = (int(part) for part in parts)
    except (TypeError, ValueError):
        raise ConfError(
            f"option {key!r} must be x,y,width,height (e.g. 0,0,1280,720), not {value!r}"
        ) from None
    if x < 0 or y < 0 or w < 16 or h < 16:
        raise ConfError(f"region {x},{y},{w},{h} must start at 0,0 or beyond and be at least 16x16")
    return x, y, w, h
