"""The server's core: connections, the handshake, many meetings, heartbeats. Sans-I/O.

The asyncio edge (:mod:`conf_cli.server.edge`) feeds the hub events — a connection opened, a control
message arrived, a connection closed, time passed — and carries out the actions the hub returns:
:class:`Send` a message, :class:`Close` a connection, or run a :class:`Deferred` piece of blocking work
(passcode and password hashing) off the event loop and hand its result back.

A connection's life is a :class:`Phase` (opened, greeted, closed) that moves only as ``_PHASES``
allows; which meeting it takes part in or waits to enter, the meeting alone holds. Media is routed by
:meth:`Hub.route`, whose :class:`Routed` answer says where a packet goes, why (a :class:`Verdict`) and
whether an edge may cache it while :attr:`Hub.version` stays the same (:mod:`conf_cli.server.forwarding`).

Who gets in: passcode and login attempts are rate-limited per address and per meeting or account, and
creates per address (:mod:`conf_cli.server.limiter`); an attempt counts from when its check starts, so
attempts on many connections at once cannot run more checks than the limit. A server may require
clients to log in to an account first (:class:`Accounts`), and then their display name is their account
name. A ``join`` may carry an access token instead of the passcode (:mod:`conf_cli.server.tokens`): it is
checked at once (an HMAC, no hashing), counted by the same limiter as a passcode when it fails, and lets
its holder in under its name and role, as the operator who made it decided.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from conf_cli.errors import ConfError, ProtocolError, RequestRefused
from conf_cli.plugin.cluster import DirectoryUnavailable
from conf_cli.protocol.control import (
    HEARTBEAT_INTERVAL,
    HEARTBEAT_TIMEOUT,
    INPUT_FIELDS,
    PROTOCOL_VERSION,
    RECORDER_SUFFIX,
    Message,
    decode_client_message,
    name_key,
)
from conf_cli.protocol.events import (
    MAX_WELCOME_URLS,
    ActiveSpeaker,
    ControlInput,
    Error,
    Left,
    LoggedIn,
    MeetingCreated,
    Pong,
    Redirect,
    ResumeToken,
    Welcome,
)
from conf_cli.protocol.rtcp import (
    RTCP_PSFB,
    RTCP_RTPFB,
    Bye,
    Fir,
    Nack,
    Pli,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    Sdes,
    SenderReport,
    UnknownRtcp,
    build_compound,
    parse_compound,
)
from conf_cli.protocol.rtp import header_fits, is_rtcp
from conf_cli.server.call_board import CallBoard
from conf_cli.server.cascade import should_cascade
from conf_cli.server.directory import (
    UNREACHABLE,
    ClaimMeeting,
    ClusterView,
    FindHolder,
    Holder,
    NodeInfo,
    Question,
    is_meeting_key,
    url_for,
)
from conf_cli.server.feedback import (
    FEEDBACK_BURST,
    FEEDBACK_RATE,
    RESEND_BURST,
    RESEND_RATE,
    FeedbackStats,
    TokenBucket,
)
from conf_cli.server.histogram import Histogram
from conf_cli.server.journal import Journal
from conf_cli.server.layer_router import LayerRouter, Rewrites
from conf_cli.server.limiter import AttemptLimiter, address_key, seconds_text
from conf_cli.server.meeting import RESUMABLE, Meeting, RouteVersion, Send, Track
from conf_cli.server.passcode import (
    PasscodeCache,
    PasscodeHash,
    new_meeting_id,
    new_passcode,
    normalise_meeting_id,
)
from conf_cli.server.people import Participant, Role
from conf_cli.server.record import (
    MeetingRecord,
    MeetingStore,
    RecordError,
    decode,
    passcode_of,
    record_of,
    restore,
)
from conf_cli.server.resume import REFRESH_SECONDS as TOKEN_REFRESH
from conf_cli.server.resume import SEAT_GRACE, ResumeKey, ResumeRefused, Seat, seat_for
from conf_cli.server.tokens import TokenKey, TokenRefused
from conf_cli.server.tokens import read as read_token
from conf_cli.version import __version__

MIN_PASSCODE_CHARS = 6
"""A passcode chosen at ``create`` has at least this many characters (a drawn one has exactly 6)."""
HELLO_TIMEOUT = 5.0
HOST_RETURN_WAIT = 15.0
"""Seconds a meeting recreated from its record waits for its host to resume before the role passes on."""
RESUME_RETRY_AFTER = 1.0
"""Seconds a ``try_again`` refusal of a ``resume`` asks the client to wait (a dead node's claim lapses
within :data:`~conf_cli.server.directory.CLAIM_TTL`)."""
NODES_TOLD_INTERVAL = 10.0
"""Seconds at least between two rounds of fresh resume tokens given because the cluster's live nodes
changed (a node that comes and goes must not make the server sign a token for everyone at each read)."""
MAX_BAD_MESSAGES = 20
INPUT_RATE = 250.0  # remote-control input events a controller may send per second, on average ...
INPUT_BURST = 250.0  # ... and at once
CALL_REQUESTS = frozenset(
    (
        "online",
        "offline",
        "call",
        "call_accept",
        "call_reveal",
        "call_decline",
        "call_connected",
        "call_path",
        "call_hangup",
    )
)


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


@dataclass(frozen=True)
class Ask:
    """Ask the cluster's directory ``question`` (conf_cli.server.directory), then call
    ``resume(answer, now)`` and carry out its actions."""

    question: Question
    resume: Callable[[Any, float], list[Action]]


@dataclass(frozen=True)
class Rebind:
    """Connection ``conn`` took participant ``to``'s seat back with a resume token: from now on the edge
    knows its link as ``to``. A link still known as ``to`` (its owner was still connected) is told
    ``notice`` and closed: one seat never has two connections."""

    conn: int
    to: int
    notice: Message | None = None


@dataclass(frozen=True)
class Cascade:
    """Carry connection ``conn`` to ``node``, which holds the meeting it asked to join (``request``), over
    this node's link to it (:mod:`conf_cli.server.cascade`): from now on that node's hub decides for it."""

    conn: int
    node: NodeInfo
    request: Message


Action = Send | Close | Forward | Deferred | Ask | Rebind | Cascade

CLAIM_ATTEMPTS = 3
"""Meeting IDs a create tries to claim in the cluster's directory before giving up (each taken one is a
collision with another node's meeting)."""


@dataclass
class _Held:
    """A seat kept for a participant whose connection vanished, until ``until`` (the hub's clock)."""

    meeting: Meeting
    until: float
    reason: str


class Verdict(Enum):
    """What the hub made of a media packet (:meth:`Hub.route`)."""

    FORWARDED = "forwarded"
    """Routed by the meeting's rules (possibly to nobody: feedback over its limit, forged RTCP parts)."""
    REFUSED = "refused"
    """From outside a meeting, or RTP for a track its sender does not own (``media_refused``)."""
    MALFORMED = "malformed"
    """RTP whose header runs past its end, or RTCP that does not parse (``media_malformed``)."""
    CLOSE = "close"
    """Media before hello, or from a connection the hub does not know: the sender must go."""


@dataclass(slots=True)
class Routed:
    """Where one media packet goes (:meth:`Hub.route`). Not frozen only because a frozen dataclass is
    slower to build, on the forwarding path: treat it as read-only (some are shared constants)."""

    verdict: Verdict
    to: tuple[int, ...] = ()
    """Who receives the packet as it came (RTP)."""
    forwards: tuple[Forward, ...] = ()
    """RTCP: its parts, as they go to each set of recipients (the hub may rewrite or split it)."""
    track: Track | None = None
    """The track of a first-seen RTP packet (its feedback state notes what was forwarded)."""
    resend: bool = False
    """``to`` asked for this packet again: send it on each one's own link, never by a fan-out."""
    cacheable: bool = False
    """RTP only: every later packet from this sender on this SSRC takes the same route (to ``to`` if it
    is first seen, nowhere if REFUSED) while :attr:`Hub.version` stays the same."""
    rewrites: Rewrites = ()
    """RTP of a simulcast layer: who receives it rewritten into the track's one stream, and how
    (:mod:`conf_cli.server.simulcast`); ``to`` receives it unchanged."""
    actions: tuple[Action, ...] = ()
    """What this packet set off, to carry out once it is sent: a keyframe that switched subscribers to
    its layer tells each of them (``layer_switched``) now, not at the next tick."""


_CLOSE = Routed(Verdict.CLOSE)
_REFUSED = Routed(Verdict.REFUSED)
_REFUSED_CACHEABLE = Routed(Verdict.REFUSED, cacheable=True)
_MALFORMED = Routed(Verdict.MALFORMED)


class Accounts(Protocol):
    """The server's accounts (:class:`conf_cli.server.accounts.AccountStore`); ``verify`` blocks (it
    hashes).
    """

    def verify(self, name: str, password: str) -> tuple[str, str]:
        """``("ok", account name as stored)``, ``("unknown", name)`` or ``("wrong", name)``."""
        ...

    def exists(self, name: str) -> bool:
        """Whether ``name`` is an account's (compared case-insensitively)."""
        ...


def peer_host(peer: str) -> str:
    """The host of a link's peer, without its port: ``127.0.0.1:5000`` → ``127.0.0.1``."""
    if " (" in peer:  # ZeroMQ: "ADDRESS (zmq id ...)", no port
        return peer.split(" (", 1)[0]
    if peer.startswith("["):
        return peer[1 : peer.find("]")] if "]" in peer else peer
    host, sep, port = peer.rpartition(":")
    return host if sep and port.isdigit() else peer


class Phase(Enum):
    """Where a connection is in its life. Which meeting it takes part in, or waits to enter, is not a
    phase: the meeting holds that (:attr:`_Connection.meeting`, :attr:`_Connection.waiting`)."""

    OPENED = "opened"
    """Connected; nothing but ``hello`` is accepted, within the hello timeout."""
    GREETED = "greeted"
    """Said hello (or another process answered it): may log in, create, join, go online for calls."""
    CLOSED = "closed"
    """Gone: work finishing later for it (a passcode check) is dropped."""


_PHASES: dict[Phase, frozenset[Phase]] = {
    Phase.OPENED: frozenset((Phase.GREETED, Phase.CLOSED)),
    Phase.GREETED: frozenset((Phase.CLOSED,)),
    Phase.CLOSED: frozenset(),
}
"""The phases a connection may move to from each phase: the only legal transitions."""


@dataclass
class _Connection:
    cid: int
    peer: str
    opened: float
    last_seen: float
    scheme: str = ""
    """The transport it came in on (``tcp``, ``zmq`` ...): a redirect names the other node's URL for it."""
    phase: Phase = Phase.OPENED
    entered: Meeting | None = None
    """The meeting this connection last joined or created (as a participant or waiting to be admitted);
    whether it is still in it, and how, only the meeting knows."""
    user: str | None = None  # the account logged in to on this connection
    busy: bool = False  # a login, create, join or name check is being worked on (a Deferred is pending)
    bad_messages: int = 0
    requested: float = 0.0  # when the latest create or join arrived: the join latency runs from there
    input_tokens: float = INPUT_BURST
    input_stamp: float = 0.0
    feedback: TokenBucket = field(default_factory=lambda: TokenBucket(FEEDBACK_RATE, FEEDBACK_BURST))
    """RTCP feedback (NACK, PLI, FIR) this connection may still send."""
    resends: TokenBucket = field(default_factory=lambda: TokenBucket(RESEND_RATE, RESEND_BURST))
    """Bytes of resends this connection may still ask for (conf_cli.server.feedback)."""

    @property
    def address(self) -> str:
        return peer_host(self.peer)

    @property
    def greeted(self) -> bool:
        return self.phase is Phase.GREETED

    @property
    def meeting(self) -> Meeting | None:
        """The meeting this connection takes part in, if any."""
        entered = self.entered
        return entered if entered is not None and self.cid in entered.participants else None

    @property
    def waiting(self) -> Meeting | None:
        """The meeting in whose waiting room this connection waits, if any."""
        entered = self.entered
        return entered if entered is not None and self.cid in entered.waiting else None

    def advance(self, phase: Phase) -> None:
        """Move to ``phase``; a transition :data:`_PHASES` does not allow is a bug, and raises."""
        if phase not in _PHASES[self.phase]:
            raise ValueError(f"connection {self.cid}: no transition from {self.phase.name} to {phase.name}")
        self.phase = phase


@dataclass
class HubStats(FeedbackStats):
    connections: int = 0
    meetings: int = 0
    protocol_errors: int = 0
    timeouts: int = 0
    media_refused: int = 0  # packets for a track the sender does not own, or from outside a meeting
    media_malformed: int = 0
    input_relayed: int = 0  # remote-control input events passed to the controlled participant
    input_refused: int = 0  # input events from someone without a current grant, dropped
    input_limited: int = 0  # input events over the rate limit, dropped
    attempts_refused: int = 0  # passcode, login or create attempts refused by the rate limit
    passcode_checks: int = 0  # joins whose passcode was checked (by the meeting's key or by scrypt)
    passcode_hashed: int = 0  # of those, checked by a scrypt hash (no key kept for the meeting)
    login_checks: int = 0  # logins whose password was hashed and checked
    creates_hashed: int = 0  # creates whose passcode was hashed
    feedback_limited: int = 0  # RTCP feedback (NACK, PLI, FIR) over a participant's rate limit, dropped
    feedback_refused: int = 0  # RTCP feedback about a track its sender does not receive, dropped
    rtcp_forged: int = 0  # RTCP speaking for an SSRC its sender does not publish, dropped
    plis_forwarded: int = 0  # picture loss indications passed from a receiver to a publisher
    firs_forwarded: int = 0  # full intra request entries passed from a receiver to a publisher
    keyframes_requested: int = 0  # PLIs the server sent publishers itself, for someone who joined or switches
    layer_switches: int = 0  # subscribers moved from one simulcast layer to another (or to their first)
    downlink_ignored: int = 0  # subscribers' own downlink estimates ignored for coming too often
    downlink_upstream: int = 0  # ... and ignored for coming while a publisher's uplink queued
    loss_reports: int = 0  # RTCP report blocks (receivers' loss reports) seen on their way
    loss_reported: float = 0.0  # the sum of those blocks' fraction lost (0 to 1 each)
    speaker_switches: int = 0  # active_speaker changes announced
    redirects: int = 0  # creates and joins sent on to another node of the cluster
    seats_held: int = 0  # participants whose connection vanished and whose seat was kept for a while
    resumes: int = 0  # resume tokens that seated their holder again (quietly or not)
    resumes_refused: int = 0  # resume tokens refused (altered, expired, another server's, a seat that left)
    meetings_restored: int = 0  # meetings recreated from their record for a resume
    tokens_for_nodes: int = 0  # resume tokens given because the cluster's live nodes changed
    cascaded: int = 0  # joins carried to the meeting's holder over a node link (conf_cli.server.cascade)


@dataclass
class Hub:
    """Every connection and meeting on one server."""

    heartbeat_timeout: float = HEARTBEAT_TIMEOUT
    hello_timeout: float = HELLO_TIMEOUT
    new_id: Callable[[], str] = new_meeting_id
    new_passcode: Callable[[], str] = new_passcode
    meetings: dict[str, Meeting] = field(default_factory=dict)
    stats: HubStats = field(default_factory=HubStats)
    limiter: AttemptLimiter = field(default_factory=AttemptLimiter)
    join_latency: Histogram = field(default_factory=Histogram)
    """Seconds from each create or join request to being in the meeting (not for a waiting room)."""
    passcodes: PasscodeCache = field(default_factory=PasscodeCache)
    """Keys that check a meeting's passcode without hashing once it is known (conf_cli.server.passcode)."""
    accounts: Accounts | None = None
    require_login: bool = False
    calls: CallBoard = field(default_factory=CallBoard)
    """One-to-one calls between online connections (conf_cli.server.call_board)."""
    services: dict[str, list[str]] = field(default_factory=dict)
    """The URLs of the server's services by name (``web`` ...), listed in ``welcome``."""
    token_key: TokenKey | None = None
    """Checks the access tokens of ``join`` (``conf token create``); None: this hub takes none."""
    wall_clock: Callable[[], float] | None = None
    """Unix time (the edge gives ``time.time``): ``welcome`` reports it, and access tokens expire by it.
    None: no ``time`` in ``welcome``, and no token is taken."""
    version: RouteVersion = field(default_factory=RouteVersion)
    """Shared by every meeting of this hub: changes whenever participants or tracks change.

    An edge may keep a cacheable :class:`Routed` for RTP while ``version.value`` stays the same."""
    journal: Journal = field(default_factory=Journal)
    """Shared by every meeting of this hub: what happens in meetings, for webhooks (off by default)."""
    cluster: ClusterView | None = None
    """This node's view of its cluster (``conf server --cluster``): creates are placed and claimed, and a
    join of a meeting held elsewhere is redirected there. None: a server on its own."""
    resume_key: ResumeKey | None = None
    """Signs and checks resume tokens (from the server's identity); None: this hub gives none and takes
    none (a server without encryption)."""
    seat_grace: float = SEAT_GRACE
    """Seconds a vanished participant's seat is kept for it to resume quietly."""
    urls: list[str] = field(default_factory=list)
    """The URLs clients reach this server at, listed in ``welcome`` (where to reconnect)."""
    held: dict[int, _Held] = field(default_factory=dict)
    """Seats kept for vanished participants, by their (former) connection."""
    records: MeetingStore | None = None
    """Where meeting records are kept (:mod:`conf_cli.server.record`), so that a resume can recreate a
    meeting this server does not hold; None: no records, a meeting lives only here. The hub reads it (in a
    :class:`Deferred`) and says what to write in :meth:`take_records`; the edge writes."""
    _dirty: dict[str, Meeting] = field(default_factory=dict)
    _records_touched: float | None = None
    _nodes_told: frozenset[str] = frozenset()
    """The cluster's live nodes as the last resume tokens given for a change of them knew them."""
    _nodes_told_at: float = float("-inf")
    _conns: dict[int, _Connection] = field(default_factory=dict)
    layers: LayerRouter = field(init=False)
    """Each subscriber's layer of each simulcast track (:mod:`conf_cli.server.layer_router`)."""

    def __post_init__(self) -> None:
        self.layers = LayerRouter(self.version)

    @property
    def generation(self) -> int:
        """The current :attr:`version` number."""
        return self.version.value

    # -- events from the edge -----------------------------------------------------------------------

    def connected(self, cid: int, now: float, peer: str = "", scheme: str = "") -> list[Action]:
        replaced = self._conns.get(cid)
        if replaced is not None:  # the edge reused an id: work finishing for the old one is dropped
            replaced.advance(Phase.CLOSED)
        self._conns[cid] = _Connection(cid, peer, now, now, scheme)
        self.stats.connections = len(self._conns)
        return []

    def greet(self, cid: int) -> None:
        """Count ``cid`` as having said hello: another process (``conf server --workers``) answered it."""
        conn = self._conns.get(cid)
        if conn is not None and conn.phase is Phase.OPENED:
            conn.advance(Phase.GREETED)

    def is_greeted(self, cid: int) -> bool:
        """Whether ``cid`` has said hello (a participant's link, not a node link about to prove itself)."""
        conn = self._conns.get(cid)
        return conn is not None and conn.greeted

    def disconnected(self, cid: int, reason: str = "disconnected", now: float | None = None) -> list[Action]:
        """Connection ``cid`` is gone (``reason`` ``disconnected`` or ``timeout``). A participant holding
        a resume token keeps its seat for :attr:`seat_grace` seconds from ``now`` (nobody is told), so
        that it can take it back quietly; then it leaves as ``reason`` says."""
        conn = self._conns.pop(cid, None)
        self.stats.connections = len(self._conns)
        if conn is None:
            return []
        conn.advance(Phase.CLOSED)
        when = conn.last_seen if now is None else now
        meeting = conn.meeting
        calls = self.calls.disconnected(cid)
        if meeting is not None and reason in RESUMABLE and self._holds(meeting, cid):
            self.held[cid] = _Held(meeting, when + self.seat_grace, reason)
            self.stats.seats_held += 1
            return list(calls)
        self.layers.forget(cid)
        return [*calls, *self._leave(conn, reason), *self.sync_layers(when)]

    def _holds(self, meeting: Meeting, pid: int) -> bool:
        """Whether ``pid``'s seat is kept when its connection vanishes: it holds a resume token, and the
        meeting is not end-to-end encrypted (there, coming back is a new entry, so that keys go round)."""
        participant = meeting.participants.get(pid)
        return participant is not None and participant.token_issued is not None and not meeting.e2ee

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
            return [*self._dispatch(conn, message, now), *self.sync_layers(now)]
        except RequestRefused as refusal:
            return [_refused(conn.cid, refusal, message)]

    def tick(self, now: float) -> list[Action]:
        """Close connections that never said hello or went silent; deny unanswered control requests;
        end calls that rang too long; close breakout rooms whose time is up; drop rate-limit windows and
        passcode keys that no longer decide anything."""
        self.limiter.prune(now)
        self.passcodes.prune(now)
        actions: list[Action] = list(self.calls.tick(now))
        self.layers.watch(list(self.meetings.values()), now)
        if self.layers.dirty:
            actions += self.sync_layers(now, force=True)
        actions += self.retry_keyframes(now)
        for meeting in self.meetings.values():
            actions += meeting.control.expire(now)
            actions += self._moved(meeting, meeting.expire(now))
        actions += self._refresh_tokens(now)
        if self.records is not None and (
            self._records_touched is None or now - self._records_touched >= TOKEN_REFRESH
        ):  # a record stays fresh while its meeting lives (record_store.prune drops stale ones)
            self._records_touched = now
            self.rewrite_records()
        for meeting in self.meetings.values():
            if meeting.recreated_at is not None and now - meeting.recreated_at >= HOST_RETURN_WAIT:
                meeting.recreated_at = None  # its host had time to come back: a meeting always has one
                actions += meeting.ensure_host()
        for cid, held in list(self.held.items()):
            if now < held.until and not held.meeting.closed:
                continue
            del self.held[cid]  # its grace ran out: it leaves, and everyone is told
            meeting = held.meeting
            if cid in meeting.participants and not meeting.closed:
                self.layers.forget(cid)
                before = len(meeting.participants)
                actions += self.after_change(meeting, before, meeting.leave(cid, held.reason))
        for conn in list(self._conns.values()):
            if not conn.greeted and now - conn.opened > self.hello_timeout:
                actions.append(Close(conn.cid, "no hello"))
            elif now - conn.last_seen > self.heartbeat_timeout:
                self.stats.timeouts += 1
                actions.append(Close(conn.cid, "heartbeat timeout"))
                actions += self.disconnected(conn.cid, "timeout", now)
        return actions

    def retry_keyframes(self, now: float) -> list[Action]:
        """Ask publishers again for the keyframes subscribers wait for to switch layers that did not come
        (:meth:`LayerRouter.overdue`); nothing to do costs a comparison, so the edge calls this between
        ticks too, and a lost request costs
        :data:`~conf_cli.server.simulcast.KEYFRAME_RETRY` seconds, not up to a tick more."""
        retried = self.layers.overdue(now)
        self.stats.keyframes_requested += len(retried)
        return [Forward((owner,), bytes(Pli(0, ssrc))) for owner, ssrc in retried]

    def rewrite_records(self) -> None:
        """Write every live meeting's record again (at the next :meth:`take_records`): it stays fresh in
        its store, and a store that lost it (a cluster's directory restarted empty) has it again."""
        for meeting in self.meetings.values():
            self._record_changed(meeting)

    def _record_changed(self, meeting: Meeting) -> None:
        if self.records is not None:
            self._dirty[meeting.id] = meeting

    def take_records(self) -> list[tuple[str, bytes | None]]:
        """The meeting records to write since the last call: ``(meeting ID, bytes)``, or ``(meeting ID,
        None)`` for a meeting that ended (its record goes)."""
        dirty, self._dirty = self._dirty, {}
        return [(mid, None if m.closed else record_of(m).encode()) for mid, m in dirty.items()]

    def _restore(self, record: MeetingRecord, now: float) -> Meeting:
        """Recreate a meeting this hub does not hold from its record; its people come back by resuming."""
        meeting = Meeting(
            record.meeting,
            passcode_of(record),
            e2ee=record.e2ee,
            waiting_room=record.waiting_room,
            version=self.version,
            journal=self.journal,
        )
        restore(record, meeting)
        meeting.recreated_at = now
        meeting.tokens = self._issue_token
        meeting.on_change = self._record_changed
        self._record_changed(meeting)  # written again by its new holder
        self.meetings[meeting.id] = meeting
        self.stats.meetings = len(self.meetings)
        self.stats.meetings_restored += 1
        return meeting

    def _issue_token(self, meeting: Meeting, participant: Participant) -> Message | None:
        """A ``resume_token`` event for ``participant`` (:mod:`conf_cli.server.resume`), or None when this
        hub gives none. A participant on a link of this server's own listeners also gets the URLs it may
        reconnect to as they are now: a long-lived client learns of nodes that joined the cluster after its
        ``welcome``. A participant carried here over a node link, or a service's, gets none (its client
        reconnects where its own node's ``welcome`` said)."""
        key, clock = self.resume_key, self.wall_clock
        if key is None or clock is None:
            return None
        now = clock()
        seat = seat_for(
            meeting.id,
            participant.seat,
            participant.name,
            str(participant.role),
            now,
            can_publish=participant.can_publish,
            recorder=participant.recorder,
        )
        participant.token_issued = now
        conn = self._conns.get(participant.pid)
        urls: tuple[str, ...] = ()
        if conn is not None and _on_own_link(conn):
            urls = self._reconnect_urls(conn)  # as they are now: nodes come and go
        return ResumeToken(token=key.issue(seat), expires=seat.expires, urls=urls or None).to_message()

    def _refresh_tokens(self, now: float) -> list[Action]:
        """A new resume token for every participant whose token is getting old, and, when the cluster's
        live nodes changed (:meth:`_nodes_changed`), for every participant on this server's own links:
        the token carries where to reconnect, and a node that joined or died changes that."""
        clock = self.wall_clock
        if self.resume_key is None or clock is None:
            return []
        wall = clock()
        nodes_changed = self._nodes_changed(now)
        actions: list[Action] = []
        for meeting in self.meetings.values():
            for participant in meeting.participants.values():
                issued = participant.token_issued
                if issued is None or participant.pid in self.held:
                    continue
                if wall - issued >= TOKEN_REFRESH:
                    actions += meeting.resume_token(participant)
                elif nodes_changed and _on_own_link(self._conns.get(participant.pid)):
                    self.stats.tokens_for_nodes += 1
                    actions += meeting.resume_token(participant)
        return actions

    def _nodes_changed(self, now: float) -> bool:
        """Whether the cluster's live nodes are no longer those the last tokens given for a change knew
        (at most once per :data:`NODES_TOLD_INTERVAL`; a change within it is told once it has passed).
        Not while the directory cannot be reached: what it said of the other nodes is forgotten then, but
        they may well be alive, and clients keep the list they have."""
        cluster = self.cluster
        if cluster is None or not cluster.reachable:
            return False
        live = frozenset(cluster.nodes)
        if live == self._nodes_told or now - self._nodes_told_at < NODES_TOLD_INTERVAL:
            return False
        self._nodes_told, self._nodes_told_at = live, now
        return True

    def route(self, cid: int, packet: bytes, now: float) -> Routed:
        """Where a media packet from ``cid`` goes, and why: the forwarding path, so keep it lean.

        RTP is forwarded only for a track its sender owns: to everyone else in the meeting the first time
        its sequence number is seen (a cacheable route: every later first-seen packet of that sender's
        SSRC goes the same way while :attr:`version` stays the same), and a packet seen before (a resend)
        only to those who asked for it (:mod:`conf_cli.server.feedback`), each on its own link. RTP whose
        header runs past its end is MALFORMED; RTP from outside a meeting, or for a track its sender does
        not own, is REFUSED (cacheable too). RTCP (:func:`conf_cli.protocol.rtp.is_rtcp`) is routed by
        :meth:`route_rtcp`'s rules, which may rewrite or split it. Media from a connection that has not
        said hello is CLOSE: the sender must go.
        """
        if is_rtcp(packet) and len(packet) >= 8:
            return self._route_rtcp(cid, packet, now)
        conn = self._conns.get(cid)
        if conn is None or not conn.greeted:
            return _CLOSE
        conn.last_seen = now
        meeting = conn.meeting
        if meeting is None or len(packet) < 8:
            self.stats.media_refused += 1
            return _REFUSED_CACHEABLE if meeting is None and len(packet) >= 12 else _REFUSED
        if not header_fits(packet):  # too short, or a CSRC list or extension past its end
            self.stats.media_malformed += 1
            return _MALFORMED
        ssrc = int.from_bytes(packet[8:12], "big")
        track = meeting.tracks.get(ssrc) or meeting.layer_tracks.get(ssrc)
        if track is None or track.owner != cid:
            self.stats.media_refused += 1
            return _REFUSED_CACHEABLE
        main = track.parent or track
        if track.feedback.first(packet):
            if main.layers:
                layers = self.layers
                plain, rewrites, cacheable = layers.route(main, track.index, packet, now)
                self.stats.layer_switches = layers.switches
                told = tuple(self.sync_layers(now, force=True)) if layers.switched else ()
                return Routed(
                    Verdict.FORWARDED,
                    plain,
                    track=track,
                    cacheable=cacheable,
                    rewrites=rewrites,
                    actions=told,
                )
            return Routed(Verdict.FORWARDED, meeting.audience(cid), track=track, cacheable=True)
        asked = self.route_resend(cid, track, packet, now)
        if main.layers and asked:  # each requester gets it as its stream numbers it
            plain_to: list[int] = []
            rewritten: list[tuple[Any, tuple[int, ...]]] = []
            for requester in asked:
                sub = self.layers.subscription(main.ssrc, requester)
                if sub is None or sub.current != track.index or sub.held is not None:
                    continue  # (held: its old layer was stopped for it; it waits for a keyframe)
                if sub.rewriter.identity:
                    plain_to.append(requester)
                else:
                    rewritten.append((sub.rewriter, (requester,)))
            return Routed(Verdict.FORWARDED, tuple(plain_to), resend=True, rewrites=tuple(rewritten))
        return Routed(Verdict.FORWARDED, asked, resend=True)

    def sync_layers(self, now: float, *, force: bool = False) -> list[Action]:
        """Keep simulcast subscriptions in step after a change: keyframe requests for the layers
        subscribers now wait for, and dynacast messages to publishers (docs/protocol.md, "Simulcast")."""
        layers = self.layers
        if not force and layers.synced == self.version.value:
            return []
        asks, sends = layers.sync(list(self.meetings.values()), now)
        self.stats.keyframes_requested += len(asks)
        return [*sends, *(Forward((owner,), bytes(Pli(0, ssrc))) for owner, ssrc in asks)]

    def audio_level(self, cid: int, track: Track, level: int, now: float) -> list[Send]:
        """An audio packet of ``cid``'s ``track`` with ``level`` (RFC 6464) was forwarded at ``now``: when
        the meeting's dominant speaker changes, ``active_speaker`` to everyone in it
        (:mod:`conf_cli.server.speaker`)."""
        meeting = self.meeting_of(cid)
        if meeting is None or track.owner != cid:
            return []
        speakers = meeting.speakers
        speaker = speakers.observe(cid, track.ssrc, level, now)
        if speaker is None:
            return []
        participant = meeting.participants.get(speaker)
        ssrc = speakers.ssrc_of(speaker)
        if participant is None or ssrc is None:
            return []
        self.stats.speaker_switches += 1
        speaking = ActiveSpeaker(name=participant.name, ssrc=ssrc)
        return [Send(tuple(meeting.participants), speaking.to_message())]

    def route_media(self, cid: int, packet: bytes, now: float) -> tuple[int, ...] | None:
        """Who receives a media packet from ``cid`` (:meth:`route`): a tuple of connections, every
        recipient of an RTCP packet's parts for RTCP, or None if ``cid`` must go."""
        routed = self.route(cid, packet, now)
        if routed.verdict is Verdict.CLOSE:
            return None
        if routed.forwards:
            return tuple(dict.fromkeys(to for forward in routed.forwards for to in forward.to))
        return routed.to

    def route_resend(self, cid: int, track: Track, packet: bytes, now: float) -> tuple[int, ...]:
        """Who gets a packet of ``track`` seen before: whoever asked for it (still in the meeting, and in
        the track's room)."""
        to = track.feedback.resend(packet, now, self.stats)
        if not to:
            return ()
        meeting = self.meeting_of(cid)
        if meeting is None:
            return ()
        members = meeting.participants
        return tuple(
            requester
            for requester in to
            if requester in members and requester != cid and meeting.together(requester, cid)
        )

    def route_rtcp(self, cid: int, packet: bytes, now: float) -> list[Forward] | None:
        """Where the parts of an RTCP packet from ``cid`` go, rewritten as needed; None if ``cid`` must go.

        Feedback (PLI, FIR, generic NACK) goes to the owner of the track it names, if ``cid`` receives that
        track (it is in the meeting, in ``cid``'s room, and not ``cid``'s), within ``cid``'s rate limit; a
        NACK is cut to what the publisher should resend
        (:meth:`conf_cli.server.feedback.TrackFeedback.nack`). Other RTCP (sender and receiver reports,
        SDES, BYE, XR) goes to ``cid``'s audience if it speaks for ``cid``'s
        own sources only: a sender report for a track ``cid`` publishes, anything else for an SSRC that is
        no other participant's track. RTCP that does not parse goes nowhere (``media_malformed``).
        """
        routed = self._route_rtcp(cid, packet, now)
        return None if routed.verdict is Verdict.CLOSE else list(routed.forwards)

    def _route_rtcp(self, cid: int, packet: bytes, now: float) -> Routed:
        conn = self._conns.get(cid)
        if conn is None or not conn.greeted:
            return _CLOSE
        conn.last_seen = now
        meeting = conn.meeting
        if meeting is None:
            self.stats.media_refused += 1
            return _REFUSED
        try:
            parts = parse_compound(packet)
        except ProtocolError:
            self.stats.media_malformed += 1
            return _MALFORMED
        tracks = meeting.tracks
        to_owner: dict[int, list[RtcpPacket]] = {}
        to_audience: list[RtcpPacket] = []
        unchanged = True
        for part in parts:
            if isinstance(part, Nack | Pli | Fir) or (
                isinstance(part, UnknownRtcp) and part.packet_type in (RTCP_RTPFB, RTCP_PSFB)
            ):
                unchanged = False
                if not conn.feedback.take(1, now):
                    self.stats.feedback_limited += 1
                    continue
                for owner, routed in self._feedback(conn, tracks, part, now):
                    to_owner.setdefault(owner, []).append(routed)
            elif isinstance(part, SenderReport) and part.ssrc in meeting.layer_tracks:
                unchanged = False  # a lower simulcast layer's: its subscribers know only the track's SSRC
            elif _speaks_for(cid, part, tracks):
                to_audience.append(part)
                if isinstance(part, ReceiverReport | SenderReport):
                    self._count_loss(part.reports)
                    for block in part.reports:
                        reported = tracks.get(block.ssrc)
                        if reported is not None and reported.layers:
                            self.layers.report(cid, reported, block.fraction_lost / 256, now)
            else:
                unchanged = False
                self.stats.rtcp_forged += 1
        forwards: list[Forward] = []
        if to_audience:
            audience = meeting.audience(cid)
            if audience:
                forwards.append(Forward(audience, packet if unchanged else build_compound(to_audience)))
        for owner, routed_parts in to_owner.items():
            forwards.append(Forward((owner,), build_compound(routed_parts)))
        return Routed(Verdict.FORWARDED, forwards=tuple(forwards))

    def _count_loss(self, reports: list[ReportBlock]) -> None:
        """Add up the loss receivers report (RFC 3550's fraction lost, in 256ths), for the metrics."""
        stats = self.stats
        for block in reports:
            stats.loss_reports += 1
            stats.loss_reported += block.fraction_lost / 256

    def _feedback(
        self, conn: _Connection, tracks: dict[int, Track], part: RtcpPacket, now: float
    ) -> list[tuple[int, RtcpPacket]]:
        """One feedback part from ``conn``, as it goes to each track owner it concerns."""
        cid = conn.cid
        if isinstance(part, Fir):
            by_owner: dict[int, list[tuple[int, int]]] = {}
            for ssrc, number in part.entries:
                track = tracks.get(ssrc)
                if track is None or track.owner == cid or not self._together(conn, track.owner):
                    self.stats.feedback_refused += 1
                    continue
                by_owner.setdefault(track.owner, []).append((ssrc, number))
                self.stats.firs_forwarded += 1
            return [(owner, Fir(part.sender_ssrc, entries)) for owner, entries in by_owner.items()]
        if isinstance(part, Nack | Pli):
            media = part.media_ssrc
        else:
            body = part.body  # type: ignore[union-attr]
            media = int.from_bytes(body[4:8], "big") if len(body) >= 8 else -1
        track = tracks.get(media)
        if track is None or track.owner == cid or not self._together(conn, track.owner):
            self.stats.feedback_refused += 1
            return []
        if track.layers:  # about the stream it receives: pass it on for the layer that stream carries
            sub = self.layers.subscription(track.ssrc, cid)
            if sub is None or sub.current is None:
                return []
            meeting = conn.meeting
            if sub.held is not None:  # its old layer was stopped for it: nothing of it is resent, and
                if not isinstance(part, Pli):  # the keyframe it needs is its target layer's
                    return []
                media = track.layers[sub.target].ssrc
            else:
                media = track.layers[sub.current].ssrc
            layer = track if media == track.ssrc or meeting is None else meeting.layer_tracks.get(media)
            if layer is None:
                return []
            if isinstance(part, Nack):
                rewriter = sub.rewriter  # (what it lost of the layer it left is not resent: it moved on)
                original = [
                    seq for lost in part.lost if rewriter.since_switch(seq := rewriter.original(lost))
                ]
                lost = layer.feedback.nack(cid, original, now, conn.resends, self.stats)
                return [(track.owner, Nack(part.sender_ssrc, media, lost))] if lost else []
            if isinstance(part, Pli):
                self.stats.plis_forwarded += 1
                return [(track.owner, Pli(part.sender_ssrc, media))]
            return [(track.owner, part)]
        if isinstance(part, Nack):
            lost = track.feedback.nack(cid, part.lost, now, conn.resends, self.stats)
            return [(track.owner, Nack(part.sender_ssrc, media, lost))] if lost else []
        if isinstance(part, Pli):
            self.stats.plis_forwarded += 1
        return [(track.owner, part)]

    @staticmethod
    def _together(conn: _Connection, owner: int) -> bool:
        meeting = conn.meeting
        return meeting is not None and meeting.together(conn.cid, owner)

    # -- queries for the edge -----------------------------------------------------------------------

    def table_sizes(self) -> dict[str, int]:
        """How many entries the hub's tables hold (``server_stats.tables``): none of them may grow with
        the number of connections that came and went, only with those still here."""
        return {
            "connections": len(self._conns),
            "meetings": len(self.meetings),
            "in_meetings": sum(len(m.participants) + len(m.waiting) for m in self.meetings.values()),
            "passcode_keys": len(self.passcodes),
            "held_seats": len(self.held),
            **self.limiter.sizes(),
            **self.calls.sizes(),
        }

    def meeting_of(self, cid: int) -> Meeting | None:
        conn = self._conns.get(cid)
        return conn.meeting if conn else None

    # -- dispatch -----------------------------------------------------------------------------------

    def _dispatch(self, conn: _Connection, message: Message, now: float) -> list[Action]:
        kind = message["type"]
        if kind == "control_input" and conn.greeted:
            return self._input(conn, message, now)
        if not conn.greeted:
            if kind != "hello":
                return [
                    _error(conn.cid, "bad_request", "say hello first", message),
                    Close(conn.cid, "no hello"),
                ]
            return self._hello(conn, message)
        if kind == "ping":
            return [Send((conn.cid,), Pong().to_message())]
        if kind in ("pong", "hello"):
            return []
        if kind in CALL_REQUESTS:
            return self._call_request(conn, message, now)
        if conn.busy:
            raise RequestRefused("busy", "a create or join request is still being processed")
        meeting = conn.meeting
        if conn.waiting is not None:
            return self._while_waiting(conn, conn.waiting, kind)
        if kind in ("create", "join", "login", "resume"):
            if meeting is not None:
                raise RequestRefused("bad_request", f"already in meeting {meeting.id}; /leave first")
            if kind == "login":
                return self._login(conn, message, now)
            if kind == "resume":  # the token proves what a login or a passcode would
                return self._resume(conn, message, now)
            if self.require_login and conn.user is None and not (kind == "join" and message.get("token")):
                raise RequestRefused(
                    "login_required", "this server requires you to log in first (--user NAME)"
                )
            if kind == "create":
                return self._create(conn, message, now)
            return self._join(conn, message, now)
        if meeting is None:
            raise RequestRefused("not_in_meeting", "join or create a meeting first")
        pid = conn.cid
        match kind:
            case "leave":
                left = Send((pid,), Left(meeting=meeting.id, reason="left").to_message())
                return [left, *self._leave(conn, "left")]
            case "admit":
                if not message.get("all") and message.get("name") is None:
                    raise RequestRefused("bad_request", "admit: give a name, or all")
                before = len(meeting.participants)
                admitted = meeting.admit(pid, None if message.get("all") else message["name"])
                return self.after_change(meeting, before, admitted)
            case "deny":
                return self.after_change(
                    meeting, len(meeting.participants), meeting.deny(pid, message["name"])
                )
            case "set_waiting_room":
                before = len(meeting.participants)
                return self.after_change(meeting, before, meeting.set_waiting_room(pid, message["enabled"]))
            case "who":
                return list(meeting.who(pid))
            case "chat":
                return list(meeting.chat(pid, message["text"], message.get("to"), now=now))
            case "set_role":
                return list(meeting.set_role(pid, message["name"], message["role"]))
            case "forbid" | "permit":
                return list(
                    meeting.set_permission(pid, message["what"], kind == "permit", message.get("name"))
                )
            case "kick":
                return self.after_change(
                    meeting, len(meeting.participants), meeting.kick(pid, message["name"])
                )
            case "unban":
                return list(meeting.unban(pid, message["name"]))
            case "lock" | "unlock":
                return list(meeting.set_locked(pid, kind == "lock"))
            case "publish":
                return list(
                    meeting.publish(
                        pid,
                        message["kind"],
                        message["ssrc"],
                        message["codec"],
                        message.get("layers"),
                        message.get("feedback"),
                    )
                )
            case "receive":
                for wanted, limits in (
                    ("max_bitrate", self.layers.caps),
                    ("max_height", self.layers.heights),
                ):
                    if message.get(wanted) is None:
                        limits.pop(pid, None)
                    else:
                        limits[pid] = message[wanted]
                return self.sync_layers(now, force=True)
            case "downlink":
                queued = message.get("queued_ms")
                changed = self.layers.told(
                    pid, message["bitrate"], now, None if queued is None else queued / 1000
                )
                self.stats.downlink_ignored = self.layers.told_ignored
                self.stats.downlink_upstream = self.layers.told_upstream
                return self.sync_layers(now, force=True) if changed else []
            case "unpublish":
                return list(meeting.unpublish(pid, message["kind"]))
            case "e2ee_keys":
                return list(meeting.relay_keys(pid, message["keys"]))
            case "end":
                return self.after_change(meeting, len(meeting.participants), meeting.end(pid))
            case "control_request":
                return list(meeting.control.request(pid, message["name"], now))
            case "control_accept" | "control_reject":
                accept = kind == "control_accept"
                answer = meeting.control.answer(pid, accept, message.get("name"), message.get("request"))
                return list(answer)
            case "control_revoke":
                return list(meeting.control.revoke(pid))
            case "hand":
                return list(meeting.activities.hand(pid, message.get("raised"), now))
            case "lower_hand":
                if not message.get("all") and message.get("name") is None:
                    raise RequestRefused("bad_request", "lower_hand: give a name, or all")
                everyone = bool(message.get("all"))
                return list(meeting.activities.lower_hand(pid, message.get("name"), everyone, now))
            case "react":
                return list(meeting.activities.react(pid, message["emoji"], now))
            case "poll_start":
                named = bool(message.get("named"))
                return list(
                    meeting.activities.start_poll(pid, message["question"], message["options"], named, now)
                )
            case "vote":
                return list(meeting.activities.vote(pid, message["choice"], message.get("poll"), now))
            case "poll_close":
                return list(meeting.activities.close_poll(pid, now))
            case "spotlight":
                return list(meeting.activities.set_spotlight(pid, message.get("name"), now))
            case "ask_unmute":
                return list(meeting.activities.ask_unmute(pid, message["name"], now))
            case "rename":
                return list(meeting.rename(pid, message["name"], message["new_name"], now))
            case "breakout_create":
                return list(meeting.breakout_create(pid, message["rooms"], now))
            case "breakout_broadcast":
                return list(meeting.breakout_broadcast(pid, message["text"], now))
            case (
                "breakout_assign" | "breakout_shuffle" | "breakout_open" | "breakout_visit" | "breakout_close"
            ):
                return self._moved(meeting, self._breakout(meeting, pid, kind, message, now))
        raise RequestRefused("bad_request", f"{kind} is not handled")

    @staticmethod
    def _breakout(meeting: Meeting, pid: int, kind: str, message: Message, now: float) -> list[Send]:
        """The breakout requests that move people (docs/protocol.md, "Breakout rooms")."""
        if kind == "breakout_assign":
            return meeting.breakout_assign(pid, message["name"], message["room"], now)
        if kind == "breakout_shuffle":
            return meeting.breakout_shuffle(pid, now)
        if kind == "breakout_open":
            return meeting.breakout_open(pid, message.get("minutes"), now)
        if kind == "breakout_visit":
            return meeting.breakout_visit(pid, message["room"], now)
        return meeting.breakout_close(pid, now)

    def _moved(self, meeting: Meeting, sends: list[Send]) -> list[Action]:
        """After people moved between rooms: a keyframe from each video publisher, for those who now
        receive its track."""
        if any(send.message["type"] == "breakout_moved" for send in sends):
            return [*sends, *self._keyframes_for(meeting)]
        return list(sends)

    def _input(self, conn: _Connection, message: Message, now: float) -> list[Action]:
        """Relay a remote-control input event to whom its sender controls; drop (and count) the rest."""
        meeting = conn.meeting
        target = meeting.control.target_of(conn.cid) if meeting is not None else None
        if meeting is None or target is None:
            self.stats.input_refused += 1
            return []
        conn.input_tokens = min(INPUT_BURST, conn.input_tokens + (now - conn.input_stamp) * INPUT_RATE)
        conn.input_stamp = now
        if conn.input_tokens < 1:
            self.stats.input_limited += 1
            return []
        conn.input_tokens -= 1
        self.stats.input_relayed += 1
        event = {key: message[key] for key in INPUT_FIELDS if message.get(key) is not None}
        sender = meeting.participants[conn.cid].name
        return [Send((target,), ControlInput(sender=sender, **event).to_message())]

    def _call_request(self, conn: _Connection, message: Message, now: float) -> list[Action]:
        """Call signalling. In a meeting, ``call`` reaches its participants by name, and the caller needs
        no ``online`` name (its meeting name stands in)."""
        if message["type"] == "online":
            if self.require_login and conn.user is None:
                raise RequestRefused(
                    "login_required", "this server requires you to log in first (--user NAME)"
                )
            if conn.user is not None:  # logged in, one is reachable under one's account name only
                message = {**message, "name": conn.user}
            else:  # a guest, as in a meeting, takes no account's name
                request = message

                def go_online(now: float) -> list[Action]:
                    try:
                        return list(self.calls.handle(conn.cid, request, now))
                    except RequestRefused as refusal:
                        return [_error(conn.cid, refusal.code, str(refusal), request)]

                return self._unless_account_name(conn, message["name"], message, now, go_online)
        meeting = conn.meeting
        if message["type"] != "call" or meeting is None or conn.cid not in meeting.participants:
            return list(self.calls.handle(conn.cid, message, now))
        me = self.calls.name_of(conn.cid) or meeting.participants[conn.cid].name
        folded = name_key(message["to"])
        target = next(
            ((p.pid, p.name) for p in meeting.participants.values() if name_key(p.name) == folded), None
        )
        return list(self.calls.handle(conn.cid, message, now, me=me, callee=target))

    def _hello(self, conn: _Connection, message: Message) -> list[Action]:
        if message["protocol"] != PROTOCOL_VERSION:
            theirs = message["protocol"]
            text = f"server speaks protocol {PROTOCOL_VERSION}, client speaks {theirs}; upgrade conf"
            return [_error(conn.cid, "protocol_version", text, message), Close(conn.cid, "protocol version")]
        conn.advance(Phase.GREETED)
        welcome = Welcome(
            protocol=PROTOCOL_VERSION,
            server=f"conf/{__version__}",
            heartbeat=HEARTBEAT_INTERVAL,
            stun_port=self.calls.stun_port or None,  # calls are offered (docs/protocol.md, "Calls")
            services={name: tuple(urls) for name, urls in self.services.items()} or None,
            # for clients that check their clock (conf doctor)
            time=round(self.wall_clock(), 3) if self.wall_clock is not None else None,
            urls=self._reconnect_urls(conn) or None,  # where a client may reconnect to resume
        )
        return [Send((conn.cid,), welcome.to_message())]

    def _reconnect_urls(self, conn: _Connection) -> tuple[str, ...]:
        """Where ``conn``'s client may reconnect to resume: this server's URLs, then (a cluster node) the
        other live nodes' URLs for the transport it came in on, at most MAX_WELCOME_URLS in all."""
        urls = list(self.urls)
        if self.cluster is not None:
            urls += [url for url in self.cluster.reconnect_urls(conn.scheme) if url not in urls]
        return tuple(urls[:MAX_WELCOME_URLS])

    def _while_waiting(self, conn: _Connection, meeting: Meeting, kind: str) -> list[Action]:
        """A waiting person may only leave; nothing else of the meeting is theirs yet."""
        if kind == "leave":
            left = Send((conn.cid,), Left(meeting=meeting.id, reason="left").to_message())
            return [left, *self._leave(conn, "left")]
        raise RequestRefused("waiting", f"you are waiting to be admitted to meeting {meeting.id}")

    def _login(self, conn: _Connection, message: Message, now: float) -> list[Action]:
        accounts = self.accounts
        if accounts is None:
            raise RequestRefused("bad_request", "this server has no accounts; join without --user")
        if conn.user is not None:
            raise RequestRefused("bad_request", f"already logged in as {conn.user}")
        user, password = message["user"], message["password"]
        target = f"user:{name_key(user)}"
        refused = self._rate_limited(conn, target, now, message)
        if refused:
            return refused
        attempt = self.limiter.begin(conn.address, target, now)  # counts while it is being checked
        self.stats.login_checks += 1
        conn.busy = True

        def resume(result: tuple[str, str], now: float) -> list[Action]:
            conn.busy = False
            status, name = result
            if status == "ok":
                self.limiter.got_in(attempt, now)
            elif status == "error":
                self.limiter.void(attempt)
            else:
                self.limiter.wrong(attempt)
            if conn.phase is Phase.CLOSED:
                return []
            if status == "ok":
                conn.user = name
                return [Send((conn.cid,), LoggedIn(user=name).to_message())]
            if status == "error":
                return [_error(conn.cid, "unavailable", "the server cannot check accounts now", message)]
            if status == "unknown":
                return [
                    _error(conn.cid, "unknown_user", f"no account named {user!r} on this server", message)
                ]
            return [_error(conn.cid, "wrong_password", f"wrong password for {user!r}", message)]

        def work() -> tuple[str, str]:
            try:
                return accounts.verify(user, password)
            except ConfError as exc:  # an unreadable accounts file: the server says so, and goes on
                return "error", str(exc)

        return [Deferred(work, resume)]

    def _rate_limited(
        self, conn: _Connection, target: str | None, now: float, request: Message
    ) -> list[Action]:
        """The refusal of an attempt the rate limit does not allow now (empty if it may go ahead)."""
        wait = self.limiter.retry_after(conn.address, target, now)
        return self._refusal(conn, wait, "too many failed attempts", request)

    def _refusal(self, conn: _Connection, wait: float, why: str, request: Message) -> list[Action]:
        """A ``rate_limited`` refusal if ``wait`` is above 0, else nothing."""
        if wait <= 0:
            return []
        self.stats.attempts_refused += 1
        text = f"{why}; try again in {seconds_text(wait)}"
        refusal = _error(conn.cid, "rate_limited", text, request)
        refusal.message["retry_after"] = round(wait, 1)
        return [refusal]

    def _create(self, conn: _Connection, message: Message, now: float) -> list[Action]:
        chosen = message.get("passcode")
        if chosen and len(chosen) < MIN_PASSCODE_CHARS:
            raise RequestRefused(
                "passcode_too_short",
                f"a passcode needs at least {MIN_PASSCODE_CHARS} characters; choose a longer one, "
                "or give none and the server draws one",
            )
        refused = self._create_limited(conn, now, message)
        if refused:
            return refused
        cluster = self.cluster
        if cluster is not None:
            if not cluster.reachable:
                raise RequestRefused("directory_unavailable", cluster.unavailable_text("create a meeting"))
            elsewhere = cluster.placement()
            if elsewhere is not None:
                return [self._redirect(conn, elsewhere, message, None)]
            if not cluster.holds_meetings:
                raise RequestRefused("unavailable", "no worker of this server is running; try again shortly")
        conn.requested = now
        passcode = chosen or self.new_passcode()
        name = conn.user or message["name"]
        waiting_room = bool(message.get("waiting_room"))
        e2ee = bool(message.get("e2ee"))
        key = message.get("e2ee_key")
        if e2ee and key is None:
            raise RequestRefused("bad_request", "an end-to-end encrypted meeting needs your e2ee_key")
        return self._unless_account_name(
            conn,
            name,
            message,
            now,
            lambda now: self._create_now(
                conn, name, passcode, message, now, waiting_room=waiting_room, e2ee=e2ee, key=key
            ),
        )

    def _create_limited(self, conn: _Connection, now: float, request: Message) -> list[Action]:
        wait = self.limiter.create_retry_after(conn.address, now)
        return self._refusal(conn, wait, "too many meetings created from your address", request)

    def _create_now(
        self,
        conn: _Connection,
        name: str,
        passcode: str,
        request: Message,
        now: float,
        *,
        waiting_room: bool,
        e2ee: bool,
        key: str | None,
    ) -> list[Action]:
        refused = self._create_limited(conn, now, request)  # checked again: time passed since
        if refused:
            return refused
        self.limiter.created(conn.address, now)
        self.stats.creates_hashed += 1
        conn.busy = True

        def resume(digest: PasscodeHash, now: float) -> list[Action]:
            if self.cluster is not None:
                return self._claim(conn, request, lambda mid, now: opened(digest, mid, now))
            return opened(digest, None, now)

        def opened(digest: PasscodeHash, meeting_id: str | None, now: float) -> list[Action]:
            conn.busy = False
            if conn.phase is Phase.CLOSED:
                return []
            meeting = self.open_meeting(
                digest, by=name, waiting_room=waiting_room, e2ee=e2ee, meeting_id=meeting_id
            )
            meeting_id = meeting.id
            self.limiter.succeeded(conn.address, f"meeting:{meeting_id}", now)
            self.passcodes.remember(f"meeting:{meeting_id}", passcode, digest, now)
            created = MeetingCreated(meeting=meeting_id, passcode=passcode, e2ee=True if e2ee else None)
            joined = meeting.join(conn.cid, name, passcode_ok=True, key=key, origin=address_key(conn.address))
            conn.entered = meeting
            if conn.cid in meeting.participants:
                self.join_latency.observe(now - conn.requested)
            return [Send((conn.cid,), created.to_message()), *joined]

        return [Deferred(lambda: PasscodeHash.of(passcode), resume)]

    def _claim(
        self,
        conn: _Connection,
        request: Message,
        then: Callable[[str, float], list[Action]],
        attempt: int = 1,
    ) -> list[Action]:
        """Claim a fresh meeting ID in the cluster's directory, then ``then(meeting_id, now)``; a refusal
        if the directory cannot be reached (or every ID tried was taken)."""
        cluster = self.cluster
        assert cluster is not None
        meeting_id = self.fresh_id()

        def claimed(answer: object, now: float) -> list[Action]:
            if answer is True:
                return then(meeting_id, now)
            if answer is False and attempt < CLAIM_ATTEMPTS:
                return self._claim(conn, request, then, attempt + 1)
            conn.busy = False
            if conn.phase is Phase.CLOSED:
                return []
            text = cluster.unavailable_text("create a meeting")
            if answer is False:
                text = "no free meeting ID could be claimed in the cluster's directory; try again"
            return [_error(conn.cid, "directory_unavailable", text, request)]

        return [Ask(ClaimMeeting(meeting_id), claimed)]

    def fresh_id(self) -> str:
        """A meeting ID no meeting here has (in a cluster, claim it before opening a meeting under it)."""
        meeting_id = self.new_id()
        while meeting_id in self.meetings:
            meeting_id = self.new_id()
        return meeting_id

    def _redirect(self, conn: _Connection, node: NodeInfo, request: Message, meeting: str | None) -> Send:
        """Send the client on to ``node`` (which holds ``meeting``, or takes the meeting to create)."""
        url = url_for(node, conn.scheme)
        if url is None:
            raise RequestRefused(
                "unavailable",
                f"the meeting is on node {node.name}, which has no {conn.scheme or 'such'}:// URL; "
                f"connect to one of {', '.join(node.urls) or 'its URLs'}",
            )
        self.stats.redirects += 1
        redirect = Redirect(
            re=request["type"], url=url, node=node.name, meeting=meeting, fingerprint=node.fingerprint
        )
        return Send((conn.cid,), redirect.to_message())

    def open_meeting(
        self,
        passcode: PasscodeHash,
        *,
        by: str,
        waiting_room: bool,
        e2ee: bool,
        meeting_id: str | None = None,
    ) -> Meeting:
        """A new meeting, with nobody in it yet, under ``meeting_id`` (one claimed in the cluster's
        directory) or a fresh ID; ``by`` names who created it."""
        meeting_id = meeting_id if meeting_id is not None else self.fresh_id()
        meeting = Meeting(
            meeting_id,
            passcode,
            e2ee=e2ee,
            waiting_room=waiting_room,
            version=self.version,
            journal=self.journal,
        )
        meeting.tokens = self._issue_token
        meeting.on_change = self._record_changed
        self._record_changed(meeting)
        self.meetings[meeting_id] = meeting
        self.stats.meetings = len(self.meetings)
        self.journal.note("meeting_started", meeting_id, by=by, waiting_room=waiting_room, e2ee=e2ee)
        return meeting

    def _join(self, conn: _Connection, message: Message, now: float) -> list[Action]:
        meeting_id = normalise_meeting_id(message["meeting"])
        meeting = self.meetings.get(meeting_id)
        target = f"meeting:{meeting_id}" if meeting is not None else None
        refused = self._rate_limited(conn, target, now, message)
        if refused:
            return refused
        if meeting is None and self.cluster is not None and is_meeting_key(meeting_id):
            return self._find(conn, meeting_id, message)
        if meeting is None:
            self.limiter.failed(conn.address, None, now)  # guessing meeting IDs costs like guessing passcodes
            raise RequestRefused("unknown_meeting", f"no meeting {message['meeting']!r} on this server")
        name = conn.user or message["name"]
        conn.requested = now
        if message.get("token") is not None:
            return self._join_with_token(conn, meeting, name, message, now)
        return self._unless_account_name(
            conn, name, message, now, lambda now: self._join_now(conn, meeting, name, message, now)
        )

    def _find(self, conn: _Connection, meeting_id: str, message: Message) -> list[Action]:
        """A join of a meeting this node does not hold: ask the directory which node does, and send the
        client there, or carry it there when that node is full (:mod:`conf_cli.server.cascade`)."""
        cluster = self.cluster
        assert cluster is not None
        conn.busy = True

        def found(answer: object, now: float) -> list[Action]:
            conn.busy = False
            if conn.phase is Phase.CLOSED:
                return []
            try:
                if meeting_id in self.meetings:  # it started here meanwhile
                    return self._join(conn, message, now)
                if answer == UNREACHABLE:
                    raise RequestRefused(
                        "directory_unavailable", cluster.unavailable_text("find that meeting")
                    )
                if not isinstance(answer, Holder) or answer.name == cluster.name:
                    self.limiter.failed(conn.address, None, now)  # guessing IDs costs as on one server
                    raise RequestRefused(
                        "unknown_meeting", f"no meeting {message['meeting']!r} in this cluster"
                    )
                if answer.node is None:
                    raise RequestRefused(
                        "unavailable",
                        f"meeting {meeting_id} is on node {answer.name}, which is not answering; "
                        "try again in a few seconds",
                    )
                if should_cascade(cluster.cascade, answer.node):
                    self.stats.cascaded += 1
                    return [Cascade(conn.cid, answer.node, message)]
                return [self._redirect(conn, answer.node, message, meeting_id)]
            except RequestRefused as refusal:
                return [_refused(conn.cid, refusal, message)]

        return [Ask(FindHolder(meeting_id), found)]

    def _join_now(
        self, conn: _Connection, meeting: Meeting, name: str, message: Message, now: float
    ) -> list[Action]:
        meeting_id = meeting.id
        target = f"meeting:{meeting_id}"
        passcode = message.get("passcode") or ""
        # Checked again, and counted, in the same step as the hash is started: attempts still being
        # checked count, so many at once cannot run more checks than the limit allows.
        refused = self._rate_limited(conn, target, now, message)
        if refused:
            return refused
        attempt = self.limiter.begin(conn.address, target, now)
        self.stats.passcode_checks += 1
        conn.busy = True

        def resume(ok: bool, now: float) -> list[Action]:
            conn.busy = False
            if ok:
                self.limiter.got_in(attempt, now)
            elif meeting.closed:
                self.limiter.void(attempt)
            else:
                self.limiter.wrong(attempt)
            if conn.phase is Phase.CLOSED:
                return []
            try:
                if meeting.closed:
                    raise RequestRefused("unknown_meeting", f"meeting {meeting_id} has ended")
                sends = meeting.join(
                    conn.cid,
                    name,
                    passcode_ok=ok,
                    key=message.get("e2ee_key"),
                    origin=address_key(conn.address),
                    recorder=message.get("recorder") is True,
                )
            except RequestRefused as refusal:
                return [_refused(conn.cid, refusal, message)]
            conn.entered = meeting
            if conn.cid in meeting.waiting:
                return list(sends)
            self.join_latency.observe(now - conn.requested)
            return [*sends, *self._keyframes_for(meeting), *self._speaker_for(meeting, conn.cid)]

        known = self.passcodes.check(target, passcode, meeting.passcode, now)
        if known is not None:  # the meeting's key answers at once, right or wrong: no hashing
            return resume(known, now)
        self.stats.passcode_hashed += 1

        def hashed(ok: bool, now: float) -> list[Action]:
            if ok and not meeting.closed:  # from now on the key answers for this meeting
                self.passcodes.remember(target, passcode, meeting.passcode, now)
            return resume(ok, now)

        return [Deferred(lambda: meeting.passcode.matches(passcode), hashed)]

    def _join_with_token(
        self, conn: _Connection, meeting: Meeting, name: str, message: Message, now: float
    ) -> list[Action]:
        """A ``join`` with an access token instead of the passcode: a bad token counts as a failed attempt
        (the caller checked the limit); a good one lets ``name`` in with what it grants."""
        target = f"meeting:{meeting.id}"
        try:
            if self.token_key is None or self.wall_clock is None:
                raise TokenRefused("this server takes no access tokens; join with the passcode")
            token = read_token(message["token"], self.token_key)
            recorder = message.get("recorder") is True
            token.admits(meeting.id, _on_behalf_of(name, token.name, recorder), self.wall_clock())
        except TokenRefused as refusal:
            self.limiter.failed(conn.address, target, now)
            raise RequestRefused("bad_token", str(refusal)) from None
        self.limiter.succeeded(conn.address, target, now)
        sends = meeting.join(
            conn.cid,
            _recorder_name(token.name) if recorder else token.name_for(name),
            passcode_ok=True,
            key=message.get("e2ee_key"),
            origin=address_key(conn.address),
            grant=token.grant,
            recorder=message.get("recorder") is True,
        )
        conn.entered = meeting
        if conn.cid in meeting.waiting:
            return list(sends)
        self.join_latency.observe(now - conn.requested)
        return [*sends, *self._keyframes_for(meeting)]

    def _resume(self, conn: _Connection, message: Message, now: float) -> list[Action]:
        """``resume``: take one's seat back with a resume token (docs/protocol.md, "Resuming"). A token
        that does not check counts as a failed attempt, as a wrong passcode does."""
        refused = self._rate_limited(conn, None, now, message)
        if refused:
            return refused
        key, clock = self.resume_key, self.wall_clock
        if key is None or clock is None:
            raise RequestRefused(
                "resume_refused", "this server gives no resume tokens (it runs without encryption)"
            )
        try:
            seat = key.read(message["token"], clock())
        except ResumeRefused as refusal:
            self.stats.resumes_refused += 1
            self.limiter.failed(conn.address, None, now)
            raise RequestRefused("resume_refused", str(refusal)) from None
        meeting = self.meetings.get(seat.meeting)
        conn.requested = now
        if meeting is None:
            return self._resume_recorded(conn, seat, message, now)
        try:
            actions = self._resume_into(conn, meeting, seat, message.get("e2ee_key"), now)
        except RequestRefused:
            self.stats.resumes_refused += 1
            raise
        self.stats.resumes += 1
        self.limiter.succeeded(conn.address, f"meeting:{meeting.id}", now)
        self.join_latency.observe(now - conn.requested)
        return actions

    def _resume_recorded(self, conn: _Connection, seat: Seat, message: Message, now: float) -> list[Action]:
        """A resume for a meeting this hub does not hold: recreated from its record, if there is one."""
        store = self.records
        gone = f"meeting {seat.meeting} is not on this server any more; it has ended"
        if store is None:
            self.stats.resumes_refused += 1
            raise RequestRefused("unknown_meeting", gone)
        if self.cluster is not None and is_meeting_key(seat.meeting):
            return self._resume_in_cluster(conn, seat, message)
        return self._resume_from_record(conn, seat, message)

    def _resume_in_cluster(
        self, conn: _Connection, seat: Seat, message: Message, attempt: int = 1
    ) -> list[Action]:
        """A resume for a meeting this node does not hold (docs/cluster.md, "Failover"): sent on to the
        live node that holds it; taken over when nobody holds it any more (its node died and the claim
        lapsed: claimed atomically, so of several nodes only one restores it from its record, and the
        others send their clients there); ``try_again`` while a node that stopped answering still holds
        it; ``directory_unavailable`` while the directory cannot be asked."""
        cluster = self.cluster
        assert cluster is not None
        meeting_id = seat.meeting
        conn.busy = True

        def later(code: str, text: str, now: float) -> list[Action]:
            refusal = _error(conn.cid, code, text, message)
            refusal.message["retry_after"] = RESUME_RETRY_AFTER
            return [refusal]

        def found(answer: object, now: float) -> list[Action]:
            conn.busy = False
            if conn.phase is Phase.CLOSED:
                return []
            if meeting_id in self.meetings:  # restored here meanwhile
                return self._resume_here(conn, seat, message, now)
            if answer == UNREACHABLE:
                return later("directory_unavailable", cluster.unavailable_text("find that meeting"), now)
            if isinstance(answer, Holder) and answer.name != cluster.name:
                if answer.node is None:
                    return later(
                        "try_again",
                        f"meeting {meeting_id} is held by node {answer.name}, which stopped answering; "
                        "another node takes it over once that node's claim lapses",
                        now,
                    )
                try:
                    return [self._redirect(conn, answer.node, message, meeting_id)]
                except RequestRefused as refusal:
                    return [_refused(conn.cid, refusal, message)]
            if isinstance(answer, Holder):  # this node's own claim, left from before: the meeting is ours
                return self._resume_from_record(conn, seat, message)
            conn.busy = True
            return [Ask(ClaimMeeting(meeting_id), claimed)]

        def claimed(answer: object, now: float) -> list[Action]:
            conn.busy = False
            if conn.phase is Phase.CLOSED:
                return []
            if meeting_id in self.meetings:
                return self._resume_here(conn, seat, message, now)
            if answer is True:
                return self._resume_from_record(conn, seat, message)
            if answer is False and attempt < 2:  # another node took it first: go there
                return self._resume_in_cluster(conn, seat, message, attempt + 1)
            if answer is False:
                return later("try_again", f"meeting {meeting_id} is moving between nodes", now)
            return later("directory_unavailable", cluster.unavailable_text("take that meeting over"), now)

        return [Ask(FindHolder(meeting_id), found)]

    def _resume_here(self, conn: _Connection, seat: Seat, message: Message, now: float) -> list[Action]:
        """Seat a resume in a meeting this hub holds (after waiting for the directory or a record)."""
        meeting = self.meetings[seat.meeting]
        try:
            actions = self._resume_into(conn, meeting, seat, message.get("e2ee_key"), now)
        except RequestRefused as refusal:
            self.stats.resumes_refused += 1
            return [_refused(conn.cid, refusal, message)]
        self.stats.resumes += 1
        self.limiter.succeeded(conn.address, f"meeting:{meeting.id}", now)
        self.join_latency.observe(now - conn.requested)
        return actions

    def _resume_from_record(self, conn: _Connection, seat: Seat, message: Message) -> list[Action]:
        """Recreate ``seat``'s meeting from its record (read off the event loop), then seat the resume."""
        store = self.records
        assert store is not None
        gone = f"meeting {seat.meeting} is not on this server any more; it has ended"
        conn.busy = True

        def load() -> MeetingRecord | DirectoryUnavailable | None:
            try:
                data = store.load(seat.meeting)
                return decode(data) if data is not None else None
            except DirectoryUnavailable as exc:
                return exc
            except (ConfError, OSError, RecordError):
                return None

        def loaded(record: MeetingRecord | DirectoryUnavailable | None, now: float) -> list[Action]:
            conn.busy = False
            if conn.phase is Phase.CLOSED:
                return []
            meeting = self.meetings.get(seat.meeting)  # another resume may have recreated it meanwhile
            if meeting is None:
                if isinstance(record, DirectoryUnavailable):
                    refusal = _error(conn.cid, "directory_unavailable", f"{record}; try again", message)
                    refusal.message["retry_after"] = RESUME_RETRY_AFTER
                    return [refusal]
                if record is None or record.meeting != seat.meeting:
                    self.stats.resumes_refused += 1
                    return [_error(conn.cid, "unknown_meeting", gone, message)]
                self._restore(record, now)
            return self._resume_here(conn, seat, message, now)

        return [Deferred(load, loaded)]

    def _resume_into(
        self, conn: _Connection, meeting: Meeting, seat: Seat, key: str | None, now: float
    ) -> list[Action]:
        """Seat ``conn`` in ``seat``: quietly in the seat itself if it is still here (kept after its
        connection vanished, or still connected: then that connection is closed, told ``left`` with
        reason ``resumed``), else as someone coming back (:meth:`Meeting.resume`)."""
        sitting = meeting.seat_of(seat.seat)
        actions: list[Action] = []
        if sitting is not None and meeting.e2ee:  # a new entry, so that keys go round: the old one leaves
            actions += self._displace(sitting.pid, meeting)
            self.held.pop(sitting.pid, None)
            gone = meeting.leave(sitting.pid, "disconnected")
            actions += self.after_change(meeting, len(meeting.participants), gone)
            sitting = None
        if sitting is None:
            before = len(meeting.participants)
            sends = meeting.resume(
                conn.cid,
                seat.name,
                Role(seat.role),
                seat.seat,
                key=key,
                origin=address_key(conn.address),
                can_publish=seat.can_publish,
                recorder=seat.recorder,
            )
            conn.entered = meeting
            speaker = self._speaker_for(meeting, conn.cid)
            return [*actions, *self.after_change(meeting, before, sends), *speaker]
        old = sitting.pid
        if self.held.pop(old, None) is None:
            actions += self._displace(old, meeting)
        new = conn.cid
        del self._conns[new]
        conn.cid = old
        conn.entered = meeting
        self._conns[old] = conn
        self.version.bump()  # the seat's media goes to another link now
        rebind = Rebind(new, old, Left(meeting=meeting.id, reason="resumed").to_message())
        return [
            *actions,
            rebind,
            *meeting.reseated(old),
            *self._keyframes_for(meeting),
            *self._speaker_for(meeting, old),
        ]

    def _displace(self, pid: int, meeting: Meeting) -> list[Action]:
        """The connection of ``pid`` gives its seat up to a resume: it is forgotten here (the edge closes
        it when it carries out the :class:`Rebind`)."""
        displaced = self._conns.pop(pid, None)
        if displaced is None:
            return []
        displaced.advance(Phase.CLOSED)
        self.stats.connections = len(self._conns)
        if meeting.e2ee:
            notice = Left(meeting=meeting.id, reason="resumed").to_message()
            return [Send((pid,), notice), Close(pid, "its seat was resumed on another connection")]
        return list(self.calls.disconnected(pid))

    def _unless_account_name(
        self,
        conn: _Connection,
        name: str,
        request: Message,
        now: float,
        then: Callable[[float], list[Action]],
    ) -> list[Action]:
        """Go on with ``then`` unless a guest (not logged in) picked the name of one of the server's
        accounts: nobody takes part in a meeting, or is online for calls, under an account's name
        without its password."""
        accounts = self.accounts
        if accounts is None or conn.user is not None:
            return then(now)
        conn.busy = True

        def work() -> bool:
            try:
                return accounts.exists(name)
            except ConfError:  # an unreadable accounts file reserves no names
                return False

        def resume(taken: bool, now: float) -> list[Action]:
            conn.busy = False
            if conn.phase is Phase.CLOSED:
                return []
            if taken:
                text = f"the name {name!r} belongs to an account on this server; log in with --user {name}"
                return [_error(conn.cid, "name_taken", text, request)]
            return then(now)

        return [Deferred(work, resume)]

    def _speaker_for(self, meeting: Meeting, cid: int) -> list[Action]:
        """Tell a newcomer who the meeting's active speaker is, if anyone spoke yet."""
        speaker = meeting.speakers.current
        participant = meeting.participants.get(speaker) if speaker is not None else None
        ssrc = meeting.speakers.ssrc_of(speaker) if speaker is not None else None
        if participant is None or ssrc is None or speaker == cid:
            return []
        return [Send((cid,), ActiveSpeaker(name=participant.name, ssrc=ssrc).to_message())]

    def _keyframes_for(self, meeting: Meeting) -> list[Action]:
        """Ask every video publisher for a keyframe so a newcomer sees a picture at once."""
        asks: list[Action] = [
            Forward((t.owner,), bytes(Pli(0, t.ssrc))) for t in meeting.video_tracks() if not t.layers
        ]  # a simulcast track's newcomers ask for the layer each one gets (sync_layers)
        self.stats.keyframes_requested += len(asks)
        return asks

    def _leave(self, conn: _Connection, reason: str) -> list[Action]:
        meeting = conn.meeting or conn.waiting
        conn.entered = None
        if meeting is None:
            return []
        return self.after_change(meeting, len(meeting.participants), meeting.leave(conn.cid, reason))

    def after_change(self, meeting: Meeting, before: int, sends: list[Send]) -> list[Action]:
        """The actions of a change to ``meeting`` that had ``before`` participants: keyframe requests if
        it admitted someone; the meeting forgotten once it has closed."""
        actions: list[Action] = list(sends)
        if meeting.closed:
            self.meetings.pop(meeting.id, None)
            self.stats.meetings = len(self.meetings)
            self.limiter.forget(f"meeting:{meeting.id}")
            self.passcodes.forget(f"meeting:{meeting.id}")
        elif len(meeting.participants) > before:
            actions += self._keyframes_for(meeting)
        return actions

    def _bad(self, conn: _Connection, why: str) -> list[Action]:
        conn.bad_messages += 1
        self.stats.protocol_errors += 1
        bad = Error(code="bad_request", message=why)
        actions: list[Action] = [Send((conn.cid,), bad.to_message())]
        if not conn.greeted or conn.bad_messages > MAX_BAD_MESSAGES:
            actions.append(Close(conn.cid, f"protocol errors: {why}"))
        return actions


def _on_own_link(conn: _Connection | None) -> bool:
    """Whether ``conn`` came in on one of this server's own listeners (not a service's in-process link, not
    carried here over a node link): the participants a resume token tells where to go."""
    return conn is not None and conn.scheme not in ("", "local")


def _on_behalf_of(name: str, token_name: str, recorder: bool) -> str:
    """The name a token must be for: a recorder ``X (recorder)`` records on behalf of ``X``, whose token
    lets it in (a token for ``X (recorder)`` itself does too)."""
    if recorder and name_key(name) != name_key(token_name):
        return name[: -len(RECORDER_SUFFIX)] if name_key(name).endswith(name_key(RECORDER_SUFFIX)) else name
    return name


def _recorder_name(name: str) -> str:
    return name if name_key(name).endswith(name_key(RECORDER_SUFFIX)) else name + RECORDER_SUFFIX


def _refused(cid: int, refusal: RequestRefused, request: Message) -> Send:
    """The error answering a refused request (with ``retry_after`` if it was rate-limited)."""
    refused = _error(cid, refusal.code, str(refusal), request)
    if refusal.retry_after is not None:
        refused.message["retry_after"] = round(refusal.retry_after, 1)
    return refused


def _speaks_for(cid: int, part: RtcpPacket, tracks: dict[int, Track]) -> bool:
    """Whether a non-feedback RTCP part from ``cid`` speaks only for its own sources: a sender report
    only for a track ``cid`` publishes; a receiver report, SDES, BYE or other packet only for SSRCs that
    are no other participant's track (a receiver's own SSRC is random and not published)."""

    def own(ssrc: int) -> bool:
        track = tracks.get(ssrc)
        return track is None or track.owner == cid

    if isinstance(part, SenderReport):
        track = tracks.get(part.ssrc)
        return track is not None and track.owner == cid
    if isinstance(part, ReceiverReport):
        return own(part.ssrc)
    if isinstance(part, Sdes):
        return all(own(chunk.ssrc) for chunk in part.chunks)
    if isinstance(part, Bye):
        return all(own(source) for source in part.sources)
    if isinstance(part, UnknownRtcp):  # XR, APP ...: the sender's SSRC comes first
        return len(part.body) >= 4 and own(int.from_bytes(part.body[:4], "big"))
    return False


def _error(cid: int, code: str, text: str, request: Message) -> Send:
    ident = request.get("id")
    error = Error(
        code=code, message=text, re=request.get("type"), id=ident if isinstance(ident, str | int) else None
    )
    return Send((cid,), error.to_message())
