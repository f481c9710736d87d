"""``conf doctor``: what stands between this machine and a meeting on a server, one check at a time.

Each check ends in a :class:`Check`: ``ok``, ``warn`` (a meeting works, something is worth knowing),
``fail`` (a meeting would fail) or ``skip`` (could not be told, and why), with what to do about it.
Checks run in order and a later one uses what an earlier one found: the addresses a name resolves to, the
key the server presented, the server's ``welcome``.

- ``resolve``: the URL's host name to addresses.
- ``tcp``: a TCP connection to the server's port (control for every transport; media too on tcp://).
- ``tls``: the TLS handshake, and the key the server proved against the pin in known_hosts (or
  ``--fingerprint``): a changed key names the pin to forget.
- ``server``: conf's handshake over the URL's own transport. On rtp:// that needs the media path, a STUN
  binding signed with the link's key to the server's UDP port, so a failure there after a good handshake
  on TCP is the ``udp`` line's.
- ``udp``: rtp://: that binding (the meeting's media path). tcp:// and others: a Binding request to the
  server's STUN port (``stun_port`` of ``welcome``), which calls use.
- ``nat``: from one socket, bindings to two server ports (the STUN port and, on rtp://, the media port):
  the same public address for both means the NAT maps endpoint-independently (direct calls can work);
  two addresses mean it maps per destination (calls go through the server's relay).
- ``clock``: this machine's clock against the ``time`` the server sends in ``welcome``.
- ``capture``, ``playback``: the microphone, camera and screen sources and the speaker sink the
  plugins offer, and whether each can be used.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conf_cli.client.link import Client
from conf_cli.errors import ConfError, MediaUnreachable, ProtocolError
from conf_cli.identity import KnownHosts, fingerprint
from conf_cli.latch import Credentials, answer_check, request_transaction
from conf_cli.plugin.registry import Registry
from conf_cli.plugin.security import Security, StreamCipher, client_security
from conf_cli.plugin.transport import TransportOptions
from conf_cli.protocol.control import Message
from conf_cli.protocol.stun import CLASS_REQUEST, StunMessage, is_stun
from conf_cli.stun_transactions import StunTransactions, unsigned_binding
from conf_cli.urls import ServerAddress
from conf_cli.version import __version__

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
CLOCK_WARN = 2.0
"""Seconds of clock difference past which ``clock`` warns."""
DOCTOR_BINDING = 0x40000000
"""The binding number of the doctor's signed request on rtp://: above any the link itself used."""


@dataclass(frozen=True)
class Check:
    """One check's outcome: ``status`` is ok, warn, fail or skip; ``advice`` what to do about it."""

    name: str
    status: str
    detail: str
    advice: str = ""

    def line(self) -> str:
        text = f"{self.status:<4}  {self.name:<9} {self.detail}"
        return f"{text} — {self.advice}" if self.advice else text

    def as_event(self) -> Message:
        event: Message = {
            "type": "doctor_check",
            "check": self.name,
            "status": self.status,
            "detail": self.detail,
        }
        if self.advice:
            event["advice"] = self.advice
        return event


@dataclass
class _Found:
    addresses: list[str]
    key: bytes | None = None
    trusted: bool = False
    client: Client | None = None
    welcome: Message | None = None
    clock: tuple[float, float] | None = None  # (offset, uncertainty) in seconds


class Doctor:
    """Runs the checks for one server URL; :meth:`run` reports each as it ends."""

    def __init__(
        self,
        registry: Registry,
        address: ServerAddress,
        *,
        encryption: str = "on",
        expected: str | None = None,
        timeout: float = 5.0,
        known_hosts: KnownHosts | None = None,
    ) -> None:
        self.registry = registry
        self.address = address
        self.url = str(address)
        self.encryption = encryption
        self.expected = expected
        self.timeout = timeout
        self.known_hosts = known_hosts or KnownHosts()

    async def run(self, report: Callable[[Check], None]) -> list[Check]:
        done: list[Check] = []

        def note(check: Check) -> Check:
            done.append(check)
            report(check)
            return check

        found = _Found([])
        try:
            await self._network(found, note)
        finally:
            if found.client is not None:
                await found.client.close()
        for check in await asyncio.to_thread(self._devices):
            note(check)
        return done

    async def _network(self, found: _Found, note: Callable[[Check], Check]) -> None:
        """The checks of the path to the server, in order; past a failed one the rest cannot be tried."""
        for step in (self._resolve, self._tcp, self._tls):
            if note(await step(found)).status == FAIL:
                return
        for check in await self._session(found):
            note(check)
        note(await self._nat(found))
        note(self._clock(found))

    # -- the network ----------------------------------------------------------------------------------

    async def _resolve(self, found: _Found) -> Check:
        host = self.address.host
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                infos = await loop.getaddrinfo(host, self.address.port, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError) as exc:
            why = "no answer in time" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
            return Check(
                "resolve",
                FAIL,
                f"cannot resolve {host}: {why}",
                "check the name, or use the server's address",
            )
        found.addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if found.addresses == [host]:
            return Check("resolve", OK, f"{host} is an address")
        return Check("resolve", OK, f"{host} is {', '.join(found.addresses)}")

    async def _tcp(self, found: _Found) -> Check:
        port = self.address.port
        target = found.addresses[0]
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout):
                _, writer = await asyncio.open_connection(target, port)
        except TimeoutError:
            return Check(
                "tcp",
                FAIL,
                f"no answer from {_hostport(target, port)} in {self.timeout:g} s",
                "a firewall drops the connection, or the server is down",
            )
        except OSError as exc:
            why = os.strerror(exc.errno) if exc.errno else str(exc)
            return Check(
                "tcp",
                FAIL,
                f"cannot connect to {_hostport(target, port)}: {why.lower()}",
                "is `conf server` running there, on this port?",
            )
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        elapsed = (time.monotonic() - started) * 1000
        return Check("tcp", OK, f"connected to {_hostport(target, port)} in {elapsed:.1f} ms")

    async def _tls(self, found: _Found) -> Check:
        if self.encryption == "none":
            return Check("tls", SKIP, "encryption is off (--encryption none): nothing to check")
        if self.address.scheme not in ("tcp", "rtp"):
            return Check("tls", SKIP, f"{self.address.scheme}:// checks the server's key when joining")
        try:
            cipher = Security(self.registry.ciphers).stream()
        except ConfError as exc:
            return Check("tls", FAIL, str(exc))
        try:
            key = await self._handshake(cipher, found.addresses[0])
        except ConfError as exc:
            return Check("tls", FAIL, str(exc), "if the server runs with --encryption none, so must you")
        found.key = key
        shown = fingerprint(key)
        if self.expected is not None:
            if shown != self.expected:
                return Check(
                    "tls",
                    FAIL,
                    f"the server presented key {shown}, not {self.expected} given with --fingerprint",
                    "someone may be intercepting the connection, or the fingerprint is wrong",
                )
            found.trusted = True
            return Check("tls", OK, f"TLS 1.3; key {shown}, as given with --fingerprint")
        try:
            pinned = self.known_hosts.get(self.url)
        except ConfError as exc:
            return Check("tls", FAIL, str(exc))
        if pinned is None:
            found.trusted = True  # as the first join would: it pins this key
            return Check(
                "tls",
                WARN,
                f"TLS 1.3; key {shown} is not pinned yet",
                "your first join trusts and pins it: compare it with the key `conf server` printed, "
                "or join with --fingerprint",
            )
        if pinned != key:
            return Check(
                "tls",
                FAIL,
                f"the key of {self.url} has CHANGED: pinned {fingerprint(pinned)}, presented {shown}",
                "someone may be intercepting the connection; if the server's key was replaced on purpose, "
                f"forget the pin {self.url} in {self.known_hosts.path}: `conf known-hosts forget {self.url}`",
            )
        found.trusted = True
        return Check("tls", OK, f"TLS 1.3; key {shown}, as pinned in {self.known_hosts.path}")

    async def _handshake(self, cipher: StreamCipher, target: str) -> bytes:
        context = cipher.client_context()
        port = self.address.port
        try:
            async with asyncio.timeout(self.timeout):
                _, writer = await asyncio.open_connection(
                    target,
                    port,
                    ssl=context,
                    server_hostname=self.address.host,
                    ssl_handshake_timeout=self.timeout,
                )
        except TimeoutError:
            raise ConfError(f"the TLS handshake with {self.url} took over {self.timeout:g} s") from None
        except (ssl.SSLError, OSError, EOFError) as exc:
            raise ConfError(f"the TLS handshake with {self.url} failed: {exc}") from None
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            if ssl_object is None:
                raise ConfError(f"the connection to {self.url} closed during the TLS handshake")
            return cipher.peer_key(ssl_object)
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()

    async def _session(self, found: _Found) -> list[Check]:
        """The ``server`` and ``udp`` lines: conf's handshake over the URL's own transport."""
        expected: str | None = None
        if self.encryption != "none":
            if found.key is not None:
                if not found.trusted:
                    return [
                        Check("server", SKIP, "not connecting to a server whose key is not trusted (see tls)")
                    ]
                expected = fingerprint(found.key)
            else:  # zmq:// and others: their own handshake checks the key, against the pin or --fingerprint
                pinned = self.known_hosts.get(self.url)
                expected = self.expected or (fingerprint(pinned) if pinned is not None else None)
                if expected is None:
                    return [
                        Check(
                            "server",
                            SKIP,
                            f"the key of {self.url} is not pinned yet",
                            "join once (it pins the key), or give --fingerprint",
                        )
                    ]
        try:  # the doctor pins nothing: the key is the one checked above (or given)
            security = client_security(self.registry.ciphers, self.url, self.encryption, expected, pin=False)
        except ConfError as exc:
            return [Check("server", FAIL, str(exc))]
        client = Client(
            self.registry, self.address, TransportOptions(connect_timeout=self.timeout, security=security)
        )
        try:
            welcome = await client.connect()
        except MediaUnreachable as exc:  # rtp://: the control connection worked, UDP did not
            await client.close()
            return [
                Check(
                    "udp",
                    FAIL,
                    str(exc),
                    f"UDP to port {self.address.port} is blocked on the way, so media over "
                    f"{self.address.scheme}:// cannot flow: use tcp:// instead "
                    "(`conf server --transport tcp` serves it; a meeting mixes transports)",
                ),
                Check("server", SKIP, "no conf session without the media path (see udp)"),
            ]
        except ConfError as exc:
            await client.close()
            return [Check("server", FAIL, str(exc), "is `conf server` running there, with this transport?")]
        answered = time.time()
        found.client, found.welcome = client, welcome
        server_time = welcome.get("time")
        if isinstance(server_time, int | float) and not isinstance(server_time, bool):
            sent = client.hello_sent
            found.clock = (float(server_time) - (sent + answered) / 2, (answered - sent) / 2)
        checks = []
        link = client.link
        if self.address.scheme == "rtp":
            mapped = link.media_address if link is not None else None
            seen = f": the server sees you at {_hostport(*mapped)}" if mapped else ""
            checks.append(
                Check("udp", OK, f"a STUN binding to UDP port {self.address.port} was answered{seen}")
            )
        server = str(welcome.get("server", "conf"))
        checks.append(Check("server", OK, f"{server} answered hello over {self.address.scheme}://"))
        if self.address.scheme != "rtp":
            checks.append(await self._stun_port(found))
        return checks

    async def _stun_port(self, found: _Found) -> Check:
        port = (found.welcome or {}).get("stun_port")
        if not isinstance(port, int):
            return Check(
                "udp",
                SKIP,
                "the server offers no calls, so no UDP port to try (meetings over "
                f"{self.address.scheme}:// need none)",
            )
        async with _Prober(found.addresses[0]) as prober:
            mapped = await prober.binding((found.addresses[0], port), self.timeout)
        if mapped is None:
            return Check(
                "udp",
                WARN,
                f"no answer over UDP from the server's STUN port {port}",
                f"meetings over {self.address.scheme}:// do not need UDP, but calls (`conf call`) do: "
                "a firewall drops UDP on the way",
            )
        return Check(
            "udp", OK, f"the server's STUN port {port} answered: it sees you at {_hostport(*mapped)}"
        )

    async def _nat(self, found: _Found) -> Check:
        welcome = found.welcome
        if welcome is None:
            return Check("nat", SKIP, "no conf session, so no STUN port to ask")
        stun_port = welcome.get("stun_port")
        target = found.addresses[0]
        destinations: list[tuple[str, tuple[str, int], Credentials | None]] = []
        if isinstance(stun_port, int):
            destinations.append(("STUN port", (target, stun_port), None))
        link = found.client.link if found.client is not None else None
        credentials = link.media_credentials if link is not None else None
        if credentials is not None:
            destinations.append(("media port", (target, self.address.port), credentials))
        if not destinations:
            return Check("nat", SKIP, "the server offers no STUN port: the NAT's behaviour cannot be told")
        async with _Prober(target) as prober:
            mapped = [
                await prober.binding(where, self.timeout, credentials)
                for _, where, credentials in destinations
            ]
            local = prober.local
        answered = [m for m in mapped if m is not None]
        if not answered:
            return Check("nat", SKIP, "no STUN answer over UDP (see udp): the NAT's behaviour cannot be told")
        if all(m == local for m in answered):
            return Check("nat", OK, f"no NAT between you and the server (it sees you at {_hostport(*local)})")
        if len(answered) < 2:
            return Check(
                "nat",
                SKIP,
                f"behind a NAT (public address {_hostport(*answered[0])}); whether it maps per destination "
                "cannot be told from one server port",
                "`conf doctor rtp://...` binds to two",
            )
        if len(set(answered)) == 1:
            return Check(
                "nat",
                OK,
                f"behind a NAT that maps endpoint-independently (public address {_hostport(*answered[0])} "
                "towards both server ports): direct calls can work",
            )
        shown = " and ".join(_hostport(*m) for m in answered)
        return Check(
            "nat",
            WARN,
            f"behind a NAT that maps per destination (public addresses {shown})",
            "meetings are not affected; direct calls fail and go through the server's relay",
        )

    def _clock(self, found: _Found) -> Check:
        if found.welcome is None:
            return Check("clock", SKIP, "no conf session, so no server time")
        if found.clock is None:
            return Check("clock", SKIP, "this server does not send its time (an older conf)")
        offset, uncertainty = found.clock
        ahead = "ahead of" if offset < 0 else "behind"
        text = f"{abs(offset):.3f} s {ahead} the server's (±{uncertainty:.3f} s)"
        if abs(offset) - uncertainty > CLOCK_WARN:
            return Check(
                "clock",
                WARN,
                f"this clock is {text}",
                "set it right (NTP: `timedatectl set-ntp true`); times in logs and recordings disagree with "
                "the server's otherwise",
            )
        return Check("clock", OK, f"this clock is {text}")

    # -- this machine ---------------------------------------------------------------------------------

    def _devices(self) -> list[Check]:
        sources, sinks = self.registry.sources, self.registry.sinks
        capture = [
            _usable("microphone", sources.get("audio")),
            _usable("camera", sources.get("camera")),
            _usable("screen", sources.get("screen")),
        ]
        detail = "; ".join(text for _, text in capture)
        if capture[0][0]:
            checks = [Check("capture", OK, detail)]
        else:
            checks = [
                Check(
                    "capture",
                    WARN,
                    detail,
                    "you can listen, watch and chat, but nobody hears you; see `conf devices`",
                )
            ]
        speaker = _usable("speaker", sinks.get("speaker"))
        if speaker[0]:
            checks.append(Check("playback", OK, speaker[1]))
        else:
            checks.append(
                Check(
                    "playback",
                    WARN,
                    speaker[1],
                    "you will not hear the meeting; join with --no-play, or see `conf devices`",
                )
            )
        return checks


def _usable(label: str, factory: Any) -> tuple[bool, str]:
    if factory is None:
        return False, f"{label}: no plugin offers one"
    try:
        devices = factory.list_devices()
    except Exception as exc:  # a device layer that cannot even be asked
        return False, f"{label}: {exc}"
    usable = [d for d in devices if d.available]
    if usable:
        return True, f"{label}: " + " / ".join(d.description or d.id for d in usable[:3])
    reasons = [d.reason for d in devices if d.reason]
    return False, f"{label}: none ({reasons[0] if reasons else 'no device'})"


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Prober(asyncio.DatagramProtocol):
    """One UDP socket for Binding requests to several server ports, answering the server's consent
    checks for a signed binding (rtp://) as a client's media socket does."""

    def __init__(self, target: str) -> None:
        self.family = socket.AF_INET6 if ":" in target else socket.AF_INET
        self.transport: asyncio.DatagramTransport | None = None
        self.local: tuple[str, int] = ("", 0)
        self._transactions = StunTransactions()
        self._credentials: list[Credentials] = []
        self._target = target

    async def __aenter__(self) -> _Prober:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: self,
            local_addr=("::" if self.family == socket.AF_INET6 else "0.0.0.0", 0),
            family=self.family,
        )
        port = self.transport.get_extra_info("sockname")[1]
        self.local = (_local_address(self._target, self.family), port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.transport is not None:
            self.transport.close()

    async def binding(
        self, server: tuple[str, int], timeout: float, credentials: Credentials | None = None
    ) -> tuple[str, int] | None:
        """One Binding transaction with ``server``: our address as it saw it, or None without an answer."""
        assert self.transport is not None
        key: bytes | None = None
        if credentials is None:  # the STUN port answers anyone, a request at least as large as its answer
            transaction = secrets.token_bytes(12)
            data = unsigned_binding(transaction)
        else:  # the media port answers the link's signed requests, once this socket answered its check
            self._credentials.append(credentials)
            transaction = request_transaction(DOCTOR_BINDING)
            data = credentials.request(transaction, f"conf/{__version__}")
            key = credentials.key
        return await self._transactions.run(lambda d: self._send(d, server), transaction, data, key, timeout)

    def _send(self, data: bytes, address: tuple[str, int]) -> bool:
        if self.transport is None:
            return False
        self.transport.sendto(data, address)
        return True

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        if not is_stun(data):
            return
        try:
            message = StunMessage.parse(data)
        except ProtocolError:
            return
        if message.message_class == CLASS_REQUEST:
            for credentials in self._credentials:
                answer = answer_check(data, credentials, addr[0], addr[1])
                if answer is not None and self.transport is not None:
                    self.transport.sendto(answer, addr)
                    return
            return
        self._transactions.answer(message)


def _local_address(target: str, family: int) -> str:
    """The address this machine sends from towards ``target`` (no packet is sent)."""
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((target, 9))
            return str(probe.getsockname()[0])
        except OSError:
            return ""
