"""The hook specifications every conf plugin implements.

A plugin is a module (or object) with functions marked ``@hookimpl``; it is found through the ``conf``
entry-point group, exactly like the built-in plugins under ``plugins/``. pluggy has no async hooks, so
hooks return factories or objects, and async work happens in what they return.

Collections are registered through a ``register`` callable handed to the plugin::

    @hookimpl
    def conf_register_transports(register):
        register(MyTransport())

Each collection is keyed by name: when two plugins register the same name, the first to register it
keeps it (pluggy calls the plugin loaded last first) and conf logs a warning naming both. A hook
implementation that matches no hookspec (a misspelt hook name) leaves its plugin out, with a warning.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from conf_cli.media.source import SinkFactory, SourceFactory
    from conf_cli.plugin.cluster import ClusterBackendFactory
    from conf_cli.plugin.injector import InjectorFactory
    from conf_cli.plugin.lazy import LazyFactory
    from conf_cli.plugin.security import Cipher
    from conf_cli.plugin.services import ServerService
    from conf_cli.plugin.transport import Transport

hookspec = pluggy.HookspecMarker("conf")
hookimpl = pluggy.HookimplMarker("conf")


# --------------------------------------------------------------------------------------------------
# Transports: how bytes move between clients and the server
# --------------------------------------------------------------------------------------------------


@hookspec
def conf_register_transports(register: Callable[[Transport], None]) -> None:
    """Register transport objects (see :class:`conf_cli.plugin.transport.Transport`).

    Each transport names the URL schemes it serves (``tcp``, ``zmq``, ``rtp`` ...).
    """


# --------------------------------------------------------------------------------------------------
# Media: capture sources, codecs and sinks
# --------------------------------------------------------------------------------------------------


@hookspec
def conf_register_sources(register: Callable[[SourceFactory | LazyFactory], None]) -> None:
    """Register media source factories (screen, microphone, camera, file, synthetic ...).

    See :class:`conf_cli.SourceFactory` for the interface a source factory implements; a
    :class:`conf_cli.LazyFactory` stands for one whose module is heavy to import.
    """


@hookspec
def conf_register_sinks(register: Callable[[SinkFactory | LazyFactory], None]) -> None:
    """Register media sink factories (speaker, recorder, terminal preview, window ...).

    See :class:`conf_cli.SinkFactory` for the interface a sink factory implements.
    """


@hookspec
def conf_register_injectors(register: Callable[[InjectorFactory | LazyFactory], None]) -> None:
    """Register input injectors: what replays a remote controller's pointer and keys on this desktop.

    See :class:`conf_cli.InjectorFactory` for the interface an injector factory implements.
    """


# --------------------------------------------------------------------------------------------------
# Security: ciphers for links and media
# --------------------------------------------------------------------------------------------------


@hookspec
def conf_register_ciphers(register: Callable[[Cipher], None]) -> None:
    """Register link or media ciphers (TLS, CURVE, SRTP, SFrame ...): see :class:`conf_cli.Cipher`."""


# --------------------------------------------------------------------------------------------------
# Server services: gateways and pages that run inside `conf server`
# --------------------------------------------------------------------------------------------------


@hookspec
def conf_register_server_services(register: Callable[[ServerService], None]) -> None:
    """Register services that run inside ``conf server`` (see
    :class:`conf_cli.plugin.services.ServerService`).

    Each adds its own ``conf server`` options and joins meetings through an in-process link.
    """


# --------------------------------------------------------------------------------------------------
# Clusters: the directory many servers share
# --------------------------------------------------------------------------------------------------


@hookspec
def conf_register_cluster_backends(register: Callable[[ClusterBackendFactory], None]) -> None:
    """Register cluster backend factories (see :class:`conf_cli.ClusterBackendFactory`).

    Each names the URL schemes it serves (``redis``, ``nats`` ...): ``conf server --cluster URL`` and
    ``conf cluster status --cluster URL`` use the factory of the URL's scheme.
    """


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


@hookspec
def conf_register_commands(register: Callable[[click.Command], None]) -> None:
    """Register click commands or groups for the ``conf`` command line (``conf play`` is one).

    Called once, when the command line starts; a command whose name conf or an earlier plugin already
    uses is left out, with a warning. Import heavy modules inside the command's body, not here.
    """


@hookspec(
    warn_on_impl=DeprecationWarning(
        "conf_add_commands is deprecated: implement conf_register_commands(register) instead"
    )
)
def conf_add_commands(cli: click.Group) -> None:
    """Deprecated: add click commands or groups to the ``conf`` group. Use ``conf_register_commands``."""
