"""Where conf keeps what outlives a process: the server's identity, pinned server keys, accounts, and
the admin API's and webhooks' secrets.

Everything lives under one folder: ``$CONF_HOME`` if set, else ``$XDG_CONFIG_HOME/conf``, else
``~/.config/conf``. Tests point ``CONF_HOME`` at a temporary folder so they never touch the user's own.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from conf_cli.errors import ConfError

ADMIN_KEY_FILE = "admin.key"
"""The admin API's bearer key, in the server's folder (``conf server --admin-port``)."""
ADMIN_URL_FILE = "admin.url"
"""Where a running server's admin API listens, in the server's folder (for ``conf admin``)."""
WEBHOOK_KEY_FILE = "webhook.key"
"""The webhooks' signing secret, in the server's folder (``conf server --webhook``)."""
MIN_SECRET_CHARS = 16


def config_dir() -> Path:
    """conf's folder for keys and settings (not created here)."""
    explicit = os.environ.get("CONF_HOME")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg else Path.home() / ".config"
    return base / "conf"


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) readable by its owner only; return it."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def server_dir() -> Path:
    """Where a server keeps its identity key and accounts."""
    return config_dir() / "server"


def known_hosts_path() -> Path:
    """The client's pinned server identities, one line per server address."""
    return config_dir() / "known_hosts"


def read_secret(path: Path) -> str:
    """The secret kept in ``path``; ConfError if it is missing, unreadable, too short or open to others."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfError(f"no key at {path}; is this the server's folder?") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfError(f"cannot read the key {path}: {exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfError(f"the key {path} may be read by others; chmod 600 {path}")
    if len(text) < MIN_SECRET_CHARS:
        raise ConfError(f"the key {path} is too short; delete it and the server makes a new one")
    return text


def load_or_create_secret(path: Path) -> str:
    """The secret in ``path``, created first (32 random bytes, URL-safe base64, mode 0600) if absent."""
    if path.exists():
        return read_secret(path)
    secret = secrets.token_urlsafe(32)
    try:
        private_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(secret + "\n")
    except FileExistsError:  # another server process created it first: use theirs
        return read_secret(path)
    except OSError as exc:
        raise ConfError(f"cannot create the key {path}: {exc.strerror or exc}") from None
    return secret
