"""Every hook a plugin can implement is documented in docs/plugins.md and exercised by some test."""

from __future__ import annotations

from pathlib import Path

import pluggy

from conf_cli.plugin import hookspecs

ROOT = Path(__file__).resolve().parents[2]


def _hookspecs() -> list[str]:
    pm = pluggy.PluginManager("conf")
    pm.add_hookspecs(hookspecs)
    return sorted(name for name in vars(pm.hook) if name.startswith("conf_"))


def test_conf_has_the_hooks_this_test_knows() -> None:
    assert len(_hookspecs()) >= 8  # the test below checks something


def test_every_hookspec_is_documented() -> None:
    guide = (ROOT / "docs" / "plugins.md").read_text()
    missing = [name for name in _hookspecs() if f"`{name}(" not in guide]
    assert not missing, f"not in the hook table of docs/plugins.md: {missing}"


def test_every_hookspec_is_exercised_by_a_test() -> None:
    here = Path(__file__).resolve()
    tests = [p.read_text() for p in (ROOT / "tests").rglob("test_*.py") if p.resolve() != here]
    unexercised = [name for name in _hookspecs() if not any(name in text for text in tests)]
    assert not unexercised, f"no test names these hooks: {unexercised}"
