"""Cascading: one meeting over several nodes of a cluster. Sans-I/O.

The node that holds a meeting (its claim in the directory) stays its one authority: its hub decides
roles, forbids, the waiting room, E2EE, who receives which packet, and the order of chat and events,
exactly as on one server. A participant who reaches another node B while the holder A is full (or the
node is told to cascade always: ``conf server --cascade``) stays connected to B; B carries that
participant's control messages and media to A over ONE node link per node pair (an ordinary client link
of an existing transport, TLS with the cluster's shared identity, A's key checked against the
fingerprint in the directory), multiplexing all its participants. On A each of them is a participant of
its own (a virtual connection), so every rule and rate limit applies to it as to anyone; A sends each
packet ONCE over the link with the list of B's participants that receive it, and B hands it to each.

A node link proves it is one: A answers the link's ``hello`` with a fresh challenge, and the link must
answer with an HMAC of it under a key derived from the cluster's identity key
(:func:`link_key`): only a node holding that key gets a node link; a client cannot claim to be one.

What travels on a node link (docs/cluster.md, "Cascading"):

- control frames: the link's own messages, ``{"node": KIND, ...}`` (:data:`NODE_KINDS`), and a
  participant's message wrapped as ``{"p": LOCAL, "m": MESSAGE}`` (:func:`wrap_control`), LOCAL being
  the participant's connection number on B;
- media frames: ``0x80, N, LOCAL*N (4 bytes each), PACKET`` (:func:`wrap_media`): up from B one
  participant's packet (N = 1), down from A one packet for N of B's participants.

This module holds the decisions and the formats: whether a join cascades (:func:`should_cascade`), the
proof, the envelopes, who is behind which node link (:class:`Behind`, on the holder) and which local
participants are relayed over which link (:class:`Relays`, on the other nodes), each bounded.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from conf_cli.protocol.control import MAX_CONTROL_BYTES
from conf_cli.server.directory import NodeInfo, has_room
from conf_cli.token_bucket import TokenBucket

CASCADE_MODES = ("full", "always", "never")
"""``conf server --cascade``: cascade a join when the holder is full (no room by placement's rule), for
every join of a meeting held elsewhere, or never (always redirect)."""
NODE_TRANSPORT = "tcp"
"""The transport node links use (ordered, TLS): a node must advertise a tcp:// URL to be cascaded to."""
MAX_BEHIND = 1000
"""Participants one node link may carry."""
MAX_DESTINATIONS = 255
"""Participants one media frame down a node link may name (one byte); more go in further frames."""
MAX_NODE_MESSAGE = 512
"""A node link's own messages are short; a longer one is refused."""
RELAY_RATE = 400.0
"""Control messages a second a node relays for one participant, on average (above the hub's remote-control
input rate), ...."""
RELAY_BURST = 500.0
"""... and at once: one participant cannot fill the node link that carries everyone's."""
NODE_KINDS = ("hello", "challenge", "auth", "open", "close", "ping")
_LABEL = b"conf node link v1"
_WRAPPED = re.compile(rb'\{"p":([0-9]{1,10}),"m":')
_MEDIA_MARK = 0x80
_PREFIX_MAX = len(b'{"p":4294967295,"m":}')


def should_cascade(mode: str, holder: NodeInfo) -> bool:
    """Whether a join of a meeting ``holder`` holds is carried there from this node (True) or
    redirected (False)."""
    if mode == "never" or not any(url.startswith(f"{NODE_TRANSPORT}://") for url in holder.urls):
        return False
    return mode == "always" or not has_room(holder)


# -- the proof ---------------------------------------------------------------------------------------


def link_key(secret: bytes) -> bytes:
    """The key node links prove themselves with, derived from the cluster's identity key ``secret``."""
    return hmac.new(secret, _LABEL, hashlib.sha256).digest()


def proof(key: bytes, nonce: bytes, node: str) -> str:
    """What node ``node`` answers to the challenge ``nonce``."""
    return hmac.new(key, nonce + b"\0" + node.encode(), hashlib.sha256).hexdigest()


def proof_holds(key: bytes, nonce: bytes, node: str, answer: object) -> bool:
    return isinstance(answer, str) and hmac.compare_digest(proof(key, nonce, node), answer)


# -- envelopes ---------------------------------------------------------------------------------------


def node_message(kind: str, **fields: object) -> bytes:
    return json.dumps({"node": kind, **fields}, separators=(",", ":")).encode()


def read_node_message(data: bytes) -> dict[str, object] | None:
    """A node link's own message, or None if ``data`` is not one (or too long, or malformed)."""
    if len(data) > MAX_NODE_MESSAGE or not data.startswith(b'{"node":'):
        return None
    try:
        message = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(message, dict) or message.get("node") not in NODE_KINDS:
        return None
    return message


def wrap_control(local: int, inner: bytes) -> bytes | None:
    """A participant's control message in its envelope; None if it would not fit in one frame."""
    if len(inner) > MAX_CONTROL_BYTES - _PREFIX_MAX:
        return None
    return b'{"p":%d,"m":' % local + inner + b"}"


def unwrap_control(data: bytes) -> tuple[int, bytes] | None:
    """(LOCAL, MESSAGE) of a wrapped control message; None if ``data`` is not one."""
    match = _WRAPPED.match(data)
    if match is None or not data.endswith(b"}"):
        return None
    return int(match.group(1)), data[match.end() : -1]


def wrap_media(locals_: Sequence[int], packet: bytes) -> bytes:
    """A media packet for (down) or from (up, one) ``locals_`` (at most :data:`MAX_DESTINATIONS`)."""
    head = bytes((_MEDIA_MARK, len(locals_)))
    return head + b"".join(local.to_bytes(4, "big") for local in locals_) + packet


def unwrap_media(data: bytes) -> tuple[tuple[int, ...], bytes] | None:
    """(LOCALS, PACKET) of a media frame; None if it is not one (or carries no packet)."""
    if len(data) < 2 or data[0] != _MEDIA_MARK or data[1] == 0:
        return None
    count = data[1]
    end = 2 + 4 * count
    if len(data) <= end:
        return None
    locals_ = tuple(int.from_bytes(data[i : i + 4], "big") for i in range(2, end, 4))
    return locals_, data[end:]


def batches(locals_: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(locals_), MAX_DESTINATIONS):
        yield locals_[start : start + MAX_DESTINATIONS]


# -- who is where ------------------------------------------------------------------------------------


@dataclass
class LinkCounts:
    """One node link's traffic: what ``server_stats.cascade`` reports per node."""

    participants: int = 0
    packets_in: int = 0
    packets_out: int = 0
    """Media frames sent on the link (each one packet, for any number of participants behind it)."""
    deliveries_out: int = 0
    """Participants those frames were for: what sending to each one alone would have cost."""
    deliveries_in: int = 0
    """Participants the frames received were for (each handed its copy on this node)."""
    control_in: int = 0
    control_out: int = 0
    refused: int = 0
    """Frames dropped: malformed, for a participant not behind the link, or too large."""


@dataclass
class Behind:
    """On the holder: the node links that proved themselves, and who is behind each (LOCAL, the
    participant's number on its node, and CID, its virtual connection here)."""

    limit: int = MAX_BEHIND
    nodes: dict[int, str] = field(default_factory=dict)
    """Node link → the node's name."""
    counts: dict[int, LinkCounts] = field(default_factory=dict)
    _cids: dict[int, dict[int, int]] = field(default_factory=dict)
    _owners: dict[int, tuple[int, int]] = field(default_factory=dict)

    def accepted(self, link: int, node: str) -> None:
        self.nodes[link] = node
        self._cids[link] = {}
        self.counts[link] = LinkCounts()

    def is_node(self, link: int) -> bool:
        return link in self.nodes

    def add(self, link: int, local: int, cid: int) -> bool:
        """``local`` behind ``link`` is connection ``cid`` from now on; False if the link is full or
        ``local`` is there already."""
        cids = self._cids.get(link)
        if cids is None or local in cids or len(cids) >= self.limit:
            return False
        cids[local] = cid
        self._owners[cid] = (link, local)
        self.counts[link].participants = len(cids)
        return True

    def cid(self, link: int, local: int) -> int | None:
        cids = self._cids.get(link)
        return None if cids is None else cids.get(local)

    def owner(self, cid: int) -> tuple[int, int] | None:
        """(node link, LOCAL) of a virtual connection."""
        return self._owners.get(cid)

    def remove(self, cid: int) -> None:
        owner = self._owners.pop(cid, None)
        if owner is not None:
            link, local = owner
            cids = self._cids[link]
            cids.pop(local, None)
            self.counts[link].participants = len(cids)

    def dropped(self, link: int) -> list[int]:
        """The node link closed: forget it; return the connections that were behind it."""
        self.nodes.pop(link, None)
        self.counts.pop(link, None)
        cids = list(self._cids.pop(link, {}).values())
        for cid in cids:
            self._owners.pop(cid, None)
        return cids

    def by_link(self, cids: Iterable[int]) -> dict[int, list[int]]:
        """``cids`` (virtual connections) grouped by node link, as LOCALs: one frame each."""
        grouped: dict[int, list[int]] = {}
        for cid in cids:
            owner = self._owners.get(cid)
            if owner is not None:
                grouped.setdefault(owner[0], []).append(owner[1])
        return grouped


@dataclass
class Relays:
    """On a node that carries participants to holders: which local connection goes over which node's
    link."""

    limit: int = MAX_BEHIND
    _node_of: dict[int, str] = field(default_factory=dict)
    _locals: dict[str, set[int]] = field(default_factory=dict)
    _budgets: dict[int, TokenBucket] = field(default_factory=dict)

    def add(self, cid: int, node: str) -> bool:
        """Relay ``cid`` to ``node`` from now on; False if that link carries :attr:`limit` already."""
        if cid in self._node_of:
            return self._node_of[cid] == node
        here = self._locals.setdefault(node, set())
        if len(here) >= self.limit:
            return False
        here.add(cid)
        self._node_of[cid] = node
        self._budgets[cid] = TokenBucket(RELAY_RATE, RELAY_BURST)
        return True

    def may_relay(self, cid: int, now: float) -> bool:
        """Whether one more control message of ``cid`` goes up now (within its budget)."""
        budget = self._budgets.get(cid)
        return budget is not None and budget.take(1, now)

    def node_of(self, cid: int) -> str | None:
        return self._node_of.get(cid)

    def remove(self, cid: int) -> str | None:
        node = self._node_of.pop(cid, None)
        self._budgets.pop(cid, None)
        if node is not None:
            self._locals[node].discard(cid)
        return node

    def dropped(self, node: str) -> list[int]:
        """The link to ``node`` closed: the local connections it carried."""
        cids = list(self._locals.pop(node, set()))
        for cid in cids:
            self._node_of.pop(cid, None)
            self._budgets.pop(cid, None)
        return cids

    def count(self, node: str) -> int:
        return len(self._locals.get(node, ()))

    def total(self) -> int:
        """Local connections relayed over any link."""
        return len(self._node_of)
