"""Fuzzing conf's parsers: a registry of targets, a mutator, and a runner.

A *target* is a function taking bytes that either returns (a short signature of what it parsed) or
raises one of the exception types the parser documents (``ProtocolError`` for every sans-I/O wire
format). Anything else that escapes is a crash; an input that runs longer than the per-input time limit
is a hang. Both are saved so they can be replayed. ``python -m fuzz --help`` runs them.

A new parser adds its target in one line (see :mod:`fuzz.targets`)::

    register("sdp", parse_sdp, seeds=lambda: [SAMPLE_SDP])

The same targets drive the property tests (tests/fuzz/), so a parser is checked the same way by
hypothesis in the test suite and by long fuzzing runs on demand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from conf_cli.errors import ProtocolError

__all__ = ["Target", "get", "names", "register"]


@dataclass(frozen=True)
class Target:
    """One fuzz target: ``run(data)`` may raise only ``expected``; ``seeds()`` gives valid inputs."""

    name: str
    run: Callable[[bytes], object]
    seeds: Callable[[], Iterable[bytes]]
    expected: tuple[type[BaseException], ...] = (ProtocolError,)
    max_size: int = 4096
    """The largest input the mutator makes for this target."""
    description: str = ""

    def check(self, data: bytes) -> object:
        """Run the target on ``data``; a documented exception counts as a clean refusal (returns it)."""
        try:
            return self.run(data)
        except self.expected as exc:
            return exc


_TARGETS: dict[str, Target] = {}


def register(
    name: str,
    run: Callable[[bytes], object],
    seeds: Callable[[], Iterable[bytes]],
    expected: tuple[type[BaseException], ...] = (ProtocolError,),
    max_size: int = 4096,
    description: str = "",
) -> Target:
    """Add a target; a name already registered is replaced."""
    target = Target(name, run, seeds, expected, max_size, description or (run.__doc__ or "").split("\n")[0])
    _TARGETS[name] = target
    return target


def _load() -> None:
    if not _TARGETS:
        from fuzz import targets  # noqa: F401  (registers the built-in targets)


def names() -> list[str]:
    """Every registered target, in registration order."""
    _load()
    return list(_TARGETS)


def get(name: str) -> Target:
    """The target called ``name``; KeyError with the known names if there is none."""
    _load()
    try:
        return _TARGETS[name]
    except KeyError:
        raise KeyError(f"no fuzz target {name!r}; known: {', '.join(_TARGETS)}") from None
