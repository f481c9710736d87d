"""Where conf keeps what outlives a process: the server's identity, pinned server keys, accounts.

Everything lives under one folder: ``$CONF_HOME`` if set, else ``$XDG_CONFIG_HOME/conf``, else
``~/.config/conf``. Tests point ``CONF_HOME`` at a temporary folder so they never touch the user's own.
"""

from __future__ import annotations

import os
from pathlib import Path


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
