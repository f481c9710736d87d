"""``conf server --log-format json``: every log record as one JSON object on one line.

Each object has ``time`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger`` and ``message``, then
the structured fields the log call gave (``extra={"meeting": ..., "participant": ...}``), and ``error``
with the traceback when there is one. Log shippers (journald, Loki, Elasticsearch) read it as it is.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime

LOG_FORMAT_ENV = "CONF_LOG_FORMAT"
"""Set to ``json`` for the processes the server starts (``--workers``), which log the same way."""

_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
"""Attributes every record has: what is left are the fields a log call added."""


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def use_json_logs() -> None:
    """Format every handler of the root logger as JSON lines (set up by ``conf``'s ``-v``), at INFO at
    least: a service's log says when meetings start and who joins. Worker processes started from here
    on see :data:`LOG_FORMAT_ENV` and do the same."""
    os.environ[LOG_FORMAT_ENV] = "json"
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig()
    for handler in root.handlers:
        handler.setFormatter(JsonFormatter())
    if root.level > logging.INFO:
        root.setLevel(logging.INFO)
