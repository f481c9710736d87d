"""``conf admin``'s side of the admin API: find the server's API and key, send one request, read the answer.

Blocking (urllib): ``conf admin`` sends one request and exits. The server writes its API's URL to
``admin.url`` and its key to ``admin.key`` in its folder; ``--url`` and ``--key-file`` override them.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from conf_cli.errors import ConfError
from conf_cli.paths import ADMIN_KEY_FILE, ADMIN_URL_FILE

TIMEOUT = 15.0
RECORDER_TIMEOUT = 90.0
"""Starting or stopping a recording waits for a recorder process (the server bounds it below this)."""
MAX_ANSWER = 1 << 20


class AdminError(ConfError):
    """The API answered with an error (``status``, ``code``)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class AdminClient:
    url: str
    key: str

    @classmethod
    def locate(cls, server_dir: Path, url: str | None, key_file: Path | None) -> AdminClient:
        """The API of the server whose folder is ``server_dir`` (or at ``url``), with its key."""
        if url is None:
            where = server_dir / ADMIN_URL_FILE
            try:
                url = where.read_text(encoding="utf-8").strip()
            except OSError:
                raise ConfError(
                    f"no running admin API found ({where} is missing); start `conf server --admin-port PORT` "
                    "or give --url"
                ) from None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfError(f"--url {url!r}: expected http://HOST:PORT")
        key_path = key_file or server_dir / ADMIN_KEY_FILE
        try:
            key = key_path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfError(f"cannot read the admin key {key_path}: {exc.strerror or exc}") from None
        if not key:
            raise ConfError(f"the admin key file {key_path} is empty")
        return cls(url.rstrip("/"), key)

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, timeout: float = TIMEOUT
    ) -> dict[str, Any]:
        data = json.dumps(body).encode("utf-8") if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_unredirected_header("Authorization", f"Bearer {self.key}")  # never sent on
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return _json(response.read(MAX_ANSWER))
        except urllib.error.HTTPError as exc:
            answer = _json(exc.read(MAX_ANSWER), strict=False)
            code = str(answer.get("error", "error"))
            message = str(answer.get("message") or exc.reason)
            raise AdminError(exc.code, code, f"{message} (HTTP {exc.code})") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ConfError(
                f"cannot reach the admin API at {self.url} (is the server running?): {reason}"
            ) from None


def meeting_path(meeting: str, action: str = "") -> str:
    return f"/meetings/{quote(meeting, safe='')}{action}"


def _json(raw: bytes, *, strict: bool = True) -> dict[str, Any]:
    try:
        answer = json.loads(raw)
    except ValueError:
        if strict:
            raise ConfError("the admin API answered something that is not JSON") from None
        return {}
    if not isinstance(answer, dict):
        if strict:
            raise ConfError("the admin API answered something that is not a JSON object")
        return {}
    return answer
