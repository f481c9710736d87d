"""A cluster node's decisions, sans-I/O: what its directory record says, where a new meeting goes, when
claims are refreshed, and whether the directory counts as reachable. ``now`` is always passed in.

The directory itself is a :class:`conf_cli.plugin.cluster.ClusterBackend` (Redis, NATS), driven by
:mod:`conf_cli.server.cluster_node`; the hub asks it questions through :class:`Ask` actions
(:class:`ClaimMeeting`, :class:`FindHolder`) and reads the :class:`ClusterView` for placement.
See docs/cluster.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from conf_cli.errors import ProtocolError
from conf_cli.plugin.cluster import MAX_NAME_CHARS

REFRESH_INTERVAL = 1.0
"""Seconds between two refreshes of a node's record and of its claims."""
NODE_TTL = 4.0
"""A node's record lapses this long after its last refresh: a dead node disappears within it."""
CLAIM_TTL = 4.0
"""A meeting's claim lapses this long after its holder's last refresh: then another node may claim it
and restore the meeting from its record (failover). Three refreshes may be missed before it lapses."""
RECORD_REWRITE = 10.0
"""Seconds between two writes of each running meeting's record into the directory by its node: a directory
that restarted empty has every record again within this (and the claims within REFRESH_INTERVAL)."""
PLACED_READS = 5
"""Reads of the records over which a meeting the front of ``conf server --workers`` sent to a node counts
for that node though its record does not show it yet (a record is rewritten every REFRESH_INTERVAL)."""
MAX_RECONNECT_URLS = 8
"""URLs of other nodes a ``welcome`` lists for reconnecting (after this node's own)."""
ROOM = 0.8
"""A node has room for a new meeting while its load (:func:`load`) is below this."""
DEFAULT_CAPACITY = 500
"""Participants a node takes by default (``--capacity``)."""
MAX_RECORD_BYTES = 8192
MAX_NODE_URLS = 16
MAX_URL_CHARS = 256


@dataclass(frozen=True)
class NodeInfo:
    """What a node says of itself in the directory, refreshed every :data:`REFRESH_INTERVAL`."""

    name: str
    urls: tuple[str, ...]
    fingerprint: str | None = None
    cpu: float = 0.0
    """The server process's share of one core over the last interval (0 to 1, or more with threads)."""
    participants: int = 0
    packets_per_second: float = 0.0
    """Media packets received per second over the last interval."""
    meetings: int = 0
    capacity: int = DEFAULT_CAPACITY
    """Participants it takes at most."""

    def to_bytes(self) -> bytes:
        values = asdict(self)
        values["urls"] = list(self.urls)
        return json.dumps(values, separators=(",", ":")).encode()

    @classmethod
    def parse(cls, name: str, data: bytes) -> NodeInfo:
        """The record ``data`` of node ``name``; ProtocolError if it is not one (another program's key)."""
        if len(data) > MAX_RECORD_BYTES:
            raise ProtocolError(f"node {name}: record of {len(data)} bytes")
        try:
            values: Any = json.loads(data)
        except ValueError as exc:
            raise ProtocolError(f"node {name}: record is not JSON: {exc}") from None
        if not isinstance(values, dict) or values.get("name") != name:
            raise ProtocolError(f"node {name}: record of another name")
        urls = values.get("urls")
        if (
            not isinstance(urls, list)
            or len(urls) > MAX_NODE_URLS
            or not all(isinstance(u, str) and "://" in u and len(u) <= MAX_URL_CHARS for u in urls)
        ):
            raise ProtocolError(f"node {name}: bad urls")
        fingerprint = values.get("fingerprint")
        if fingerprint is not None and not (isinstance(fingerprint, str) and len(fingerprint) <= 128):
            raise ProtocolError(f"node {name}: bad fingerprint")

        def number(key: str, kind: type = float) -> Any:
            value = values.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ProtocolError(f"node {name}: bad {key}")
            return kind(value)

        return cls(
            name=name[:MAX_NAME_CHARS],
            urls=tuple(urls),
            fingerprint=fingerprint,
            cpu=number("cpu"),
            participants=number("participants", int),
            packets_per_second=number("packets_per_second"),
            meetings=number("meetings", int),
            capacity=max(1, number("capacity", int)),
        )


def load(node: NodeInfo) -> float:
    """How full ``node`` is, 0 (idle) to 1 (full) or more: the larger of its CPU share and its share of
    participants."""
    return max(node.cpu, node.participants / node.capacity)


def has_room(node: NodeInfo) -> bool:
    return load(node) < ROOM and node.participants < node.capacity


def place(nodes: Mapping[str, NodeInfo], here: str) -> str:
    """The node a new meeting goes to: ``here`` (the node the client reached) when it has room, else the
    least-loaded node with room; when none has room, the least loaded of all (ties: by name)."""
    mine = nodes.get(here)
    if mine is None or has_room(mine):
        return here  # a node that does not know itself yet (just started) takes it
    candidates = [node for node in nodes.values() if has_room(node)] or list(nodes.values())
    return min(candidates, key=lambda node: (load(node), node.name)).name


def is_meeting_key(meeting: str) -> bool:
    """Whether ``meeting`` can be a meeting ID in the directory (letters, digits and dashes): anything
    else is no meeting of the cluster, and is never sent to the directory."""
    return 0 < len(meeting) <= MAX_NAME_CHARS and all(
        c.isascii() and (c.isalnum() or c == "-") for c in meeting
    )


def url_for(node: NodeInfo, scheme: str) -> str | None:
    """``node``'s URL for the transport ``scheme`` (``tcp``, ``zmq`` ...), or None if it has none."""
    for url in node.urls:
        if url.partition("://")[0] == scheme:
            return url
    return None


# -- what the hub asks the directory ---------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimMeeting:
    """Claim ``meeting`` for this node; the answer is True, False (another node holds that ID), or
    :data:`UNREACHABLE`."""

    meeting: str


@dataclass(frozen=True)
class FindHolder:
    """Which node holds ``meeting``; the answer is a :class:`Holder`, None (nobody), or
    :data:`UNREACHABLE`."""

    meeting: str


@dataclass(frozen=True)
class Holder:
    name: str
    node: NodeInfo | None
    """Its record; None if it has none (a node that died and whose claim has not lapsed yet)."""


UNREACHABLE = "unreachable"
"""The answer to a question when the directory could not be asked."""

Question = ClaimMeeting | FindHolder


# -- the node's view -------------------------------------------------------------------------------------


@dataclass
class ClusterView:
    """What one node knows of its cluster: read by the hub, kept up to date by the edge."""

    name: str
    directory: str
    """The directory's URL, for messages."""
    fingerprint: str | None = None
    nodes: dict[str, NodeInfo] = field(default_factory=dict)
    reachable: bool = False
    """The directory answered the last time it was asked."""
    cascade: str = "full"
    """When a join of a meeting held elsewhere is carried there instead of redirected
    (``conf server --cascade``, :data:`conf_cli.server.cascade.CASCADE_MODES`)."""
    since: float = 0.0
    """When :attr:`reachable` last changed."""
    holds_meetings: bool = True
    """False for the front of ``conf server --workers``: it places every meeting on another node."""
    placed: dict[str, list[int]] = field(default_factory=dict)
    """Meetings sent to each node that its record does not show yet: for each, the :attr:`reads` count
    when it was sent (its client may not have created it yet, or the node not rewritten its record)."""
    reads: int = 0
    """How many times the records were read."""

    def seen(self, records: Mapping[str, bytes], now: float) -> list[str]:
        """The directory answered with these node records; return the names of those that are not
        records (they are left out)."""
        nodes: dict[str, NodeInfo] = {}
        bad: list[str] = []
        for name, data in records.items():
            try:
                nodes[name] = NodeInfo.parse(name, data)
            except ProtocolError:
                bad.append(name)
        self._settle_placed(nodes)
        self.nodes = nodes
        self.reads += 1
        self.answered(now)
        return bad

    def _settle_placed(self, fresh: Mapping[str, NodeInfo]) -> None:
        """The meetings a fresh record shows that the one before did not are the oldest placements on
        that node: they count from the record now. A placement no record showed after
        :data:`PLACED_READS` reads (its client never came) counts no more."""
        for name, pending in list(self.placed.items()):
            node, before = fresh.get(name), self.nodes.get(name)
            arrived = 0 if node is None or before is None else max(0, node.meetings - before.meetings)
            kept = [read for read in pending[arrived:] if self.reads - read < PLACED_READS]
            if kept and node is not None:
                self.placed[name] = kept
            else:
                del self.placed[name]

    def answered(self, now: float) -> bool:
        """The directory answered; True if it had not before."""
        back = not self.reachable
        if back:
            self.reachable, self.since = True, now
        return back

    def lost(self, now: float) -> bool:
        """The directory did not answer; True if it had before. What it said of other nodes is forgotten:
        a node places meetings on itself until it hears again."""
        gone = self.reachable
        if gone:
            self.reachable, self.since = False, now
        self.nodes = {}
        return gone

    def reconnect_urls(self, scheme: str, limit: int = MAX_RECONNECT_URLS) -> list[str]:
        """The other live nodes' URLs for the transport ``scheme``, least loaded first (ties: by name), at
        most ``limit``: where a client whose node dies reconnects to resume (``welcome.urls``)."""
        others = sorted(
            (node for name, node in self.nodes.items() if name != self.name), key=lambda n: (load(n), n.name)
        )
        urls = [url for url in (url_for(node, scheme) for node in others) if url is not None]
        return urls[:limit]

    def placement(self) -> NodeInfo | None:
        """Where a new meeting goes: None for this node, else the other node's record. A node that holds
        no meetings (the front of ``conf server --workers``) spreads them instead: among the nodes with
        room, the one with the fewest meetings, counting those it sent there that its record does not
        show yet (:attr:`placed`; the records are up to 2 s old), then the least loaded; None when there
        is no other node."""
        if self.holds_meetings:
            chosen = place(self.nodes, self.name)
            return None if chosen == self.name else self.nodes.get(chosen)
        others = [node for name, node in self.nodes.items() if name != self.name]
        candidates = [node for node in others if has_room(node)] or others
        if not candidates:
            return None
        placed = self.placed
        node = min(candidates, key=lambda n: (n.meetings + len(placed.get(n.name, ())), load(n), n.name))
        placed.setdefault(node.name, []).append(self.reads)
        return node

    def unavailable_text(self, what: str) -> str:
        return (
            f"the cluster's directory ({self.directory}) cannot be reached, so this server cannot {what} "
            "now; meetings already running go on. Try again in a few seconds"
        )


@dataclass
class ClaimBook:
    """The meetings this node has claimed: each is refreshed while the hub holds it, and released when
    it ends."""

    held: set[str] = field(default_factory=set)

    def claimed(self, meeting: str) -> None:
        self.held.add(meeting)

    def plan(self, running: Iterable[str]) -> tuple[list[str], list[str]]:
        """Given the meetings running here, the claims to refresh (every running meeting, so that a
        directory that restarted empty is filled again) and to release (ended meetings)."""
        live = set(running)
        ended = sorted(self.held - live)
        self.held = live | self.held
        return sorted(live), ended

    def released(self, meeting: str) -> None:
        self.held.discard(meeting)


@dataclass
class LoadMeter:
    """A node's load from cumulative counters sampled at ``now``: CPU seconds and media packets in."""

    _last: tuple[float, float, int] | None = None

    def sample(self, now: float, cpu_seconds: float, packets: int) -> tuple[float, float]:
        """The CPU share and packets per second since the last sample (zeros the first time)."""
        last, self._last = self._last, (now, cpu_seconds, packets)
        if last is None or now <= last[0]:
            return 0.0, 0.0
        elapsed = now - last[0]
        return max(0.0, (cpu_seconds - last[1]) / elapsed), max(0.0, (packets - last[2]) / elapsed)
