"""The accounts file: add, remove, list, verify; scrypt-hashed; clear errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from conf_cli.errors import ConfError
from conf_cli.server.accounts import AccountStore, default_accounts_path

pytestmark = pytest.mark.usefixtures("cheap_scrypt")


def test_add_verify_list_remove(tmp_path: Path):
    store = AccountStore(tmp_path / "server" / "accounts.db")
    store.add("Ada", "hunter2")
    store.add("bob", "pw")
    assert store.names() == ["Ada", "bob"]
    assert store.verify("ada", "hunter2") == ("ok", "Ada")  # any case; the stored spelling comes back
    assert store.verify("Ada", "hunter3") == ("wrong", "Ada")
    assert store.verify("Zed", "x") == ("unknown", "Zed")
    assert store.exists("ADA") and not store.exists("Zed")
    store.remove("BOB")
    assert store.names() == ["Ada"]
    assert (store.path.stat().st_mode & 0o777) == 0o600
    assert (store.path.parent.stat().st_mode & 0o777) == 0o700


def test_passwords_are_stored_only_as_salted_hashes(tmp_path: Path):
    store = AccountStore(tmp_path / "accounts.db")
    store.add("Ada", "hunter2")
    store.add("Bob", "hunter2")
    raw = store.path.read_bytes()
    assert b"hunter2" not in raw
    with sqlite3.connect(store.path) as db:
        salts = {row[0] for row in db.execute("SELECT salt FROM accounts")}
    assert len(salts) == 2


def test_mistakes_are_one_clear_line(tmp_path: Path):
    store = AccountStore(tmp_path / "accounts.db")
    with pytest.raises(ConfError, match="no accounts file"):
        store.remove("Ada")
    assert store.names() == []
    assert store.verify("Ada", "x") == ("unknown", "Ada")
    assert not store.exists("Ada")
    store.add("Ada", "pw")
    with pytest.raises(ConfError, match="exists already"):
        store.add("ADA", "other")
    with pytest.raises(ConfError, match="no account named 'Zed'"):
        store.remove("Zed")
    with pytest.raises(ConfError, match="account name must not start with '/'"):
        store.add("/admin", "pw")
    with pytest.raises(ConfError, match="must not be empty"):
        store.add("Cy", "")
    (tmp_path / "junk.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(ConfError, match="cannot be used"):
        AccountStore(tmp_path / "junk.db").names()


def test_the_default_file_lives_in_the_server_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CONF_HOME", str(tmp_path))
    assert default_accounts_path() == tmp_path / "server" / "accounts.db"
    AccountStore().add("Ada", "pw")
    assert (tmp_path / "server" / "accounts.db").exists()


def test_names_that_differ_only_in_width_or_case_are_one_account(tmp_path: Path):
    """A guest must not take a full-width "Ada" beside the account "Ada", nor add it as a second one."""
    store = AccountStore(tmp_path / "accounts.db")
    store.add("Ada", "hunter2")
    full_width = "\uff21\uff44\uff41"
    assert store.exists(full_width) and store.exists("\uff41\uff44\uff41")
    assert store.verify(full_width, "hunter2") == ("ok", "Ada")
    with pytest.raises(ConfError, match="exists already"):
        store.add(full_width, "other")
