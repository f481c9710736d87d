"""conf: a command-line conferencing toolkit.

This package's top level is the API for plugin authors: everything a plugin needs is importable from
``conf_cli`` itself (``from conf_cli import hookimpl, Transport, Link``), and the names in ``__all__`` are
the whole of it, together with the wire formats and media payloads a plugin may speak (the modules
``conf_cli.protocol.*``, ``conf_cli.media.*``, and ``conf_cli.urls``, ``conf_cli.identity``,
``conf_cli.latch``, ``conf_cli.paths``, ``conf_cli.addresses``, ``conf_cli.machine``,
``conf_cli.text``). Nothing else of conf_cli is for plugins: the server, the client's meeting loop and
the command line may change without notice. See docs/plugins.md.

The names are imported on first use, so that ``import conf_cli`` (and loading a plugin) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from conf_cli.version import __version__

if TYPE_CHECKING:
    from conf_cli.errors import ConfError, MediaUnreachable, ProtocolError, RequestRefused
    from conf_cli.loops import run_main
    from conf_cli.media.source import (
        CapturedFrame,
        DeviceInfo,
        EncodedSink,
        EncodedUnit,
        Frame,
        MediaKind,
        Pacer,
        Sink,
        SinkFactory,
        Source,
        SourceFactory,
        ThreadedSource,
    )
    from conf_cli.plugin.cluster import ClusterBackend, ClusterBackendFactory, DirectoryUnavailable
    from conf_cli.plugin.hookspecs import hookimpl, hookspec
    from conf_cli.plugin.injector import Injector, InjectorFactory
    from conf_cli.plugin.lazy import LazyFactory
    from conf_cli.plugin.security import (
        BatchProtect,
        Cipher,
        MediaCipher,
        MediaSession,
        MessageCipher,
        Security,
        StreamCipher,
    )
    from conf_cli.plugin.services import Participant, RunningService, ServerService, ServiceContext
    from conf_cli.plugin.stream import (
        CONTROL_BUFFER_LIMIT,
        HANDSHAKE_TIMEOUT,
        MEDIA_BUFFER_LIMIT,
        StreamLink,
        open_stream,
        server_tls,
    )
    from conf_cli.plugin.transport import (
        ClientEvents,
        Link,
        LinkStats,
        Listener,
        ServerEvents,
        Transport,
        TransportOptions,
        next_link_id,
    )

_EXPORTS: dict[str, tuple[str, ...]] = {
    # plugins and their hooks
    "conf_cli.plugin.hookspecs": ("hookimpl", "hookspec"),
    "conf_cli.plugin.lazy": ("LazyFactory",),
    "conf_cli.errors": ("ConfError", "MediaUnreachable", "ProtocolError", "RequestRefused"),
    # transports
    "conf_cli.plugin.transport": (
        "ClientEvents",
        "Link",
        "LinkStats",
        "Listener",
        "ServerEvents",
        "Transport",
        "TransportOptions",
        "next_link_id",
    ),
    "conf_cli.plugin.stream": (
        "CONTROL_BUFFER_LIMIT",
        "HANDSHAKE_TIMEOUT",
        "MEDIA_BUFFER_LIMIT",
        "StreamLink",
        "open_stream",
        "server_tls",
    ),
    # media sources and sinks
    "conf_cli.media.source": (
        "CapturedFrame",
        "DeviceInfo",
        "DirectoryUnavailable",
        "EncodedSink",
        "EncodedUnit",
        "Frame",
        "MediaKind",
        "Pacer",
        "Sink",
        "SinkFactory",
        "Source",
        "SourceFactory",
        "ThreadedSource",
    ),
    # ciphers
    "conf_cli.plugin.security": (
        "BatchProtect",
        "Cipher",
        "MediaCipher",
        "MediaSession",
        "MessageCipher",
        "Security",
        "StreamCipher",
    ),
    # input injectors (remote control)
    "conf_cli.plugin.injector": ("Injector", "InjectorFactory"),
    # server services
    "conf_cli.plugin.services": ("Participant", "RunningService", "ServerService", "ServiceContext"),
    # cluster backends (the directory of conf server --cluster)
    "conf_cli.plugin.cluster": ("ClusterBackend", "ClusterBackendFactory", "DirectoryUnavailable"),
    # commands
    "conf_cli.loops": ("run_main",),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "CONTROL_BUFFER_LIMIT",
    "HANDSHAKE_TIMEOUT",
    "MEDIA_BUFFER_LIMIT",
    "BatchProtect",
    "CapturedFrame",
    "Cipher",
    "ClientEvents",
    "ClusterBackend",
    "ClusterBackendFactory",
    "ConfError",
    "DeviceInfo",
    "DirectoryUnavailable",
    "EncodedSink",
    "EncodedUnit",
    "Frame",
    "Injector",
    "InjectorFactory",
    "LazyFactory",
    "Link",
    "LinkStats",
    "Listener",
    "MediaCipher",
    "MediaKind",
    "MediaSession",
    "MediaUnreachable",
    "MessageCipher",
    "Pacer",
    "Participant",
    "ProtocolError",
    "RequestRefused",
    "RunningService",
    "Security",
    "ServerEvents",
    "ServerService",
    "ServiceContext",
    "Sink",
    "SinkFactory",
    "Source",
    "SourceFactory",
    "StreamCipher",
    "StreamLink",
    "ThreadedSource",
    "Transport",
    "TransportOptions",
    "__version__",
    "hookimpl",
    "hookspec",
    "next_link_id",
    "open_stream",
    "run_main",
    "server_tls",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'conf_cli' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup does not come here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
