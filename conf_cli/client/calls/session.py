"""One client's calls, one at a time: signalling, connectivity checks, the path, and media.

:class:`CallSession` places and answers calls over the client's server connection (docs/protocol.md,
"Calls"). Its call socket (:class:`~conf_cli.client.calls.peer.CallSocket`) opens when first needed; its
candidates are our address towards the server and the public one the server's STUN answer gives. Once
the callee accepts, both ends derive the call's keys (:mod:`~conf_cli.client.calls.crypto`) and run
connectivity
checks; the callee reports ``call_connected`` when one of its checks is answered, and the caller picks
the path: ``direct`` if both got through within :data:`CHECK_TIMEOUT`, else ``relayed`` through the
server. Media then flows through the meeting pipeline (:class:`~conf_cli.client.calls.media.CallMedia`),
protected with SRTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Mapping
from typing import Any

from conf_cli.client.calls.checks import Checks
from conf_cli.client.calls.crypto import CallKeys, KeyPair, SrtpPair, check_reveal
from conf_cli.client.calls.media import CallMedia
from conf_cli.client.calls.peer import Address, CallSocket
from conf_cli.client.link import Client
from conf_cli.client.media.playback import SinkOpener
from conf_cli.client.meeting_loop import EXIT_DISCONNECTED, EXIT_OK
from conf_cli.client.prompt import CommandError, LocalCommand, parse_line, unknown_command
from conf_cli.client.state import event_of
from conf_cli.client.ui.meeting_ui import MeetingUI
from conf_cli.errors import ConfError, ProtocolError
from conf_cli.latch import CALL_RELAY_PURPOSE as RELAY_PURPOSE
from conf_cli.latch import Credentials
from conf_cli.protocol.control import Message, check_candidates
from conf_cli.protocol.events import (
    CallAccepted,
    CallConnected,
    CallDeclined,
    CallEnded,
    CallIncoming,
    CallPath,
    CallReveal,
    CallRinging,
    Error,
)

CHECK_TIMEOUT = 5.0
RELAY_TIMEOUT = 5.0
STUN_TIMEOUT = 3.0
HANGUP_TIMEOUT = 2.0
STALE_CANDIDATES = 5.0
EXIT_UNANSWERED = 11  # conf call: declined, busy, unanswered or nobody of that name

CALL_HELP: list[tuple[str, str]] = [
    ("/answer, /decline", "answer a ringing call"),
    ("/hangup", "end the call (or stop ringing)"),
    ("/share KIND [PATH] [KEY=VALUE ...]", "share pattern, tone, screen, audio, camera or a file"),
    ("/unshare KIND", "stop sharing audio, video or screen"),
    ("/leave", "hang up and quit"),
    ("/help", "this list"),
]


def _shown(address: Address) -> str:
    host = str(address[0])
    return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"


class CallSession:
    """One client's calls, one at a time: signalling in, path choice, media."""

    def __init__(
        self,
        client: Client,
        ui: MeetingUI,
        stun: Address,
        *,
        share: tuple[str, Mapping[str, Any]] | None,
        auto_accept: bool,
        ring_timeout: int | None,
        once: bool,
        open_sinks: SinkOpener | None = None,
    ) -> None:
        self.client = client
        self.ui = ui
        self.sock = CallSocket()
        self.stun = stun
        self.candidates: list[str] | None = None
        self.share = share
        self.auto_accept = auto_accept
        self.ring_timeout = ring_timeout
        self.once = once
        self.open_sinks = open_sinks
        """Quit when the first call ends (the caller); else stay online for the next one."""
        self.call_id: str | None = None
        self.peer = ""
        self.caller = False
        self.accepted = False
        self.keys: KeyPair | None = None
        self.derived: CallKeys | None = None
        self.peer_commitment = ""
        """The callee's copy of the caller's key commitment (from ``call_incoming``)."""
        self.targets: list[Address] | None = None
        """The callee's copy of the caller's candidates, until the caller's key arrives (``call_reveal``)."""
        self.relay_token = b""
        self.checks: Checks | None = None
        self.media: CallMedia | None = None
        self.mapped: Address | None = None
        self._gathered = 0.0
        self.peer_connected = asyncio.Event()
        self.done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- placing and answering ------------------------------------------------------------------------------

    async def ready(self, *, fresh: bool = False) -> Message:
        """Open the call socket (once) and learn our candidates; the ``online``-like facts to show.

        ``fresh`` asks the server's STUN answer again (unless it is a few seconds old): a NAT may have
        mapped the socket anew since.
        """
        now = asyncio.get_running_loop().time()
        if self.candidates is None or (fresh and now - self._gathered > STALE_CANDIDATES):
            if self.sock.sock is None:
                await self.sock.open()
            self.candidates, self.mapped = await gather(self.sock, self.stun)
            self._gathered = now
        facts: Message = {"candidates": self.candidates}
        if self.mapped is not None:
            facts["public_address"] = _shown(self.mapped)
        return facts

    async def place(self, peer: str) -> None:
        if self.call_id is not None:
            self.ui.show(
                {"type": "error", "code": "bad_command", "message": "already in a call: /hangup first"}
            )
            return
        await self.ready(fresh=True)
        self.keys = KeyPair()
        self.caller = True
        message: Message = {
            "type": "call",
            "to": peer,
            "commitment": self.keys.commitment,
            "candidates": self.candidates,
        }
        if self.ring_timeout is not None:
            message["timeout"] = self.ring_timeout
        self.client.send(message)

    async def accept(self) -> None:
        if self.call_id is None or self.caller or self.accepted:
            self.ui.show({"type": "error", "code": "bad_command", "message": "no call is ringing"})
            return
        await self.ready(fresh=True)
        if self.call_id is None or self.accepted:
            return
        self.keys = KeyPair()
        self.accepted = True
        self.client.send(
            {
                "type": "call_accept",
                "call": self.call_id,
                "key": self.keys.public,
                "candidates": self.candidates,
            }
        )

    def decline(self) -> None:
        if self.call_id is None or self.caller or self.accepted:
            self.ui.show({"type": "error", "code": "bad_command", "message": "no call is ringing"})
            return
        self.client.send({"type": "call_decline", "call": self.call_id})

    def hangup(self) -> None:
        if self.call_id is not None:
            self.client.send({"type": "call_hangup", "call": self.call_id})

    # -- server events -------------------------------------------------------------------------------------

    def handle(self, message: Message) -> None:
        """A server message (through its typed event) or one of the client's own, shown as it came."""
        event = event_of(message)
        match event:
            case CallRinging():
                self.call_id, self.peer = event.call, event.peer
                self.ui.show(message)
            case CallIncoming():
                if self.call_id is not None:  # the server rings only the free; be safe anyway
                    return
                self.call_id, self.peer, self.caller, self.accepted = event.call, event.peer, False, False
                self.peer_commitment = event.commitment
                self.ui.show({k: v for k, v in message.items() if k not in ("commitment", "candidates")})
                if self.auto_accept:
                    self._spawn(self.accept())
            case CallAccepted() if event.call == self.call_id:
                self._accepted(event)
            case CallReveal() if event.call == self.call_id:
                self._revealed(event)
            case CallConnected() if event.call == self.call_id:
                self.peer_connected.set()
            case CallPath() if event.call == self.call_id and not self.caller:
                self._spawn(self._use_path(event.path))
            case CallDeclined():
                self.ui.show(message)
                self._spawn(self._finish(EXIT_UNANSWERED))
            case CallEnded():
                if event.call != self.call_id:
                    return
                self.ui.show(message)
                self._spawn(self._finish(EXIT_OK))
            case Error():
                self.ui.show(message)
                if event.re == "call" and self.once and not self.done.done():
                    self.done.set_result(EXIT_UNANSWERED)
            case _ if message.get("type") == "disconnected":
                self.ui.show(message)
                if not self.done.done():
                    self.done.set_result(EXIT_DISCONNECTED)
            case _:
                self.ui.show(message)

    def _accepted(self, event: CallAccepted) -> None:
        """The callee accepted. The caller gets the callee's key and reveals its own; the callee keeps the
        caller's candidates until that key arrives (``call_reveal``)."""
        assert self.keys is not None and self.call_id is not None
        try:
            derived = None
            if self.caller:
                if event.key is None:
                    raise ProtocolError("missing field 'key'")
                derived = self.keys.derive(self.call_id, event.key, caller=True)
            targets = check_candidates(list(event.candidates))
            self.relay_token = bytes.fromhex(event.relay)
        except (ProtocolError, ValueError) as exc:
            self.ui.show({"type": "error", "code": "bad_server_message", "message": f"call_accepted: {exc}"})
            self.hangup()
            return
        self.accepted = True
        if derived is None:
            self.targets = targets
            return
        self.client.send({"type": "call_reveal", "call": self.call_id, "key": self.keys.public})
        self._start(derived, targets)

    def _revealed(self, event: CallReveal) -> None:
        """The callee gets the caller's key; it must be the one the caller committed to before it could
        know the callee's key, else someone in the middle chose it, and the call is refused."""
        if self.caller or self.keys is None or self.call_id is None or self.targets is None:
            return
        if self.derived is not None:
            return
        try:
            check_reveal(self.peer_commitment, event.key)
            derived = self.keys.derive(self.call_id, event.key, caller=False)
        except ProtocolError as exc:
            message = f"{exc}: someone between you may be changing the keys; the call is refused"
            self.ui.show({"type": "error", "code": "call_refused", "call": self.call_id, "message": message})
            self.hangup()
            return
        self._start(derived, self.targets)

    def _start(self, derived: CallKeys, targets: list[Address]) -> None:
        """Both keys are known: run the connectivity checks, show the code, and connect."""
        assert self.call_id is not None
        self.derived = derived
        self.checks = Checks(self.call_id, self.derived.check)
        for target in targets:
            self.checks.add_target(target)
        self.sock.start_checks(self.checks)
        self.ui.show(
            {"type": "call_accepted", "call": self.call_id, "peer": self.peer, "sas": self.derived.sas}
        )
        self._spawn(self._connect())

    async def _connect(self) -> None:
        """Wait for the checks; the callee reports success, the caller chooses the path."""
        checks = self.checks
        assert checks is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CHECK_TIMEOUT
        while loop.time() < deadline:
            if checks.reached is not None and (not self.caller or self.peer_connected.is_set()):
                break
            await asyncio.sleep(0.05)
        if not self.caller:
            if checks.reached is not None:
                self.client.send({"type": "call_connected", "call": self.call_id})
            return
        path = "direct" if checks.reached is not None and self.peer_connected.is_set() else "relayed"
        self.client.send({"type": "call_path", "call": self.call_id, "path": path})
        await self._use_path(path)

    async def _use_path(self, path: str) -> None:
        if self.derived is None or self.checks is None or self.media is not None:
            return
        call_id, derived = self.call_id, self.derived
        relay = Credentials.of(self.relay_token, RELAY_PURPOSE)
        if path == "direct" and self.checks.reached is not None:
            to: Address = self.checks.reached
        else:
            path, to = "relayed", self.stun
            if await self.sock.relay_binding(to, relay, RELAY_TIMEOUT) is None:
                message = f"the server's relay did not answer in {RELAY_TIMEOUT:g} s"
                self.ui.show({"type": "error", "code": "call_path", "message": message})
                self.hangup()
                return
        if call_id != self.call_id:
            return

        async def keepalive() -> None:
            if path == "direct":
                await self.sock.binding(to, 2.0, call_id, derived.check)
            else:
                await self.sock.relay_binding(to, relay, 2.0)

        self.sock.start_media(SrtpPair(derived, self.client.registry.ciphers), to, keepalive)
        self.ui.show(
            {
                "type": "call_path",
                "call": call_id,
                "peer": self.peer,
                "path": path,
                "address": _shown(to),
                "sas": self.derived.sas,
            }
        )
        self.media = CallMedia(
            self.client.registry, self.client.name or "", self.peer, self.sock, self.ui.show, self.open_sinks
        )
        if self.share is not None:
            await self.share_source(self.share[0], self.share[1])

    async def share_source(self, kind: str, options: Mapping[str, Any]) -> None:
        if self.media is None:
            self.ui.show({"type": "error", "code": "bad_command", "message": "no call is connected yet"})
            return
        try:
            await self.media.manager.share(kind, options)
        except ConfError as exc:
            self.ui.show({"type": "error", "code": "media", "message": str(exc)})

    async def _finish(self, code: int) -> None:
        """The call is over: stop its media and forget it; the caller quits."""
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()  # checks still waiting, a path being set up
        media, self.media = self.media, None
        self.call_id, self.derived, self.checks, self.accepted = None, None, None, False
        self.peer_commitment, self.targets = "", None
        self.peer_connected.clear()
        self.sock.reset()
        if media is not None:
            await media.close()
        if self.once and not self.done.done():
            self.done.set_result(code)

    async def hang_up_and_wait(self) -> None:
        """Hang up any call and give the server a moment to confirm."""
        with contextlib.suppress(ConfError):
            self.hangup()
        if self.call_id is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HANGUP_TIMEOUT):
                    while self.call_id is not None:
                        await asyncio.sleep(0.05)

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self.media is not None:
            await self.media.close()
            self.media = None
        self.sock.close()

    # -- typed lines ---------------------------------------------------------------------------------------

    async def command(self, line: str) -> bool:
        """Run one typed line; False to quit."""
        try:
            command = parse_line(line)
        except CommandError as exc:
            self.ui.show({"type": "error", "code": "bad_command", "message": str(exc)})
            return True
        if command is None:
            return True
        if isinstance(command, LocalCommand):
            if command.name == "answer":
                await self.accept()
            elif command.name == "decline":
                self.decline()
            elif command.name == "hangup":
                self.hangup()
            elif command.name == "call":  # one call at a time: `conf call PEER` places it
                self.ui.show(
                    {"type": "error", "code": "bad_command", "message": str(unknown_command(command))}
                )
            elif command.name == "help":
                self.ui.show(
                    {"type": "help", "commands": [{"usage": u, "description": d} for u, d in CALL_HELP]}
                )
            elif command.name == "share":
                options: dict[str, Any] = dict(command.options)
                if len(command.args) > 1:
                    options["path"] = command.args[1]
                await self.share_source(command.args[0], options)
            elif command.name == "unshare" and self.media is not None:
                try:
                    await self.media.manager.unshare(command.args[0])
                except ConfError as exc:
                    self.ui.show({"type": "error", "code": "bad_command", "message": str(exc)})
            return True
        if command.get("type") == "leave":
            return False
        self.ui.show(
            {"type": "error", "code": "bad_command", "message": "in a call: /help lists the commands"}
        )
        return True


async def gather(sock: CallSocket, stun: Address) -> tuple[list[str], Address | None]:
    """Our candidates: our address towards the server, and the public one its STUN answerer sees."""
    port = sock.sock.getsockname()[1] if sock.sock is not None else 0
    found: list[str] = []
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(stun)
        found.append(_shown((probe.getsockname()[0], port)))
    except OSError:
        pass
    finally:
        probe.close()
    mapped = await sock.binding(stun, STUN_TIMEOUT)
    if mapped is not None and _shown(mapped) not in found:
        found.append(_shown(mapped))
    return found, mapped


async def server_stun(client: Client, port: int) -> Address:
    """The server's STUN answerer: its IPv4 address as the client reached it, and ``port``."""
    loop = asyncio.get_running_loop()
    host = client.address.host
    try:
        infos = await loop.getaddrinfo(host, None, family=socket.AF_INET, type=socket.SOCK_DGRAM)
    except OSError:
        raise ConfError(f"calls need the server's IPv4 address; {host!r} has none") from None
    return (infos[0][4][0], port)
