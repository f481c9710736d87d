"""The admin API's routes, and the OpenAPI 3 document that describes them.

:mod:`conf_cli.server.admin` serves exactly :data:`ROUTES` (one handler per ``operation``), and
``GET /openapi.json`` serves :func:`openapi` built from the same table; a test checks the server's
router against the document both ways.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conf_cli.media.layout import LAYOUTS
from conf_cli.server.recordings import FORMATS
from conf_cli.version import __version__

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


_NAME = {"type": "string", "minLength": 1, "maxLength": 64, "description": "a participant's display name"}

SCHEMAS: dict[str, Schema] = {
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {
                "type": "string",
                "description": "a code: unauthorized, rate_limited, unknown_meeting ...",
            },
            "message": {"type": "string", "description": "what went wrong and what to do, for people"},
            "retry_after": {"type": "number", "description": "with rate_limited: seconds to wait"},
        },
    },
    "MeetingSummary": {
        "type": "object",
        "required": ["meeting", "participants", "waiting", "tracks", "locked", "waiting_room", "e2ee"],
        "properties": {
            "meeting": {"type": "string", "example": "k7m-q2xw-9fd"},
            "host": {"type": ["string", "null"]},
            "participants": {"type": "integer"},
            "waiting": {"type": "integer", "description": "people in the waiting room"},
            "tracks": {"type": "integer"},
            "locked": {"type": "boolean"},
            "waiting_room": {"type": "boolean"},
            "e2ee": {"type": "boolean"},
            "recording": {
                "type": "boolean",
                "description": "a recording of it runs, or waits to be admitted",
            },
        },
    },
    "MeetingList": {
        "type": "object",
        "required": ["meetings"],
        "properties": {"meetings": {"type": "array", "items": _ref("MeetingSummary")}},
    },
    "CreateMeeting": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "passcode": {"type": "string", "minLength": 6, "maxLength": 128, "description": "default: drawn"},
            "waiting_room": {"type": "boolean", "default": False},
        },
    },
    "CreatedMeeting": {
        "allOf": [
            _ref("MeetingSummary"),
            {"type": "object", "required": ["passcode"], "properties": {"passcode": {"type": "string"}}},
        ]
    },
    "Participant": {
        "type": "object",
        "required": ["name", "role", "sharing", "forbidden"],
        "properties": {
            "name": {"type": "string"},
            "role": {"type": "string", "enum": ["host", "admin", "member"]},
            "sharing": {"type": "array", "items": {"type": "string"}},
            "forbidden": {"type": "array", "items": {"type": "string"}},
            "recorder": {"type": "boolean", "description": "true for a recorder (`conf record`)"},
        },
    },
    "Track": {
        "type": "object",
        "required": ["name", "kind", "ssrc", "codec"],
        "properties": {
            "name": {"type": "string"},
            "kind": {"type": "string"},
            "ssrc": {"type": "integer"},
            "codec": {"type": "string"},
        },
    },
    "Meeting": {
        "type": "object",
        "description": "the meeting as its host sees it (the `participants` message of docs/protocol.md)",
        "required": ["meeting", "participants", "tracks", "locked", "forbidden"],
        "properties": {
            "meeting": {"type": "string"},
            "participants": {"type": "array", "items": _ref("Participant")},
            "tracks": {"type": "array", "items": _ref("Track")},
            "locked": {"type": "boolean"},
            "forbidden": {"type": "array", "items": {"type": "string"}},
            "e2ee": {"type": "boolean"},
            "waiting_room": {"type": "boolean"},
            "waiting": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Ended": {
        "type": "object",
        "required": ["meeting", "ended"],
        "properties": {"meeting": {"type": "string"}, "ended": {"type": "boolean", "const": True}},
    },
    "Name": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {"name": _NAME},
    },
    "Mute": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {
            "name": _NAME,
            "muted": {"type": "boolean", "default": True, "description": "false permits audio again"},
        },
    },
    "Admit": {
        "type": "object",
        "additionalProperties": False,
        "description": "a name, or all: true for everyone waiting",
        "properties": {"name": _NAME, "all": {"type": "boolean"}},
    },
    "StartRecording": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "format": {"type": "string", "enum": list(FORMATS), "default": "mp4"},
            "layout": {"type": "string", "enum": list(LAYOUTS), "default": "grid"},
            "file": {
                "type": "string",
                "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
                "description": "a plain name in the recordings folder (no folder, no '..'); default: "
                "MEETING-UTCTIME",
            },
        },
    },
    "Recording": {
        "type": "object",
        "required": ["meeting", "file", "format", "layout", "state"],
        "properties": {
            "meeting": {"type": "string"},
            "file": {"type": "string", "description": "relative to the server's folder: recordings/..."},
            "format": {"type": "string", "enum": list(FORMATS)},
            "layout": {"type": "string", "enum": list(LAYOUTS)},
            "state": {"type": "string", "enum": ["recording", "waiting"]},
            "pid": {"type": "integer", "description": "the recorder process"},
            "message": {"type": "string", "description": "with 202: what the host must do"},
        },
    },
    "RecordingFinished": {
        "type": "object",
        "description": "the fields of the recording_finished webhook",
        "required": ["meeting", "file", "format", "bytes", "duration_s", "reason"],
        "properties": {
            "meeting": {"type": "string"},
            "file": {"type": "string", "description": "relative to the server's folder: recordings/..."},
            "format": {"type": "string", "enum": list(FORMATS)},
            "bytes": {"type": "integer", "description": "the size written (an HLS folder: its files)"},
            "duration_s": {"type": "number", "description": "seconds recorded"},
            "reason": {
                "type": "string",
                "description": "stopped, meeting_ended, recording_forbidden, kicked, not_admitted, "
                "start_timeout, server_stopped, recorder_left, recorder_failed, recorder_killed",
            },
            "error": {"type": "string", "description": "the recorder's last error, if any"},
        },
    },
    "Waiting": {
        "type": "object",
        "required": ["meeting", "waiting_room", "waiting"],
        "properties": {
            "meeting": {"type": "string"},
            "waiting_room": {"type": "boolean"},
            "waiting": {"type": "array", "items": {"type": "string"}},
        },
    },
}


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    operation: str
    """The handler's name in :class:`conf_cli.server.admin.AdminApi` and the OpenAPI ``operationId``."""
    summary: str
    response: str
    """The schema of the answer (a name in :data:`SCHEMAS`)."""
    body: str | None = None
    status: int = 200
    errors: tuple[int, ...] = (400, 404, 409)
    description: str = ""


RECORDING = (
    "The server starts a recorder (`conf record`, as a process of its own: the server never decodes "
    "media) that joins the meeting over loopback with an access token the server signs for it, as "
    "`server admin (recorder)`: everyone is told the meeting is recorded, and the host's "
    "`/forbid record` refuses or removes it (409 `forbidden`). It writes into `recordings/` in the "
    "server's folder: `MEETING-UTCTIME.mp4` (MP4: H.264 and AAC), or a folder of that name holding "
    "`index.m3u8` and its segments (HLS); `file` names it instead (a plain name: never a path). 201 "
    "when it is in the meeting; 202 in an end-to-end encrypted meeting, where it waits for the host's "
    "`/admit` (it holds the media keys like anyone). One recording per meeting (409 "
    "`already_recording`), a few per server (503 `recording_limit`); a recorder not in the meeting in "
    "time is stopped (504 `recorder_timeout`), one that fails to join is 502 `recorder_failed`."
)
STOP_RECORDING = (
    "Stops the recorder (it leaves the meeting and finishes its file; killed if it has not within the "
    "stop timeout) and answers what it wrote, as the `recording_finished` webhook says it."
)
RECORDER_OPERATIONS = frozenset({"start_recording", "stop_recording"})
"""Routes that wait for a recorder process (a longer time limit than the others)."""

ROUTES: tuple[Route, ...] = (
    Route("GET", "/meetings", "list_meetings", "List the meetings", "MeetingList", errors=()),
    Route(
        "POST",
        "/meetings",
        "create_meeting",
        "Create a meeting (the first to join is its host)",
        "CreatedMeeting",
        body="CreateMeeting",
        status=201,
        errors=(400,),
    ),
    Route(
        "DELETE", "/meetings/{meeting}", "end_meeting", "End a meeting for everyone", "Ended", errors=(404,)
    ),
    Route(
        "GET",
        "/meetings/{meeting}/participants",
        "list_participants",
        "List participants and tracks",
        "Meeting",
        errors=(404,),
    ),
    Route(
        "POST",
        "/meetings/{meeting}/kick",
        "kick",
        "Remove a participant (as /kick NAME)",
        "Meeting",
        body="Name",
    ),
    Route(
        "POST",
        "/meetings/{meeting}/unban",
        "unban",
        "Let a removed name join again (as /unban NAME)",
        "Meeting",
        body="Name",
    ),
    Route(
        "POST",
        "/meetings/{meeting}/mute",
        "mute",
        "Forbid a participant audio (as /forbid audio NAME)",
        "Meeting",
        body="Mute",
    ),
    Route(
        "POST", "/meetings/{meeting}/lock", "lock", "Lock the meeting (as /lock)", "Meeting", errors=(404,)
    ),
    Route(
        "POST",
        "/meetings/{meeting}/unlock",
        "unlock",
        "Unlock the meeting (as /unlock)",
        "Meeting",
        errors=(404,),
    ),
    Route(
        "GET",
        "/meetings/{meeting}/waiting",
        "list_waiting",
        "Who waits in the waiting room",
        "Waiting",
        errors=(404,),
    ),
    Route(
        "POST",
        "/meetings/{meeting}/admit",
        "admit",
        "Admit someone, or everyone, from the waiting room",
        "Meeting",
        body="Admit",
    ),
    Route(
        "POST",
        "/meetings/{meeting}/deny",
        "deny",
        "Turn someone away from the waiting room",
        "Meeting",
        body="Name",
    ),
    Route(
        "POST",
        "/meetings/{meeting}/recording/start",
        "start_recording",
        "Start recording the meeting (a composite: every picture tiled, every voice mixed)",
        "Recording",
        body="StartRecording",
        status=201,
        errors=(202, 400, 404, 409, 502, 503, 504),
        description=RECORDING,
    ),
    Route(
        "POST",
        "/meetings/{meeting}/recording/stop",
        "stop_recording",
        "Stop recording the meeting; what was written",
        "RecordingFinished",
        errors=(404, 409),
        description=STOP_RECORDING,
    ),
)

OPENAPI_PATH = "/openapi.json"

_STATUS_TEXT = {
    202: "the recorder waits for the host to admit it (an end-to-end encrypted meeting)",
    400: "bad request: the body is not what the schema says",
    401: "wrong or missing admin key (counts as a failed attempt)",
    404: "no such meeting, or no such participant",
    409: "the meeting's rules refuse it (not_allowed, meeting_full ...)",
    413: "request body too large",
    429: "too many failed attempts from this address: wait retry_after seconds",
    502: "the recorder could not join the meeting (the message says why)",
    503: "the server records as many meetings as it may at once (recording_limit)",
    504: "the recorder was not in the meeting in time, and was stopped",
}


def openapi() -> Schema:
    """The OpenAPI 3.1 document of :data:`ROUTES`."""
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        responses: dict[str, Any] = {
            str(route.status): {
                "description": route.summary,
                "content": {"application/json": {"schema": _ref(route.response)}},
            }
        }
        for status in (*route.errors, 401, 429):
            schema = route.response if status < 300 else "Error"
            responses[str(status)] = {
                "description": _STATUS_TEXT[status],
                "content": {"application/json": {"schema": _ref(schema)}},
            }
        operation: dict[str, Any] = {
            "operationId": route.operation,
            "summary": route.summary,
            "responses": responses,
        }
        if route.description:
            operation["description"] = route.description
        if "{meeting}" in route.path:
            operation["parameters"] = [
                {"name": "meeting", "in": "path", "required": True, "schema": {"type": "string"}}
            ]
        if route.body is not None:
            operation["requestBody"] = {
                "required": route.body != "CreateMeeting",
                "content": {"application/json": {"schema": _ref(route.body)}},
            }
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    paths[OPENAPI_PATH] = {
        "get": {
            "operationId": "openapi",
            "summary": "This document (no key needed)",
            "security": [],
            "responses": {
                "200": {"description": "the OpenAPI document", "content": {"application/json": {}}}
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "conf admin API",
            "version": __version__,
            "description": "Run a conf server's meetings over HTTP (`conf server --admin-port PORT`). Every "
            "request but this document's needs `Authorization: Bearer KEY`, the key in admin.key in the "
            "server's folder. See docs/operations.md.",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"adminKey": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"adminKey": []}],
    }
