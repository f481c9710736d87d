"""Machine mode's face for a meeting: commands one per line on stdin, one JSON event per line on stdout."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import TextIO

from conf_cli.client.prompt import HELP
from conf_cli.machine import emit, read_lines
from conf_cli.protocol.control import Message


class MachineUI:
    def __init__(self, stdin: TextIO | None = None, stdout: TextIO | None = None) -> None:
        self._in = stdin or sys.stdin
        self._out = stdout or sys.stdout

    def show(self, event: Message) -> None:
        emit(event, self._out)

    def show_help(self) -> None:
        emit({"type": "help", "commands": [{"usage": u, "description": d} for u, d in HELP]}, self._out)

    def lines(self) -> AsyncIterator[str]:
        return read_lines(self._in)

    def close(self) -> None:
        pass
