"""A lone server's meeting records (:mod:`conf_cli.server.record`): one file per meeting in
``meetings/`` under the server's folder.

Each file is ``ID.meeting``, mode 0600 in a folder of mode 0700 (it holds the passcode's verifier), written
to a temporary file, flushed to disk and renamed over the old one (a crash leaves the old record or the new
one, never half of one), at most :data:`~conf_cli.server.record.MAX_RECORD_BYTES`, and removed when the
meeting ends. A running server rewrites each live meeting's record every few minutes, so a record not
written for longer than a resume token lives (:func:`prune`, at start) can serve nobody and goes.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from conf_cli.errors import ConfError
from conf_cli.paths import private_dir
from conf_cli.server.record import MAX_RECORD_BYTES
from conf_cli.server.resume import REFRESH_SECONDS, TTL_SECONDS

SUFFIX = ".meeting"
RECORD_MAX_AGE = TTL_SECONDS + REFRESH_SECONDS + 60.0
"""A record not rewritten for this long names a meeting no resume token can reach any more: the server
rewrites live meetings' records every REFRESH_SECONDS, and a token lives TTL_SECONDS."""
_MEETING_ID = re.compile(r"[a-z0-9]{3}-[a-z0-9]{4}-[a-z0-9]{3}")


class FileMeetingStore:
    """Meeting records as files in ``folder`` (created 0700 on first use)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, meeting: str) -> Path:
        if not _MEETING_ID.fullmatch(meeting):  # an ID never names another place than this folder
            raise ConfError(f"{meeting!r} is not a meeting ID")
        return self.folder / f"{meeting}{SUFFIX}"

    def save(self, meeting: str, data: bytes) -> None:
        if len(data) > MAX_RECORD_BYTES:
            raise ConfError(f"a meeting record of {len(data)} bytes is over {MAX_RECORD_BYTES}")
        path = self._path(meeting)
        private_dir(self.folder)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    def load(self, meeting: str) -> bytes | None:
        try:
            path = self._path(meeting)
        except ConfError:
            return None
        try:
            with path.open("rb") as record:
                data = record.read(MAX_RECORD_BYTES + 1)
        except FileNotFoundError:
            return None
        if len(data) > MAX_RECORD_BYTES:
            raise ConfError(f"the meeting record {path} is over {MAX_RECORD_BYTES} bytes")
        return data

    def delete(self, meeting: str) -> None:
        self._path(meeting).unlink(missing_ok=True)

    def prune(self, older_than: float, now: float | None = None) -> int:
        """Remove the records (and leftover temporary files) not written for ``older_than`` seconds;
        return how many went."""
        now = time.time() if now is None else now
        removed = 0
        try:
            entries = list(self.folder.iterdir())
        except FileNotFoundError:
            return 0
        for entry in entries:
            if not (entry.name.endswith(SUFFIX) or entry.name.endswith(".tmp")):
                continue
            try:
                if now - entry.stat().st_mtime > older_than:
                    entry.unlink()
                    removed += 1
            except OSError:
                continue
        return removed
