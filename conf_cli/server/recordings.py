"""Recordings the admin API started: which meeting each records, into which file, in which state, and
what its ``recording_finished`` webhook says. Sans-I/O: the time is passed in, nothing waits.

The server records the way Jibri does for Jitsi: it never decodes media itself; it starts a recorder
(``conf record``) as a process of its own, which joins the meeting over loopback like anyone and writes
the composite (:mod:`conf_cli.server.recorders` runs the processes). This registry decides:

- whether a recording may start: one per meeting (``already_recording``), at most ``limit`` at once
  (``recording_limit``), a known ``format`` and ``layout``, and a file name that stays inside the
  server's ``recordings/`` folder (:func:`file_name`: a plain name, never a path);
- the states of each: ``starting`` (the process runs, not yet in the meeting), ``waiting`` (an end-to-end
  encrypted meeting: it waits for the host's ``/admit``), ``recording``, ``stopping``;
- which are overdue (:meth:`Recordings.overdue`: not in the meeting within ``start_timeout``, or not
  admitted within ``admit_timeout``);
- what the recorder's own events (its ``--json`` lines) say about why it ended, and what the webhook
  carries (:meth:`Recordings.finished`).
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from typing import Any

from conf_cli.errors import RequestRefused
from conf_cli.media.layout import LAYOUTS

FORMATS = ("mp4", "hls")
"""``mp4``: one file ``NAME.mp4``; ``hls``: a folder ``NAME/`` holding ``index.m3u8`` and its segments."""
MAX_RECORDINGS = 4
"""Recorders at once on one server: each decodes and encodes video (about 0.4 of a core at 720p)."""
START_TIMEOUT = 30.0
"""Seconds a recorder has to be in the meeting (or in its waiting room) after it is started."""
ADMIT_TIMEOUT = 120.0
"""Seconds a recorder waits for the host's ``/admit`` in an end-to-end encrypted meeting."""
STOP_TIMEOUT = 30.0
"""Seconds a recorder has to finish its file once told to stop; then it is killed."""
FOLDER = "recordings"
"""The folder, inside the server's, that recordings go to."""
MAX_FILE_CHARS = 100
_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

REASONS = {
    "meeting_ended": "the meeting ended",
    "kicked": "the recorder was removed from the meeting",
    "recording_forbidden": "the host forbade recording (/forbid record)",
    "not_admitted": "the host did not admit the recorder",
}


def file_name(meeting: str, fmt: str, utc: datetime.datetime, chosen: str | None = None) -> str:
    """The name of a recording in the recordings folder: ``chosen`` if it is a plain name (letters,
    digits, ``.``, ``_``, ``-``; no ``..``, no folder), else the meeting ID and the UTC time; with
    ``.mp4`` for MP4 (an HLS recording is a folder of that name)."""
    if chosen is None:
        stem = f"{meeting}-{utc.strftime('%Y%m%dT%H%M%SZ')}"
    else:
        if (
            not isinstance(chosen, str)
            or len(chosen) > MAX_FILE_CHARS
            or not _FILE.fullmatch(chosen)
            or ".." in chosen
        ):
            raise RequestRefused(
                "bad_request",
                f"file must be a plain name of at most {MAX_FILE_CHARS} letters, digits, '.', '_' or '-' "
                "(no folder, no '..'): recordings always go to the server's recordings folder",
            )
        stem = chosen.removesuffix(".mp4")
    return f"{stem}.mp4" if fmt == "mp4" else stem


@dataclass
class Recording:
    """One recording: the meeting, where it goes (``file``, relative to the recordings folder), its state."""

    meeting: str
    file: str
    format: str
    layout: str
    started: float
    state: str = "starting"
    joined: float | None = None
    """When it was in the meeting (None: not yet)."""
    answered: bool = False
    """Its start was answered as a success: from then on its end is a ``recording_finished`` webhook."""
    reason: str | None = None
    """Why it stops, once known (an operator's stop, the meeting's end, a timeout ...)."""
    seconds: float | None = None
    """The recorder's own count of what it wrote (its ``recording_written`` event)."""
    errors: list[str] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        return {"meeting": self.meeting, "file": f"{FOLDER}/{self.file}", "format": self.format,
                "layout": self.layout, "state": self.state}  # fmt: skip


class Recordings:
    """The recordings of one server, by meeting."""

    def __init__(
        self,
        *,
        limit: int = MAX_RECORDINGS,
        start_timeout: float = START_TIMEOUT,
        admit_timeout: float = ADMIT_TIMEOUT,
    ) -> None:
        self.limit = limit
        self.start_timeout = start_timeout
        self.admit_timeout = admit_timeout
        self.active: dict[str, Recording] = {}
        self.waited_since: dict[str, float] = {}

    def begin(
        self,
        meeting: str,
        now: float,
        utc: datetime.datetime,
        *,
        fmt: str = "mp4",
        layout: str = "grid",
        chosen: str | None = None,
    ) -> Recording:
        """A new recording of ``meeting``, or RequestRefused saying why it may not start."""
        if fmt not in FORMATS:
            raise RequestRefused("bad_request", f"format must be one of {', '.join(FORMATS)}")
        if layout not in LAYOUTS:
            raise RequestRefused("bad_request", f"layout must be one of {', '.join(LAYOUTS)}")
        name = file_name(meeting, fmt, utc, chosen)
        if meeting in self.active:
            raise RequestRefused(
                "already_recording", f"meeting {meeting} is recorded already; stop that recording first"
            )
        if len(self.active) >= self.limit:
            raise RequestRefused(
                "recording_limit",
                f"this server records at most {self.limit} meetings at once; stop one, or try again later",
            )
        recording = Recording(meeting, name, fmt, layout, now)
        self.active[meeting] = recording
        return recording

    def get(self, meeting: str) -> Recording:
        recording = self.active.get(meeting)
        if recording is None:
            raise RequestRefused("not_recording", f"meeting {meeting} is not being recorded by the server")
        return recording

    def event(self, meeting: str, event: dict[str, Any], now: float) -> None:
        """What the recorder of ``meeting`` said (one of its ``--json`` events)."""
        recording = self.active.get(meeting)
        if recording is None:
            return
        kind = event.get("type")
        if kind == "joined" and recording.state in ("starting", "waiting"):
            recording.state, recording.joined = "recording", now
        elif kind == "waiting" and recording.state == "starting":
            recording.state = "waiting"
            self.waited_since[meeting] = now
        elif kind == "recording_written":
            seconds = event.get("seconds")
            if isinstance(seconds, int | float):
                recording.seconds = float(seconds)
        elif kind in ("meeting_closed", "kicked", "denied"):
            named = {"meeting_closed": "meeting_ended", "denied": "not_admitted"}
            recording.reason = recording.reason or named.get(kind, kind)
        elif kind == "error":
            if event.get("code") == "forbidden":
                recording.reason = recording.reason or "recording_forbidden"
            message = event.get("message")
            if isinstance(message, str) and len(recording.errors) < 5:
                recording.errors.append(message[:300])

    def stopping(self, meeting: str, reason: str) -> Recording:
        """The recording of ``meeting`` is to stop for ``reason`` (RequestRefused if there is none)."""
        recording = self.get(meeting)
        if recording.state != "stopping":
            recording.state = "stopping"
            recording.reason = recording.reason or reason
        return recording

    def overdue(self, now: float) -> list[Recording]:
        """Recordings not in their meeting in time; each is marked stopping, with its reason."""
        late = []
        for meeting, recording in self.active.items():
            if recording.state == "starting" and now - recording.started > self.start_timeout:
                recording.reason = "start_timeout"
            elif (
                recording.state == "waiting"
                and now - self.waited_since.get(meeting, now) > self.admit_timeout
            ):
                recording.reason = "not_admitted"
            else:
                continue
            recording.state = "stopping"
            late.append(recording)
        return late

    def finished(self, meeting: str, exit_code: int | None, size: int, now: float) -> dict[str, Any]:
        """The recorder of ``meeting`` has exited (``exit_code``; None: killed) having written ``size``
        bytes: forget it; the fields of its ``recording_finished`` webhook and of the stop's answer."""
        recording = self.active.pop(meeting)
        self.waited_since.pop(meeting, None)
        if recording.reason is not None:
            reason = recording.reason
        elif exit_code is None or exit_code < 0:
            reason = "recorder_killed"
        elif exit_code == 0:
            reason = "recorder_left"
        else:
            reason = "recorder_failed"
        if recording.seconds is not None:
            duration = recording.seconds
        elif recording.joined is not None:
            duration = now - recording.joined
        else:
            duration = 0.0
        fields: dict[str, Any] = {
            "file": f"{FOLDER}/{recording.file}",
            "format": recording.format,
            "bytes": size,
            "duration_s": round(duration, 3),
            "reason": reason,
        }
        if recording.errors:
            fields["error"] = recording.errors[-1]
        return fields
