"""``conf server --log-format json``: one JSON object per log line, with the structured fields a log call
gives (meeting, participant ...)."""

from __future__ import annotations

import json
import logging
import sys
import time

from conf_cli.server.json_log import JsonFormatter
from conf_cli.testing.processes import ClientPool, start_server


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("conf.meeting", logging.INFO, __file__, 1, "%s joined", ("ada",), None)
    record.__dict__.update(extra)
    return record


def test_a_record_becomes_one_json_line_with_its_fields() -> None:
    line = JsonFormatter().format(_record(meeting="k7m-q2xw-9fd", participant="ada\nINFO forged"))
    assert "\n" not in line  # a name with a line break cannot forge a second log line
    entry = json.loads(line)
    assert entry["level"] == "INFO" and entry["logger"] == "conf.meeting"
    assert entry["message"] == "ada joined"
    assert entry["meeting"] == "k7m-q2xw-9fd" and entry["participant"] == "ada\nINFO forged"
    assert entry["time"].endswith("+00:00")
    assert set(entry) == {"time", "level", "logger", "message", "meeting", "participant"}


def test_a_traceback_goes_into_the_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("conf", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    entry = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in entry["error"]


def test_a_real_server_logs_json_lines_with_meeting_and_participant() -> None:
    server, url = start_server("--log-format", "json")
    pool = ClientPool(url)
    try:
        _, meeting = pool.create("ada")
        bob = pool.joined(meeting, "bob")
        bob.send("/leave")
        bob.wait(15)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any("bob left" in line for line in server.stderr_lines):
            time.sleep(0.1)
        entries = [json.loads(line) for line in list(server.stderr_lines)]  # every line parses
        assert any(e["logger"] == "conf.server" and e["message"].startswith("listening on") for e in entries)
        joined = [e for e in entries if e.get("participant") == "bob" and "joined" in e["message"]]
        assert joined and joined[0]["meeting"] == meeting and joined[0]["level"] == "INFO"
        assert joined[0]["peer"].startswith("127.0.0.1")
        left = [e for e in entries if e.get("participant") == "bob" and "left" in e["message"]]
        assert left and left[0]["reason"] == "left"
        created = [e for e in entries if e["message"] == f"meeting {meeting} created"]
        assert created and created[0]["meeting"] == meeting
    finally:
        pool.stop_all()
        server.stop()


def test_worker_processes_log_json_lines_too() -> None:
    server, url = start_server("--workers", "2", "--log-format", "json")
    pool = ClientPool(url)
    try:
        _, meeting = pool.create("ada")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any("ada joined" in line for line in server.stderr_lines):
            time.sleep(0.1)
        entries = [json.loads(line) for line in list(server.stderr_lines)]  # every line parses
        joined = [e for e in entries if e.get("participant") == "ada"]
        assert joined and joined[0]["meeting"] == meeting  # logged by the worker that holds the meeting
    finally:
        pool.stop_all()
        server.stop()
