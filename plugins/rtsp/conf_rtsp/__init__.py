"""conf's RTSP plugin: a gateway inside ``conf server`` for the players people have, and ``conf play``.

``conf server --rtsp-port PORT`` serves every meeting track as ``rtsp://HOST:PORT/MEETING/NAME/KIND``,
the files of ``--media-dir`` as ``rtsp://HOST:PORT/files/NAME``, and takes published streams (ANNOUNCE,
RECORD) into meetings. ``conf play rtsp://...`` is an RTSP client with a live statistics view.
See docs/rtsp.md.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from conf_cli import ServerService, hookimpl

from .service import RtspService


@hookimpl
def conf_register_server_services(register: Callable[[ServerService], None]) -> None:
    register(RtspService())


@hookimpl
def conf_register_commands(register: Callable[[click.Command], None]) -> None:
    from .play_command import play

    register(play)
