"""Meeting identifiers and passcodes: unguessable IDs, passcodes kept only as salted scrypt hashes, and
the in-memory key that checks a meeting's passcode fast once the server has known it (:class:`PasscodeCache`).
Sans-I/O: time is passed in as ``now``."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass

# No 0/o, 1/l/i: IDs are read aloud and typed.
_ID_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
ID_ALPHABET = _ID_ALPHABET
"""The characters of a meeting ID (``conf server --workers`` routes joins by the first one)."""
_PASSCODE_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def new_meeting_id() -> str:
    """A meeting ID like ``k7m-q2xw-9fd``: 10 characters from 31, about 49 bits, never guessable."""
    raw = "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))
    return f"{raw[:3]}-{raw[3:7]}-{raw[7:]}"


def normalise_meeting_id(text: str) -> str:
    """Accept IDs typed with spaces, upper case or without dashes."""
    raw = "".join(ch for ch in text.lower() if ch.isalnum())
    if len(raw) != 10:
        return text.strip().lower()
    return f"{raw[:3]}-{raw[3:7]}-{raw[7:]}"


def new_passcode() -> str:
    """A six-character passcode."""
    return "".join(secrets.choice(_PASSCODE_ALPHABET) for _ in range(6))


@dataclass(frozen=True)
class PasscodeHash:
    """A salted scrypt hash of a passcode; the passcode itself is not kept."""

    salt: bytes
    digest: bytes

    @classmethod
    def of(cls, passcode: str) -> PasscodeHash:
        salt = secrets.token_bytes(16)
        return cls(salt, hashlib.scrypt(passcode.encode(), salt=salt, **_SCRYPT))

    def matches(self, passcode: str) -> bool:
        candidate = hashlib.scrypt(passcode.encode(), salt=self.salt, **_SCRYPT)
        return hmac.compare_digest(candidate, self.digest)


PASSCODE_KEYS = 10_000
"""Meetings whose passcode key :class:`PasscodeCache` keeps at most; the least recently used goes first."""
KEY_IDLE_SECONDS = 24 * 3600.0
"""A key not used for this long is dropped (the next join hashes again, and keeps a new one)."""


@dataclass(frozen=True)
class _Key:
    stored: bytes
    """The digest of the :class:`PasscodeHash` the passcode was checked against: a changed hash voids it."""
    key: bytes
    """32 random bytes, drawn when the key was kept."""
    tag: bytes
    """HMAC-SHA256 of the passcode under ``key``."""


class PasscodeCache:
    """Checks of a meeting's passcode in microseconds, once the server has known it. Sans-I/O.

    A scrypt check costs tens of milliseconds of CPU on purpose: that is what makes a stolen hash slow to
    guess. Paid on every join, it made joins slow. Once the server holds a meeting's right passcode (the
    host chose it at ``create``, or a join's scrypt check matched it), it keeps, while the meeting lives, a
    random key and the HMAC-SHA256 of the passcode under that key; a later attempt is HMACed under the same
    key and compared in constant time. The stored scrypt hash is unchanged. What is kept here checks a guess
    as fast as an HMAC: it lives only in the server's memory, beside the passcodes the server reads in
    clear on every join anyway, and is dropped when the meeting ends (:meth:`forget`), when it has not
    been used for ``idle`` seconds, or when more than ``limit`` meetings have one (the least recently used).
    Without a key a check is a scrypt hash, as before.
    """

    def __init__(self, limit: int = PASSCODE_KEYS, idle: float = KEY_IDLE_SECONDS) -> None:
        self.limit = limit
        self.idle = idle
        self._keys: OrderedDict[str, tuple[_Key, float]] = OrderedDict()
        """target -> its key, and when it was last used; the least recently used first."""

    def __len__(self) -> int:
        return len(self._keys)

    def remember(self, target: str, passcode: str, stored: PasscodeHash, now: float) -> None:
        """``passcode`` is ``target``'s right passcode (it matched ``stored``, or was just hashed into it)."""
        if self.limit <= 0:
            return
        key = secrets.token_bytes(32)
        self._keys.pop(target, None)
        self._keys[target] = (_Key(stored.digest, key, _tag(key, passcode)), now)
        while len(self._keys) > self.limit:
            self._keys.popitem(last=False)

    def check(self, target: str, passcode: str, stored: PasscodeHash, now: float) -> bool | None:
        """Whether ``passcode`` is ``target``'s, or None if no key is kept for ``stored`` (hash it)."""
        self.prune(now)
        entry = self._keys.get(target)
        if entry is None:
            return None
        kept, _ = entry
        if not hmac.compare_digest(kept.stored, stored.digest):  # the passcode changed: the key is void
            del self._keys[target]
            return None
        if not hmac.compare_digest(_tag(kept.key, passcode), kept.tag):
            return False
        self._keys[target] = (kept, now)
        self._keys.move_to_end(target)
        return True

    def forget(self, target: str) -> None:
        """``target`` is gone (the meeting ended): its key goes with it."""
        self._keys.pop(target, None)

    def prune(self, now: float) -> None:
        """Drop the keys not used for ``idle`` seconds."""
        keys = self._keys
        while keys:
            target, (_, used) = next(iter(keys.items()))
            if now - used < self.idle:
                return
            del keys[target]


def _tag(key: bytes, passcode: str) -> bytes:
    return hmac.new(key, passcode.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
