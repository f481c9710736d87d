"""The hook specifications every conf plugin implements.

A plugin is a module (or object) with functions marked ``@hookimpl``; it is found through the ``conf``
entry-point group, exactly like the built-in plugins under ``plugins/``. pluggy has no async hooks, so
hooks return factories or objects, and async work happens in what they return.

Collections are registered through a ``register`` callable handed to the plugin::

    @hookimpl
    def conf_register_transports(register):
        register(MyTransport())
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from conf_cli.services import ServerService
    from conf_cli.transport import Transport

hookspec = pluggy.HookspecMarker("conf")
hookimpl = pluggy.HookimplMarker("conf")


# --------------------------------------------------------------------------------------------------
# Transports: how bytes move between clients and the server
# --------------------------------------------------------------------------------------------------


@hookspec
def conf_register_transports(register: Callable[[Transport], None]) -> None:
    """Register transport objects (see :class:`conf_cli.transport.Transport`).

    Each transport names the URL schemes it serves (``tcp``, ``zmq``, ``rtp`` ...).
    """


# --------------------------------------------------------------------------------------------------
# Media: capture sources, codecs and sinks
# --------------------------------------------------------------------------------------------------


@hookspec
def conf_register_sources(register: Callable[[Any], None]) -> None:
    """Register media source factories (screen, microphone, camera, file, synthetic ...).

    See :mod:`conf_cli.media.source` for the interface a source factory implements.
    """


@hookspec
def conf_register_sinks(register: Callable[[Any], None]) -> None:
    """Register media sink factories (speaker, recorder, terminal preview, window ...).

    See :mod:`conf_cli.media.source` for the interface a sink factory implements.
    """


@hookspec
def conf_register_injectors(register: Callable[[Any], None]) -> None:
    """Register input injectors: what replays a remote controller's pointer and keys on this desktop.

    See :mod:`conf_cli.remote_control` for the interface an injector factory implements.
    """


# --------------------------------------------------------------------------------------------------
# Security: ciphers for links and media
# --------------------------------------------------------------------------------------------------


@hookspec
def conf_register_ciphers(register: Callable[[Any], None]) -> None:
    """Register link or media ciphers (TLS, CURVE, SRTP, SFrame ...)."""


# --------------------------------------------------------------------------------------------------
# Server services: gateways and pages that run inside `conf server`
# --------------------------------------------------------------------------------------------------


@hookspec
def conf_register_server_services(register: Callable[[ServerService], None]) -> None:
    """Register services that run inside ``conf server`` (see :class:`conf_cli.services.ServerService`).

    Each adds its own ``conf server`` options and joins meetings through an in-process link.
    """


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


@hookspec
def conf_add_commands(cli: click.Group) -> None:
    """Add click commands or groups to the ``conf`` command line."""
