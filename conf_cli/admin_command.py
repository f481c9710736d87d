"""``conf admin``: run a server's meetings through its admin HTTP API (``conf server --admin-port``).

Thin click commands over :class:`conf_cli.client.admin.AdminClient`: each sends one request and prints
the answer (as JSON with ``--json``), or one line on stderr and exit code 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from conf_cli.errors import ConfError
from conf_cli.media.layout import LAYOUT_HELP, LAYOUTS
from conf_cli.server.recordings import FORMATS

T = TypeVar("T")
Answer = dict[str, Any]

layout_option = click.option(
    "--layout", type=click.Choice(LAYOUTS), default="grid", show_default=True, help=LAYOUT_HELP
)
"""``--layout`` of a composed picture (``conf record``, ``conf admin record start``)."""


@dataclass(frozen=True)
class _Where:
    server_dir: Path | None
    url: str | None
    key_file: Path | None
    json_flag: bool


@click.group()
@click.option(
    "--server-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The server's folder, holding admin.key and admin.url. Default: server/ in $CONF_HOME "
    "(~/.config/conf).",
)
@click.option("--url", default=None, help="The admin API's URL. Default: the one in the server's folder.")
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The file holding the admin key. Default: admin.key in the server's folder.",
)
@click.option("--json", "json_flag", is_flag=True, help="Print the API's answer as JSON.")
@click.pass_context
def admin(
    ctx: click.Context, server_dir: Path | None, url: str | None, key_file: Path | None, json_flag: bool
) -> None:
    """Run a server's meetings through its admin API (`conf server --admin-port PORT`)."""
    ctx.obj = _Where(server_dir, url, key_file, json_flag)


def _or_exit(work: Callable[[], T]) -> T:
    try:
        return work()
    except ConfError as exc:
        click.echo(f"conf: {exc}", err=True)
        sys.exit(exc.exit_code)


def _call(
    method: str,
    path: str,
    body: Answer | None,
    text: Callable[[Answer], str],
    *,
    timeout: float | None = None,
) -> None:
    """Send one request; print its answer (as JSON with --json, else ``text(answer)``)."""
    from conf_cli.client.admin import TIMEOUT, AdminClient
    from conf_cli.paths import server_dir

    where = click.get_current_context().find_object(_Where)
    assert where is not None
    client = _or_exit(lambda: AdminClient.locate(where.server_dir or server_dir(), where.url, where.key_file))
    answer = _or_exit(lambda: client.call(method, path, body, timeout=timeout or TIMEOUT))
    click.echo(json.dumps(answer) if where.json_flag else text(answer))


def _path(meeting: str, action: str = "") -> str:
    from conf_cli.client.admin import meeting_path

    return meeting_path(meeting, action)


def _meeting_text(state: Answer) -> str:
    lines = [f"meeting {state['meeting']}" + ("  locked" if state.get("locked") else "")]
    for person in state.get("participants", []):
        extra = [f"sharing {','.join(person['sharing'])}"] if person["sharing"] else []
        extra += [f"forbidden {','.join(person['forbidden'])}"] if person["forbidden"] else []
        lines.append(f"  {person['name']}  {person['role']}  {'  '.join(extra)}".rstrip())
    if state.get("waiting"):
        lines.append("  waiting: " + ", ".join(state["waiting"]))
    return "\n".join(lines)


@admin.command("meetings")
def admin_meetings() -> None:
    """List the server's meetings."""

    def text(answer: Answer) -> str:
        rows = [
            f"{m['meeting']}  host {m['host'] or '-'}  {m['participants']} in  {m['waiting']} waiting  "
            f"{m['tracks']} tracks"
            + ("  locked" if m["locked"] else "")
            + ("  e2ee" if m["e2ee"] else "")
            + ("  recording" if m.get("recording") else "")
            for m in answer["meetings"]
        ]
        return "\n".join(rows) or "no meetings"

    _call("GET", "/meetings", None, text)


@admin.command("create")
@click.option(
    "--passcode", default=None, help="The meeting's passcode (at least 6 characters); default: drawn."
)
@click.option("--waiting-room", is_flag=True, help="Hold everyone but the first to join in a waiting room.")
def admin_create(passcode: str | None, waiting_room: bool) -> None:
    """Create a meeting; whoever joins it first becomes its host."""
    body: Answer = {"waiting_room": waiting_room}
    if passcode is not None:
        body["passcode"] = passcode
    _call("POST", "/meetings", body, lambda a: f"meeting {a['meeting']} passcode {a['passcode']}")


@admin.command("end")
@click.argument("meeting")
def admin_end(meeting: str) -> None:
    """End MEETING for everyone (as /end)."""
    _call("DELETE", _path(meeting), None, lambda a: f"ended meeting {a['meeting']}")


@admin.command("participants")
@click.argument("meeting")
def admin_participants(meeting: str) -> None:
    """List MEETING's participants, their roles and what they share."""
    _call("GET", _path(meeting, "/participants"), None, _meeting_text)


@admin.command("kick")
@click.argument("meeting")
@click.argument("name")
def admin_kick(meeting: str, name: str) -> None:
    """Remove NAME from MEETING (as /kick NAME): they stay out until unbanned."""
    _call("POST", _path(meeting, "/kick"), {"name": name}, _meeting_text)


@admin.command("unban")
@click.argument("meeting")
@click.argument("name")
def admin_unban(meeting: str, name: str) -> None:
    """Let NAME, removed from MEETING, join it again (as /unban NAME)."""
    _call("POST", _path(meeting, "/unban"), {"name": name}, _meeting_text)


@admin.command("mute")
@click.argument("meeting")
@click.argument("name")
@click.option("--off", is_flag=True, help="Permit NAME audio again (as /permit audio NAME).")
def admin_mute(meeting: str, name: str, off: bool) -> None:
    """Forbid NAME audio in MEETING (as /forbid audio NAME), stopping what they share."""
    _call("POST", _path(meeting, "/mute"), {"name": name, "muted": not off}, _meeting_text)


@admin.command("lock")
@click.argument("meeting")
def admin_lock(meeting: str) -> None:
    """Let nobody new join MEETING (as /lock)."""
    _call("POST", _path(meeting, "/lock"), None, _meeting_text)


@admin.command("unlock")
@click.argument("meeting")
def admin_unlock(meeting: str) -> None:
    """Let people join MEETING again (as /unlock)."""
    _call("POST", _path(meeting, "/unlock"), None, _meeting_text)


@admin.command("waiting")
@click.argument("meeting")
def admin_waiting(meeting: str) -> None:
    """Who waits in MEETING's waiting room."""

    def text(answer: Answer) -> str:
        state = "on" if answer["waiting_room"] else "off"
        return f"waiting room {state}: " + (", ".join(answer["waiting"]) or "nobody waits")

    _call("GET", _path(meeting, "/waiting"), None, text)


@admin.command("admit")
@click.argument("meeting")
@click.argument("name", required=False)
@click.option("--all", "everyone", is_flag=True, help="Admit everyone waiting.")
def admin_admit(meeting: str, name: str | None, everyone: bool) -> None:
    """Let NAME (or --all) in from MEETING's waiting room (as /admit)."""
    if everyone == (name is not None):
        raise click.UsageError("give a NAME or --all")
    body: Answer = {"all": True} if everyone else {"name": name}
    _call("POST", _path(meeting, "/admit"), body, _meeting_text)


@admin.command("deny")
@click.argument("meeting")
@click.argument("name")
def admin_deny(meeting: str, name: str) -> None:
    """Turn NAME away from MEETING's waiting room (as /deny NAME)."""
    _call("POST", _path(meeting, "/deny"), {"name": name}, _meeting_text)


@admin.group("record")
def admin_record() -> None:
    """Record a meeting on the server: a recorder it starts joins, and writes into its recordings/ folder."""


@admin_record.command("start")
@click.argument("meeting")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="mp4",
    show_default=True,
    help="mp4: one file (H.264 and AAC); hls: a folder with index.m3u8 and its segments.",
)
@layout_option
@click.option(
    "--file",
    "chosen",
    default=None,
    metavar="NAME",
    help="A plain name in the server's recordings folder. Default: MEETING-UTCTIME.",
)
def admin_record_start(meeting: str, fmt: str, layout: str, chosen: str | None) -> None:
    """Start recording MEETING: everyone is told; the host can /forbid record. In an end-to-end encrypted
    meeting the recorder waits for the host to /admit it."""
    from conf_cli.client.admin import RECORDER_TIMEOUT

    body: Answer = {"format": fmt, "layout": layout}
    if chosen is not None:
        body["file"] = chosen

    def text(answer: Answer) -> str:
        line = f"recording meeting {answer['meeting']} into {answer['file']} (in the server's folder)"
        return f"{line}\n{answer['message']}" if answer.get("message") else line

    _call("POST", _path(meeting, "/recording/start"), body, text, timeout=RECORDER_TIMEOUT)


@admin_record.command("stop")
@click.argument("meeting")
def admin_record_stop(meeting: str) -> None:
    """Stop recording MEETING; say what was written."""
    from conf_cli.client.admin import RECORDER_TIMEOUT

    def text(answer: Answer) -> str:
        return (
            f"recorded meeting {answer['meeting']}: {answer['file']}, {answer['bytes']} bytes, "
            f"{answer['duration_s']:g} s ({answer['reason']})"
        )

    _call("POST", _path(meeting, "/recording/stop"), None, text, timeout=RECORDER_TIMEOUT)
