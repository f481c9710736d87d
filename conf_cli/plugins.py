"""Loading plugins: the built-in ones and third parties', all through the ``conf`` entry-point group.

Set ``CONF_PLUGINS`` to a comma-separated list of entry-point names (``transport_tcp,capture``) to load
only those; ``CONF_PLUGINS=`` (empty) loads none.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pluggy

from conf_cli import hookspecs
from conf_cli.errors import ConfError
from conf_cli.services import ServerService
from conf_cli.transport import Transport

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
        pm.hook.conf_register_transports(register=self._add_transport)
        pm.hook.conf_register_sources(register=lambda f: self.sources.setdefault(f.name, f))
        pm.hook.conf_register_sinks(register=lambda f: self.sinks.setdefault(f.name, f))
        pm.hook.conf_register_ciphers(register=lambda c: self.ciphers.setdefault(c.name, c))
        pm.hook.conf_register_server_services(register=lambda s: self.services.setdefault(s.name, s))
        pm.hook.conf_register_injectors(register=lambda f: self.injectors.setdefault(f.name, f))

    def _add_transport(self, transport: Transport) -> None:
        self.transports.setdefault(transport.name, transport)

    def transport_for(self, scheme: str) -> Transport:
        for transport in self.transports.values():
            if scheme in transport.schemes or scheme == transport.name:
                return transport
        known = ", ".join(sorted(s for t in self.transports.values() for s in t.schemes)) or "none"
        raise ConfError(f"no transport plugin for {scheme!r} (loaded: {known}); see `conf plugins`")

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
    return Registry(pm, origins)


@cache
def registry() -> Registry:
    """The process-wide registry, created on first use."""
    return create_registry()
