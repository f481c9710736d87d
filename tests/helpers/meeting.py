"""Meetings of the meeting core (no hub, no sockets) with four fixed participants."""

from __future__ import annotations

from typing import Any

import pytest

from conf_cli.errors import RequestRefused
from conf_cli.server.meeting import Meeting
from conf_cli.server.passcode import PasscodeHash

# The meeting core never checks the passcode itself (the hub does, off the event loop), so a fixed
# hash stands in for a real one.
PASSCODE = PasscodeHash(salt=b"s" * 16, digest=b"d" * 64)
MID = "abc-defg-hjk"

ADA, BOB, CY, DEE = 1, 2, 3, 4
NAMES = {ADA: "Ada", BOB: "Bob", CY: "Cy", DEE: "Dee"}


def meeting_with(*pids: int, admins: tuple[int, ...] = ()) -> Meeting:
    """A meeting joined by ``pids`` in that order (the first is host); ``admins`` promoted by the host."""
    meeting = Meeting(MID, PASSCODE)
    for pid in pids:
        meeting.join(pid, NAMES[pid], passcode_ok=True)
    for pid in admins:
        meeting.set_role(pids[0], NAMES[pid], "admin")
    return meeting


def refused(code: str, call: Any, *args: Any, **kwargs: Any) -> RequestRefused:
    """Call ``call`` and check that it refuses with ``code``."""
    with pytest.raises(RequestRefused) as info:
        call(*args, **kwargs)
    assert info.value.code == code
    return info.value
