"""The conf client: one link to a server, the handshake, heartbeats, and meeting requests.

Server messages arrive on :attr:`Client.events` as dicts (docs/protocol.md lists them), each parsed here
once with the client profile: a :class:`~conf_cli.client.state.ServerMessage` holds its typed event. A
message of a known type that the client profile refuses is dropped and reported in its place as
``{"type": "error", "code": "bad_server_message", ...}``, like one that is not JSON. A lost link appears
there too, as ``{"type": "disconnected", "reason": ...}``.

In a meeting the server gives a resume token (``resume_token``, kept here and never handed on). When
the link drops, :meth:`Client.reconnect` connects again (with backoff, to the server's URL and the others
its ``welcome`` listed, each held to the same server key) and takes our seat back with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable
from typing import Any

from conf_cli.client.backoff import Backoff
from conf_cli.client.keyring import encode_key, new_private_key, public_bytes
from conf_cli.client.state import receive
from conf_cli.errors import ConfError, ProtocolError, RequestRefused
from conf_cli.identity import fingerprint
from conf_cli.plugin.registry import Registry
from conf_cli.plugin.security import Security, Trust, client_security
from conf_cli.plugin.transport import Link, Transport, TransportOptions
from conf_cli.protocol.control import (
    HEARTBEAT_INTERVAL,
    HEARTBEAT_TIMEOUT,
    PROTOCOL_VERSION,
    Message,
    decode_any,
    encode,
)
from conf_cli.urls import ServerAddress, parse_server_url, redirected
from conf_cli.version import __version__

REQUEST_TIMEOUT = 10.0
MAX_REDIRECTS = 3
"""Redirects one create or join follows (docs/cluster.md); more is a loop in the cluster, and an error."""
MAX_RESUME_URLS = 8
"""URLs a reconnecting client tries in turn: its own, then those the server's ``welcome`` listed."""
RETRYABLE = frozenset({"rate_limited", "try_again", "directory_unavailable"})
"""Refusals of a ``resume`` that a reconnecting client waits out and tries again (docs/protocol.md): any
other refusal ends the reconnecting at once."""
RESUME_REDIRECT_RETRY = 1.0
"""Seconds a reconnecting client waits before asking again a node that redirected its resume to a node
that cannot be reached (a node that just died, still named by the directory)."""
MAX_RETRY_WAIT = 4.0
"""Seconds a reconnecting client waits at most before the next try, whatever ``retry_after`` asks."""


class _LinkEvents:
    """What one link reports, passed to its client only while it is the client's current link: a link
    that dropped and was replaced says nothing more."""

    def __init__(self, client: Client, number: int) -> None:
        self.client = client
        self.number = number

    def _current(self) -> bool:
        return self.client.link_number == self.number

    def control_received(self, data: bytes) -> None:
        if self._current():
            self.client.control_received(data)

    def media_received(self, packet: bytes, arrival: float | None = None) -> None:
        if self._current():
            self.client.media_received(packet, arrival)

    def closed(self, reason: str) -> None:
        if self._current():
            self.client.closed(reason)


class Client:
    """A connection to a conf server."""

    def __init__(
        self,
        registry: Registry,
        address: ServerAddress,
        options: TransportOptions | None = None,
        transport: Transport | None = None,
        *,
        e2ee_capable: bool = True,
    ) -> None:
        self.registry = registry
        self.transport = transport
        """Overrides the registry's transport for the address's scheme (a service's in-process link)."""
        self.e2ee_capable = e2ee_capable
        """Offer our E2EE key when joining; a server-side gateway, which cannot hold media keys, does not."""
        self.address = address
        if options is None:  # encrypted, the server's key pinned on first use
            options = TransportOptions(security=client_security(registry.ciphers, str(address)))
        self.options = options
        self.events: asyncio.Queue[Message] = asyncio.Queue()
        self.link: Link | None = None
        self.meeting: str | None = None
        self.name: str | None = None
        self.closed_reason: str | None = None
        self.welcome: Message = {}
        """The server's ``welcome``, once connected."""
        self.hello_sent = 0.0
        """When (Unix time) ``hello`` went out: with the ``time`` in ``welcome``, the clocks compare."""
        self.passcode: str | None = None
        """The passcode of the meeting we created or joined (for invite links)."""
        self._last_heard = time.monotonic()
        self._heartbeat: asyncio.Task[None] | None = None
        self._interval = HEARTBEAT_INTERVAL
        self.e2ee = False
        """The meeting we are in is end-to-end encrypted (its ``joined`` said so)."""
        self.require_e2ee = False
        """We take part only in an end-to-end encrypted meeting (``--e2ee``): see :meth:`check_e2ee`."""
        self.e2ee_private = new_private_key()
        """Our X25519 key for end-to-end encrypted meetings; its public half goes with create and join."""
        self.media_handler: Callable[[bytes], None] | None = None
        """Called with each RTP/RTCP packet from the server (the media pipeline sets it)."""
        self.media_arrival: float | None = None
        """When the packet :attr:`media_handler` is called with reached this host (monotonic seconds), if
        its transport said (rtp://: the kernel's time stamp); None: now."""
        self.redirects: list[Message] = []
        """The ``redirect`` events followed to get into the meeting (the machine mode shows them)."""
        self._login: tuple[str, str] | None = None
        self.resume_token: str | None = None
        """Our latest resume token (a bearer secret: never shown, never logged)."""
        self.reconnect_urls: list[str] | None = None
        """Where to reconnect, as the latest ``resume_token`` said (in place of ``welcome``'s ``urls``)."""
        self.link_number = 0
        """Counts the links opened: only the current one's reports count (:class:`_LinkEvents`)."""
        self.reconnecting = False
        """The link dropped and :meth:`reconnect` is at work: requests wait for it."""
        self.leaving = False
        """We asked to leave: a drop now ends the meeting for us, there is nothing to resume."""

    # -- ClientEvents -------------------------------------------------------------------------------

    def control_received(self, data: bytes) -> None:
        self._last_heard = time.monotonic()
        try:
            message = decode_any(data)
            if message["type"] == "pong":
                return
            if message["type"] == "resume_token":  # kept, never handed on: it is a bearer secret
                renewed = receive(message)
                token, urls = renewed.get("token"), renewed.get("urls")
                self.resume_token = token if isinstance(token, str) else self.resume_token
                if isinstance(urls, list):  # where to reconnect, as the server knows it now
                    self.reconnect_urls = [str(url) for url in urls]
                return
            if message["type"] != "ping":
                self.events.put_nowait(receive(message))
                return
        except ProtocolError as exc:
            self.events.put_nowait({"type": "error", "code": "bad_server_message", "message": str(exc)})
            return
        self.send({"type": "pong"})

    def media_received(self, packet: bytes, arrival: float | None = None) -> None:
        self._last_heard = time.monotonic()
        self.media_arrival = arrival
        if self.media_handler is not None:
            self.media_handler(packet)

    def closed(self, reason: str) -> None:
        if self.closed_reason is None:
            self.closed_reason = reason
            self.events.put_nowait({"type": "disconnected", "reason": reason})

    # -- life cycle ---------------------------------------------------------------------------------

    async def connect(
        self, address: ServerAddress | None = None, options: TransportOptions | None = None
    ) -> Message:
        """Open the link (to :attr:`address`, or another of the server's) and shake hands; return the
        server's welcome."""
        address = address or self.address
        options = options or self.options
        own = address == self.address and self.transport is not None
        transport = self.transport if own and self.transport else self.registry.transport_for(address.scheme)
        if options.security is not None and not transport.secure:
            raise ConfError(
                f"the {transport.name} transport cannot encrypt its links; use --encryption none with it"
            )
        self.link_number += 1
        self.closed_reason = None
        self._last_heard = time.monotonic()
        events = _LinkEvents(self, self.link_number)
        self.link = await transport.connect(address.host, address.port, events, options)
        self.hello_sent = time.time()
        self.send({"type": "hello", "protocol": PROTOCOL_VERSION, "client": f"conf/{__version__}"})
        try:
            welcome = await self._expect({"welcome"}, "hello", timeout=options.connect_timeout)
        except ConfError as exc:
            if options.security is None and self.closed_reason is not None:
                raise ConfError(
                    f"{self.address} closed the connection at once: it probably requires encryption "
                    "(drop --encryption none)"
                ) from exc
            raise
        self.welcome = welcome
        self.reconnect_urls = None  # this server's welcome is the freshest word until its next token
        self._interval = float(welcome.get("heartbeat") or HEARTBEAT_INTERVAL)
        self._heartbeat = asyncio.create_task(self._beat())
        return welcome

    @property
    def can_resume(self) -> bool:
        """Whether a dropped link is worth reconnecting: we are in a meeting, hold a resume token and did
        not ask to leave."""
        return self.resume_token is not None and self.meeting is not None and not self.leaving

    def _resume_targets(self) -> list[tuple[ServerAddress, TransportOptions]]:
        """Where to reconnect: our URL first, then the others the server listed in ``welcome``, each held
        to the key this server presented (never pinned anew)."""
        targets = [(self.address, self.options)]
        security = self.options.security
        accepted = security.trust.accepted if security is not None and security.trust else None
        listed = self.reconnect_urls if self.reconnect_urls is not None else self.welcome.get("urls")
        for url in listed if isinstance(listed, list) else []:
            if len(targets) >= MAX_RESUME_URLS:
                break
            try:
                address = parse_server_url(str(url))
                self.registry.transport_for(address.scheme)
            except ConfError:
                continue
            if address == self.address or any(address == known for known, _ in targets):
                continue
            if security is not None:
                if accepted is None:
                    continue
                trust = Trust(str(address), fingerprint(accepted), pin=False)
                options = TransportOptions(
                    self.options.connect_timeout,
                    dict(self.options.extra),
                    Security(security.ciphers, trust=trust),
                )
            else:
                options = TransportOptions(self.options.connect_timeout, dict(self.options.extra))
            targets.append((address, options))
        return targets

    async def reconnect(self, notify: Callable[[Message], None]) -> Message:
        """The link dropped: connect again and take our seat back with the resume token; return the
        ``joined`` that says we are back (``resumed``). Tries follow :class:`Backoff`, in turn to each of
        :meth:`_resume_targets`; each is told with ``notify`` (a ``reconnecting`` event), and so is the
        success (``reconnected``). ConfError when giving up, or when the server refuses us back."""
        token = self.resume_token
        if token is None or self.meeting is None:
            raise ConfError("not in a meeting: nothing to resume")
        self.reconnecting = True
        try:
            await self._drop_link()
            home = (self.address, self.options)
            started = time.monotonic()
            backoff = Backoff(started)
            targets = self._resume_targets()
            why = self.closed_reason or "the link dropped"
            retry_after: float | None = None
            turn = 0
            """Which target is tried next: a node that answered and asked us to wait is tried again."""
            while True:
                delay = backoff.next_delay(time.monotonic())
                if delay is not None and retry_after is not None:  # the server said when to come back
                    delay, retry_after = min(retry_after, MAX_RETRY_WAIT), None
                if delay is None:
                    raise ConfError(
                        f"could not get back into meeting {self.meeting} within "
                        f"{time.monotonic() - started:.0f} s ({backoff.attempt} tries); last: {why}"
                    )
                address, options = targets[turn % len(targets)]
                notify(
                    {
                        "type": "reconnecting",
                        "attempt": backoff.attempt,
                        "delay": round(delay, 2),
                        "url": str(address),
                        "reason": why,
                    }
                )
                await asyncio.sleep(delay)
                try:
                    joined = await self._resume(address, options, self.resume_token or token)
                except RequestRefused as refusal:
                    await self._drop_link()
                    self.address, self.options = home
                    if refusal.code in RETRYABLE:
                        why, retry_after = str(refusal), refusal.retry_after
                        turn += refusal.retry_after is None  # told when to come back: to the same node
                        continue
                    raise ConfError(
                        f"the server would not take us back into meeting {self.meeting}: {refusal}"
                    ) from None
                except Exception as exc:  # the server is not back yet, or the path fails: try again
                    await self._drop_link()
                    self.address, self.options = home
                    why = str(exc) or type(exc).__name__
                    turn += 1
                    continue
                notify(
                    {
                        "type": "reconnected",
                        "meeting": joined["meeting"],
                        "url": str(self.address),  # where we are now (a redirect may have moved us)
                        "attempts": backoff.attempt,
                        "seconds": round(time.monotonic() - started, 2),
                    }
                )
                return joined
        finally:
            self.reconnecting = False

    async def _resume(self, address: ServerAddress, options: TransportOptions, token: str) -> Message:
        """Connect to ``address`` and send ``resume``; a cluster node that does not hold the meeting
        redirects us to the one that does, which we follow (at most :data:`MAX_REDIRECTS`), so that the
        final address is where we reconnect next time."""
        await self.connect(address, options)
        request: dict[str, Any] = {"type": "resume", "token": token}
        if self.e2ee_capable:
            request["e2ee_key"] = encode_key(public_bytes(self.e2ee_private))
        self.address, self.options = address, options
        joined = await self._ask_cluster(request, {"joined"})
        self.check_e2ee(joined)
        self._joined(joined)
        return joined

    async def _drop_link(self) -> None:
        """Forget the current link (closed, its heartbeat stopped): whatever it says now is not heard."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        self.link_number += 1
        if self.link is not None:
            self.link.close()
        while not self.events.empty():  # what a dropped link said last (its disconnected) is stale
            self.events.get_nowait()

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        if self.link is not None:
            self.link.close()

    def send(self, message: Message) -> None:
        if self.link is None or self.link.is_closing:
            raise ConfError("not connected to the server")
        if message.get("type") == "leave":
            self.leaving = True
        self.link.send_control(encode(message))

    # -- requests -----------------------------------------------------------------------------------

    async def login(self, user: str, password: str) -> Message:
        """Log in to an account on the server; return the ``logged_in`` event."""
        self.send({"type": "login", "user": user, "password": password})
        answer = await self._expect({"logged_in"}, "login")
        self._login = (user, password)  # a redirect logs in again on the other node
        return answer

    async def create(
        self, name: str, passcode: str | None = None, *, e2ee: bool = False, waiting_room: bool = False
    ) -> tuple[Message, Message]:
        """Create a meeting and join it as host; return the ``meeting_created`` and ``joined`` events.

        With ``e2ee`` the meeting's media is end-to-end encrypted (docs/security.md): ConfError if the
        server answers with a meeting that is not; with ``waiting_room`` the host admits each newcomer.
        """
        request: dict[str, Any] = {"type": "create", "name": name}
        if passcode:
            request["passcode"] = passcode
        if e2ee:
            request["e2ee"] = True
            request["e2ee_key"] = encode_key(public_bytes(self.e2ee_private))
        if waiting_room:
            request["waiting_room"] = True
        created = await self._ask_cluster(request, {"meeting_created"})
        joined = await self._expect({"joined"}, "create")
        if e2ee and not (created.get("e2ee") is True and joined.get("e2ee") is True):
            # A server that answers with a plain meeting would see (and could change) all media.
            raise ConfError(
                "the server created a meeting without end-to-end encryption although --e2ee asked for "
                "one; refusing to take part (media would not be end-to-end encrypted)"
            )
        self.require_e2ee = e2ee
        self._joined(joined)
        self.passcode = created.get("passcode")
        return created, joined

    async def join(
        self,
        meeting: str,
        name: str,
        passcode: str | None = None,
        *,
        require_e2ee: bool = False,
        token: str | None = None,
        recorder: bool = False,
    ) -> Message:
        """Join a meeting; return the ``joined`` event, or ``waiting`` if a waiting room holds us.

        ``recorder`` joins as a recorder (``conf record``): everyone is told it records.

        After ``waiting``, ``joined`` (admitted), ``denied`` or ``meeting_closed`` follows on :attr:`events`.
        Our E2EE key goes along, in case the meeting is end-to-end encrypted. With ``require_e2ee`` a
        ``joined`` that does not say the meeting is end-to-end encrypted is refused: ConfError here, or
        from :meth:`check_e2ee` for the ``joined`` that admits us from a waiting room.
        """
        self.require_e2ee = require_e2ee
        request: dict[str, Any] = {"type": "join", "meeting": meeting, "name": name}
        if token:  # an access token instead of the passcode (docs/protocol.md)
            request["token"] = token
        elif passcode:
            request["passcode"] = passcode
        if self.e2ee_capable:
            request["e2ee_key"] = encode_key(public_bytes(self.e2ee_private))
        if recorder:
            request["recorder"] = True
        answer = await self._ask_cluster(request, {"joined", "waiting"})
        if answer["type"] == "joined":
            self.check_e2ee(answer)
        self._joined(answer)
        self.passcode = passcode
        return answer

    async def _ask_cluster(self, request: Message, wanted: set[str]) -> Message:
        """Send a create or join and wait for one of ``wanted``, following the ``redirect`` of a cluster
        node that sends us to another (at most :data:`MAX_REDIRECTS`)."""
        seen = {str(self.address)}
        followed = 0
        while True:
            self.send(request)
            answer = await self._expect({*wanted, "redirect"}, str(request["type"]))
            if answer["type"] != "redirect":
                return answer
            if answer.get("re") != request["type"]:
                raise ConfError(
                    f"the server redirected a {request['type']} as a {answer.get('re')}: refusing"
                )
            if followed >= MAX_REDIRECTS or answer["url"] in seen:
                raise ConfError(
                    f"the cluster redirected this {request['type']} {followed + 1} times "
                    f"(last to node {answer['node']} at {answer['url']}): a loop between its nodes; "
                    "try again in a few seconds, or tell the servers' operator"
                )
            if request["type"] == "resume":
                self._check_resume_redirect(answer)
            seen.add(str(answer["url"]))
            followed += 1
            if request["type"] != "resume":  # shown before meeting_created or joined (machine mode)
                self.redirects.append(answer)
                await self._follow(answer)
                continue
            try:
                await self._follow(answer)
            except (ConfError, OSError) as exc:
                # The directory still names a node that stopped answering: its claim lapses within
                # seconds and another node takes the meeting over. Come back to the node that answered.
                raise RequestRefused(
                    "try_again",
                    f"node {answer['node']}, which holds meeting {answer.get('meeting')}, cannot be reached "
                    f"({exc}); the cluster moves the meeting once its claim lapses",
                    retry_after=RESUME_REDIRECT_RETRY,
                ) from None

    def _check_resume_redirect(self, redirect: Message) -> None:
        """A resume token goes only to a server of the identity that issued it: a redirect of a resume to
        a node presenting another key is refused (a cluster shares one identity)."""
        security = self.options.security
        accepted = security.trust.accepted if security is not None and security.trust else None
        if accepted is not None and redirect.get("fingerprint") != fingerprint(accepted):
            raise ConfError(
                f"node {redirect['node']} at {redirect['url']} presents another key than this cluster's "
                f"({fingerprint(accepted)}): not sending it our resume token"
            )

    async def _follow(self, redirect: Message) -> None:
        """Leave this node for the one ``redirect`` names: connect there, check that it presents the key
        the redirect named (the redirect came over a link whose key we checked), log in again if we had."""
        url, node, expected = str(redirect["url"]), redirect["node"], redirect.get("fingerprint")
        try:
            address = redirected(parse_server_url(url), self.address)
        except ConfError as exc:
            raise ConfError(f"the server redirected us to a bad URL {url!r}: {exc}") from None
        url = str(address)
        options = self.options
        if options.security is not None:
            if expected is None:
                raise ConfError(
                    f"the server redirected us to node {node} at {url} without naming its key: refusing "
                    "(the link would not be authenticated)"
                )
            trust = Trust(url, expected, pin=False, expected_from=f"that the redirect to node {node} named")
            security = dataclasses.replace(options.security, trust=trust)
            options = dataclasses.replace(options, security=security)
        old = self.link
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        self.link_number += 1  # whatever the old link still says is not ours any more
        if old is not None:
            old.close()
        self.address, self.options, self.closed_reason = address, options, None
        await self.connect()
        if self._login is not None:
            await self.login(*self._login)

    def check_e2ee(self, joined: Message) -> None:
        """ConfError if we asked for an end-to-end encrypted meeting and ``joined`` says this one is not."""
        if self.require_e2ee and joined.get("e2ee") is not True:
            raise ConfError(
                f"meeting {joined.get('meeting')} is not end-to-end encrypted (the server says so), "
                "although --e2ee asked for it; refusing to take part"
            )

    def _joined(self, joined: Message) -> None:
        """We are in (``joined``) or waiting to be let in (``waiting``, which says nothing of E2EE yet)."""
        self.meeting, self.name = joined["meeting"], joined["name"]
        self.e2ee = joined.get("e2ee") is True

    async def request(self, message: Message, wanted: set[str]) -> Message:
        """Send ``message`` and wait for one of ``wanted``; RequestRefused if the server refuses it."""
        self.send(message)
        return await self._expect(wanted, str(message["type"]))

    async def _expect(self, wanted: set[str], request: str, timeout: float = REQUEST_TIMEOUT) -> Message:
        """Wait for one of ``wanted``; an error or a lost link raises."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConfError(f"the server did not answer {request!r} within {timeout:g} s")
            try:
                async with asyncio.timeout(remaining):
                    message = await self.events.get()
            except TimeoutError:
                continue
            kind = message["type"]
            if kind in wanted:
                return message
            if kind == "error":
                wait = message.get("retry_after")
                raise RequestRefused(
                    str(message.get("code", "error")),
                    str(message.get("message", "refused")),
                    retry_after=float(wait) if isinstance(wait, int | float) else None,
                )
            if kind == "disconnected":
                raise ConfError(f"the server closed the connection during {request!r}: {message['reason']}")

    async def _beat(self) -> None:
        """Send a ping every interval; give up on a server that has gone silent."""
        while True:
            await asyncio.sleep(self._interval)
            if self.link is None or self.link.is_closing:
                return
            if time.monotonic() - self._last_heard > HEARTBEAT_TIMEOUT:
                self.link.close()
                self.closed(f"the server stopped answering for {HEARTBEAT_TIMEOUT:g} s")
                return
            self.send({"type": "ping"})
