"""Skips that mean something: on the project's own machines, where the set-up installs every dependency,
a skipped test is a missing dependency or a broken check, so it fails the run.

``.ci/run`` sets ``CONF_FAIL_ON_SKIP=1``; ``make test`` elsewhere leaves it unset and only lists the skip
reasons (``-rs``). With it set, the session ends in failure and lists every skipped test with its reason.
"""

from __future__ import annotations

import os

import pytest

FAIL_ON_SKIP_ENV = "CONF_FAIL_ON_SKIP"


class SkipsFail:
    """A pytest plugin: collect every skip, then fail the session if there was one."""

    def __init__(self) -> None:
        self.skipped: list[tuple[str, str]] = []

    @staticmethod
    def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
        longrepr = report.longrepr
        if isinstance(longrepr, tuple) and len(longrepr) == 3:
            return str(longrepr[2]).removeprefix("Skipped: ")
        return str(longrepr)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            self.skipped.append((report.nodeid, self._reason(report)))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.skipped:
            self.skipped.append((report.nodeid, self._reason(report)))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.skipped and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.skipped:
            return
        terminalreporter.section(f"{FAIL_ON_SKIP_ENV}: skipped tests fail this run", sep="=", red=True)
        for nodeid, reason in self.skipped:
            terminalreporter.line(f"SKIPPED {nodeid}: {reason}")


def install(config: pytest.Config) -> None:
    """Make skips fail the session if ``CONF_FAIL_ON_SKIP`` is set to a non-empty value other than 0."""
    if os.environ.get(FAIL_ON_SKIP_ENV, "") not in ("", "0"):
        config.pluginmanager.register(SkipsFail(), "conf-fail-on-skip")
