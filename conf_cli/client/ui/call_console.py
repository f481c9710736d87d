"""``conf call`` in a terminal: one readable line per event, commands typed at a plain prompt."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import click

from conf_cli.machine import read_lines
from conf_cli.protocol.control import Message
from conf_cli.text import printable_event

_DECLINED = {
    "declined": "declined the call",
    "busy": "is busy in another call",
    "timeout": "did not answer",
    "offline": "went offline",
}


def describe(event: Message) -> str | None:
    """The line shown for ``event``, or None for events not worth a line (statistics)."""
    kind = event.get("type")
    peer = event.get("peer", "")
    match kind:
        case "online":
            where = event.get("public_address")
            seen = f" (public address {where})" if where else ""
            return f"online as {event.get('name')}{seen}; /help lists the commands"
        case "call_ringing":
            return f"calling {peer} ..."
        case "call_incoming":
            return f"{peer} is calling: /answer or /decline"
        case "call_accepted":
            return f"call with {peer} accepted; security code {event.get('sas')} (read it to each other)"
        case "call_path":
            return f"media with {peer}: {event.get('path')} via {event.get('address')}"
        case "call_declined":
            return f"{peer} {_DECLINED.get(str(event.get('reason')), 'did not take the call')}"
        case "call_ended":
            return f"call with {peer} ended ({event.get('reason')})"
        case "track_started":
            return f"receiving {event.get('kind')} from {event.get('name')}"
        case "publish_started":
            return f"sending {event.get('kind')}"
        case "error":
            return f"error: {event.get('message')}"
        case "disconnected":
            return f"lost the server: {event.get('reason')}"
        case "help":
            return "\n".join(f"  {c['usage']:<36} {c['description']}" for c in event.get("commands", []))
        case "track_stats" | "track_ended" | "publish_stopped":
            return None
    return None


class CallConsole:
    def show(self, event: Message) -> None:
        line = describe(printable_event(event))  # names and reasons come from the server
        if line is not None:
            click.echo(line)

    def show_help(self) -> None:
        pass

    def lines(self) -> AsyncIterator[str]:
        return read_lines(sys.stdin)

    def close(self) -> None:
        pass
