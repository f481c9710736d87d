"""Access tokens: who may join which meeting, under which name and role, without the passcode.

``conf token create`` (run where the server keeps its folder) signs a JSON Web Token (RFC 7519) with the
server's *token key*: 32 random bytes in ``token.key`` beside the identity key (mode 0600), made on the
server's first start. The signature is HMAC-SHA256 (``HS256``): only this server checks its tokens, so
the key that signs is the key that checks, and it never leaves the server's folder. It is a key of its own
rather than the identity key: replacing ``token.key`` (and restarting) revokes every token at once while
the key every client has pinned stays the same, and a key used for one thing only cannot be talked into
signing for another.

A token says (claims): ``sub`` the person's name, ``meeting`` a meeting ID or ``*`` (any meeting on this
server), ``role`` (``host``, ``admin``, ``member``), ``can_publish`` (the media kinds they may share),
``iat`` and ``exp`` (Unix seconds), ``iss`` (``conf``) and ``jti`` (a random ID, for logs). The header
names the algorithm and ``kid``, a digest of the key, which only lets a refusal say whether a token was
signed by another key or altered.

:func:`read` checks the signature and the claims' shapes (JWT decoding is pyjwt's); whether a token admits
someone *now* is :meth:`AccessToken.admits`, which takes the time as an argument (the hub passes it).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from conf_cli.errors import ConfError, ProtocolError
from conf_cli.paths import private_dir, server_dir
from conf_cli.protocol.control import MAX_TOKEN_CHARS, MEDIA_KINDS, check_name, name_key
from conf_cli.server.passcode import normalise_meeting_id
from conf_cli.server.people import Grant, Role

TOKEN_KEY_FILE = "token.key"
KEY_BYTES = 32
ALGORITHM = "HS256"
ISSUER = "conf"
ANY_MEETING = "*"
LEEWAY = 10.0
"""Seconds a token is still taken after its ``exp`` (and before its ``iat``): clocks drift a little."""
MAX_TTL = 366 * 24 * 3600.0
_KID_LABEL = b"conf token key id"
GATEWAY_TAGS = ("WHIP", "WHEP")
"""A token for NAME also lets ``NAME (WHIP)`` and ``NAME (WHEP)`` in: the web service's WHIP publisher and
WHEP player of the same person, named for what they are."""


class TokenRefused(Exception):
    """A token that admits nobody here, and why (in words for the person holding it)."""


@dataclass(frozen=True)
class TokenKey:
    """The server's token key."""

    secret: bytes
    path: Path | None = None

    @property
    def kid(self) -> str:
        """Names the key in a token's header without telling anything about it."""
        return hashlib.sha256(_KID_LABEL + self.secret).hexdigest()[:16]

    @classmethod
    def generate(cls) -> TokenKey:
        return cls(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def load_or_create(cls, path: Path | None = None) -> TokenKey:
        """Read the key at ``path`` (default ``server_dir()/token.key``), creating it (0600) if absent."""
        path = path or server_dir() / TOKEN_KEY_FILE
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            return cls._create(path)
        except OSError as exc:
            raise ConfError(f"cannot read the token key {path}: {exc.strerror or exc}") from None
        try:
            secret = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            secret = b""
        if len(secret) != KEY_BYTES:
            raise ConfError(
                f"the token key {path} is not {KEY_BYTES} bytes in base64; remove it to make a new one"
            )
        return cls(secret, path)

    @classmethod
    def _create(cls, path: Path) -> TokenKey:
        key = cls(secrets.token_bytes(KEY_BYTES), path)
        try:
            private_dir(path.parent)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(base64.b64encode(key.secret).decode() + "\n")
        except FileExistsError:  # another process made it first: use theirs
            return cls.load_or_create(path)
        except OSError as exc:
            raise ConfError(f"cannot create the token key {path}: {exc.strerror or exc}") from None
        return key


@dataclass(frozen=True)
class AccessToken:
    """What a token with a good signature says."""

    name: str
    meeting: str | None
    """The meeting it opens; None: any meeting on this server."""
    role: Role
    can_publish: frozenset[str]
    issued: float
    expires: float
    token_id: str

    @property
    def grant(self) -> Grant:
        """What the meeting rules give its holder."""
        return Grant(self.role, self.can_publish)

    def admits(self, meeting_id: str, name: str, now: float) -> None:
        """Raise TokenRefused unless this token lets ``name`` into meeting ``meeting_id`` at ``now`` (Unix
        seconds): not expired (with :data:`LEEWAY`), not issued in the future, for that meeting (or any),
        for that name (compared as names are)."""
        if now > self.expires + LEEWAY:
            raise TokenRefused(f"this access token expired at {_utc(self.expires)}; ask for a new one")
        if self.issued > now + LEEWAY:
            raise TokenRefused(
                f"this access token was issued in the future ({_utc(self.issued)}): the clock of whoever "
                "made it is wrong"
            )
        if self.meeting is not None and self.meeting != meeting_id:
            raise TokenRefused(f"this access token is for meeting {self.meeting}, not {meeting_id}")
        self.name_for(name)

    def name_for(self, name: str) -> str:
        """The name this token lets ``name`` in under: its own (as the token spells it), or its own and a
        gateway's tag (:data:`GATEWAY_TAGS`); raise TokenRefused for any other."""
        for candidate in (self.name, *(f"{self.name} ({tag})" for tag in GATEWAY_TAGS)):
            if name_key(name) == name_key(candidate):
                return candidate
        raise TokenRefused(f"this access token is for {self.name!r}, not {name!r}")


def issue(
    key: TokenKey,
    *,
    name: str,
    meeting: str | None,
    role: Role,
    can_publish: Iterable[str],
    ttl: float,
    now: float,
) -> str:
    """A token for ``name`` in ``meeting`` (None: any) as ``role``, valid ``ttl`` seconds from ``now``."""
    try:
        check_name(name, "--name")
    except ProtocolError as exc:
        raise ConfError(str(exc)) from None
    kinds = sorted(set(can_publish))
    unknown = [kind for kind in kinds if kind not in MEDIA_KINDS]
    if unknown:
        raise ConfError(f"--can-publish: unknown kind {unknown[0]!r}; kinds are {', '.join(MEDIA_KINDS)}")
    if not 0 < ttl <= MAX_TTL:
        raise ConfError(f"--ttl must be more than 0 and at most {MAX_TTL / 86400:g} days")
    if meeting is not None:
        meeting = normalise_meeting_id(meeting)
        if len(meeting) != 12 or not meeting.replace("-", "").isalnum():
            raise ConfError(f"--meeting {meeting!r} is not a meeting ID (they look like k7m-q2xw-9fd)")
    payload: dict[str, Any] = {
        "iss": ISSUER,
        "sub": name,
        "meeting": ANY_MEETING if meeting is None else meeting,
        "role": str(role),
        "can_publish": kinds,
        "iat": int(now),
        "exp": int(now + ttl),
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(payload, key.secret, algorithm=ALGORITHM, headers={"kid": key.kid})


def read(token: str, key: TokenKey) -> AccessToken:
    """The claims of ``token`` if ``key`` signed it; TokenRefused saying why not otherwise."""
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenRefused(f"an access token has at most {MAX_TOKEN_CHARS} characters")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenRefused("this is not an access token (not a JSON Web Token)") from None
    algorithm = header.get("alg")
    if algorithm != ALGORITHM:
        raise TokenRefused(
            f"this access token says it is signed with {str(algorithm)[:20]!r}; conf takes only {ALGORITHM} "
            "tokens signed with the server's token key"
        )
    try:
        payload = jwt.decode(
            token,
            key.secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={
                "require": ["iss", "sub", "iat", "exp"],
                "verify_exp": False,  # checked against the time the caller gives (AccessToken.admits)
                "verify_iat": False,
                "verify_nbf": False,
                "verify_aud": False,
            },
        )
    except jwt.InvalidSignatureError:
        if header.get("kid") != key.kid:
            raise TokenRefused(
                "this access token was signed with another key: another server's, or this server's "
                "before its token key was replaced"
            ) from None
        raise TokenRefused("this access token was altered: its signature does not match") from None
    except jwt.MissingRequiredClaimError as exc:
        raise TokenRefused(f"this access token has no {exc.claim!r} claim") from None
    except jwt.InvalidIssuerError:
        raise TokenRefused(f"this access token was not issued by conf (iss is not {ISSUER!r})") from None
    except jwt.PyJWTError as exc:
        raise TokenRefused(f"this is not a valid access token: {exc}") from None
    return _claims(payload)


def peek(token: str) -> dict[str, Any]:
    """A token's claims, unchecked: for showing what it says, never for deciding anything."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise ConfError("this is not an access token (not a JSON Web Token)") from None
    return claims if isinstance(claims, dict) else {}


def _claims(payload: dict[str, Any]) -> AccessToken:
    """The claims of a signed token, each checked for its type (the key's holder made them, but a bug or
    another tool's token must not reach the meeting rules)."""
    name = payload.get("sub")
    if not isinstance(name, str):
        raise TokenRefused("this access token's name (sub) is not text")
    try:
        check_name(name, "the token's name")
    except ProtocolError as exc:
        raise TokenRefused(str(exc)) from None
    meeting = payload.get("meeting")
    if not isinstance(meeting, str) or not meeting or len(meeting) > 64:
        raise TokenRefused("this access token names no meeting")
    role = payload.get("role", "member")
    if role not in {str(r) for r in Role}:
        raise TokenRefused(f"this access token's role is not one of {', '.join(str(r) for r in Role)}")
    kinds = payload.get("can_publish", list(MEDIA_KINDS))
    if not isinstance(kinds, list) or any(kind not in MEDIA_KINDS for kind in kinds):
        raise TokenRefused(f"this access token's can_publish is not a list of {', '.join(MEDIA_KINDS)}")
    issued, expires = payload.get("iat"), payload.get("exp")
    if not all(isinstance(t, int | float) and not isinstance(t, bool) for t in (issued, expires)):
        raise TokenRefused("this access token's times (iat, exp) are not numbers")
    assert isinstance(issued, int | float) and isinstance(expires, int | float)
    token_id = payload.get("jti")
    return AccessToken(
        name,
        None if meeting == ANY_MEETING else normalise_meeting_id(meeting),
        Role(role),
        frozenset(kinds),
        float(issued),
        float(expires),
        token_id if isinstance(token_id, str) else "",
    )


def parse_ttl(text: str) -> float:
    """``90`` or ``90s``, ``30m``, ``1h``, ``7d`` → seconds; ConfError otherwise."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    given = text.strip().lower()
    number, unit = (given[:-1], given[-1]) if given and given[-1] in units else (given, "s")
    try:
        value = float(number) * units[unit]
    except ValueError:
        raise ConfError(f"bad --ttl {text!r}: expected a number with s, m, h or d (1h, 30m, 7d)") from None
    if not 0 < value <= MAX_TTL:
        raise ConfError(f"--ttl must be more than 0 and at most {MAX_TTL / 86400:g} days")
    return value


def _utc(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
