"""Helpers for tests of conf and of its plugins, shipped so that third-party plugins can use them.

- :mod:`~conf_cli.testing.processes`: real ``conf`` processes in machine mode.
- :mod:`~conf_cli.testing.conformance`: the transport conformance suite.
- :mod:`~conf_cli.testing.hostile`, :mod:`~conf_cli.testing.tap`, :mod:`~conf_cli.testing.calls`: hostile
  peers and servers.
- :mod:`~conf_cli.testing.relay`: the impairment relay (loss, delay, reordering, a rate limit);
  :mod:`~conf_cli.testing.uplink`: a publisher's uplink limited and freed (congestion control);
  :mod:`~conf_cli.testing.netns`: network namespaces;
  :mod:`~conf_cli.testing.ssdp`: SSDP inside a namespace; :mod:`~conf_cli.testing.capture`: tcpdump.
- :mod:`~conf_cli.testing.devices`: Xvfb and PulseAudio; :mod:`~conf_cli.testing.input`: input on virtual
  screens; :mod:`~conf_cli.testing.media`: clips and ffprobe.
"""
