"""What several test modules share, imported as ``from tests.helpers.NAME import ...``:

- :mod:`tests.helpers.hub`: the hub pump, which drives the sans-I/O hub (hello, create, join, send)
  and carries out its deferred work inline;
- :mod:`tests.helpers.meeting`: meetings of the meeting core with fixed participants;
- :mod:`tests.helpers.terminal`: a conf process in a real pseudo-terminal, read and typed into;
- :mod:`tests.helpers.links`: an in-memory pair of :class:`conf_cli.plugin.transport.Link` with a seeded loss
  pattern for media.

The fixtures several modules share (``cheap_scrypt``, the in-process ``server``) are in conftest.py files.
"""
