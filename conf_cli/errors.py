"""The exception types conf raises. Each carries a message a person can act on."""

from __future__ import annotations


class ConfError(Exception):
    """An error a user sees as one line on stderr (never a traceback)."""

    exit_code = 1


class MediaUnreachable(ConfError):
    """The link's control connection works but its media path does not (``rtp://``: no answer over UDP).

    ``conf doctor`` tells this apart from a server that cannot be reached at all."""


class ProtocolError(ValueError):
    """Bytes that do not parse: a malformed frame, packet or message.

    Every sans-I/O parser raises this one type, with an exact message.
    """


class RequestRefused(ConfError):
    """The server refused a request; ``code`` is the machine-readable error code of docs/protocol.md."""

    def __init__(self, code: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after
        """For ``rate_limited``: the seconds until the request would be allowed."""
