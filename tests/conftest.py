"""Every test, and every process a test starts, keeps conf's keys and pins in a temporary CONF_HOME and
loads only conf's own plugins (the built-ins and the example WebSocket transport), never third-party
plugins installed beside them. Skips fail the run where ``CONF_FAIL_ON_SKIP`` is set (``.ci/run``)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from conf_cli.plugin.registry import ONLY_ENV, plugins_of
from conf_cli.server import passcode as passcode_module
from conf_cli.testing.processes import test_home
from tests.helpers import skips

EXAMPLE_PLUGINS = ("transport_ws",)
"""Plugins of examples/ the tests load: the conformance suite (tests/test_conformance.py) runs every
registered transport, the example WebSocket one among them."""


def own_plugins() -> list[str]:
    """The entry points conf itself ships, plus the examples' the tests use."""
    return sorted({*plugins_of("conf"), *EXAMPLE_PLUGINS})


def pytest_configure(config: pytest.Config) -> None:
    os.environ["CONF_HOME"] = test_home()
    os.environ[ONLY_ENV] = ",".join(own_plugins())
    skips.install(config)


@pytest.fixture(scope="module")
def cheap_scrypt() -> Iterator[None]:
    """Passcode hashing at a trivial cost, for tests about something else than scrypt.

    Use it with ``pytestmark = pytest.mark.usefixtures("cheap_scrypt")``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(passcode_module, "_SCRYPT", {"n": 2, "r": 1, "p": 1})
        yield
