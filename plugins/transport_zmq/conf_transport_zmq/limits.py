"""The bounds and timers both ends of a zmq:// connection keep (:mod:`.server`, :mod:`.client`)."""

from __future__ import annotations

ZMTP_HEARTBEAT_MS = 2_000
"""A ZMTP PING every 2 s on each connection."""
SILENT_LIMIT = 3 * ZMTP_HEARTBEAT_MS / 1000
"""Seconds a connection may send no whole frame (PINGs and PONGs count) before it is dropped."""
ZMTP_HANDSHAKE_MS = 5_000
"""A connection that has not finished ZeroMQ's handshake by then is dropped (libzmq's default is 30 s)."""
MEDIA_BUFFER_LIMIT = 256 * 1024
"""Media is dropped for a peer once this much is waiting to be sent to it (its connection's write
buffer, and on the server what this event-loop turn gathered)."""
CONTROL_BUFFER_LIMIT = 4 * 1024 * 1024
"""A peer that lets this much wait unsent is too slow to keep: its link is closed."""
MAX_MESSAGE_PARTS = 3
"""Parts of one message kept (a conf message has one or two); the rest are read and dropped."""
