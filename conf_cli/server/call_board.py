"""The server's rules for one-to-one calls. Sans-I/O.

A connection says ``online`` with a name to be reachable; a ``call`` names another online name. The board
rings the callee (``call_incoming``, with the caller's key *commitment*), tells the caller
(``call_ringing``), and on ``call_accept`` gives both the other's candidate addresses and a relay token
each, and the caller the callee's key (``call_accepted``); the caller's key reaches the callee only after
that, in ``call_reveal`` (docs/protocol.md, "Calls": the commitment keeps a man in the middle from trying
keys until the codes match). ``call_decline``,
a callee already in a call (busy), the ring timeout, a hang-up or a lost connection end the call, and
each end hears why. Once accepted, the two ends tell each other how their connectivity checks went
(``call_connected``) and which path the caller chose (``call_path``) through the board, which forwards
them and nothing else. Every method returns the messages to send, as :class:`~conf_cli.server.meeting.Send`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from conf_cli.errors import RequestRefused
from conf_cli.protocol.control import Message
from conf_cli.protocol.events import (
    CallAccepted,
    CallConnected,
    CallDeclined,
    CallEnded,
    CallIncoming,
    CallPath,
    CallReveal,
    CallRinging,
    Offline,
    Online,
)
from conf_cli.server.call_relay import CallRelay
from conf_cli.server.meeting import Send

DEFAULT_RING_TIMEOUT = 30.0
MAX_CALLS = 1000


def new_call_id() -> str:
    return secrets.token_hex(8)


@dataclass
class Call:
    id: str
    caller: int
    callee: int
    caller_name: str
    callee_name: str
    caller_commitment: str
    caller_candidates: list[str]
    rings_until: float
    accepted: bool = False
    revealed: bool = False
    path: str | None = None

    def other(self, cid: int) -> int:
        return self.callee if cid == self.caller else self.caller


@dataclass
class CallStats:
    calls: int = 0  # calls placed since start
    accepted: int = 0
    declined: int = 0  # declined, busy, timed out or offline
    direct: int = 0
    relayed: int = 0


@dataclass
class CallBoard:
    """Who is online, and every call on one server."""

    relay: CallRelay = field(default_factory=CallRelay)
    stun_port: int = 0
    """The UDP port of the server's STUN answerer and relay (set by the edge once it is bound)."""
    new_id: Callable[[], str] = new_call_id
    stats: CallStats = field(default_factory=CallStats)
    _online: dict[str, int] = field(default_factory=dict)  # name -> connection
    _names: dict[int, str] = field(default_factory=dict)  # connection -> name
    _calls: dict[str, Call] = field(default_factory=dict)
    _call_of: dict[int, str] = field(default_factory=dict)  # connection -> its call

    def sizes(self) -> dict[str, int]:
        """Entries held: connections online for calls, and calls ringing or going on."""
        return {"online": len(self._names), "calls": len(self._calls)}

    # -- requests ---------------------------------------------------------------------------------------

    def handle(
        self,
        cid: int,
        message: Message,
        now: float,
        *,
        me: str | None = None,
        callee: tuple[int, str] | None = None,
    ) -> list[Send]:
        """A call request from connection ``cid``; RequestRefused for one that cannot be granted.

        For ``call``, ``me`` and ``callee`` (a connection and its name) stand for the caller's online name
        and the one ``to`` names: the hub passes them when both are in one meeting.
        """
        kind = message["type"]
        if kind in ("online", "call") and not self.stun_port:
            raise RequestRefused("unavailable", "this server offers no calls")
        if kind == "online":
            return self._go_online(cid, message["name"])
        if kind == "offline":
            return self._go_offline(cid)
        if kind == "call":
            me = me or self._names.get(cid)
            if me is None:
                raise RequestRefused("not_online", "say `online` with your name before calling")
            return self._call(cid, me, message, now, callee)
        call = self._calls.get(message["call"])
        if call is None or cid not in (call.caller, call.callee):
            raise RequestRefused("unknown_call", f"no call {message['call']!r} of yours")
        match kind:
            case "call_accept":
                return self._accept(cid, call, message)
            case "call_decline":
                if cid != call.callee or call.accepted:
                    raise RequestRefused("bad_request", "only the callee declines, before accepting")
                self.stats.declined += 1
                return self._end(call, {call.caller: "declined", call.callee: "declined"})
            case "call_reveal":
                if cid != call.caller or not call.accepted or call.revealed:
                    raise RequestRefused(
                        "bad_request", "the caller reveals its key once, after call_accepted"
                    )
                call.revealed = True
                reveal = CallReveal(call=call.id, key=message["key"])
                return [Send((call.callee,), reveal.to_message())]
            case "call_connected":
                if not call.accepted:
                    raise RequestRefused("bad_request", "the call has not been accepted")
                return [Send((call.other(cid),), CallConnected(call=call.id).to_message())]
            case "call_path":
                if cid != call.caller or not call.accepted:
                    raise RequestRefused("bad_request", "the caller chooses the path, once accepted")
                if call.path is None:
                    if message["path"] == "direct":
                        self.stats.direct += 1
                    else:
                        self.stats.relayed += 1
                call.path = message["path"]
                return [Send((call.callee,), CallPath(call=call.id, path=call.path).to_message())]
            case "call_hangup":
                return self._end(call, {call.caller: "hangup", call.callee: "hangup"}, by=cid)
        raise RequestRefused("bad_request", f"{kind} is not handled")

    def _go_online(self, cid: int, name: str) -> list[Send]:
        holder = self._online.get(name)
        if holder is not None and holder != cid:
            raise RequestRefused("name_taken", f"{name!r} is already online on this server")
        old = self._names.pop(cid, None)
        if old is not None:
            self._online.pop(old, None)
        self._online[name] = cid
        self._names[cid] = name
        return [Send((cid,), Online(name=name, stun_port=self.stun_port).to_message())]

    def _go_offline(self, cid: int) -> list[Send]:
        sends = self.disconnected(cid, "hangup")
        name = self._names.pop(cid, None)
        if name is not None:
            self._online.pop(name, None)
        return [*sends, Send((cid,), Offline().to_message())]

    def _call(
        self, cid: int, me: str, message: Message, now: float, introduced: tuple[int, str] | None
    ) -> list[Send]:
        if cid in self._call_of:
            raise RequestRefused("busy", "you are already in a call; hang up first")
        if len(self._calls) >= MAX_CALLS:
            raise RequestRefused("busy", "the server holds too many calls; try again later")
        to = message["to"]
        if introduced is not None:
            callee: int | None
            callee, to = introduced
        else:
            callee = self._online.get(to)
        if callee is None:
            raise RequestRefused("unknown_peer", f"nobody called {to!r} is online on this server")
        if callee == cid:
            raise RequestRefused("bad_request", "you cannot call yourself")
        call_id = self.new_id()
        timeout = float(message.get("timeout") or DEFAULT_RING_TIMEOUT)
        self.stats.calls += 1
        if callee in self._call_of:
            self.stats.declined += 1
            busy = CallDeclined(call=call_id, peer=to, reason="busy")
            return [Send((cid,), busy.to_message())]
        candidates = list(message["candidates"])
        call = Call(call_id, cid, callee, me, to, message["commitment"], candidates, now + timeout)
        self._calls[call_id] = call
        self._call_of[cid] = call_id
        self._call_of[callee] = call_id
        incoming = CallIncoming(
            call=call_id,
            peer=me,
            commitment=call.caller_commitment,
            candidates=tuple(candidates),
            timeout=timeout,
            stun_port=self.stun_port,
        )
        return [
            Send((cid,), CallRinging(call=call_id, peer=to, timeout=timeout).to_message()),
            Send((callee,), incoming.to_message()),
        ]

    def _accept(self, cid: int, call: Call, message: Message) -> list[Send]:
        if cid != call.callee or call.accepted:
            raise RequestRefused("bad_request", "only the callee accepts, once")
        call.accepted = True
        self.stats.accepted += 1
        caller_token, callee_token = self.relay.allocate(call.id)
        to_caller = CallAccepted(
            call=call.id,
            stun_port=self.stun_port,
            peer=call.callee_name,
            key=message["key"],
            candidates=tuple(message["candidates"]),
            relay=caller_token.hex(),
        )
        to_callee = CallAccepted(
            call=call.id,
            stun_port=self.stun_port,
            peer=call.caller_name,
            candidates=tuple(call.caller_candidates),
            relay=callee_token.hex(),
        )
        return [Send((call.caller,), to_caller.to_message()), Send((call.callee,), to_callee.to_message())]

    # -- events -----------------------------------------------------------------------------------------

    def disconnected(self, cid: int, reason: str = "disconnected") -> list[Send]:
        """Connection ``cid`` is gone (or went offline): end its call; it is no longer online."""
        sends: list[Send] = []
        call_id = self._call_of.get(cid)
        if call_id is not None:
            call = self._calls[call_id]
            if not call.accepted and cid == call.callee:
                self.stats.declined += 1
                sends = self._end(call, {call.caller: "offline"})
            else:
                sends = self._end(call, {call.other(cid): reason}, by=cid)
        if reason == "disconnected":
            name = self._names.pop(cid, None)
            if name is not None:
                self._online.pop(name, None)
        return sends

    def tick(self, now: float) -> list[Send]:
        """Calls ringing too long end with ``timeout``."""
        sends: list[Send] = []
        for call in list(self._calls.values()):
            if not call.accepted and now >= call.rings_until:
                self.stats.declined += 1
                sends += self._end(call, {call.caller: "timeout", call.callee: "timeout"})
        return sends

    def _end(self, call: Call, reasons: dict[int, str], by: int | None = None) -> list[Send]:
        """Forget ``call``; tell each connection in ``reasons`` why (declined if unanswered, else ended)."""
        self._calls.pop(call.id, None)
        for cid in (call.caller, call.callee):
            if self._call_of.get(cid) == call.id:
                del self._call_of[cid]
        self.relay.release(call.id)
        sends: list[Send] = []
        for cid, reason in reasons.items():
            peer = call.callee_name if cid == call.caller else call.caller_name
            kind = CallDeclined if cid == call.caller and not call.accepted else CallEnded
            sends.append(Send((cid,), kind(call=call.id, peer=peer, reason=reason).to_message()))
        if by is not None and by in (call.caller, call.callee) and by not in reasons:
            peer = call.callee_name if by == call.caller else call.caller_name
            hung_up = CallEnded(call=call.id, peer=peer, reason="hangup")
            sends.append(Send((by,), hung_up.to_message()))
        return sends

    # -- queries ----------------------------------------------------------------------------------------

    def name_of(self, cid: int) -> str | None:
        return self._names.get(cid)

    def in_call(self, cid: int) -> bool:
        return cid in self._call_of
