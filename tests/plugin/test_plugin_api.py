"""The plugin API: what conf_cli re-exports, and how the registry treats what plugins register."""

from __future__ import annotations

import logging
import subprocess
import sys
import types
from collections.abc import Callable

import click
import pluggy
import pytest

import conf_cli
from conf_cli import LazyFactory, Transport, hookimpl
from conf_cli.cli import add_plugin_commands, cli
from conf_cli.plugin.registry import ONLY_ENV, create_registry, plugins_of


@pytest.fixture
def no_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ONLY_ENV, "")


def test_every_public_name_resolves_and_is_listed() -> None:
    assert set(conf_cli.__all__) == {"__version__", *conf_cli._WHERE}
    for name in conf_cli.__all__:
        assert getattr(conf_cli, name) is not None, name
    assert conf_cli.Transport is Transport
    with pytest.raises(AttributeError):
        conf_cli.Server  # noqa: B018  (the server is not part of the plugin API)


def test_importing_the_api_imports_only_what_is_used() -> None:
    code = (
        "import sys, conf_cli; from conf_cli import hookimpl, ConfError; "
        "print(sorted(m for m in sys.modules if m.startswith('conf_cli') or m in ('av', 'numpy')))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == str(
        ["conf_cli", "conf_cli.errors", "conf_cli.plugin", "conf_cli.plugin.hookspecs", "conf_cli.version"]
    )


def _plugin(name: str, **hooks: Callable[..., None]) -> types.SimpleNamespace:
    return types.SimpleNamespace(__name__=name, **{k: hookimpl(v) for k, v in hooks.items()})


def _sources(owner: str, *names: str) -> Callable[[Callable[[LazyFactory], None]], None]:
    def conf_register_sources(register: Callable[[LazyFactory], None]) -> None:
        for name in names:
            register(LazyFactory("no.such.module", "Factory", name=name, kind="video", description=owner))

    return conf_register_sources


def test_a_name_clash_keeps_the_first_and_warns(
    no_entry_points: None, caplog: pytest.LogCaptureFixture
) -> None:
    early = _plugin("early", conf_register_sources=_sources("early", "noise", "bars"))
    late = _plugin("late", conf_register_sources=_sources("late", "noise"))
    with caplog.at_level(logging.WARNING, logger="conf.plugins"):
        registry = create_registry((early, late))  # pluggy calls the plugin registered last first
    assert sorted(registry.sources) == ["bars", "noise"]
    assert registry.sources["noise"].description == "late" and registry.sources["bars"].description == "early"
    clash = [r.getMessage() for r in caplog.records if "noise" in r.getMessage()]
    assert len(clash) == 1 and "already registered" in clash[0]


def test_two_transports_claiming_one_scheme_warn(
    no_entry_points: None, caplog: pytest.LogCaptureFixture
) -> None:
    from conf_transport_tcp import TcpTransport

    class Imitation(TcpTransport):
        name = "imitation"

    def conf_register_transports(register: Callable[[Transport], None]) -> None:
        register(Imitation())

    real = _plugin("real", conf_register_transports=lambda register: register(TcpTransport()))
    copy = _plugin("copy", conf_register_transports=conf_register_transports)
    with caplog.at_level(logging.WARNING, logger="conf.plugins"):
        registry = create_registry((copy, real))
    assert registry.transport_for("tcp").name == "tcp"
    assert [r.getMessage() for r in caplog.records] == [
        "transports tcp and imitation both claim tcp://: tcp serves it"
    ]


def test_a_hook_conf_does_not_know_is_refused(
    no_entry_points: None, caplog: pytest.LogCaptureFixture
) -> None:
    misspelt = _plugin("misspelt", conf_register_transport=lambda register: None)
    with pytest.raises(pluggy.PluginValidationError):  # a plugin handed in by the caller: an error
        create_registry((misspelt,))

    from conf_cli.plugin import hookspecs
    from conf_cli.plugin.registry import _drop_unknown_hooks

    pm = pluggy.PluginManager("conf")
    pm.add_hookspecs(hookspecs)
    pm.register(misspelt, name="misspelt")
    with caplog.at_level(logging.WARNING, logger="conf.plugins"):
        _drop_unknown_hooks(pm, keep=())  # an installed plugin: left out, with a warning
    assert pm.get_plugin("misspelt") is None
    assert any("misspelt" in r.getMessage() and "left out" in r.getMessage() for r in caplog.records)


def test_plugins_register_commands(no_entry_points: None, caplog: pytest.LogCaptureFixture) -> None:
    @click.command("hello-plugin")
    def hello() -> None:
        """Say hello."""

    @click.command("server")
    def impostor() -> None:
        """Not conf's server."""

    def conf_register_commands(register: Callable[[click.Command], None]) -> None:
        register(hello)
        register(impostor)

    registry = create_registry((_plugin("greeter", conf_register_commands=conf_register_commands),))
    assert set(registry.commands) == {"hello-plugin", "server"}
    real_server = cli.commands["server"]
    try:
        with caplog.at_level(logging.WARNING, logger="conf.plugins"):
            add_plugin_commands(registry)
        assert cli.commands["hello-plugin"] is hello
        assert cli.commands["server"] is real_server
        assert any("'server'" in r.getMessage() for r in caplog.records)
    finally:
        cli.commands.pop("hello-plugin", None)


def test_the_rtsp_plugin_adds_conf_play(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ONLY_ENV, "rtsp")
    assert [c.name for c in create_registry().commands.values()] == ["play"]


def test_conf_add_commands_still_works_and_warns(no_entry_points: None) -> None:
    added: list[str] = []

    def conf_add_commands(cli: click.Group) -> None:
        added.append(cli.name or "")

    with pytest.warns(DeprecationWarning, match="conf_register_commands"):
        registry = create_registry((_plugin("old", conf_add_commands=conf_add_commands),))
    add_plugin_commands(registry)
    assert added == [cli.name]


def test_the_crypto_plugin_registers_its_ciphers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ONLY_ENV, "crypto")
    registry = create_registry()
    assert sorted(registry.ciphers) == ["curve", "srtp", "tls"]
    found: list[conf_cli.Cipher] = []
    registry.pm.hook.conf_register_ciphers(register=found.append)
    assert sorted(c.name for c in found) == ["curve", "srtp", "tls"]
    assert all(isinstance(c, conf_cli.Cipher) for c in found)


def test_tests_load_only_conf_s_own_plugins() -> None:
    assert set(plugins_of("conf")) == {
        "transport_tcp",
        "transport_zmq",
        "transport_udp_rtp",
        "capture",
        "crypto",
        "rtsp",
        "web",
        "cluster",
    }
    assert create_registry().pm.get_plugin("transport_ws") is not None  # the example, as tests/conftest says


def test_only_a_transport_that_says_so_adopts_connections(no_entry_points: None) -> None:
    from conf_transport_tcp import TcpTransport
    from conf_transport_zmq import ZmqTransport

    assert TcpTransport.adopts and not ZmqTransport.adopts
    with pytest.raises(NotImplementedError):
        ZmqTransport().adoption_listener("zmq://127.0.0.1:1")
