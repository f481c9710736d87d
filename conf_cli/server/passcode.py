"""Meeting identifiers and passcodes: unguessable IDs, passcodes kept only as salted scrypt hashes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
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
