"""``conf server --config FILE``: every option of ``conf server`` can be set in the TOML file (the list
comes from click, so a new option is covered as it is added), flags win over the file, and an unknown
key is refused by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
from click.core import ParameterSource

from conf_cli.cli import add_plugin_options, server
from conf_cli.plugin.registry import registry
from conf_cli.testing.processes import run_conf, spawn


def _value_for(option: click.Option, folder: Path) -> tuple[Any, Any]:
    """A value other than the default that ``option`` takes, as TOML gives it and as click parses it."""
    kind = option.type
    if option.is_flag or isinstance(kind, click.types.BoolParamType):
        return (not option.default), (not option.default)
    if isinstance(kind, click.Choice):
        choice = next(c for c in reversed(kind.choices) if c != option.default)
        return choice, choice
    if isinstance(kind, click.IntRange):
        value = (kind.min or 0) + 1
        return value, value
    if isinstance(kind, click.FloatRange):
        value = (kind.min or 0) + 1.5
        return value, value
    if isinstance(kind, click.types.IntParamType):
        return 3, 3
    if isinstance(kind, click.types.FloatParamType):
        return 2.5, 2.5
    if isinstance(kind, click.Path):
        name = f"{option.name}-path"
        target = folder / name
        if kind.exists:
            target.mkdir() if kind.dir_okay and not kind.file_okay else target.write_text("")
        parsed = kind.convert(str(target), None, None)
        return name, parsed  # relative: taken from the file's folder
    return f"{option.name}-text", f"{option.name}-text"


def _options() -> list[click.Option]:
    add_plugin_options(registry())
    return [p for p in server.params if isinstance(p, click.Option) and p.name not in ("config", "help")]


def test_every_server_option_is_taken_from_the_file(tmp_path: Path) -> None:
    options = _options()
    assert {"port", "transports", "metrics_port", "log_format", "rtsp_port"} <= {o.name for o in options}
    lines, expected = [], {}
    for option in options:
        written, parsed = _value_for(option, tmp_path)
        if option.multiple:
            written, parsed = [written], (parsed,)
        key = option.opts[0].removeprefix("--")
        lines.append(f"{key} = {_toml(written)}")
        expected[option.name] = parsed
    config = tmp_path / "conf.toml"
    config.write_text("\n".join(lines) + "\n")
    ctx = server.make_context("server", ["--config", str(config)])
    for option in options:
        assert ctx.params[option.name] == expected[option.name], option.name
        assert ctx.get_parameter_source(option.name) is ParameterSource.DEFAULT_MAP, option.name


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def test_underscores_work_as_dashes_and_a_flag_overrides_the_file(tmp_path: Path) -> None:
    config = tmp_path / "conf.toml"
    config.write_text('max_failures = 9\nport = 7000\ntransport = "zmq"\n')
    ctx = server.make_context("server", ["--config", str(config), "--port", "7100"])
    assert ctx.params["max_failures"] == 9
    assert ctx.params["port"] == 7100
    assert ctx.params["transports"] == ("zmq",)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("prot = 7450\n", "unknown key 'prot'"),
        ("port = 70000\n", "port: 70000 is not in the range 0<=x<=65535"),
        ("port = \n", "is not valid TOML"),
        ('encryption = "maybe"\n', "encryption: 'maybe' is not one of"),
        ('config = "other.toml"\n', "unknown key 'config'"),
    ],
)
def test_a_bad_file_is_refused_with_the_key_named(tmp_path: Path, text: str, said: str) -> None:
    config = tmp_path / "conf.toml"
    config.write_text(text)
    done = run_conf("server", "--config", str(config), timeout=30)
    assert done.returncode == 2, done.stderr
    assert said in done.stderr
    assert str(config) in done.stderr


def test_a_real_server_runs_from_the_file_with_a_flag_overriding_it(tmp_path: Path) -> None:
    config = tmp_path / "conf.toml"
    config.write_text(
        'host = "127.0.0.1"\nport = 0\ntransport = ["zmq"]\njson = true\nmetrics-port = 0\n'
        'identity = "server.key"\nannounce = false\n'
    )
    server = spawn(["server", "--config", str(config), "--transport", "tcp"])
    try:
        started = server.expect("server_started")
        assert [url.split("://")[0] for url in started["urls"]] == ["tcp"]  # the flag won
        assert started["metrics"].startswith("http://127.0.0.1:")  # metrics-port from the file
        assert (tmp_path / "server.key").exists()  # identity, relative to the file
    finally:
        server.stop()


def test_the_example_file_in_docs_is_a_valid_configuration() -> None:
    example = Path(__file__).parents[2] / "docs" / "conf.example.toml"
    ctx = server.make_context("server", ["--config", str(example)])
    assert ctx.get_parameter_source("metrics_port") is ParameterSource.DEFAULT_MAP
    assert ctx.params["transports"] == ("tcp", "rtp")
