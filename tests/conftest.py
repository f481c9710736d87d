"""Every test, and every process a test starts, keeps conf's keys and pins in a temporary CONF_HOME."""

from __future__ import annotations

import os

import pytest

from conf_cli.testing import test_home


def pytest_configure(config: pytest.Config) -> None:
    os.environ["CONF_HOME"] = test_home()
