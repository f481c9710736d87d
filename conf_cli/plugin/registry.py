"""Loading plugins: the built-in ones and third parties', all through the ``conf`` entry-point group.

Set ``CONF_PLUGINS`` to a comma-separated list of entry-point names (``transport_tcp,capture``) to load
only those; ``CONF_PLUGINS=`` (empty) loads none.

A plugin that cannot be imported, or that implements a hook conf does not know (a misspelt name), is
left out with a warning; so is anything it registers under a name another plugin registered first.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any

import pluggy

from conf_cli.errors import ConfError
from conf_cli.plugin import hookspecs
from conf_cli.plugin.cluster import ClusterBackendFactory
from conf_cli.plugin.services import ServerService
from conf_cli.plugin.transport import Transport

if TYPE_CHECKING:
    import click

log = logging.getLogger("conf.plugins")

ENTRY_POINT_GROUP = "conf"
ONLY_ENV = "CONF_PLUGINS"


@dataclass
class PluginInfo:
    name: str
    origin: str
    hooks: list[str] = field(default_factory=list)


class Registry:
    """The plugin manager and the collections plugins registered."""

    def __init__(self, pm: pluggy.PluginManager, origins: dict[str, str] | None = None) -> None:
        self.pm = pm
        self.origins = origins or {}
        self.transports: dict[str, Transport] = {}
        self.sources: dict[str, Any] = {}
        self.sinks: dict[str, Any] = {}
        self.ciphers: dict[str, Any] = {}
        self.services: dict[str, ServerService] = {}
        self.injectors: dict[str, Any] = {}
        self.cluster_backends: dict[str, ClusterBackendFactory] = {}
        self._collect("conf_register_transports", "transport", self.transports)
        self._collect("conf_register_sources", "source", self.sources)
        self._collect("conf_register_sinks", "sink", self.sinks)
        self._collect("conf_register_ciphers", "cipher", self.ciphers)
        self._collect("conf_register_server_services", "server service", self.services)
        self._collect("conf_register_injectors", "injector", self.injectors)
        self._collect("conf_register_cluster_backends", "cluster backend", self.cluster_backends)
        self._warn_shared_schemes()

    def _warn_shared_schemes(self) -> None:
        """Two transports claiming one URL scheme: the first registered serves it (:meth:`transport_for`)."""
        served: dict[str, str] = {}
        for transport in self.transports.values():
            for scheme in transport.schemes:
                if scheme in served:
                    log.warning(
                        "transports %s and %s both claim %s://: %s serves it",
                        served[scheme],
                        transport.name,
                        scheme,
                        served[scheme],
                    )
                else:
                    served[scheme] = transport.name

    def _collect(self, hook_name: str, what: str, into: dict[str, Any]) -> None:
        """Call one register hook, plugin by plugin in pluggy's order, keeping the first of each name."""
        owners: dict[str, str] = {}
        hook = getattr(self.pm.hook, hook_name)
        for impl in reversed(hook.get_hookimpls()):  # pluggy calls the last registered first

            def register(item: Any, plugin: str = impl.plugin_name) -> None:
                name = getattr(item, "name", None)
                if not isinstance(name, str) or not name:
                    log.warning("plugin %s registered a %s without a name: left out", plugin, what)
                    return
                if name in into:
                    log.warning(
                        "plugin %s registered a %s named %r, which plugin %s already registered: "
                        "the one of %s is used",
                        plugin,
                        what,
                        name,
                        owners[name],
                        owners[name],
                    )
                    return
                into[name] = item
                owners[name] = plugin

            impl.function(*[{"register": register}[arg] for arg in impl.argnames])

    @cached_property
    def commands(self) -> dict[str, click.Command]:
        """The commands plugins add to ``conf`` (``conf_register_commands``), collected on first use."""
        commands: dict[str, click.Command] = {}
        self._collect("conf_register_commands", "command", commands)
        return commands

    def transport_for(self, scheme: str) -> Transport:
        for transport in self.transports.values():
            if scheme in transport.schemes or scheme == transport.name:
                return transport
        known = ", ".join(sorted(s for t in self.transports.values() for s in t.schemes)) or "none"
        raise ConfError(f"no transport plugin for {scheme!r} (loaded: {known}); see `conf plugins`")

    def cluster_backend_for(self, url: str) -> ClusterBackendFactory:
        """The cluster backend serving ``url``'s scheme (``redis://``, ``nats://`` ...)."""
        scheme = url.partition("://")[0].lower() if "://" in url else ""
        for factory in self.cluster_backends.values():
            if scheme in factory.schemes:
                return factory
        known = ", ".join(sorted(s for f in self.cluster_backends.values() for s in f.schemes)) or "none"
        raise ConfError(
            f"no cluster backend for {url[:80]!r} (expected SCHEME://HOST:PORT with a scheme of: {known}); "
            "see `conf plugins`"
        )

    def describe(self) -> list[PluginInfo]:
        infos: list[PluginInfo] = []
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:
                continue
            origin = self.origins.get(name, "registered directly")
            module_file = getattr(plugin, "__file__", None)
            if module_file:
                origin += f" ({module_file})"
            hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
            infos.append(PluginInfo(name, origin, hooks))
        return infos


def plugins_of(*distributions: str) -> list[str]:
    """The entry-point names that ``distributions`` (``conf`` for the built-in plugins) declare: a
    value for ``CONF_PLUGINS`` that leaves out every other plugin installed beside them."""
    wanted = {d.lower().replace("_", "-") for d in distributions}
    return sorted(
        entry_point.name
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        if entry_point.dist is not None and entry_point.dist.name.lower().replace("_", "-") in wanted
    )


def _entry_point_filter() -> set[str] | None:
    only = os.environ.get(ONLY_ENV)
    if only is None:
        return None
    return {name.strip() for name in only.split(",") if name.strip()}


def create_registry(extra_plugins: tuple[object, ...] = ()) -> Registry:
    """A fresh registry: hookspecs, ``extra_plugins`` (e.g. from tests), then the entry points."""
    pm = pluggy.PluginManager("conf")
    pm.add_hookspecs(hookspecs)
    origins: dict[str, str] = {}
    for plugin in extra_plugins:
        pm.register(plugin)
    only = _entry_point_filter()
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if only is not None and entry_point.name not in only:
            continue
        if pm.get_plugin(entry_point.name) is not None:
            continue
        try:
            plugin = entry_point.load()
        except Exception as exc:  # a broken third-party plugin must not take conf down
            log.warning("cannot load plugin %s: %s", entry_point.name, exc)
            continue
        pm.register(plugin, name=entry_point.name)
        dist = entry_point.dist
        where = f"{dist.name} {dist.version}" if dist is not None else "unknown distribution"
        origins[entry_point.name] = f"entry point {entry_point.value!r} of {where}"
    _drop_unknown_hooks(pm, keep=extra_plugins)
    return Registry(pm, origins)


def _drop_unknown_hooks(pm: pluggy.PluginManager, keep: tuple[object, ...]) -> None:
    """``pm.check_pending()``: a loaded plugin implementing a hook conf does not know is left out, with
    a warning (a misspelt hook would otherwise never be called, silently); one of ``keep`` (passed in
    by the caller, as tests do) raises."""
    while True:
        try:
            pm.check_pending()
        except pluggy.PluginValidationError as exc:
            if any(exc.plugin is plugin for plugin in keep):
                raise
            name = pm.get_name(exc.plugin) or repr(exc.plugin)
            log.warning("plugin %s left out: %s", name, exc)
            pm.unregister(exc.plugin)
            continue
        return


@cache
def registry() -> Registry:
    """The process-wide registry, created on first use."""
    return create_registry()
