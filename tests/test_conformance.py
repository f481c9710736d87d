"""conf's own run of the shipped transport conformance suite, over every registered transport."""

from conf_cli.testing.conformance import *  # noqa: F403
from conf_cli.testing.conformance import pytest_generate_tests  # noqa: F401
