"""Create or join a meeting and run it in the terminal or in machine mode."""

from __future__ import annotations

from conf_cli.client import Client
from conf_cli.errors import ConfError, RequestRefused
from conf_cli.plugins import registry
from conf_cli.protocol.control import Message
from conf_cli.session import MeetingUI, run_meeting
from conf_cli.urls import ServerAddress


def make_ui(machine: bool, me: str) -> MeetingUI:
    if machine:
        from conf_cli.ui.machine import MachineUI

        return MachineUI()
    from conf_cli.ui.terminal import TerminalUI

    return TerminalUI(me)


async def attend(
    address: ServerAddress, name: str, passcode: str | None, meeting: str | None, machine: bool
) -> int:
    """Create (``meeting`` is None) or join a meeting and stay until it ends for us."""
    client = Client(registry(), address)
    try:
        await client.connect()
        first: list[Message]
        if meeting is None:
            created, joined = await client.create(name, passcode)
            first = [created, joined]
        else:
            first = [await client.join(meeting, name, passcode)]
    except RequestRefused as refusal:
        await client.close()
        raise ConfError(str(refusal)) from None
    except BaseException:
        await client.close()
        raise
    return await run_meeting(client, make_ui(machine, name), first)
