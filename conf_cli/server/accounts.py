"""Server accounts: names and scrypt-hashed passwords in an SQLite file (standard library ``sqlite3``).

``conf user add|remove|list`` edits the file; ``conf server --require-login`` reads it. The server opens
the file afresh for each login (in a worker thread: hashing blocks), so accounts added or removed while
it runs count at once. Names are compared as :func:`~conf_cli.protocol.control.name_key` does (NFKC,
case-folded) and stored as given.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from conf_cli.errors import ConfError, ProtocolError
from conf_cli.paths import private_dir, server_dir
from conf_cli.protocol.control import MAX_PASSWORD_CHARS, check_name, name_key
from conf_cli.server.passcode import PasscodeHash

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    name TEXT NOT NULL,
    folded TEXT NOT NULL PRIMARY KEY,
    salt BLOB NOT NULL,
    digest BLOB NOT NULL
)
"""
_NOBODY = PasscodeHash(b"\0" * 16, b"\0" * 64)
"""Checked against for an unknown name, so that it costs as much time as a known one."""


def default_accounts_path() -> Path:
    return server_dir() / "accounts.db"


def check_password(password: str) -> None:
    if not password:
        raise ConfError("the password must not be empty")
    if len(password) > MAX_PASSWORD_CHARS:
        raise ConfError(f"the password must be at most {MAX_PASSWORD_CHARS} characters")


class AccountStore:
    """The accounts file of one server."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_accounts_path()

    @contextlib.contextmanager
    def _db(self, *, create: bool = False) -> Iterator[sqlite3.Connection]:
        if create:
            private_dir(self.path.parent)
        elif not self.path.exists():
            raise ConfError(f"no accounts file at {self.path}; add one with `conf user add NAME`")
        try:
            db = sqlite3.connect(self.path, timeout=5.0)
        except sqlite3.Error as exc:
            raise ConfError(f"cannot open the accounts file {self.path}: {exc}") from None
        try:
            with db:
                db.execute(_SCHEMA)
                yield db
        except sqlite3.DatabaseError as exc:
            raise ConfError(f"the accounts file {self.path} cannot be used: {exc}") from None
        finally:
            db.close()
        if create:
            self.path.chmod(0o600)

    def add(self, name: str, password: str) -> None:
        """Add an account (hashing takes a moment); ConfError if the name is bad or taken."""
        try:
            check_name(name, "account name")
        except ProtocolError as exc:
            raise ConfError(str(exc)) from None
        check_password(password)
        hashed = PasscodeHash.of(password)
        with self._db(create=True) as db:
            try:
                db.execute(
                    "INSERT INTO accounts (name, folded, salt, digest) VALUES (?, ?, ?, ?)",
                    (name, name_key(name), hashed.salt, hashed.digest),
                )
            except sqlite3.IntegrityError:
                raise ConfError(f"an account named {name!r} exists already") from None

    def remove(self, name: str) -> None:
        with self._db() as db:
            if db.execute("DELETE FROM accounts WHERE folded = ?", (name_key(name),)).rowcount == 0:
                raise ConfError(f"no account named {name!r}")

    def names(self) -> list[str]:
        if not self.path.exists():
            return []
        with self._db() as db:
            return [row[0] for row in db.execute("SELECT name FROM accounts ORDER BY folded")]

    def exists(self, name: str) -> bool:
        """Whether ``name`` is an account's (compared by ``name_key``)."""
        if not self.path.exists():
            return False
        with self._db() as db:
            return (
                db.execute("SELECT 1 FROM accounts WHERE folded = ?", (name_key(name),)).fetchone()
                is not None
            )

    def verify(self, name: str, password: str) -> tuple[str, str]:
        """``("ok", stored name)``, ``("unknown", name)`` or ``("wrong", name)``.

        Blocks (it hashes, even for an unknown name): run it in a thread."""
        row = None
        if self.path.exists():
            with self._db() as db:
                row = db.execute(
                    "SELECT name, salt, digest FROM accounts WHERE folded = ?", (name_key(name),)
                ).fetchone()
        if row is None:
            _NOBODY.matches(password)
            return "unknown", name
        stored, salt, digest = row
        if PasscodeHash(bytes(salt), bytes(digest)).matches(password):
            return "ok", str(stored)
        return "wrong", name
