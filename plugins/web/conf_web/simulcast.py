"""A WHIP publisher's simulcast, sans-I/O: the offer's RIDs (RFC 8851) and ``a=simulcast`` (RFC 8853),
the answer's lines that take them, the meeting layers they become, and which RTP stream is which RID
(RFC 8852: the RID header extension names a stream until its SSRC is known).

A browser that publishes ``sendEncodings`` with ``rid`` s offers, in its video m-section::

    a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id
    a=extmap:5 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id
    a=rid:q send
    a=rid:h send
    a=rid:f send
    a=simulcast:send q;h;f

and sends each encoding as an RTP stream of its own SSRC, the first packets (at least) carrying the RID.
The answer takes every RID (``a=rid:q recv`` ... ``a=simulcast:recv q;h;f``) and the two header
extensions; the meeting gets one video track with one layer per RID.

Which RID is the lowest layer: when every RID gives ``max-height`` (or every one ``max-width``), the
smallest is; otherwise the offer's order is taken lowest first, as Chromium lists a page's
``sendEncodings`` (``q;h;f``). The layers are described to the meeting with the sizes the restrictions
give, else nominally: the highest 1280x720 and each lower one half the one above, with a third and a
tenth of the highest's bit rate, as conf's own publishers describe theirs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import pairwise

from conf_cli.media.h264 import NAL_SPS, STAP_A, opens_keyframe, payload_picture_size
from conf_cli.protocol.control import MAX_LAYERS
from conf_web.media import PAYLOAD_TYPES, Inbound, Outbound

RID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
REPAIRED_RID_URI = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
MAX_RID = 16  # characters of a RID (RFC 8851 sets none; Chromium's are one or two)
RID_SYNTAX = re.compile(r"[A-Za-z0-9_-]{1,16}\Z")
TOP = (1280, 720)  # the nominal size of the highest layer, when no restriction gives it
TOP_BITRATE = 1_500_000  # bit/s: the nominal bit rate of the highest layer
SHARES = (1.0, 1 / 3, 1 / 10)  # of TOP_BITRATE, highest layer first
TAKEN = ("max-width", "max-height", "max-fps", "max-br", "max-fs", "max-pps", "max-bpp")
"""Restrictions the answer keeps (they describe what the sender sends; the server forwards any of it)."""
BOUNDS = {"max-width": (16, 7680), "max-height": (16, 4320)}
LIVE = 1.0
"""Seconds without media after which a RID counts as not sending (its layer carries another's)."""
SETTLE = 2.0
"""Seconds after the first RID's picture size is known, with no second one, before its order is taken."""


class SimulcastError(ValueError):
    """A simulcast offer the server cannot take; the message says why (a WHIP 400)."""


@dataclass(frozen=True)
class Rid:
    """One ``a=rid:ID send ...`` of the offer."""

    id: str
    restrictions: tuple[tuple[str, str], ...] = ()

    def get(self, name: str) -> int | None:
        for key, value in self.restrictions:
            if key == name:
                return int(value)
        return None

    def answer_line(self) -> str:
        kept = ";".join(f"{k}={v}" for k, v in self.restrictions if k in TAKEN)
        return f"a=rid:{self.id} recv" + (f" {kept}" if kept else "")


@dataclass(frozen=True)
class SimulcastOffer:
    """The simulcast of an offer's video m-section: its RIDs, lowest layer first."""

    mid: str
    rids: tuple[Rid, ...]
    order: tuple[str, ...]
    """The RIDs as the offer's ``a=simulcast:send`` lists them (the answer lists them the same way)."""
    rid_extension: int
    repaired_extension: int | None
    by_size: bool = False
    """Whether the RIDs' size restrictions gave their order (else the offer's order is assumed)."""

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(rid.id for rid in self.rids)

    def answer_lines(self) -> list[str]:
        """The lines the answer's video m-section needs to take the simulcast (RFC 8853 section 5.3)."""
        by_id = {rid.id: rid for rid in self.rids}
        return [by_id[rid].answer_line() for rid in self.order] + ["a=simulcast:recv " + ";".join(self.order)]

    def layers(self) -> list[tuple[int, int, int]]:
        """``(width, height, bit/s)`` of each layer, lowest first, as the meeting is told of them."""
        count = len(self.rids)
        out = []
        for index, rid in enumerate(self.rids):
            step = count - 1 - index  # 0 for the highest
            width, height = rid.get("max-width"), rid.get("max-height")
            if width is None and height is None:
                width, height = TOP[0] >> step, TOP[1] >> step
            elif width is None:
                assert height is not None
                width = max(16, min(7680, height * 16 // 9))
            elif height is None:
                height = max(16, min(4320, width * 9 // 16))
            bitrate = rid.get("max-br") or int(TOP_BITRATE * SHARES[min(step, len(SHARES) - 1)])
            out.append((width, height, bitrate))
        return out


def _sections(sdp: str) -> list[list[str]]:
    """The offer's m-sections, each a list of its lines (the session section left out)."""
    sections: list[list[str]] = []
    for line in sdp.splitlines():
        line = line.strip()
        if line.startswith("m="):
            sections.append([line])
        elif sections and line:
            sections[-1].append(line)
    return sections


def _video_section(sdp: str) -> list[str] | None:
    """The first video m-section (the one the server answers ``recvonly``; others are inactive)."""
    return next((s for s in _sections(sdp) if s[0].startswith("m=video ")), None)


def _restrictions(rid: str, text: str, h264: set[str], formats: set[str]) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        value = value.strip()
        if not sep or not value:
            raise SimulcastError(f"rid {rid}: malformed restriction {part[:40]!r}")
        if key == "depend":
            raise SimulcastError(
                f"rid {rid} depends on another ({value[:40]}): layered coding is not taken, each rid must "
                "be a whole stream"
            )
        if key == "pt":
            listed = {p.strip() for p in value.split(",")}
            if not listed <= formats:
                raise SimulcastError(f"rid {rid}: pt={value[:40]} names payload types the m-line does not")
            if not listed & h264:
                raise SimulcastError(f"rid {rid}: pt={value[:40]} leaves it no H.264, which meetings carry")
            continue
        if key in TAKEN:
            if not value.isdigit() or len(value) > 10:
                raise SimulcastError(f"rid {rid}: {key} must be a whole number, not {value[:20]!r}")
            low, high = BOUNDS.get(key, (1, 0xFFFFFFFF))
            if not low <= int(value) <= high:
                raise SimulcastError(f"rid {rid}: {key}={value} is outside {low} to {high}")
        out.append((key, value))
    return tuple(out)


def parse_offer(sdp: str) -> SimulcastOffer | None:
    """The simulcast that ``sdp``'s first video m-section offers to send, or None when it offers none.
    :class:`SimulcastError` for what the server cannot take: more than ``MAX_LAYERS`` streams, a RID
    listed twice or not declared, alternatives, a malformed RID or restriction, a ``pt`` restriction
    without H.264, ``depend``, or no RID header extension to tell the streams apart by."""
    section = _video_section(sdp)
    if section is None:
        return None
    simulcast = [line for line in section if line.startswith("a=simulcast:")]
    if not simulcast:
        return None
    if len(simulcast) > 1:
        raise SimulcastError("the video m-section has more than one a=simulcast line")
    words = simulcast[0].removeprefix("a=simulcast:").split()
    if len(words) % 2 or not words:
        raise SimulcastError(f"malformed {simulcast[0][:80]!r}")
    listed: list[str] = []
    for direction, streams in zip(words[::2], words[1::2], strict=True):
        if direction not in ("send", "recv"):
            raise SimulcastError(f"a=simulcast direction is send or recv, not {direction[:20]!r}")
        if direction == "send":
            if listed:
                raise SimulcastError("a=simulcast lists send twice")
            for stream in streams.split(";"):
                if "," in stream:
                    raise SimulcastError(
                        f"a=simulcast: alternatives ({stream[:40]}) are not taken: give one rid per stream"
                    )
                listed.append(stream.removeprefix("~"))  # paused at first: taken like the others
    if not listed:
        return None  # a WHIP client has nothing to receive: a recv-only simulcast is not answered
    if len(listed) > MAX_LAYERS:
        raise SimulcastError(
            f"a=simulcast offers {len(listed)} streams; a meeting track has at most {MAX_LAYERS}"
        )
    if len(set(listed)) != len(listed):
        raise SimulcastError("a=simulcast lists a rid twice")
    formats = set(section[0].split()[3:])
    h264 = {
        m.group(1)
        for line in section
        if (m := re.match(r"a=rtpmap:(\d+) H264/", line, re.IGNORECASE)) is not None
    }
    declared: dict[str, Rid] = {}
    for line in section:
        if not line.startswith("a=rid:"):
            continue
        rid, _, rest = line.removeprefix("a=rid:").partition(" ")
        direction, _, restrictions = rest.strip().partition(" ")
        if not RID_SYNTAX.match(rid):
            raise SimulcastError(f"rid {rid[:20]!r}: a rid is 1 to {MAX_RID} letters, digits, - or _")
        if direction != "send":
            continue
        if rid in declared:
            raise SimulcastError(f"rid {rid} is declared twice")
        if len(declared) >= 8:
            raise SimulcastError("the video m-section declares more than 8 rids")
        declared[rid] = Rid(rid, _restrictions(rid, restrictions, h264, formats))
    for rid in listed:
        if rid not in declared:
            raise SimulcastError(
                f"a=simulcast lists rid {rid[:20]!r}, which no a=rid:{rid[:20]} send declares"
            )
    extensions = {}
    for line in section:
        m = re.match(r"a=extmap:(\d+)(?:/\w+)? (\S+)", line)
        if m is not None:
            extensions[m.group(2)] = int(m.group(1))
    if RID_URI not in extensions:
        raise SimulcastError(
            f"a simulcast offer needs the RID header extension ({RID_URI}) to tell its streams apart"
        )
    mid = next((line.removeprefix("a=mid:") for line in section if line.startswith("a=mid:")), "")
    rids = [declared[rid] for rid in listed]
    by_size = False
    for key in ("max-height", "max-width"):
        if all(rid.get(key) is not None for rid in rids):
            rids.sort(key=lambda rid: rid.get(key) or 0)
            by_size = True
            break
    repaired = extensions.get(REPAIRED_RID_URI)
    return SimulcastOffer(mid, tuple(rids), tuple(listed), extensions[RID_URI], repaired, by_size)


def add_to_answer(answer: str, offer: SimulcastOffer) -> str:
    """``answer`` with the simulcast taken in its video m-section (the one of the offer's MID)."""
    lines = answer.split("\r\n")
    starts = [i for i, line in enumerate(lines) if line.startswith("m=")] + [len(lines)]
    for begin, end in pairwise(starts):
        section = lines[begin:end]
        if section[0].startswith("m=video ") and f"a=mid:{offer.mid}" in section:
            while end > begin and not lines[end - 1]:
                end -= 1
            return "\r\n".join(lines[:end] + offer.answer_lines() + lines[end:])
    raise SimulcastError("the answer has no video m-section for the simulcast")


@dataclass
class RidStreams:
    """Which RID each RTP stream of the simulcast m-section is. A packet naming its RID (RFC 8852) teaches
    its SSRC; later packets of that SSRC need not name it. Retransmissions (RTX) name the RID they repair.
    At most one SSRC per RID and one RTX SSRC per RID are kept: a RID seen with a new SSRC forgets the old.
    """

    rids: tuple[str, ...]
    by_ssrc: dict[int, str] = field(default_factory=dict)
    rtx_by_ssrc: dict[int, str] = field(default_factory=dict)
    unknown_rid: int = 0
    """Packets naming a RID the offer did not (dropped)."""
    unknown_ssrc: int = 0
    """Packets of an SSRC no RID was seen for yet (dropped)."""

    def media(self, ssrc: int, rid: str | None) -> str | None:
        """The RID of a media packet, None if it cannot be told (the packet is dropped)."""
        if rid is None:
            known = self.by_ssrc.get(ssrc)
            if known is None:
                self.unknown_ssrc += 1
            return known
        if rid not in self.rids:
            self.unknown_rid += 1
            return None
        self._learn(self.by_ssrc, ssrc, rid)
        return rid

    def repaired(self, ssrc: int, rid: str | None) -> tuple[int, str] | None:
        """For an RTX packet: the SSRC and RID of the stream it repairs, if known."""
        if rid is not None:
            if rid not in self.rids:
                self.unknown_rid += 1
                return None
            self._learn(self.rtx_by_ssrc, ssrc, rid)
        known = self.rtx_by_ssrc.get(ssrc)
        media = self.ssrc_of(known) if known is not None else None
        if known is None or media is None:
            self.unknown_ssrc += 1
            return None
        return media, known

    def ssrc_of(self, rid: str) -> int | None:
        return next((s for s, r in self.by_ssrc.items() if r == rid), None)

    @staticmethod
    def _learn(table: dict[int, str], ssrc: int, rid: str) -> None:
        if table.get(ssrc) == rid:
            return
        for old in [s for s, r in table.items() if r == rid]:
            del table[old]
        table[ssrc] = rid


@dataclass
class RidStream:
    """One RID's RTP stream as the browser sends it."""

    rid: str
    inbound: Inbound
    """Its sequence numbers with the browser's padding taken out (the SSRC is the one of the layer it
    would feed, unused)."""
    browser_ssrc: int | None = None
    """The SSRC the browser sends it under, once a packet of it came."""
    size: tuple[int, int] | None = None
    """The picture size of its last parameter set (SPS)."""
    last: float | None = None
    """When media of it last came."""
    received: int = 0
    """Packets with media (the browser's padding, which probes bandwidth, is not counted)."""
    paused: int = 0
    """Packets no layer took: nobody wanted the layers it feeds (a browser's encoding cannot be paused)."""
    held: int = 0
    """Packets dropped before the order of the layers was known."""
    keyframes: int = 0

    def stats(self) -> dict[str, object]:
        return {
            "rid": self.rid,
            "browser_ssrc": self.browser_ssrc,
            "width": self.size[0] if self.size else None,
            "height": self.size[1] if self.size else None,
            "received": self.received,
            "paused": self.paused,
            "held": self.held,
            "keyframes": self.keyframes,
        }


@dataclass
class Position:
    """One layer of the meeting track: its SSRC, the RID meant for it, and the RID it carries now."""

    out: Outbound
    """Rewrites what it carries into the layer's SSRC, sequence numbers and timestamps running on across
    a change of RID."""
    own: str
    feed: str | None = None
    """The RID whose packets it carries now (its own, or the nearest one sending while its own is not)."""
    pending: str | None = None
    """The RID it moves to at that RID's next keyframe."""
    active: bool = True
    """Dynacast: someone receives (or is switching to) this layer."""
    forwarded: int = 0

    def stats(self, index: int) -> dict[str, object]:
        return {
            "layer": index,
            "rid": self.own,
            "feed": self.feed,
            "ssrc": self.out.ssrc,
            "active": self.active,
            "forwarded": self.forwarded,
        }


class SimulcastLayers:
    """A WHIP publisher's simulcast video as one meeting track: one layer per RID, lowest first, the
    highest layer's SSRC the track's. Packets come in by RID (:class:`RidStreams` tells them);
    dynacast's ``layers_active`` says which layers to forward; the meeting's keyframe requests and NACKs
    for a layer go to the stream it carries.

    Which RID is which layer: by the offer's size restrictions when every RID has one. Otherwise the
    offer's order is taken lowest first, or highest first when the picture sizes of the first two RIDs
    to send a parameter set say so (Chromium lists RIDs in the page's ``sendEncodings`` order, which
    may be either); until then (at most :data:`SETTLE` seconds after the first size, if only one RID
    sends), nothing is forwarded.

    A browser does not always send every RID it offered: Chromium sends fewer layers for a small
    picture, and turns its highest ones on only as its bandwidth estimate grows. A layer whose RID has
    sent nothing for :data:`LIVE` seconds carries the nearest RID that does (the highest below it, else
    the lowest above), so that whoever the server puts on it sees a picture; it moves back to its own RID
    at that RID's next keyframe. Each move happens at a keyframe of the RID moved to, asked for at once.
    """

    def __init__(self, offer: SimulcastOffer, ssrcs: list[int]) -> None:
        if len(ssrcs) != len(offer.rids):
            raise ValueError("one meeting SSRC per rid")
        self.offer = offer
        self.positions = [
            Position(Outbound("", "video", ssrc, PAYLOAD_TYPES["video"]), rid.id)
            for rid, ssrc in zip(offer.rids, ssrcs, strict=True)
        ]
        self.by_rid = {
            rid.id: RidStream(rid.id, Inbound("video", ssrc))
            for rid, ssrc in zip(offer.rids, ssrcs, strict=True)
        }
        self.ordered = offer.by_size or len(offer.rids) == 1
        """Whether the RIDs' layers are settled (before, nothing is forwarded)."""
        self._first_size: float | None = None

    @property
    def track(self) -> int:
        """The highest layer's SSRC, which is the track's."""
        return self.positions[-1].out.ssrc

    def described(self) -> list[dict[str, int]]:
        """``publish``'s ``layers``, lowest first."""
        return [
            {"ssrc": position.out.ssrc, "width": width, "height": height, "bitrate": bitrate}
            for position, (width, height, bitrate) in zip(self.positions, self.offer.layers(), strict=True)
        ]

    def packet(
        self, rid: str, ssrc: int, sequence: int, timestamp: int, marker: bool, payload: bytes, now: float
    ) -> tuple[list[bytes], list[int]]:
        """The meeting packets (one per layer carrying ``rid``, that someone wants) for one packet of
        ``rid``'s stream, and the browser SSRCs to ask keyframes of now."""
        stream = self.by_rid.get(rid)
        if stream is None:
            return [], []
        stream.browser_ssrc = ssrc
        if payload and payload[0] & 0x1F in (NAL_SPS, STAP_A):
            stream.size = payload_picture_size(payload) or stream.size
        if payload:
            stream.last = now
        asks: list[int] = []
        if not self.ordered:
            if not self._settle(now):
                stream.held += 1 if payload else 0
                return [], []
            asks = [s.browser_ssrc for s in self.by_rid.values() if s.browser_ssrc is not None]
        data = stream.inbound.rewrite(ssrc, sequence, timestamp, marker, payload)
        if data is None:  # padding
            return [], asks
        stream.received += 1
        keyframe = opens_keyframe(payload)
        stream.keyframes += keyframe
        asks += self._choose(now)
        out: list[bytes] = []
        for position in self.positions:
            if position.pending == rid and keyframe:
                position.feed, position.pending = rid, None
                position.out.assign(position.out.ssrc, "", "video")
            if position.feed == rid and position.active:
                packet = position.out.rewrite(data)
                if packet is not None:
                    position.forwarded += 1
                    out.append(packet)
        if not out:
            stream.paused += 1
        return out, asks

    def _live(self, rid: str, now: float) -> bool:
        last = self.by_rid[rid].last
        return last is not None and now - last <= LIVE

    def _choose(self, now: float) -> list[int]:
        """Point each layer at the RID it should carry; the browser SSRCs whose keyframes are wanted."""
        asks = []
        order = [position.own for position in self.positions]
        for index, position in enumerate(self.positions):
            wanted = position.own
            if not self._live(wanted, now):
                below = [rid for rid in reversed(order[:index]) if self._live(rid, now)]
                above = [rid for rid in order[index + 1 :] if self._live(rid, now)]
                wanted = next(iter(below + above), position.feed or position.own)
            if wanted != position.feed and wanted != position.pending:
                position.pending = wanted
                ssrc = self.by_rid[wanted].browser_ssrc
                if ssrc is not None and position.active:
                    asks.append(ssrc)
            elif wanted == position.feed:
                position.pending = None
        return asks

    def _settle(self, now: float) -> bool:
        sized = [s.size[0] * s.size[1] for rid in self.offer.rids if (s := self.by_rid[rid.id]).size]
        if len(sized) >= 2:
            if sized[0] > sized[1]:  # the offer lists them highest first
                for position, rid in zip(self.positions, reversed(self.offer.rids), strict=True):
                    position.own = rid.id
        elif len(sized) == 1:
            if self._first_size is None:
                self._first_size = now
            if now - self._first_size < SETTLE:
                return False
        else:
            return False
        self.ordered = True
        return True

    def set_active(self, track: int, active: list[int]) -> list[int]:
        """Dynacast for ``track`` (``layers_active``): forward only the layers of ``active``. The browser
        SSRCs whose keyframes are wanted (those the layers taken up again carry)."""
        if track != self.track:
            return []
        asks = []
        for position in self.positions:
            now = position.out.ssrc in active
            if now and not position.active:
                asks += self.sources(position.out.ssrc)
            position.active = now
        return asks

    def position(self, ssrc: int) -> Position | None:
        """The layer whose meeting SSRC is ``ssrc``."""
        return next((p for p in self.positions if p.out.ssrc == ssrc), None)

    def sources(self, ssrc: int) -> list[int]:
        """The browser SSRCs a keyframe request for layer ``ssrc`` goes to: what it carries, and what it
        is moving to."""
        position = self.position(ssrc)
        if position is None:
            return []
        rids = [rid for rid in (position.feed, position.pending) if rid is not None]
        return [s for rid in rids if (s := self.by_rid[rid].browser_ssrc) is not None]

    def nack(self, ssrc: int, lost: list[int]) -> tuple[int, list[int]] | None:
        """A NACK from the meeting for layer ``ssrc``: the browser SSRC and sequence numbers to ask for."""
        position = self.position(ssrc)
        if position is None or position.feed is None:
            return None
        stream = self.by_rid[position.feed]
        if stream.browser_ssrc is None:
            return None
        return stream.browser_ssrc, [
            stream.inbound.browser_sequence(position.out.source_sequence(s)) for s in lost
        ]

    def stats(self) -> dict[str, object]:
        """Each layer's counters (lowest first) and each RID's."""
        return {
            "layers": [position.stats(index) for index, position in enumerate(self.positions)],
            "rids": [self.by_rid[rid.id].stats() for rid in self.offer.rids],
        }
