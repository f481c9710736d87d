"""The interface of a cluster backend: the directory that lets many ``conf server`` nodes act as one.

A backend is an existing distributed engine (Redis, NATS JetStream ...) seen through a few operations on
bytes. conf decides everything else itself (which node takes a meeting, when a claim is refreshed, what a
node record says) in :mod:`conf_cli.server.directory`; a backend only stores and answers.

A plugin registers a :class:`ClusterBackendFactory` through the ``conf_register_cluster_backends`` hook;
``conf server --cluster SCHEME://...`` picks the factory whose :attr:`~ClusterBackendFactory.schemes` hold
the URL's scheme. Three kinds of entry live in the directory, each under a time to live, so that what a
dead node held disappears on its own:

- **nodes**: one record per node (opaque bytes conf writes and reads back), replaced every few seconds;
- **claims**: which node holds a meeting. :meth:`ClusterBackend.claim` is atomic: of two nodes claiming
  one meeting ID at once, exactly one gets it (Redis ``SET NX``, a NATS key-value ``create``);
- **records**: opaque per-meeting bytes (:meth:`ClusterBackend.put_record`): each running meeting's record,
  which the node that takes a meeting over when its node dies reads back (docs/cluster.md, "Failover").

Every method raises :class:`DirectoryUnavailable` when the engine cannot be reached (or does not answer
within the timeout given to :meth:`ClusterBackendFactory.connect`), and nothing else for that reason:
conf then refuses only what needs the directory and keeps running meetings going.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from conf_cli.errors import ConfError

MAX_NAME_CHARS = 64
"""A node's name and a meeting ID are at most this long (ASCII letters, digits, ``-`` and ``_``)."""


class DirectoryUnavailable(ConfError):
    """The cluster's directory cannot be reached (or did not answer in time)."""


class ClusterBackend(ABC):
    """One node's connection to the directory. Every method may raise :class:`DirectoryUnavailable`."""

    url: str
    """The directory's URL as given (``redis://127.0.0.1:6379/0``), for messages and ``conf cluster``."""

    # -- nodes ------------------------------------------------------------------------------------------

    @abstractmethod
    async def put_node(self, node: str, record: bytes, ttl: float) -> None:
        """Store ``node``'s record, replacing the one before; it disappears ``ttl`` seconds after the
        last put."""

    @abstractmethod
    async def nodes(self) -> dict[str, bytes]:
        """Every live node's record, by node name."""

    @abstractmethod
    async def remove_node(self, node: str) -> None:
        """Remove ``node``'s record at once (a node that stops cleanly)."""

    # -- claims -----------------------------------------------------------------------------------------

    @abstractmethod
    async def claim(self, meeting: str, node: str, ttl: float) -> bool:
        """Atomically make ``node`` the holder of ``meeting`` if nobody holds it; True if ``node`` got it.
        The claim lapses ``ttl`` seconds after the last :meth:`claim` or :meth:`refresh`."""

    @abstractmethod
    async def refresh(self, meeting: str, node: str, ttl: float) -> str | None:
        """Keep ``node``'s claim of ``meeting`` alive for another ``ttl`` seconds, claiming it again if it
        lapsed (a directory that restarted empty); return the holder afterwards: ``node``, another node
        that claimed it meanwhile (then nothing is changed), or None if it cannot tell."""

    @abstractmethod
    async def holder(self, meeting: str) -> str | None:
        """The node holding ``meeting``, or None if nobody does."""

    @abstractmethod
    async def claims(self) -> dict[str, str]:
        """Every held meeting and its holder (for ``conf cluster status``)."""

    @abstractmethod
    async def release(self, meeting: str, node: str) -> None:
        """End ``node``'s claim of ``meeting`` (nothing if another node holds it)."""

    # -- per-meeting records ------------------------------------------------------------------------------

    @abstractmethod
    async def put_record(self, meeting: str, data: bytes, ttl: float) -> None:
        """Store opaque ``data`` under ``meeting``, replacing what was there; it lapses after ``ttl``."""

    @abstractmethod
    async def get_record(self, meeting: str) -> bytes | None:
        """The bytes last stored under ``meeting``, or None."""

    @abstractmethod
    async def delete_record(self, meeting: str) -> None:
        """Forget what is stored under ``meeting``."""

    # -- life cycle ---------------------------------------------------------------------------------------

    @abstractmethod
    async def close(self) -> None:
        """Close the connection (never raises)."""


class ClusterBackendFactory(ABC):
    """What a plugin registers: connects to a directory named by URL."""

    name: str
    """Unique name (``redis``, ``nats``), shown by ``conf plugins``."""
    schemes: tuple[str, ...]
    """URL schemes served (``redis``, ``rediss`` ...)."""

    @abstractmethod
    async def connect(self, url: str, *, timeout: float) -> ClusterBackend:
        """A backend for ``url``; ConfError for a bad URL. It need not reach the engine yet (a node starts
        while its directory is down and registers once it is back): every operation waits at most
        ``timeout`` seconds, then raises :class:`DirectoryUnavailable`."""


def check_key(what: str, value: str) -> str:
    """``value`` if it can name a node or meeting in any backend's keys (1 to 64 ASCII letters, digits,
    ``-`` and ``_``); ConfError otherwise."""
    if not 0 < len(value) <= MAX_NAME_CHARS or not all(
        c.isascii() and (c.isalnum() or c in "-_") for c in value
    ):
        raise ConfError(f"bad {what} {value[:80]!r}: 1 to {MAX_NAME_CHARS} ASCII letters, digits, '-' or '_'")
    return value
