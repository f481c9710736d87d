"""``conf server --config FILE``: the server's options from a TOML file.

Each key is a long option name of ``conf server`` (``max-failures`` or ``max_failures``), with the
value the option takes: a string, a number, ``true``/``false`` for a switch, a list for an option that
may be repeated (``transport = ["tcp", "rtp"]``); a relative path is taken from the file's folder.
Options given on the command line win over the file.
The options are read from the click command itself, so every option, a service plugin's too, can be
set in the file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import click

MAX_CONFIG_BYTES = 1 << 20


def _options(command: click.Command) -> dict[str, click.Option]:
    """The command's options by long name without dashes (``max-failures``), the ``--config`` itself aside."""
    options: dict[str, click.Option] = {}
    for param in command.params:
        if not isinstance(param, click.Option) or param.name in (None, "config"):
            continue
        for opt in param.opts:
            if opt.startswith("--"):
                options[opt[2:]] = param
    return options


def _beside(config: Path, value: object) -> object:
    return str(config.parent / value) if isinstance(value, str) and not Path(value).is_absolute() else value


def read_config(path: Path, ctx: click.Context) -> dict[str, Any]:
    """The file's settings as ``{parameter name: value}`` for ``ctx.command`` (a click default map).

    Raises :class:`click.BadParameter` naming the file and the key for an unreadable file, bad TOML, an
    unknown key or a value the option does not take.
    """
    try:
        with path.open("rb") as file:
            data = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise click.BadParameter(f"{path} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        table = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise click.BadParameter(f"{path} is not valid TOML: {exc}") from None
    options = _options(ctx.command)
    settings: dict[str, Any] = {}
    for key, value in table.items():
        option = options.get(key.replace("_", "-"))
        if option is None:
            known = ", ".join(sorted(options))
            raise click.BadParameter(f"{path}: unknown key {key!r} (conf server's options: {known})")
        if option.multiple and not isinstance(value, list):
            value = [value]
        if isinstance(value, dict):
            raise click.BadParameter(f"{path}: {key}: a table is not an option's value")
        if isinstance(option.type, click.Path):  # relative to the file, wherever the server starts
            value = [_beside(path, v) for v in value] if option.multiple else _beside(path, value)
        try:
            option.type_cast_value(ctx, value)
        except click.BadParameter as exc:
            raise click.BadParameter(f"{path}: {key}: {exc.message}") from None
        assert option.name is not None
        if option.name in settings:
            raise click.BadParameter(f"{path}: {key}: {option.name} is set twice")
        settings[option.name] = value
    return settings


def config_option_callback(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """Load ``--config`` before every other option, as the defaults those options take."""
    if value is not None:
        ctx.default_map = {**(ctx.default_map or {}), **read_config(value, ctx)}
    return value
