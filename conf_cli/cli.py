"""The ``conf`` command line: thin click commands over the client and server APIs."""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from conf_cli import __version__
from conf_cli.errors import ConfError
from conf_cli.loops import fast_loop_factory
from conf_cli.plugins import registry
from conf_cli.server import Endpoint
from conf_cli.urls import DEFAULT_PORT, parse_server_url

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

SERVER_ENV = "CONF_SERVER"
DEFAULT_SERVER = f"tcp://127.0.0.1:{DEFAULT_PORT}"


def _run(main: Callable[[], Coroutine[Any, Any, int | None]], *, fast_loop: bool = False) -> None:
    """Run a coroutine; turn ConfError into one line on stderr and Ctrl-C into a quiet exit.

    With ``fast_loop`` (the server and the benchmark) the coroutine runs on uvloop when it is installed.
    """
    try:
        with asyncio.Runner(loop_factory=fast_loop_factory() if fast_loop else None) as runner:
            code = runner.run(main())
    except ConfError as exc:
        click.echo(f"conf: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code or 0)


def _default_name() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "guest"


def _machine_mode(json_flag: bool) -> bool:
    return json_flag or not sys.stdin.isatty()


server_option = click.option(
    "--server",
    "server_url",
    default=lambda: os.environ.get(SERVER_ENV, DEFAULT_SERVER),
    show_default=f"${SERVER_ENV} or {DEFAULT_SERVER}",
    help="Server URL; its scheme picks the transport.",
)
transport_option = click.option(
    "--transport", default=None, help="Transport (tcp, ...); overrides the URL's scheme."
)
name_option = click.option("--name", default=_default_name, help="Your name in the meeting.")
passcode_option = click.option("--passcode", default=None, help="Meeting passcode.")
json_option = click.option(
    "--json", "json_flag", is_flag=True, help="Machine mode: commands on stdin, JSON events on stdout."
)
record_option = click.option(
    "--record",
    "record_dir",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Record every received track into this directory as .mkv, as it arrived (no re-encoding).",
)
play_option = click.option(
    "--play/--no-play",
    default=None,
    help="Play received audio on the speaker. Default: on in the interactive terminal (if a speaker "
    "opens), off in machine mode (--json or no terminal); --play fails at once if the speaker cannot open.",
)
view_option = click.option(
    "--view",
    type=click.Choice(["preview", "window", "none"]),
    default=None,
    help="Show received video: preview (small, in the terminal view; Tab shows the next video), window "
    "(a desktop window; needs a window system and pygame) or none. Default: preview in the interactive "
    "terminal, none in machine mode.",
)
encryption_option = click.option(
    "--encryption",
    type=click.Choice(["on", "none"]),
    default="on",
    show_default=True,
    help="on: TLS, CURVE or SRTP as the transport needs, with the server's key pinned; none: plaintext, "
    "for debugging only (both ends must agree).",
)
fingerprint_option = click.option(
    "--fingerprint",
    default=None,
    metavar="SHA256:...",
    help="The server key's fingerprint as `conf server` prints it: trust it instead of pinning on first "
    "use (a server presenting another key is refused).",
)
speaker_option = click.option(
    "--speaker",
    default=None,
    metavar="DEVICE",
    help="Speaker to play on: index or part of its name (see `conf devices`); default: the system's.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="conf")
@click.option("-v", "--verbose", count=True, help="Log more to stderr (-vv for debug).")
def cli(verbose: int) -> None:
    """Meet from the terminal: audio, video, screen sharing, chat and remote control."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(
        level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr
    )


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=DEFAULT_PORT,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="0 picks a free port.",
)
@click.option(
    "--transport",
    "transports",
    multiple=True,
    default=("tcp",),
    show_default=True,
    help="Transport to listen on, as NAME or NAME:PORT; repeat for several. Without a port, the first "
    "transport takes --port and each further one --port plus 2, 4 ... (a transport may use two ports).",
)
@json_option
@encryption_option
@click.option(
    "--identity",
    "identity_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The server's key file (created, mode 0600, if missing). Default: identity.key in the server "
    "folder of $CONF_HOME (~/.config/conf).",
)
@click.option(
    "--stats-interval",
    type=click.FloatRange(0),
    default=0,
    help="With --json: write a server_stats event every this many seconds (0: never).",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 31),
    help="Server processes (use one per core): a front process hands each new client to the worker "
    "that holds its meeting. TCP only; ZeroMQ and RTP servers run in one process.",
)
def server(
    host: str,
    port: int,
    transports: tuple[str, ...],
    json_flag: bool,
    encryption: str,
    identity_file: Path | None,
    stats_interval: float,
    workers: int,
) -> None:
    """Run a conf server hosting any number of meetings."""
    from conf_cli.security import server_security
    from conf_cli.server import Server
    from conf_cli.transport import TransportOptions
    from conf_cli.ui.machine import emit

    async def main() -> int:
        srv: Any
        endpoints = endpoints_for(transports, host, port)
        security = server_security(registry().ciphers, encryption, identity_file)
        fingerprint = security.identity.fingerprint if security and security.identity else None
        if workers > 1:
            from conf_cli.workers.front import Front

            if len(endpoints) != 1 or endpoints[0].transport != "tcp":
                raise ConfError(
                    "--workers needs one --transport tcp; ZeroMQ and RTP run in one process for now"
                )
            srv = Front(workers, logging.getLogger().getEffectiveLevel(), security)
            urls = await srv.start(endpoints[0].host, endpoints[0].port)
        else:
            srv = Server(registry())
            urls = await srv.start(endpoints, TransportOptions(security=security))
        if json_flag:
            started: dict[str, Any] = {"type": "server_started", "urls": urls, "fingerprint": fingerprint}
            if workers > 1:
                started["workers"] = [worker.process.pid for worker in srv.workers]
            emit(started)
        else:
            for url in urls:
                click.echo(url)
            sys.stdout.flush()
            if fingerprint is not None:
                click.echo(f"conf server key: {fingerprint}", err=True)
            click.echo("conf server running; clients use the URL above. Ctrl-C stops it.", err=True)
        try:
            while True:
                if json_flag and stats_interval > 0:
                    await asyncio.sleep(stats_interval)
                    emit(srv.stats())
                else:
                    await asyncio.Event().wait()
        finally:
            await srv.close()

    _run(main, fast_loop=True)


def endpoints_for(transports: tuple[str, ...], host: str, port: int) -> list[Endpoint]:
    """``tcp``, ``zmq:7460`` ... → endpoints; transports without a port get --port, --port+2, --port+4 ..."""
    endpoints: list[Endpoint] = []
    for index, spec in enumerate(transports):
        name, _, given = spec.partition(":")
        if given:
            if not given.isdigit() or not 0 <= int(given) <= 65535:
                raise ConfError(f"bad transport {spec!r}: expected NAME or NAME:PORT with PORT 0..65535")
            chosen = int(given)
        else:
            chosen = 0 if port == 0 else port + 2 * index
        endpoints.append(Endpoint(name, host, chosen))
    return endpoints


def meeting_options(command: F) -> F:
    """The options of every command that takes part in a meeting (create, join, share)."""
    for option in reversed(
        (
            server_option,
            transport_option,
            name_option,
            passcode_option,
            json_option,
            record_option,
            play_option,
            speaker_option,
            view_option,
            encryption_option,
            fingerprint_option,
        )
    ):
        command = option(command)
    return command


def _attend(
    meeting: str | None,
    share: tuple[str, dict[str, Any]] | None,
    *,
    server_url: str,
    transport: str | None,
    name: str,
    passcode: str | None,
    json_flag: bool,
    record_dir: Path | None,
    play: bool | None,
    speaker: str | None,
    view: str | None,
    encryption: str,
    fingerprint: str | None,
) -> None:
    from conf_cli.meeting_runner import attend

    _run(
        lambda: attend(
            parse_server_url(server_url, transport=transport),
            name,
            passcode,
            meeting,
            _machine_mode(json_flag),
            record_dir=record_dir,
            share=share,
            play=play,
            speaker=speaker,
            view=view,
            encryption=encryption,
            fingerprint=fingerprint,
        )
    )


@cli.command()
@meeting_options
def create(**options: Any) -> None:
    """Create a meeting, print its ID and passcode, and join it as host."""
    _attend(None, None, **options)


@cli.command()
@click.argument("meeting")
@meeting_options
def join(meeting: str, **options: Any) -> None:
    """Join MEETING."""
    _attend(meeting, None, **options)


@cli.command()
@click.argument("kind")
@click.argument("path", required=False)
@click.option("--meeting", required=True, help="Meeting ID to share into.")
@meeting_options
@click.option("--width", type=click.IntRange(16, 7680), default=None, help="Picture width (pattern, camera).")
@click.option("--height", type=click.IntRange(16, 4320), default=None, help="Picture height.")
@click.option("--fps", type=click.FloatRange(0.1, 240), default=None, help="Frames per second.")
@click.option("--bitrate", type=click.IntRange(10_000), default=None, help="Video bit rate in bit/s.")
@click.option("--frequency", type=click.FloatRange(1, 24_000), default=None, help="Tone frequency in Hz.")
@click.option("--device", default=None, help="Device to capture from (see `conf devices`).")
@click.option("--region", default=None, metavar="X,Y,W,H", help="Screen region to share (screen).")
def share(
    kind: str,
    path: str | None,
    meeting: str,
    width: int | None,
    height: int | None,
    fps: float | None,
    bitrate: int | None,
    frequency: float | None,
    device: str | None,
    region: str | None,
    **options: Any,
) -> None:
    """Join MEETING and share screen, camera, audio, a file (PATH), a test pattern or a tone into it.

    Stays in the meeting like `conf join`: commands still work (/unshare KIND, /leave).
    """
    if path is not None and not Path(path).exists():
        click.echo(f"conf: no such file: {path}", err=True)
        sys.exit(1)
    source_options = {
        key: value
        for key, value in {
            "path": path,
            "width": width,
            "height": height,
            "fps": fps,
            "bitrate": bitrate,
            "frequency": frequency,
            "device": device,
            "region": region,
        }.items()
        if value is not None
    }
    _attend(meeting, (kind, source_options), **options)


@cli.command()
@click.argument("peer")
@click.option("--meeting", required=True, help="Meeting ID.")
@server_option
def control(peer: str, meeting: str, server_url: str) -> None:
    """Ask PEER for control of their desktop (they must agree)."""
    raise click.ClickException(
        "remote control needs an input-injection plugin, which this version of conf does not have"
    )


@cli.command()
def devices() -> None:
    """List the capture sources and sinks this machine has, and whether each can be used now."""
    from rich.console import Console
    from rich.table import Table

    reg = registry()
    table = Table(title="conf devices")
    for column in ("source or sink", "kind", "device", "description", "usable"):
        table.add_column(column)
    for label, factories in (("source", reg.sources), ("sink", reg.sinks)):
        for name, factory in sorted(factories.items()):
            kind = str(getattr(factory, "kind", getattr(factory, "consumes", "")))
            try:
                found = factory.list_devices()
            except Exception as exc:  # a device layer that cannot even be asked
                table.add_row(f"{label} {name}", kind, "-", str(exc), "no")
                continue
            if not found:
                table.add_row(f"{label} {name}", kind, "-", getattr(factory, "description", ""), "yes")
            for device in found:
                usable = "yes" if device.available else f"no: {device.reason}"
                table.add_row(f"{label} {name}", kind, device.id, device.description, usable)
    Console().print(table)


@cli.group("known-hosts")
def known_hosts() -> None:
    """The server keys this client trusts (pinned on first connection), one per server URL."""


@known_hosts.command("list")
def known_hosts_list() -> None:
    """List pinned servers and their key fingerprints."""
    from conf_cli.identity import KnownHosts, fingerprint

    hosts = KnownHosts()
    entries = _or_exit(hosts.entries)
    if not entries:
        click.echo(f"no pinned servers (in {hosts.path})", err=True)
    for url, key in sorted(entries.items()):
        click.echo(f"{url} {fingerprint(key)}")


@known_hosts.command("forget")
@click.argument("url")
def known_hosts_forget(url: str) -> None:
    """Forget URL's pinned key: the next connection trusts (and pins) the key it presents."""
    from conf_cli.identity import KnownHosts
    from conf_cli.urls import parse_server_url

    hosts = KnownHosts()
    shown = str(_or_exit(lambda: parse_server_url(url)))
    if not _or_exit(lambda: hosts.forget(shown)):
        click.echo(f"conf: {shown} is not in {hosts.path}; see `conf known-hosts list`", err=True)
        sys.exit(1)
    click.echo(f"forgot the key of {shown}", err=True)


def _or_exit(work: Callable[[], T]) -> T:
    try:
        return work()
    except ConfError as exc:
        click.echo(f"conf: {exc}", err=True)
        sys.exit(exc.exit_code)


@cli.command()
def plugins() -> None:
    """List the loaded plugins, their hooks and where each came from."""
    from rich.console import Console
    from rich.table import Table

    reg = registry()
    table = Table(title="conf plugins")
    table.add_column("plugin")
    table.add_column("hooks")
    table.add_column("from")
    for info in reg.describe():
        table.add_row(info.name, "\n".join(info.hooks), info.origin)
    console = Console()
    console.print(table)
    console.print(
        "transports: "
        + (", ".join(f"{t.name} ({'/'.join(t.schemes)})" for t in reg.transports.values()) or "none")
    )
    console.print("sources: " + (", ".join(sorted(reg.sources)) or "none"))
    console.print("sinks: " + (", ".join(sorted(reg.sinks)) or "none"))
    console.print("ciphers: " + (", ".join(sorted(reg.ciphers)) or "none"))


@cli.command()
@click.option(
    "--participants", default=3, show_default=True, type=click.IntRange(1, 20), help="Synthetic participants."
)
@click.option(
    "--duration",
    default=None,
    type=float,
    help="Seconds to run (default: until you leave; 20 without a terminal).",
)
@name_option
@click.option("--play", is_flag=True, help="Play the synthetic participant's tone on the speaker.")
def demo(participants: int, duration: float | None, name: str, play: bool) -> None:
    """A demo meeting on an embedded local server, with synthetic participants to talk to and watch."""
    from conf_cli.demo import run_demo

    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    _run(lambda: run_demo(participants, duration, name, interactive=interactive, play=play))


@cli.command()
@click.option("--transport", default="tcp", show_default=True, help="Transport to load (tcp, zmq, rtp ...).")
@click.option(
    "--server",
    "server_url",
    default=None,
    help="Load this running server instead of starting one (its CPU is read with --server-pid).",
)
@click.option(
    "--server-pid", type=int, default=None, help="PID of the --server, to report its CPU and memory."
)
@click.option(
    "--publishers", default=2, show_default=True, type=click.IntRange(0), help="Publishing clients."
)
@click.option(
    "--subscribers", default=4, show_default=True, type=click.IntRange(0), help="Receiving clients."
)
@click.option(
    "--meetings", default=1, show_default=True, type=click.IntRange(1), help="Meetings to spread them over."
)
@click.option(
    "--rate", default=50.0, show_default=True, type=click.FloatRange(0), help="Packets/s per publisher."
)
@click.option(
    "--payload", default=1000, show_default=True, type=click.IntRange(8, 1400), help="RTP payload bytes."
)
@click.option(
    "--duration", default=10.0, show_default=True, type=click.FloatRange(0.5), help="Seconds of load."
)
@click.option(
    "--interval", default=0.5, show_default=True, type=click.FloatRange(0.1), help="Seconds per report."
)
@click.option(
    "--procs", default=1, show_default=True, type=click.IntRange(1, 64), help="Load-generator processes."
)
@click.option("--server-arg", "server_args", multiple=True, help="Extra argument for the started server.")
@encryption_option
@click.option(
    "--plot", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write a PNG plot."
)
@click.option("--json", "json_flag", is_flag=True, help="Print the figures as one JSON object.")
def bench(
    transport: str,
    server_url: str | None,
    server_pid: int | None,
    publishers: int,
    subscribers: int,
    meetings: int,
    rate: float,
    payload: int,
    duration: float,
    interval: float,
    procs: int,
    server_args: tuple[str, ...],
    encryption: str,
    plot: Path | None,
    json_flag: bool,
) -> None:
    """Load a server with synthetic RTP; report packets/s, loss, latency, server CPU and memory."""
    from conf_cli.bench.command import bench as run
    from conf_cli.bench.plan import BenchConfig

    config = BenchConfig(
        transport=transport,
        publishers=publishers,
        subscribers=subscribers,
        meetings=meetings,
        rate=rate,
        payload=payload,
        duration=duration,
        interval=interval,
        procs=procs,
        server_url=server_url,
        server_pid=server_pid,
        server_args=server_args,
        encryption=encryption,
    )
    _run(lambda: run(config, json_flag, plot), fast_loop=True)


def main() -> None:
    for plugin_commands in registry().pm.hook.conf_add_commands(cli=cli):
        del plugin_commands
    cli()


if __name__ == "__main__":
    main()
