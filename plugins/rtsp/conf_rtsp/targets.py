"""What an RTSP URL names, sans-I/O: a meeting track, a served file, or a meeting to publish into.

- ``rtsp://HOST:PORT/MEETING/PARTICIPANT/KIND``: a participant's ``audio``, ``video`` or ``screen`` track;
- ``rtsp://HOST:PORT/files/NAME``: a file of the served folder (``--media-dir``);
- ``rtsp://HOST:PORT/MEETING/NAME``: publishing (ANNOUNCE, RECORD) into a meeting as ``NAME``.

A further segment holding ``=`` (``trackID=0``, ``streamid=1``) is the control URL of one stream of the
presentation, as the SDP's ``a=control`` makes it. Segments are percent-decoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from conf_cli import ProtocolError
from conf_cli.urls import redact_url

KINDS = ("audio", "video", "screen")
MAX_URL = 2048


@dataclass(frozen=True)
class TrackTarget:
    meeting: str
    participant: str
    kind: str


@dataclass(frozen=True)
class FileTarget:
    name: str


@dataclass(frozen=True)
class PublishTarget:
    meeting: str
    name: str


Target = TrackTarget | FileTarget | PublishTarget


@dataclass(frozen=True)
class Resolved:
    target: Target
    control: str | None
    """The stream's control segment (``trackID=0``), or ``None`` for the whole presentation."""
    base: str
    """The presentation's URL, without the control segment and without credentials."""


def parse_target(url: str) -> Resolved:
    """Resolve a request URL; raise ProtocolError (answered 404) if it names nothing conf serves."""
    if len(url) > MAX_URL:
        raise ProtocolError(f"URL longer than {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ProtocolError(f"bad URL {redact_url(url)[:80]!r}: {exc}") from None
    if parts.scheme.lower() not in ("rtsp", "rtspu") or not parts.hostname:
        raise ProtocolError(f"not an rtsp:// URL: {redact_url(url)[:80]!r}")
    raw = [s for s in parts.path.split("/") if s]
    segments = [unquote(s) for s in raw]
    control: str | None = None
    if segments and "=" in segments[-1] and len(segments) >= 2:
        control = segments.pop()
        raw.pop()
    netloc = parts.hostname if port is None else f"{parts.hostname}:{port}"
    if ":" in parts.hostname and port is not None:
        netloc = f"[{parts.hostname}]:{port}"
    base = f"rtsp://{netloc}/" + "/".join(raw)
    target: Target
    if len(segments) == 2 and segments[0] == "files":
        if segments[1] in (".", "..") or "\\" in segments[1] or "\x00" in segments[1]:
            raise ProtocolError(f"bad file name {segments[1]!r}")
        target = FileTarget(segments[1])
    elif len(segments) == 3 and segments[2] in KINDS:
        target = TrackTarget(segments[0], segments[1], segments[2])
    elif len(segments) == 2:
        target = PublishTarget(segments[0], segments[1])
    else:
        raise ProtocolError(
            "expected rtsp://HOST:PORT/MEETING/PARTICIPANT/KIND, /files/NAME or /MEETING/NAME"
        )
    if any(not s.isprintable() or len(s) > 128 for s in segments):
        raise ProtocolError("URL segment not printable or longer than 128 characters")
    return Resolved(target, control, base)
