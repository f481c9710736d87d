"""Link encryption: the cipher plugin interface, and what the server and the client hand to transports.

Ciphers are plugins (``conf_register_ciphers``), one per standard mechanism, and each transport uses the
one that fits it: a stream cipher (TLS 1.3) for TCP connections, a message cipher (ZeroMQ CURVE) for
ZeroMQ sockets, a media cipher (SRTP) for RTP datagrams. A transport finds them through
:attr:`conf_cli.plugin.transport.TransportOptions.security`, a :class:`Security`: on the server it carries the
server's :class:`~conf_cli.identity.Identity`, on the client a :class:`Trust` that checks the key the
server presents against the pinned one. ``security`` is None with ``--encryption none``.
"""

from __future__ import annotations

import re
import ssl
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conf_cli.errors import ConfError
from conf_cli.identity import Identity, KnownHosts, fingerprint

ENCRYPTION_CHOICES = ("on", "none")
PLAINTEXT_WARNING = (
    "encryption is off (--encryption none): this link is NOT protected; "
    "anyone on the path can read and change it"
)
if TYPE_CHECKING:
    from array import array

_FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")


class Cipher(ABC):
    """A cipher plugin. Register an instance through ``conf_register_ciphers``."""

    name: str
    description: str = ""


class StreamCipher(Cipher):
    """Protects a byte stream (TLS): ``ssl`` contexts for both ends, and the key a server presented."""

    @abstractmethod
    def server_context(self, identity: Identity) -> ssl.SSLContext:
        """A server context presenting ``identity``."""

    @abstractmethod
    def client_context(self) -> ssl.SSLContext:
        """A client context; the server's key is checked afterwards with :meth:`peer_key` and a Trust."""

    @abstractmethod
    def peer_key(self, ssl_object: ssl.SSLObject | ssl.SSLSocket) -> bytes:
        """The raw Ed25519 public key the server proved it holds during the handshake."""


class MessageCipher(Cipher):
    """Protects ZeroMQ sockets (CURVE)."""

    @abstractmethod
    def secure_server(self, sock: Any, identity: Identity) -> None:
        """Make ``sock`` (before bind) a server presenting ``identity``."""

    @abstractmethod
    def secure_client(self, socks: Sequence[Any], server_key: bytes) -> None:
        """Make ``socks`` (before connect; one connection's sockets, one client key pair) clients that
        only talk to the holder of ``server_key`` (a raw Ed25519 public key)."""


BatchProtect = Callable[[bytes, bytearray, int, "array[int]"], int]
"""``protect(packet, out, stride, lengths) -> protected``: see :meth:`MediaCipher.batch_protector`."""


class MediaSession(ABC):
    """One link's media protection, both directions."""

    @abstractmethod
    def protect(self, packet: bytes) -> bytes | None:
        """Protect an outgoing RTP or RTCP packet; None if it must not be sent (e.g. an RTP index already
        protected with other bytes: under SRTP that would reuse a key stream)."""

    @abstractmethod
    def unprotect(self, packet: bytes, *, resent: bool = False) -> bytes | None:
        """Check and decrypt an incoming packet; None if it fails authentication or is a replay.

        ``resent``: the packet was asked for again (NACK), so a second copy of it may pass the replay
        check once (see the RTP transport's ``resend`` module)."""


class MediaCipher(Cipher):
    """Protects RTP/RTCP packets (SRTP), keyed over the link's already protected control channel."""

    @abstractmethod
    def new_keys(self) -> dict[str, str]:
        """Fresh keying material for one link (both directions), as JSON-safe strings."""

    @abstractmethod
    def session(self, keys: Mapping[str, Any], *, server_side: bool) -> MediaSession:
        """The session one end of a link uses; ConfError if ``keys`` are not valid."""

    def batch_protector(self, sessions: Sequence[MediaSession]) -> BatchProtect | None:
        """One call that protects a packet for every one of ``sessions`` (a server's fan-out), or None.

        The call, ``protect(packet, out, stride, lengths)``, writes the packet protected for
        ``sessions[i]`` at ``out[i * stride:]`` and its length in ``lengths[i]`` (an ``array("i")``), or -1
        where that session refuses it (as :meth:`MediaSession.protect` returning None); it returns how
        many were protected. ``stride`` leaves room for the packet and the cipher's overhead. The result
        must be byte for byte what each session's :meth:`~MediaSession.protect` would have given, and
        change each session's state the same way. None (the default): the transport calls each
        session's ``protect`` in turn."""
        return None


class Trust:
    """The client's decision about a server key: pinned per URL on first use (or given by --fingerprint)."""

    def __init__(
        self,
        url: str,
        expected: str | None = None,
        known_hosts: KnownHosts | None = None,
        notice: Callable[[str], None] | None = None,
        pin: bool = True,
        expected_from: str = "given with --fingerprint",
    ) -> None:
        self.url = url
        self.pin = pin
        self.expected_from = expected_from
        """Where ``expected`` came from, for the refusal (a cluster's redirect names it too)."""
        """False: check ``expected`` only and leave known_hosts alone (a benchmark's throwaway server)."""
        self.expected = expected
        self.known_hosts = known_hosts or KnownHosts()
        self.notice = notice or (lambda text: print(f"conf: {text}", file=sys.stderr, flush=True))
        self.accepted: bytes | None = None

    def pinned(self) -> bytes | None:
        """The key already trusted for this URL (the pinned one, unless --fingerprint names another)."""
        key = self.known_hosts.get(self.url)
        if key is not None and self.expected is not None and fingerprint(key) != self.expected:
            return None
        return key

    def check(self, key: bytes) -> None:
        """Accept ``key`` for this URL or raise ConfError; pin it on first use."""
        shown = fingerprint(key)
        if self.expected is not None:
            if shown != self.expected:
                raise ConfError(
                    f"the server at {self.url} presented key {shown}, not {self.expected} "
                    f"{self.expected_from}: refusing to connect (a man in the middle, or the wrong "
                    "fingerprint)"
                )
            if self.pin and self.known_hosts.get(self.url) != key:
                self.known_hosts.add(self.url, key)
            self.accepted = key
            return
        pinned = self.known_hosts.get(self.url)
        if pinned is None:
            self.known_hosts.add(self.url, key)
            self.notice(
                f"first connection to {self.url}: its key is {shown}; trusted from now on "
                f"(pinned in {self.known_hosts.path})"
            )
        elif pinned != key:
            raise ConfError(
                f"WARNING: the key of {self.url} has CHANGED from {fingerprint(pinned)} to {shown}: "
                "someone may be intercepting the connection, or the server's key was replaced; refusing. "
                f"If you trust the new key, run `conf known-hosts forget {self.url}` (or pass "
                f"--fingerprint {shown})"
            )
        self.accepted = key


@dataclass
class Security:
    """What transports need to protect links: the loaded ciphers and this end's identity or trust."""

    ciphers: Mapping[str, Cipher]
    identity: Identity | None = None
    trust: Trust | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def stream(self, name: str = "tls") -> StreamCipher:
        """The stream cipher plugin ``name`` (TLS)."""
        cipher = self._find(name)
        if not isinstance(cipher, StreamCipher):
            raise self._missing(name)
        return cipher

    def message(self, name: str = "curve") -> MessageCipher:
        """The message cipher plugin ``name`` (ZeroMQ CURVE)."""
        cipher = self._find(name)
        if not isinstance(cipher, MessageCipher):
            raise self._missing(name)
        return cipher

    def media(self, name: str = "srtp") -> MediaCipher:
        """The media cipher plugin ``name`` (SRTP)."""
        cipher = self._find(name)
        if not isinstance(cipher, MediaCipher):
            raise self._missing(name)
        return cipher

    def _find(self, name: str) -> Cipher:
        cipher = self.ciphers.get(name)
        if cipher is None:
            raise self._missing(name)
        return cipher

    @staticmethod
    def _missing(name: str) -> ConfError:
        return ConfError(
            f"no {name!r} cipher plugin is loaded (see `conf plugins`); it is needed for encryption, "
            "or run with --encryption none"
        )

    def check_server(self, key: bytes) -> None:
        """Client side: accept the server's key or raise ConfError."""
        if self.trust is None:
            raise ConfError("no trust settings on a client link")
        self.trust.check(key)


def check_fingerprint(text: str) -> str:
    """``text`` if it looks like a fingerprint conf prints; ConfError otherwise."""
    if not _FINGERPRINT.fullmatch(text):
        raise ConfError(
            f"bad fingerprint {text!r}: expected SHA256: and 43 base64 characters, as `conf server` prints"
        )
    return text


def client_security(
    ciphers: Mapping[str, Cipher],
    url: str,
    encryption: str = "on",
    expected: str | None = None,
    *,
    pin: bool = True,
) -> Security | None:
    """What a client to ``url`` uses: None with ``encryption="none"`` (after saying so on stderr).

    ``pin=False`` needs ``expected`` and leaves known_hosts alone."""
    if encryption == "none":
        if expected is not None:
            raise ConfError("--fingerprint needs encryption; drop --encryption none")
        print(f"conf: {PLAINTEXT_WARNING}", file=sys.stderr, flush=True)
        return None
    if encryption != "on":
        raise ConfError(f"bad --encryption {encryption!r}: expected one of {', '.join(ENCRYPTION_CHOICES)}")
    if not pin and expected is None:
        raise ConfError("a client that does not pin the server's key must be given its fingerprint")
    trust = Trust(url, check_fingerprint(expected) if expected else None, pin=pin)
    return Security(ciphers, trust=trust)


def server_security(
    ciphers: Mapping[str, Cipher], encryption: str = "on", identity_file: Path | None = None
) -> Security | None:
    """What a server uses: its identity (created on first start), or None with ``encryption="none"``."""
    if encryption == "none":
        print(f"conf: {PLAINTEXT_WARNING}", file=sys.stderr, flush=True)
        return None
    if encryption != "on":
        raise ConfError(f"bad --encryption {encryption!r}: expected one of {', '.join(ENCRYPTION_CHOICES)}")
    return Security(ciphers, identity=Identity.load_or_create(identity_file))
