"""Text from the network made safe to draw on a terminal. Sans-I/O.

A server, or a peer through it, chooses names, chat, reasons and error messages. Written to a terminal
as they are, control characters act: ESC starts sequences that set the clipboard (OSC 52), the window
title, links, or clear the screen; C1 characters (U+0080-U+009F) do the same on some terminals. And rich
reads ``[...]`` in a plain string as markup, links included. So everything received is drawn through
:func:`printable` (control characters become U+FFFD) and as :class:`rich.text.Text` (never markup), and
machine mode writes JSON with every control character escaped (:func:`json_line`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from conf_cli.protocol.control import CONTROL_CHARS

REPLACEMENT = "\ufffd"
_RAW_IN_JSON = re.compile(r"[\x7f-\x9f]")  # json.dumps(ensure_ascii=False) escapes C0 but not DEL or C1


def printable(value: object) -> str:
    """``value`` as text with every control character (C0, DEL, C1) replaced by U+FFFD."""
    return CONTROL_CHARS.sub(REPLACEMENT, str(value))


def printable_event(value: Any) -> Any:
    """A copy of a received message with :func:`printable` applied to every string in it (keys too)."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable_event(key): printable_event(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [printable_event(item) for item in value]
    return value


def json_line(message: Any) -> str:
    """``message`` as one line of JSON holding no raw control character (the data is unchanged)."""
    line = json.dumps(message, ensure_ascii=False)
    # These characters can only stand inside JSON strings, where an escape means the same character.
    return _RAW_IN_JSON.sub(lambda found: f"\\u{ord(found.group()):04x}", line)
