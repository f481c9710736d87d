"""``conf play rtsp://...``: play an RTSP presentation and watch its statistics.

In a terminal, a live table per stream (frame number, fps, data received, data rate, packets lost, loss
rate); **space** pauses and plays, **t** tears the session down and quits (so does Ctrl-C). In machine
mode (``--json``, or when stdin is not a terminal) one ``rtsp_stats`` JSON line per second, and the
commands ``pause``, ``play`` and ``teardown`` one per line on stdin; the end of stdin ends playing,
unless ``--duration`` says how long to play.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from typing import Any

import click

from conf_cli import ConfError, run_main
from conf_cli.machine import emit, read_lines

from .player import Player

STATS_INTERVAL = 1.0


@click.command()
@click.argument("url")
@click.option(
    "--udp", is_flag=True, help="Receive by UDP (RTP/AVP) instead of interleaved on the RTSP connection."
)
@click.option(
    "--json", "json_flag", is_flag=True, help="Machine mode: JSON stats lines; pause/play/teardown on stdin."
)
@click.option(
    "--duration",
    type=click.FloatRange(0),
    default=0,
    help="Tear down and stop after this many seconds (0: never).",
)
def play(url: str, udp: bool, json_flag: bool, duration: float) -> None:
    """Play an RTSP URL (rtsp://[user:passcode@]HOST:PORT/PATH) with live statistics."""
    machine = json_flag or not sys.stdin.isatty()
    run_main(lambda: _play(url, udp, machine, duration))


async def _play(url: str, udp: bool, machine: bool, duration: float) -> int:
    player = Player(url, udp=udp)
    try:
        await player.open()
        await player.play()
        if machine:
            await _machine(player, duration)
        else:
            await _terminal(player, duration)
    finally:
        await player.close()
    if machine:
        emit({**player.stats(), "type": "rtsp_closed"})
    return 0


async def _run_command(player: Player, command: str) -> None:
    if command == "pause":
        await player.pause()
    elif command == "play":
        await player.play()
    elif command in ("teardown", "quit"):
        await player.teardown()


async def _machine(player: Player, duration: float) -> None:
    done = asyncio.Event()

    async def commands() -> None:
        async for line in read_lines(sys.stdin):
            command = line.strip().lower()
            if not command:
                continue
            if command not in ("pause", "play", "teardown", "quit"):
                emit({"type": "error", "message": f"unknown command {command!r}: pause, play or teardown"})
                continue
            try:
                await _run_command(player, command)
                emit({"type": "rtsp_state", "state": player.state})
            except ConfError as exc:
                emit({"type": "error", "message": str(exc)})
            if player.state == "closed":
                done.set()
                return
        if not duration:  # end of input leaves, unless a duration was asked for
            done.set()

    task = asyncio.create_task(commands())
    deadline = time.monotonic() + duration if duration else None
    try:
        while not done.is_set():
            if player.client.closed_reason is not None:
                raise ConfError(player.client.closed_reason)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STATS_INTERVAL):
                    await done.wait()
            emit(player.stats())
            if player.ended or (deadline is not None and time.monotonic() >= deadline):
                break
    finally:
        task.cancel()


def _size(count: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return str(count)


def _table(stats: dict[str, Any]) -> Any:
    from rich.table import Table
    from rich.text import Text

    from conf_cli.text import printable

    table = Table(title=f"RTSP {stats['state']} - {stats['time']:.0f} s   [space] pause/play   [t] teardown")
    for column in ("stream", "codec", "frame", "fps", "received", "rate", "lost", "loss"):
        table.add_column(column, justify="left" if column in ("stream", "codec") else "right")
    for s in stats["streams"]:
        table.add_row(  # the RTSP server named these: Text, never markup
            Text(printable(f"{s['media']} ({s['control']})")),
            Text(printable(s["codec"])),
            str(s["frame"]),
            f"{s['fps']:.1f}",
            _size(s["bytes"]),
            f"{s['bitrate'] / 1000:.0f} kbit/s",
            str(s["packets_lost"]),
            f"{100 * s['loss_rate']:.1f} %",
        )
    return table


async def _terminal(player: Player, duration: float) -> None:
    import termios
    import tty

    from rich.live import Live

    loop = asyncio.get_running_loop()
    keys: asyncio.Queue[str] = asyncio.Queue()
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)

    def typed() -> None:  # raw bytes: a buffered text read could hold keys back from the next wake-up
        for key in os.read(fd, 64).decode(errors="ignore"):
            keys.put_nowait(key)

    loop.add_reader(fd, typed)
    deadline = time.monotonic() + duration if duration else None
    try:
        with Live(_table(player.stats()), refresh_per_second=4, transient=False) as live:
            while player.state != "closed":
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.25):
                        key = await keys.get()
                        if key == " ":
                            await player.toggle()
                        elif key in ("t", "q"):
                            await player.teardown()
                live.update(_table(player.stats()))
                if player.client.closed_reason is not None:
                    raise ConfError(player.client.closed_reason)
                if player.ended or (deadline is not None and time.monotonic() >= deadline):
                    break
    finally:
        loop.remove_reader(fd)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
