"""Every test, and every process a test starts, keeps conf's keys and pins in a temporary CONF_HOME."""

from __future__ import annotations

import os

import pytest

from conf_cli.plugins import ONLY_ENV, plugins_of
from conf_cli.testing import test_home


def pytest_configure(config: pytest.Config) -> None:
    os.environ["CONF_HOME"] = test_home()
    # conf's own plugins and the example third-party transport, not whatever else is installed here
    os.environ.setdefault(ONLY_ENV, ",".join(plugins_of("conf", "conf-transport-websocket")))
