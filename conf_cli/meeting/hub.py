"""The server's core: connections, the handshake, many meetings, heartbeats. Sans-I/O.

The asyncio edge (:mod:`conf_cli.server`) feeds the hub events — a connection opened, a control
message arrived, a connection closed, time passed — and carries out the actions the hub returns:
:class:`Send` a message, :class:`Close` a connection, or run a :class:`Deferred` piece of blocking work
(passcode hashing) off the event loop and hand its result back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from conf_cli import __version__
from conf_cli.errors import ProtocolError, RequestRefused
from conf_cli.meeting.core import Meeting, Send
from conf_cli.meeting.passcode import PasscodeHash, new_meeting_id, new_passcode, normalise_meeting_id
from conf_cli.protocol.control import PROTOCOL_VERSION, Message, decode_client_message
from conf_cli.protocol.rtcp import Fir, Nack, Pli, parse_compound
from conf_cli.protocol.rtp import header_fits, is_rtcp

HEARTBEAT_INTERVAL = 2.0
HEARTBEAT_TIMEOUT = 6.0
HELLO_TIMEOUT = 5.0
MAX_BAD_MESSAGES = 20


@dataclass(frozen=True)
class Close:
    """Close connection ``conn``; ``reason`` is for the log."""

    conn: int
    reason: str


@dataclass(frozen=True)
class Forward:
    """Send a media packet (RTP/RTCP) the server made itself, e.g. a keyframe request, to ``to``."""

    to: tuple[int, ...]
    packet: bytes


@dataclass(frozen=True)
class Deferred:
    """Run ``work`` off the event loop, then call ``resume(result, now)`` and carry out its actions."""

    work: Callable[[], Any]
    resume: Callable[[Any, float], list[Action]]


Action = Send | Close | Forward | Deferred


@dataclass
class _Connection:
    cid: int
    peer: str
    opened: float
    last_seen: float
    greeted: bool = False
    meeting: Meeting | None = None
    busy: bool = False  # a create or join is being worked on
    bad_messages: int = 0


@dataclass
class HubStats:
    connections: int = 0
    meetings: int = 0
    protocol_errors: int = 0
    timeouts: int = 0
    media_refused: int = 0  # packets for a track the sender does not own, or from outside a meeting
    media_malformed: int = 0


@dataclass
class Hub:
    """Every connection and meeting on one server."""

    heartbeat_timeout: float = HEARTBEAT_TIMEOUT
    hello_timeout: float = HELLO_TIMEOUT
    new_id: Callable[[], str] = new_meeting_id
    new_passcode: Callable[[], str] = new_passcode
    meetings: dict[str, Meeting] = field(default_factory=dict)
    stats: HubStats = field(default_factory=HubStats)
    generation: int = 0
    """Changes whenever who-receives-what may have changed (a connection, a request, a join resuming).

    An edge may cache the answers of :meth:`route_media` for RTP while this stays the same."""
    _conns: dict[int, _Connection] = field(default_factory=dict)

    # -- events from the edge -----------------------------------------------------------------------

    def connected(self, cid: int, now: float, peer: str = "") -> list[Action]:
        self.generation += 1
        self._conns[cid] = _Connection(cid, peer, now, now)
        self.stats.connections = len(self._conns)
        return []

    def greet(self, cid: int) -> None:
        """Count ``cid`` as having said hello: another process (``conf server --workers``) answered it."""
        conn = self._conns.get(cid)
        if conn is not None:
            conn.greeted = True

    def disconnected(self, cid: int, reason: str = "disconnected") -> list[Action]:
        conn = self._conns.pop(cid, None)
        self.generation += 1
        self.stats.connections = len(self._conns)
        if conn is None or conn.meeting is None:
            return []
        return self._leave(conn, reason)

    def seen(self, cid: int, now: float) -> bool:
        """Media or a keep-alive from ``cid`` proves it is alive; False if it has not said hello yet."""
        conn = self._conns.get(cid)
        if conn is None or not conn.greeted:
            return False
        conn.last_seen = now
        return True

    def received(self, cid: int, data: bytes, now: float) -> list[Action]:
        """A control message arrived from ``cid``."""
        conn = self._conns.get(cid)
        if conn is None:
            return []
        conn.last_seen = now
        try:
            message = decode_client_message(data)
        except ProtocolError as exc:
            return self._bad(conn, str(exc))
        try:
            return self._dispatch(conn, message, now)
        except RequestRefused as refusal:
            return [_error(conn.cid, refusal.code, str(refusal), message)]

    def tick(self, now: float) -> list[Action]:
        """Close connections that never said hello or went silent."""
        actions: list[Action] = []
        for conn in list(self._conns.values()):
            if not conn.greeted and now - conn.opened > self.hello_timeout:
                actions.append(Close(conn.cid, "no hello"))
            elif now - conn.last_seen > self.heartbeat_timeout:
                self.stats.timeouts += 1
                actions.append(Close(conn.cid, "heartbeat timeout"))
                actions += self.disconnected(conn.cid, "timeout")
        return actions

    def route_media(self, cid: int, packet: bytes, now: float) -> tuple[int, ...] | None:
        """Who receives a media packet from ``cid``: a tuple of connections, or None if ``cid`` must go.

        RTP is forwarded only for a track its sender owns, to everyone else in the meeting. RTCP
        feedback (PLI, FIR, NACK) goes to the owner of the track it is about; other RTCP (sender
        reports, SDES, BYE) goes to the sender's audience. RTP whose header runs past its end and RTCP
        that does not parse go nowhere (counted in ``media_malformed``). This is the forwarding path: keep
        it lean.
        For RTP of at least 12 bytes the answer depends only on ``cid``, the SSRC and the hub's state, so
        the edge may reuse it for that pair until :attr:`generation` changes.
        """
        conn = self._conns.get(cid)
        if conn is None or not conn.greeted:
            return None
        conn.last_seen = now
        meeting = conn.meeting
        if meeting is None or len(packet) < 8:
            self.stats.media_refused += 1
            return ()
        if is_rtcp(packet):
            return self._route_rtcp(cid, meeting, packet)
        if not header_fits(packet):  # too short, or a CSRC list or extension past its end
            self.stats.media_malformed += 1
            return ()
        track = meeting.tracks.get(int.from_bytes(packet[8:12], "big"))
        if track is None or track.owner != cid:
            self.stats.media_refused += 1
            return ()
        return meeting.audience(cid)

    def _route_rtcp(self, cid: int, meeting: Meeting, packet: bytes) -> tuple[int, ...]:
        try:
            parts = parse_compound(packet)
        except ProtocolError:
            self.stats.media_malformed += 1
            return ()
        owners: set[int] = set()
        to_audience = False
        for part in parts:
            if isinstance(part, Pli | Nack):
                track = meeting.tracks.get(part.media_ssrc)
                if track is not None:
                    owners.add(track.owner)
            elif isinstance(part, Fir):
                owners.update(meeting.tracks[s].owner for s, _ in part.entries if s in meeting.tracks)
            else:
                to_audience = True
        if to_audience:
            owners.update(meeting.audience(cid))
        owners.discard(cid)
        return tuple(owners)

    # -- queries for the edge -----------------------------------------------------------------------

    def meeting_of(self, cid: int) -> Meeting | None:
        conn = self._conns.get(cid)
        return conn.meeting if conn else None

    # -- dispatch -----------------------------------------------------------------------------------

    def _dispatch(self, conn: _Connection, message: Message, now: float) -> list[Action]:
        kind = message["type"]
        if kind != "ping":
            self.generation += 1
        if not conn.greeted:
            if kind != "hello":
                return [
                    _error(conn.cid, "bad_request", "say hello first", message),
                    Close(conn.cid, "no hello"),
                ]
            return self._hello(conn, message)
        if kind == "ping":
            return [Send((conn.cid,), {"type": "pong"})]
        if kind in ("pong", "hello"):
            return []
        if conn.busy:
            raise RequestRefused("busy", "a create or join request is still being processed")
        meeting = conn.meeting
        if kind in ("create", "join"):
            if meeting is not None:
                raise RequestRefused("bad_request", f"already in meeting {meeting.id}; /leave first")
            return self._create(conn, message) if kind == "create" else self._join(conn, message)
        if meeting is None:
            raise RequestRefused("not_in_meeting", "join or create a meeting first")
        pid = conn.cid
        match kind:
            case "leave":
                left = Send((pid,), {"type": "left", "meeting": meeting.id, "reason": "left"})
                return [left, *self._leave(conn, "left")]
            case "who":
                return list(meeting.who(pid))
            case "chat":
                return list(meeting.chat(pid, message["text"], message.get("to")))
            case "set_role":
                return list(meeting.set_role(pid, message["name"], message["role"]))
            case "forbid" | "permit":
                return list(
                    meeting.set_permission(pid, message["what"], kind == "permit", message.get("name"))
                )
            case "kick":
                return self._after(meeting, meeting.kick(pid, message["name"]))
            case "lock" | "unlock":
                return list(meeting.set_locked(pid, kind == "lock"))
            case "publish":
                return list(meeting.publish(pid, message["kind"], message["ssrc"], message["codec"]))
            case "unpublish":
                return list(meeting.unpublish(pid, message["kind"]))
            case "end":
                return self._after(meeting, meeting.end(pid))
        raise RequestRefused("bad_request", f"{kind} is not handled")

    def _hello(self, conn: _Connection, message: Message) -> list[Action]:
        if message["protocol"] != PROTOCOL_VERSION:
            theirs = message["protocol"]
            text = f"server speaks protocol {PROTOCOL_VERSION}, client speaks {theirs}; upgrade conf"
            return [_error(conn.cid, "protocol_version", text, message), Close(conn.cid, "protocol version")]
        conn.greeted = True
        welcome = {
            "type": "welcome",
            "protocol": PROTOCOL_VERSION,
            "server": f"conf/{__version__}",
            "heartbeat": HEARTBEAT_INTERVAL,
        }
        return [Send((conn.cid,), welcome)]

    def _create(self, conn: _Connection, message: Message) -> list[Action]:
        passcode = message.get("passcode") or self.new_passcode()
        name = message["name"]
        conn.busy = True

        def resume(digest: PasscodeHash, now: float) -> list[Action]:
            conn.busy = False
            self.generation += 1
            if self._conns.get(conn.cid) is not conn:
                return []
            meeting_id = self.new_id()
            while meeting_id in self.meetings:
                meeting_id = self.new_id()
            meeting = Meeting(meeting_id, digest)
            self.meetings[meeting_id] = meeting
            self.stats.meetings = len(self.meetings)
            created = {"type": "meeting_created", "meeting": meeting_id, "passcode": passcode}
            sends = [Send((conn.cid,), created), *meeting.join(conn.cid, name, passcode_ok=True)]
            conn.meeting = meeting
            return list(sends)

        return [Deferred(lambda: PasscodeHash.of(passcode), resume)]

    def _join(self, conn: _Connection, message: Message) -> list[Action]:
        meeting_id = normalise_meeting_id(message["meeting"])
        meeting = self.meetings.get(meeting_id)
        if meeting is None:
            raise RequestRefused("unknown_meeting", f"no meeting {message['meeting']!r} on this server")
        passcode = message.get("passcode") or ""
        conn.busy = True

        def resume(ok: bool, now: float) -> list[Action]:
            conn.busy = False
            self.generation += 1
            if self._conns.get(conn.cid) is not conn:
                return []
            try:
                if meeting.closed:
                    raise RequestRefused("unknown_meeting", f"meeting {meeting_id} has ended")
                sends = meeting.join(conn.cid, message["name"], passcode_ok=ok)
            except RequestRefused as refusal:
                return [_error(conn.cid, refusal.code, str(refusal), message)]
            conn.meeting = meeting
            # Ask every video publisher for a keyframe so the newcomer sees a picture at once.
            asks = [Forward((t.owner,), bytes(Pli(0, t.ssrc))) for t in meeting.video_tracks()]
            return [*sends, *asks]

        return [Deferred(lambda: meeting.passcode.matches(passcode), resume)]

    def _leave(self, conn: _Connection, reason: str) -> list[Action]:
        meeting = conn.meeting
        if meeting is None:
            return []
        conn.meeting = None
        return self._after(meeting, meeting.leave(conn.cid, reason))

    def _after(self, meeting: Meeting, sends: list[Send]) -> list[Action]:
        """Detach the connections that ``meeting`` no longer holds; forget the meeting once it has closed."""
        if meeting.closed:
            self.meetings.pop(meeting.id, None)
            self.stats.meetings = len(self.meetings)
        for conn in self._conns.values():
            if conn.meeting is meeting and conn.cid not in meeting.participants:
                conn.meeting = None
        return list(sends)

    def _bad(self, conn: _Connection, why: str) -> list[Action]:
        conn.bad_messages += 1
        self.stats.protocol_errors += 1
        actions: list[Action] = [Send((conn.cid,), {"type": "error", "code": "bad_request", "message": why})]
        if not conn.greeted or conn.bad_messages > MAX_BAD_MESSAGES:
            actions.append(Close(conn.cid, f"protocol errors: {why}"))
        return actions


def _error(cid: int, code: str, text: str, request: Message) -> Send:
    message: Message = {"type": "error", "code": code, "message": text, "re": request.get("type")}
    if isinstance(request.get("id"), str | int):
        message["id"] = request["id"]
    return Send((cid,), message)
