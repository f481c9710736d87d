"""Browsers in conf meetings: ``conf server --web-port PORT`` serves a page that joins over WebRTC.

Each browser takes part as an ordinary participant of the server, over the in-process link
(:class:`conf_cli.server.local_link.LocalTransport`): its control messages are the JSON of docs/protocol.md,
relayed over the page's WebSocket, and its media is forwarded without decoding (H.264 and Opus). See
docs/web.md.
"""

from __future__ import annotations

from typing import Any

from conf_cli import hookimpl


@hookimpl
def conf_register_server_services(register: Any) -> None:
    from conf_web.service import WebService

    register(WebService())
