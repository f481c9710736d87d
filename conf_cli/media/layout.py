"""How a composed picture arranges the meeting's videos: the names the command line (`conf record`, `conf
admin record start`), the admin API and the compositor all accept."""

from __future__ import annotations

LAYOUTS = ("grid", "speaker")
"""``grid``: equal tiles; ``speaker``: the active speaker large, the others in a strip."""
LAYOUT_HELP = "grid: equal tiles; speaker: the active speaker large, the others in a strip."
"""The command line's description of :data:`LAYOUTS`."""
