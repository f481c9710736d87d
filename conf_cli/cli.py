"""The ``conf`` command line: thin click commands over the client and server APIs."""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from conf_cli.admin_command import admin, layout_option
from conf_cli.errors import ConfError
from conf_cli.loops import run_main as _run
from conf_cli.plugin.registry import Registry, registry
from conf_cli.server.config_file import config_option_callback
from conf_cli.urls import DEFAULT_PORT, parse_server_url
from conf_cli.version import __version__

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

SERVER_ENV = "CONF_SERVER"
DEFAULT_SERVER = f"tcp://127.0.0.1:{DEFAULT_PORT}"


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
user_option = click.option(
    "--user",
    default=None,
    metavar="NAME",
    help="Log in to this account on the server (your name is then the account name). Password from a "
    "prompt, $CONF_PASSWORD or --password-stdin.",
)
password_stdin_option = click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)
accounts_option = click.option(
    "--accounts",
    "accounts_path",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The accounts file (SQLite). Default: accounts.db in the server folder ($CONF_HOME/server).",
)
token_key_option = click.option(
    "--token-key",
    "token_key_file",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The key access tokens are signed with (created, mode 0600, if missing). Default: token.key in "
    "the server folder of $CONF_HOME (~/.config/conf).",
)
TOKEN_ENV = "CONF_TOKEN"
token_option = click.option(
    "--token",
    default=lambda: os.environ.get(TOKEN_ENV) or None,
    metavar="TOKEN",
    help=f"An access token (`conf token create`): join as the name and role it names, without the passcode. "
    f"Default: ${TOKEN_ENV} (which, unlike the command line, other users of this machine cannot read).",
)
PASSWORD_ENV = "CONF_PASSWORD"
encryption_option = click.option(
    "--encryption",
    type=click.Choice(["on", "none"]),
    default="on",
    show_default=True,
    help="on: TLS, CURVE or SRTP as the transport needs, with the server's key pinned; none: plaintext, "
    "for debugging only (both ends must agree).",
)


class BitRate(click.ParamType):
    """A bit rate in bit/s: ``300000``, ``300k`` or ``1.2M``."""

    name = "bitrate"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip()
        scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:].lower(), 1)
        try:
            bits = round(float(text[:-1] if scale > 1 else text) * scale)
        except ValueError:
            self.fail(f"{value!r} is not a bit rate (300000, 300k or 1.2M)", param, ctx)
        low, high = 10_000, 100_000_000
        if not low <= bits <= high:
            self.fail(f"{value!r} is not between 10k and 100M bit/s", param, ctx)
        return bits


max_bitrate_option = click.option(
    "--max-bitrate",
    type=BitRate(),
    default=None,
    help="Receive at most this bit rate per video (300k, 1.2M): the server sends a simulcast track's "
    "layer that fits.",
)
simulcast_option = click.option(
    "--no-simulcast",
    "simulcast",
    flag_value=False,
    default=True,
    help="Publish video as one layer (default: up to three simulcast layers when the picture is large).",
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
    "--require-login",
    is_flag=True,
    help="Refuse create and join until the client has logged in to an account (see `conf user`).",
)
@accounts_option
@token_key_option
@click.option(
    "--max-failures",
    default=5,
    show_default=True,
    type=click.IntRange(1),
    help="Failed passcode or login attempts allowed from one address per --failure-window.",
)
@click.option(
    "--max-failures-per-target",
    default=20,
    show_default=True,
    type=click.IntRange(1),
    help="Failed attempts allowed at one meeting or account per --failure-window, from addresses that "
    "never got into it.",
)
@click.option(
    "--max-creates",
    default=20,
    show_default=True,
    type=click.IntRange(1),
    help="Meetings one address may create per --failure-window (each costs the server a passcode hash).",
)
@click.option(
    "--failure-window",
    default=60.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds over which failed attempts are counted.",
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
    help="Worker processes (use one per core), each a full server on ports of its own and a node of a "
    "local cluster: the public port redirects each create and join to a worker, every transport. A dead "
    "worker is restarted; its meetings' participants resume on their own. With --cluster and --node "
    "NAME: nodes NAME-1..N.",
)
@click.option(
    "--call-port",
    default=0,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="UDP port answering STUN and relaying calls that cannot go direct (0: a free port).",
)
@click.option(
    "--announce/--no-announce",
    default=None,
    help="Answer `conf discover` on the local network (SSDP). Default: on unless --host is loopback.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve Prometheus metrics at http://METRICS-HOST:PORT/metrics (0: a free port). "
    "See docs/operations.md.",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="Address the metrics are served on: loopback unless widened (0.0.0.0, ::).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log lines on stderr as text, or as one JSON object per line (then at INFO at least).",
)
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    is_eager=True,
    expose_value=False,
    callback=config_option_callback,
    help="Read options from this TOML file: keys are the long option names (port, max-failures ...); "
    "options given on the command line win. See docs/conf.example.toml.",
)
@click.option(
    "--admin-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve the admin HTTP API (see `conf admin`) on this port (0: a free one); its key is admin.key "
    "in the server folder of $CONF_HOME.",
)
@click.option(
    "--admin-host",
    default="127.0.0.1",
    show_default=True,
    help="Address the admin API listens on (plain HTTP: keep it on loopback, or behind a TLS proxy).",
)
@click.option(
    "--max-recordings",
    type=click.IntRange(0, 64),
    default=4,
    show_default=True,
    help="Recorders the admin API may run at once (`conf admin record start`); each takes about half a "
    "core. 0: none.",
)
@click.option(
    "--webhook",
    "webhooks",
    multiple=True,
    metavar="URL",
    help="POST each meeting event (signed with webhook.key in the server folder) to this http(s) URL; "
    "repeat for several.",
)
@click.option(
    "--cluster",
    "cluster_url",
    default=None,
    metavar="URL",
    help="Run as a node of the cluster whose directory is at URL (redis://HOST:PORT/DB, "
    "nats://HOST:PORT): any node takes any client. Needs --node. See docs/cluster.md.",
)
@click.option("--node", default=None, metavar="NAME", help="This server's name in its cluster (--cluster).")
@click.option(
    "--advertise",
    multiple=True,
    metavar="URL",
    help="A URL other nodes send clients to (repeat per transport). Default: the URLs it listens on.",
)
@click.option(
    "--capacity",
    default=500,
    show_default=True,
    type=click.IntRange(1),
    help="Participants this node takes in its cluster before new meetings go to other nodes.",
)
@click.option(
    "--cascade",
    type=click.Choice(["full", "always", "never"]),
    default="full",
    show_default=True,
    help="Carry a join of a meeting held on another node there over a node link (the meeting spans "
    "nodes) when that node is full, always, or never (redirect the client). See docs/cluster.md.",
)
def server(
    host: str,
    port: int,
    transports: tuple[str, ...],
    json_flag: bool,
    require_login: bool,
    accounts_path: Path | None,
    max_failures: int,
    max_failures_per_target: int,
    max_creates: int,
    failure_window: float,
    encryption: str,
    identity_file: Path | None,
    token_key_file: Path | None,
    stats_interval: float,
    workers: int,
    call_port: int,
    announce: bool | None,
    metrics_port: int | None,
    metrics_host: str,
    log_format: str,
    admin_port: int | None,
    admin_host: str,
    max_recordings: int,
    webhooks: tuple[str, ...],
    cluster_url: str | None,
    node: str | None,
    advertise: tuple[str, ...],
    capacity: int,
    cascade: str,
    **service_settings: Any,  # service plugins' options; services get them in `settings` below
) -> None:
    """Run a conf server hosting any number of meetings.

    Service plugins (see `conf plugins`) add options of their own below.
    """
    from conf_cli.server.run import ServerConfig, run_server

    config = ServerConfig(
        host=host,
        port=port,
        transports=transports,
        json_flag=json_flag,
        require_login=require_login,
        accounts_path=accounts_path,
        max_failures=max_failures,
        max_failures_per_target=max_failures_per_target,
        max_creates=max_creates,
        failure_window=failure_window,
        encryption=encryption,
        identity_file=identity_file,
        token_key_file=token_key_file,
        stats_interval=stats_interval,
        workers=workers,
        call_port=call_port,
        announce=announce,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
        log_format=log_format,
        admin_host=admin_host,
        admin_port=admin_port,
        max_recordings=max_recordings,
        webhooks=webhooks,
        cluster=cluster_url,
        node=node,
        advertise=advertise,
        capacity=capacity,
        cascade=cascade,
        settings=dict(click.get_current_context().params),  # what services see: every option by name
    )
    if log_format == "json":
        from conf_cli.server.json_log import use_json_logs

        use_json_logs()
    if workers > 1:
        from conf_cli.server.workers.parent import run_workers

        _run(lambda: run_workers(config), fast_loop=True)
    else:
        _run(lambda: run_server(config), fast_loop=True)


@cli.command()
@click.option(
    "--timeout", default=2.0, show_default=True, type=click.FloatRange(0.2, 30), help="Seconds to listen."
)
@json_option
def discover(timeout: float, json_flag: bool) -> None:
    """List the conf servers on the local network (those started with --announce answer).

    Answers that disagree about one server (the same server ID, or the same URL, with other URLs or
    another key) are all listed and flagged: someone else on the network may be answering for it."""
    from conf_cli.discovery import conflicts
    from conf_cli.discovery import discover as search
    from conf_cli.machine import emit

    async def main() -> int:
        found = await search(timeout)
        flagged = conflicts(found)
        if json_flag:
            for announcement, conflict in zip(found, flagged, strict=True):
                emit({**announcement.as_event(), "conflict": conflict})
            return 0
        if not found:
            click.echo("no conf server answered on the local network", err=True)
            return 0
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        from conf_cli.text import printable

        table = Table(title="conf servers")
        for column in ("url", "transports", "fingerprint", "id"):
            table.add_column(column)
        for announcement, conflict in zip(found, flagged, strict=True):
            # what anyone on the network announced: Text, never markup
            table.add_row(
                Text("\n".join(printable(url) for url in announcement.urls)),
                Text(printable(" ".join(announcement.transports))),
                Text(printable(announcement.fingerprint or "-")),
                Text(printable(announcement.server_id) + (" CONFLICT" if conflict else "")),
            )
        Console().print(table)
        if any(flagged):
            click.echo(_CONFLICT_WARNING, err=True)
        return 0

    _run(main)


_CONFLICT_WARNING = (
    "conf: WARNING: answers marked CONFLICT disagree about one server (its ID or URL with other URLs or "
    "another key): someone on the local network may be impersonating it; check the key `conf server` "
    "printed before trusting any of them"
)


def _discovered_server(machine: bool, expected: str | None, encryption: str) -> tuple[str, str | None]:
    """The URL of the server to join, found on the local network, and the fingerprint to hold it to.

    Discovery never trusts a key on first use: an answer is used only if the key it names is pinned
    for its URL (known_hosts), is ``expected`` (--fingerprint), or the person confirms it at a
    terminal. ConfError otherwise (with what to pass)."""
    from conf_cli.discovery import discover as search
    from conf_cli.discovery import weigh
    from conf_cli.identity import KnownHosts, fingerprint
    from conf_cli.plugin.security import check_fingerprint

    if expected is not None:
        check_fingerprint(expected)
    found = asyncio.run(search())
    if not found:
        raise ConfError("no conf server answered on the local network; give one with --server")
    from conf_cli.text import printable

    pins = {url: fingerprint(key) for url, key in KnownHosts().entries().items()}
    weighed = weigh(found, pins, expected)

    def listed(candidates: list[Any]) -> str:  # what anyone on the network announced: printable only
        return printable(
            "; ".join(
                f"{c.url} key {c.announcement.fingerprint or '(none)'} id {c.announcement.server_id}"
                + (" CONFLICT" if c.conflict else "")
                for c in candidates
            )
        )

    if any(c.conflict for c in weighed):
        click.echo(f"{_CONFLICT_WARNING}: {listed([c for c in weighed if c.conflict])}", err=True)
    if encryption == "none":  # nothing to authenticate: only an answer nobody contradicts
        if len(weighed) == 1 and not weighed[0].conflict:
            return weighed[0].url, None
        raise ConfError(f"{len(weighed)} answers ({listed(weighed)}); pick one with --server")
    trusted = [c for c in weighed if c.trusted]
    if len(trusted) == 1:
        return trusted[0].url, expected
    if len(trusted) > 1:
        if machine:
            raise ConfError(
                f"{len(trusted)} trusted servers answered ({listed(trusted)}); pick one with --server"
            )
        for n, c in enumerate(trusted, 1):
            click.echo(printable(f"{n}. {c.url}  key {c.announcement.fingerprint} ({c.trusted})"))
        choice = click.prompt("server", type=click.IntRange(1, len(trusted)), default=1)
        return trusted[choice - 1].url, expected
    if expected is not None:
        raise ConfError(
            f"no server on the local network announced key {expected} (answers: {listed(weighed)})"
        )
    if machine:
        raise ConfError(
            "no server that answered on the local network has a key pinned here, and discovery does not "
            f"trust a key on first use (answers: {listed(weighed)}); pass --fingerprint SHA256:... as "
            "`conf server` printed it, or --server URL --fingerprint SHA256:..."
        )
    for n, c in enumerate(weighed, 1):
        flag = "  CONFLICT" if c.conflict else ""
        urls = " ".join(c.announcement.urls)
        click.echo(printable(f"{n}. {urls}  key {c.announcement.fingerprint or '(none)'}{flag}"))
    choice = click.prompt("server", type=click.IntRange(1, len(weighed)), default=1)
    chosen = weighed[choice - 1]
    shown = chosen.announcement.fingerprint
    if not shown:
        raise ConfError(f"{chosen.url} announced no key; give it with --server and --fingerprint")
    check_fingerprint(shown)
    if not click.confirm(
        f"is {shown} the key `conf server` printed at {printable(chosen.url)}? (compare every character)",
        default=False,
    ):
        raise ConfError("the key was not confirmed; not connecting")
    return chosen.url, shown


SOURCE_OPTIONS = (
    click.option(
        "--width", type=click.IntRange(16, 7680), default=None, help="Picture width (pattern, camera)."
    ),
    click.option("--height", type=click.IntRange(16, 4320), default=None, help="Picture height."),
    click.option("--fps", type=click.FloatRange(0.1, 240), default=None, help="Frames per second."),
    click.option("--bitrate", type=click.IntRange(10_000), default=None, help="Video bit rate in bit/s."),
    click.option("--frequency", type=click.FloatRange(1, 24_000), default=None, help="Tone frequency in Hz."),
    click.option("--device", default=None, help="Device to capture from (see `conf devices`)."),
    click.option("--region", default=None, metavar="X,Y,W,H", help="Screen region to share (screen)."),
    click.option(
        "--source-option",
        "source_option",
        multiple=True,
        metavar="KEY=VALUE",
        help="Any other option of the source, e.g. tremolo=4 or on=2 for the tone (once per option).",
    ),
)


def _with(*options: Callable[[F], F]) -> Callable[[F], F]:
    """Apply several click options, the first one listed first in --help."""

    def apply(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command

    return apply


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
            user_option,
            password_stdin_option,
            encryption_option,
            fingerprint_option,
            max_bitrate_option,
            simulcast_option,
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
    e2ee: bool = False,
    control: str | None = None,
    user: str | None,
    password_stdin: bool,
    waiting_room: bool = False,
    encryption: str,
    fingerprint: str | None,
    token: str | None = None,
    composite: Any = None,
    max_bitrate: int | None = None,
    simulcast: bool = True,
) -> None:
    from conf_cli.client.runner import attend

    password = _password(user, password_stdin)
    context = click.get_current_context(silent=True)
    if token is not None and context is not None and composite is None:
        from conf_cli.server.tokens import peek

        if context.get_parameter_source("name") is click.core.ParameterSource.DEFAULT:
            name = str(_or_exit(lambda: peek(token)).get("sub") or name)  # the name the token is for
    _run(
        lambda: attend(
            parse_server_url(server_url, transport=transport),
            user or name,
            passcode,
            meeting,
            _machine_mode(json_flag),
            record_dir=record_dir,
            share=share,
            play=play,
            speaker=speaker,
            view=view,
            e2ee=e2ee,
            control=control,
            user=user,
            password=password,
            waiting_room=waiting_room,
            encryption=encryption,
            fingerprint=fingerprint,
            token=token,
            composite=composite,
            max_bitrate=max_bitrate,
            simulcast=simulcast,
        )
    )


def _password(user: str | None, from_stdin: bool, *, confirm: bool = False) -> str | None:
    """The password for ``user``: from stdin's first line, $CONF_PASSWORD, or a prompt at a terminal."""
    if user is None:
        if from_stdin:
            _fail("--password-stdin needs --user NAME")
        return None
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            _fail("--password-stdin: no password on stdin")
        return line.rstrip("\r\n")
    given = os.environ.get(PASSWORD_ENV)
    if given is not None:
        return given
    if not sys.stdin.isatty():
        _fail(f"no password for {user!r}: set ${PASSWORD_ENV} or use --password-stdin")
    try:
        password = getpass.getpass(f"password for {user}: ")
        if confirm and getpass.getpass("again: ") != password:
            _fail("the passwords differ")
    except (EOFError, KeyboardInterrupt):
        _fail("no password given")
    return password


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"conf: {message}", err=True)
    sys.exit(code)


@cli.command()
@meeting_options
@click.option(
    "--e2ee",
    is_flag=True,
    help="End-to-end encrypt the meeting's media (SFrame): the server forwards it but cannot read it.",
)
@click.option(
    "--waiting-room",
    is_flag=True,
    help="Hold everyone who joins in a waiting room until the host or an admin admits them (/admit NAME).",
)
def create(**options: Any) -> None:
    """Create a meeting, print its ID and passcode, and join it as host."""
    _attend(None, None, **options)


REQUIRE_E2EE_HELP = (
    "Take part only if the meeting is end-to-end encrypted: refuse (exit code 1) a meeting the server "
    "says is plain."
)


@cli.command()
@click.argument("meeting")
@meeting_options
@click.option("--discover", "find_server", is_flag=True, help="Find the server on the local network (SSDP).")
@click.option("--e2ee", is_flag=True, help=REQUIRE_E2EE_HELP)
@token_option
def join(meeting: str, find_server: bool, **options: Any) -> None:
    """Join MEETING."""
    if find_server:
        try:
            options["server_url"], options["fingerprint"] = _discovered_server(
                _machine_mode(options["json_flag"]), options["fingerprint"], options["encryption"]
            )
        except ConfError as exc:
            click.echo(f"conf: {exc}", err=True)
            sys.exit(exc.exit_code)
    _attend(meeting, None, **options)


@cli.command()
@click.argument("kind")
@click.argument("path", required=False)
@click.option("--meeting", required=True, help="Meeting ID to share into.")
@meeting_options
@_with(*SOURCE_OPTIONS)
@click.option("--e2ee", is_flag=True, help=REQUIRE_E2EE_HELP)
@token_option
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
    source_option: tuple[str, ...],
    **options: Any,
) -> None:
    """Join MEETING and share screen, camera, audio, a file (PATH), a test pattern or a tone into it.

    Stays in the meeting like `conf join`: commands still work (/unshare KIND, /leave).
    """
    source_options = _source_options(
        path=path,
        width=width,
        height=height,
        fps=fps,
        bitrate=bitrate,
        frequency=frequency,
        device=device,
        region=region,
        source_option=source_option,
    )
    _attend(meeting, (kind, source_options), **options)


def _source_options(**given: Any) -> dict[str, Any]:
    """The source options given on the command line (a file to share must exist)."""
    path = given.get("path")
    if path is not None and not Path(path).exists():
        click.echo(f"conf: no such file: {path}", err=True)
        sys.exit(1)
    extra = given.pop("source_option", None) or ()
    options = {key: value for key, value in given.items() if value is not None}
    for item in extra:
        key, sep, value = item.partition("=")
        if not sep or not key:
            click.echo(f"conf: --source-option wants KEY=VALUE, not {item!r}", err=True)
            sys.exit(2)
        options.setdefault(key, value)
    return options


@cli.command()
@click.argument("peer", required=False)
@click.option("--listen", is_flag=True, help="Stay online and wait for calls instead of calling PEER.")
@server_option
@transport_option
@name_option
@json_option
@click.option("--accept", "auto_accept", is_flag=True, help="Accept incoming calls without asking.")
@click.option(
    "--ring-timeout", type=click.IntRange(1, 120), default=None, help="Seconds to ring before giving up (30)."
)
@click.option("--share", "share_kind", default=None, metavar="KIND", help="Share this source once connected.")
@click.option("--path", "share_path", default=None, help="File to share (with --share file).")
@_with(*SOURCE_OPTIONS)
@play_option
@speaker_option
@click.option(
    "--view",
    type=click.Choice(["window", "none"]),
    default=None,
    help="Show received video in a desktop window, or not (default: none).",
)
def call(
    peer: str | None,
    listen: bool,
    server_url: str,
    transport: str | None,
    name: str,
    json_flag: bool,
    auto_accept: bool,
    ring_timeout: int | None,
    share_kind: str | None,
    share_path: str | None,
    play: bool | None,
    speaker: str | None,
    view: str | None,
    **source: Any,
) -> None:
    """Call PEER (a name online on the server), or wait for calls with --listen.

    Media flows directly between the two ends when a path through the NATs can be found, else through
    the server's relay; it is encrypted end to end either way. Exit codes: 0 after the call, 11 if it was
    declined, busy or not answered, 4 if the server was lost.
    """
    from conf_cli.client.calls.runner import run_call
    from conf_cli.client.media.outputs import prepare_outputs

    if (peer is None) == (not listen):
        raise click.UsageError("give a PEER to call, or --listen to wait for calls (not both)")
    share = (share_kind, _source_options(path=share_path, **source)) if share_kind else None
    machine = _machine_mode(json_flag)

    def make_ui() -> Any:
        if machine:
            from conf_cli.client.ui.machine import MachineUI

            return MachineUI()
        from conf_cli.client.ui.call_console import CallConsole

        return CallConsole()

    async def main() -> int:
        if share is not None:
            from conf_cli.client.media.publisher import find_source_factory

            find_source_factory(registry().sources, share[0])  # an unknown source fails now, in one line
        outputs = await prepare_outputs(machine, play=play, speaker=speaker, view=view or "none")
        return await run_call(
            parse_server_url(server_url, transport=transport),
            name,
            peer,
            make_ui(),
            share=share,
            auto_accept=auto_accept,
            ring_timeout=ring_timeout,
            outputs=outputs,
        )

    _run(main)


def _size(_context: Any, _param: Any, value: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter("give WIDTHxHEIGHT, such as 1280x720") from None
    if not (160 <= width <= 3840 and 120 <= height <= 2160) or width % 2 or height % 2:
        raise click.BadParameter("even numbers, from 160x120 to 3840x2160")
    return width, height


@cli.command()
@click.argument("meeting")
@click.option(
    "--out",
    "out_file",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the composite to this file (MP4: H.264 and AAC).",
)
@click.option(
    "--hls",
    "hls_dir",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the composite as HLS into this folder (index.m3u8 and ~2 s segments).",
)
@click.option(
    "--rtmp",
    "rtmp_url",
    default=None,
    metavar="rtmp://HOST/APP/STREAM",
    help="Push the composite to an RTMP server (FLV: H.264 and AAC).",
)
@layout_option
@click.option("--size", default="1280x720", show_default=True, callback=_size, help="Picture size.")
@click.option("--fps", type=click.IntRange(1, 60), default=30, show_default=True, help="Frames per second.")
@click.option(
    "--tracks",
    "tracks_dir",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Also keep every received track as it arrived (.mkv per track, as join --record).",
)
@server_option
@transport_option
@name_option
@passcode_option
@json_option
@user_option
@password_stdin_option
@encryption_option
@fingerprint_option
@token_option
def record(
    meeting: str,
    out_file: Path | None,
    hls_dir: Path | None,
    rtmp_url: str | None,
    layout: str,
    size: tuple[int, int],
    fps: int,
    tracks_dir: Path | None,
    name: str,
    **options: Any,
) -> None:
    """Join MEETING as a recorder and record it: every shared picture tiled (names on the tiles, the
    speaker framed), every voice mixed, into one H.264 and one AAC stream.

    Everyone in the meeting is told that it is recorded, and by whom (the recorder is called
    "NAME (recorder)"); the host can forbid it (/forbid record). In an end-to-end encrypted meeting the
    recorder holds the keys like any participant and waits for the host to /admit it. /leave (or
    SIGTERM) stops and finishes the recording.
    """
    from conf_cli.client.media.composite import Composite
    from conf_cli.client.media.recording import CompositeRecorder, Target, open_outputs
    from conf_cli.protocol.control import RECORDER_SUFFIX

    if rtmp_url is not None and not rtmp_url.startswith(("rtmp://", "rtmps://")):
        raise click.BadParameter("an rtmp:// URL", param_hint="--rtmp")
    targets = [
        *([Target("file", str(out_file))] if out_file is not None else []),
        *([Target("hls", str(hls_dir))] if hls_dir is not None else []),
        *([Target("rtmp", rtmp_url)] if rtmp_url is not None else []),
    ]
    if not targets:
        raise click.UsageError("say where the recording goes: --out FILE.mp4, --hls DIR or --rtmp URL")
    token = options.get("token")
    context = click.get_current_context()
    if token is not None and context.get_parameter_source("name") is click.core.ParameterSource.DEFAULT:
        from conf_cli.server.tokens import peek

        name = str(
            _or_exit(lambda: peek(token)).get("sub") or name
        )  # recording on behalf of the token's name
    if not name.endswith(RECORDER_SUFFIX):
        name += RECORDER_SUFFIX
    width, height = size
    composite = Composite(width, height, layout)
    outputs = _or_exit(lambda: open_outputs(targets, width, height, fps))
    recorder = CompositeRecorder(composite, outputs, fps)
    try:
        _attend(
            meeting,
            None,
            name=name,
            record_dir=tracks_dir,
            play=False,
            speaker=None,
            view="none",
            composite=(composite, recorder),
            **options,
        )
    finally:
        recorder.stop()
        if recorder.frames == 0 and out_file is not None:
            out_file.unlink(missing_ok=True)  # nothing recorded (not admitted, refused): no empty file


@cli.command()
@click.argument("peer")
@click.option("--meeting", required=True, help="Meeting ID.")
@meeting_options
@token_option
def control(peer: str, meeting: str, **options: Any) -> None:
    """Join MEETING and ask PEER for control of their desktop; they must agree.

    Their screen shows in a window that takes your pointer and keys. Closing it, or PEER taking control
    back, ends control and the call (exit code 0; 10 when PEER refuses or does not answer in time).
    """
    _attend(meeting, None, control=peer, **options)


@cli.group()
def token() -> None:
    """Access tokens: let one person into a meeting as a name and role, without the passcode."""


@token.command("create")
@click.option("--meeting", default=None, metavar="ID", help="The meeting the token opens.")
@click.option("--any", "any_meeting", is_flag=True, help="Open any meeting on this server instead.")
@click.option("--name", required=True, help="The name its holder takes part under.")
@click.option(
    "--role",
    type=click.Choice(["host", "admin", "member"]),
    default="member",
    show_default=True,
    help="The role its holder enters with (a host's token makes the present host an admin).",
)
@click.option("--ttl", default="1h", show_default=True, help="How long it is valid: 90s, 30m, 1h, 7d.")
@click.option(
    "--can-publish",
    default="audio,video,screen",
    show_default=True,
    metavar="KINDS",
    help="What its holder may share, comma-separated (empty: nothing).",
)
@token_key_option
def token_create(
    meeting: str | None,
    any_meeting: bool,
    name: str,
    role: str,
    ttl: str,
    can_publish: str,
    token_key_file: Path | None,
) -> None:
    """Print a token signed with this server's token key (run it where the server keeps its folder).

    The holder joins with `conf join ID --token TOKEN`, or the web page's `?token=TOKEN`.
    """
    import time

    from conf_cli.server.people import Role
    from conf_cli.server.tokens import TokenKey, issue, parse_ttl

    if (meeting is None) == (not any_meeting):
        _fail("give --meeting ID or --any (any meeting on this server)")
    kinds = [kind.strip() for kind in can_publish.split(",") if kind.strip()]
    key = _or_exit(lambda: TokenKey.load_or_create(token_key_file))
    text = _or_exit(
        lambda: issue(
            key,
            name=name,
            meeting=meeting,
            role=Role(role),
            can_publish=kinds,
            ttl=parse_ttl(ttl),
            now=time.time(),
        )
    )
    click.echo(text)


@cli.group()
def cluster() -> None:
    """Look at a cluster of conf servers (see `conf server --cluster` and docs/cluster.md)."""


@cluster.command("status")
@click.option(
    "--cluster",
    "cluster_url",
    required=True,
    metavar="URL",
    help="The cluster's directory: redis://HOST:PORT/DB or nats://HOST:PORT.",
)
@click.option("--json", "json_flag", is_flag=True, help="Print one cluster_status JSON object.")
def cluster_status_command(cluster_url: str, json_flag: bool) -> None:
    """List the cluster's nodes (their URLs, key, load) and the meetings each holds."""
    from conf_cli.machine import emit
    from conf_cli.server.cluster_status import cluster_status, status_lines

    async def main() -> None:
        status = await cluster_status(registry(), cluster_url)
        if json_flag:
            emit(status)
        else:
            for line in status_lines(status):
                click.echo(line)

    _run(main)


@cli.group()
def user() -> None:
    """Manage the accounts of a server on this machine (for `conf server --require-login`)."""


@user.command("add")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@accounts_option
def user_add(name: str, password_stdin: bool, accounts_path: Path | None) -> None:
    """Add account NAME; password from a prompt (asked twice), $CONF_PASSWORD or --password-stdin."""
    from conf_cli.server.accounts import AccountStore

    password = _password(name, password_stdin, confirm=True) or ""
    store = AccountStore(accounts_path)
    _run(lambda: asyncio.to_thread(store.add, name, password))


@user.command("remove")
@click.argument("name")
@accounts_option
def user_remove(name: str, accounts_path: Path | None) -> None:
    """Remove account NAME."""
    from conf_cli.server.accounts import AccountStore

    store = AccountStore(accounts_path)
    _run(lambda: asyncio.to_thread(store.remove, name))


@user.command("list")
@accounts_option
def user_list(accounts_path: Path | None) -> None:
    """List the account names."""
    from conf_cli.server.accounts import AccountStore

    async def main() -> None:
        for account in await asyncio.to_thread(AccountStore(accounts_path).names):
            click.echo(account)

    _run(main)


@cli.command()
def devices() -> None:
    """List the capture sources and sinks this machine has, and whether each can be used now."""
    from rich.console import Console
    from rich.table import Table

    reg = registry()
    table = Table(title="conf devices")
    for column in ("source or sink", "kind", "device", "description", "usable"):
        table.add_column(column)
    for label, factories in (("source", reg.sources), ("sink", reg.sinks), ("injector", reg.injectors)):
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


@cli.command()
@click.argument("url", required=False)
@encryption_option
@fingerprint_option
@click.option(
    "--timeout",
    type=click.FloatRange(0.5, 60),
    default=5.0,
    show_default=True,
    help="Seconds each check waits.",
)
@click.option(
    "--json", "json_flag", is_flag=True, help="One JSON object per check (doctor_check), for scripts."
)
def doctor(
    url: str | None, encryption: str, fingerprint: str | None, timeout: float, json_flag: bool
) -> None:
    """Check what a meeting on the server at URL needs, one line per check with what to do.

    Name resolution, TCP, TLS and the pinned key, UDP (rtp://'s media path, or the STUN port), the NAT,
    the clock, and this machine's capture and playback devices. Exit code 1 when a meeting would fail.
    URL defaults to $CONF_SERVER, else tcp://127.0.0.1:7450.
    """
    from conf_cli.client.doctor import FAIL, Check, Doctor
    from conf_cli.machine import emit

    address = _or_exit(lambda: parse_server_url(url or os.environ.get(SERVER_ENV, DEFAULT_SERVER)))
    if fingerprint is not None:
        from conf_cli.plugin.security import check_fingerprint

        _or_exit(lambda: check_fingerprint(fingerprint))

    def report(check: Check) -> None:
        if json_flag:
            emit(check.as_event())
        else:
            click.echo(check.line())

    async def main() -> int:
        doctor = Doctor(registry(), address, encryption=encryption, expected=fingerprint, timeout=timeout)
        checks = await doctor.run(report)
        return 1 if any(check.status == FAIL for check in checks) else 0

    _run(main)


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
    console.print("server services: " + (", ".join(sorted(reg.services)) or "none"))
    console.print("injectors: " + (", ".join(sorted(reg.injectors)) or "none"))


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
    "--generator",
    type=click.Choice(["python", "compiled"]),
    default="python",
    show_default=True,
    help="How the load generator sends and receives media: python (each client's link) or compiled "
    "(rtp:// only: sendmmsg/recvmmsg in C, for rates Python clients cannot drive).",
)
@click.option(
    "--generator-nice",
    default=0,
    show_default=True,
    type=click.IntRange(0, 19),
    help="Run the load generator this much nicer than the server, so that on one machine the server gets "
    "a core first (as with its clients elsewhere).",
)
@click.option(
    "--plot", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write a PNG plot."
)
@click.option("--json", "json_flag", is_flag=True, help="Print the figures as one JSON object.")
@click.option(
    "--churn",
    type=click.FloatRange(0),
    default=None,
    metavar="RATE",
    help="Join churn instead of media: start RATE joins a second (0: as fast as --clients allow), each "
    "with the passcode, a chat, then a leave or a dropped connection; report join latency, joins/s and "
    "the server's CPU per join.",
)
@click.option(
    "--joins",
    default=300,
    show_default=True,
    type=click.IntRange(0),
    help="--churn: joins (0: for --duration).",
)
@click.option(
    "--clients", default=30, show_default=True, type=click.IntRange(1), help="--churn: clients at once."
)
@click.option(
    "--drop-every",
    default=4,
    show_default=True,
    type=click.IntRange(0),
    help="--churn: every Nth client drops its connection instead of leaving (0: none).",
)
@click.option(
    "--stay",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0),
    help="--churn: seconds in the meeting.",
)
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
    generator: str,
    generator_nice: int,
    plot: Path | None,
    json_flag: bool,
    churn: float | None,
    joins: int,
    clients: int,
    drop_every: int,
    stay: float,
) -> None:
    """Load a server with synthetic RTP (or, with --churn, with clients joining and leaving); report
    packets/s, loss, latency, server CPU and memory."""
    from conf_cli.bench.command import bench as run
    from conf_cli.bench.plan import BenchConfig

    if churn is not None:
        _churn(churn, joins, clients, drop_every, stay, transport, server_url, server_pid, meetings,
               duration, interval, procs, server_args, encryption, json_flag)  # fmt: skip
        return
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
        generator=generator,
        generator_nice=generator_nice,
    )
    _run(lambda: run(config, json_flag, plot), fast_loop=True)


cli.add_command(admin)


def _churn(
    rate: float,
    joins: int,
    clients: int,
    drop_every: int,
    stay: float,
    transport: str,
    server_url: str | None,
    server_pid: int | None,
    meetings: int,
    duration: float,
    interval: float,
    procs: int,
    server_args: tuple[str, ...],
    encryption: str,
    json_flag: bool,
) -> None:
    """``conf bench --churn``: joins, chat, leaves and dropped connections (conf_cli.bench.churn)."""
    from conf_cli.bench.churn_display import churn
    from conf_cli.bench.churn_plan import ChurnConfig

    config = ChurnConfig(
        rate=rate,
        joins=joins,
        clients=clients,
        meetings=meetings,
        duration=duration,
        drop_every=drop_every,
        stay=stay,
        transport=transport,
        encryption=encryption,
        procs=procs,
        interval=interval,
        server_url=server_url,
        server_pid=server_pid,
        server_args=server_args,
    )
    try:
        config.check()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    _run(lambda: churn(config, json_flag), fast_loop=True)


def add_plugin_commands(reg: Registry) -> None:
    """Add the commands plugins register to ``conf``; one whose name is taken is left out, with a warning."""
    for name, command in reg.commands.items():
        if name in cli.commands:
            logging.getLogger("conf.plugins").warning(
                "a plugin's command %r is left out: conf already has a command of that name", name
            )
            continue
        cli.add_command(command, name)
    reg.pm.hook.conf_add_commands(cli=cli)  # deprecated: pluggy warns each plugin that implements it


def add_plugin_options(reg: Registry) -> None:
    """Give ``conf server`` the options of every service plugin, once."""
    known = {param.name for param in server.params}
    for service in reg.services.values():
        for option in service.options():
            if option.name not in known:
                server.params.append(option)
                known.add(option.name)


def main() -> None:
    reg = registry()
    add_plugin_commands(reg)
    add_plugin_options(reg)
    cli()


if __name__ == "__main__":
    main()
