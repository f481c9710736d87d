"""conf's own run of the shipped transport conformance suite, over every registered transport."""

from conf_cli.conformance import *  # noqa: F403
from conf_cli.conformance import pytest_generate_tests  # noqa: F401
