"""``conf call`` and ``/call NAME``: a :class:`~conf_cli.client.calls.session.CallSession` driven from the
command line, standing alone (online under a name) or beside a meeting.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from conf_cli.client.calls.session import CallSession, server_stun
from conf_cli.client.link import Client
from conf_cli.client.media.outputs import Outputs
from conf_cli.client.media.playback import SinkOpener
from conf_cli.client.meeting_loop import EXIT_OK
from conf_cli.client.prompt import LocalCommand
from conf_cli.client.state import event_of
from conf_cli.client.ui.meeting_ui import MeetingUI
from conf_cli.errors import ConfError, RequestRefused
from conf_cli.plugin.registry import registry
from conf_cli.protocol.control import Message
from conf_cli.protocol.events import Online, Welcome
from conf_cli.urls import ServerAddress


async def run_call(
    address: ServerAddress,
    name: str,
    peer: str | None,
    ui: MeetingUI,
    *,
    share: tuple[str, Mapping[str, Any]] | None = None,
    auto_accept: bool = False,
    ring_timeout: int | None = None,
    outputs: Outputs | None = None,
) -> int:
    """Go online as ``name``; call ``peer`` (and quit when that call ends) or wait for calls.

    ``outputs`` (see :func:`~conf_cli.client.media.outputs.prepare_outputs`) plays and shows what is received.
    """
    client = Client(registry(), address)
    session: CallSession | None = None
    try:
        await client.connect()
        try:
            online = await client.request({"type": "online", "name": name}, {"online"})
        except RequestRefused as refusal:
            raise ConfError(str(refusal)) from None
        client.name = name
        session = CallSession(
            client,
            ui,
            await server_stun(client, _online_port(online)),
            share=share,
            auto_accept=auto_accept,
            ring_timeout=ring_timeout,
            once=peer is not None,
            open_sinks=outputs.opener(ui) if outputs is not None else None,
        )
        facts = await session.ready()
    except BaseException:
        if session is not None:
            await session.close()
        await client.close()
        raise
    ui.show({"type": "online", "name": name, **facts})
    if peer is not None:
        await session.place(peer)

    async def events() -> None:
        while True:
            session.handle(await client.events.get())

    async def lines() -> None:
        async for line in ui.lines():
            try:
                if not await session.command(line):
                    break
            except ConfError as exc:
                ui.show({"type": "error", "code": "not_connected", "message": str(exc)})
        await session.hang_up_and_wait()
        if not session.done.done():
            session.done.set_result(EXIT_OK)

    tasks = [asyncio.create_task(events()), asyncio.create_task(lines())]
    try:
        return await session.done
    finally:
        for task in tasks:
            task.cancel()
        await session.close()
        await client.close()
        ui.close()


def _online_port(online: Message) -> int:
    """The port of the server's STUN answerer and relay, which its ``online`` (checked by the link) gives."""
    event = event_of(online)
    if not isinstance(event, Online):
        raise ConfError("the server did not say where its STUN answerer is")
    return event.stun_port


class MeetingCalls:
    """``/call NAME`` in a meeting: a :class:`CallSession` made when first needed, beside the meeting."""

    def __init__(self, client: Client, ui: MeetingUI, open_sinks: SinkOpener | None = None) -> None:
        self.client = client
        self.ui = ui
        self.open_sinks = open_sinks
        self.session: CallSession | None = None

    async def _session(self) -> CallSession | None:
        if self.session is None:
            welcome = event_of(self.client.welcome)
            port = welcome.stun_port if isinstance(welcome, Welcome) else None
            if port is None:
                self.ui.show(
                    {"type": "error", "code": "bad_command", "message": "this server offers no calls"}
                )
                return None
            stun = await server_stun(self.client, port)
            self.session = CallSession(
                self.client,
                self.ui,
                stun,
                share=None,
                auto_accept=False,
                ring_timeout=None,
                once=False,
                open_sinks=self.open_sinks,
            )
        return self.session

    def wants(self, event: Message) -> bool:
        return str(event.get("type", "")).startswith("call_")

    async def handle(self, event: Message) -> None:
        """A call event from the server (the meeting's face has not shown it)."""
        session = await self._session()
        if session is not None:
            session.handle(event)
        else:
            self.ui.show(event)

    async def command(self, command: LocalCommand) -> None:
        """Run ``/call NAME [KIND]``, ``/answer [KIND]``, ``/decline`` or ``/hangup`` (one of
        :data:`~conf_cli.client.prompt.CALL_USAGE`, as :func:`~conf_cli.client.prompt.parse_line` read it).

        KIND (``audio``, ``camera``, ``pattern`` ...) is a source the call shares once connected.
        """
        words = command.args
        try:
            session = await self._session()
            if session is None:
                return
            if command.name == "call" and session.call_id is None:
                session.share = (words[1], {}) if len(words) == 2 else None
            elif command.name == "answer" and session.call_id is not None and not session.accepted:
                session.share = (words[0], {}) if words else None
            if command.name == "call":
                await session.place(words[0])
            else:
                await session.command(f"/{command.name}")
        except ConfError as exc:
            self.ui.show({"type": "error", "code": "bad_command", "message": str(exc)})

    async def close(self) -> None:
        """Hang up any call (nobody reads the server's answer any more) and stop its media."""
        if self.session is not None:
            with contextlib.suppress(ConfError):
                self.session.hangup()
            await self.session.close()
