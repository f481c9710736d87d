"""What a resumed client shows: its frame counts and its resumed join."""

from __future__ import annotations

from conf_cli.testing.processes import ConfProcess


def frames_of(process: ConfProcess, name: str, timeout: float = 10.0) -> int:
    """The frames decoded so far of ``name``'s video, from ``process``'s next report that has some."""
    stats = process.expect(
        "track_stats", lambda e: e["name"] == name and e["kind"] == "video" and e["frames"] > 0, timeout
    )
    return int(stats["frames"])


def back(process: ConfProcess, timeout: float = 10.0) -> dict[str, object]:
    """Wait until ``process`` says it reconnected, and return the ``joined`` that put it back."""
    process.expect("reconnecting", timeout=timeout)
    process.expect("reconnected", timeout=timeout)
    return process.expect("joined", lambda e: e.get("resumed") is True, timeout=timeout)
