"""A `conf record` process started for a meeting."""

from __future__ import annotations

from conf_cli.testing.processes import ClientPool, ConfProcess, spawn


def start_recorder(clients: ClientPool, meeting: str, name: str, *args: str) -> ConfProcess:
    process = spawn(
        [
            "record",
            meeting,
            "--server",
            clients.url,
            "--name",
            name,
            "--passcode",
            clients.passcode,
            "--json",
            "--fps",
            str(FPS),
            *args,
        ]
    )
    clients.started.append(process)
    return process


FPS = 30
