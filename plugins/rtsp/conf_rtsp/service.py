"""The RTSP gateway as a ``conf server`` service: its options and how it starts."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from conf_cli import ConfError, RunningService, ServerService, ServiceContext

from .gateway import MAX_CONNECTIONS, MAX_CONNECTIONS_PER_ADDRESS, SESSION_TIMEOUT, RtspGateway


class RtspService(ServerService):
    """``conf server --rtsp-port PORT [--media-dir DIR]``: meeting tracks and files for RTSP players."""

    name = "rtsp"
    description = "RTSP 1.0 gateway: meeting tracks and served files for players, publishing in by RECORD"

    def options(self) -> list[click.Option]:
        return [
            click.Option(
                ["--rtsp-port"],
                type=click.IntRange(0, 65535),
                default=None,
                help="Serve RTSP (RFC 2326) on this port (0: a free one): rtsp://HOST:PORT/MEETING/NAME/KIND.",
            ),
            click.Option(
                ["--media-dir"],
                type=click.Path(file_okay=False, path_type=Path),
                default=None,
                help="With --rtsp-port: serve the files of this folder as rtsp://HOST:PORT/files/NAME.",
            ),
            click.Option(
                ["--rtsp-session-timeout"],
                type=click.FloatRange(1, 3600),
                default=SESSION_TIMEOUT,
                show_default=True,
                help="Seconds an RTSP session lives without a word from its player.",
            ),
            click.Option(
                ["--rtsp-max-connections-per-address"],
                type=click.IntRange(1, MAX_CONNECTIONS),
                default=MAX_CONNECTIONS_PER_ADDRESS,
                show_default=True,
                help="RTSP connections one client address may hold at once "
                f"(the server takes {MAX_CONNECTIONS} in all).",
            ),
        ]

    def wanted(self, settings: Mapping[str, Any]) -> bool:
        if settings.get("media_dir") is not None and settings.get("rtsp_port") is None:
            raise ConfError("--media-dir needs --rtsp-port: files are served over RTSP")
        return settings.get("rtsp_port") is not None

    async def start(self, context: ServiceContext, settings: Mapping[str, Any]) -> RunningService:
        media_dir = settings.get("media_dir")
        if media_dir is not None and not Path(media_dir).is_dir():
            raise ConfError(f"--media-dir {media_dir}: no such folder")
        gateway = RtspGateway(
            context,
            str(settings.get("host") or "127.0.0.1"),
            int(settings["rtsp_port"]),
            Path(media_dir) if media_dir is not None else None,
            float(settings.get("rtsp_session_timeout") or SESSION_TIMEOUT),
            int(settings.get("rtsp_max_connections_per_address") or MAX_CONNECTIONS_PER_ADDRESS),
        )
        await gateway.start()
        return gateway
