"""The server: the sans-I/O core that decides, and the asyncio edge that moves bytes.

- :mod:`~conf_cli.server.hub`: connections, the handshake, many meetings, heartbeats (sans-I/O).
- :mod:`~conf_cli.server.meeting`: the rules of one meeting; :mod:`~conf_cli.server.people` who takes part;
  :mod:`~conf_cli.server.remote_control` the consent rules of remote control;
  :mod:`~conf_cli.server.feedback` RTCP feedback and resends; :mod:`~conf_cli.server.passcode` meeting IDs
  and passcode hashes; :mod:`~conf_cli.server.limiter` attempt limits (all sans-I/O).
- :mod:`~conf_cli.server.call_board` and :mod:`~conf_cli.server.call_relay`: one-to-one calls' signalling
  rules and the STUN answerer and relay (sans-I/O).
- :mod:`~conf_cli.server.edge`: the asyncio edge (:class:`~conf_cli.server.edge.Server`);
  :mod:`~conf_cli.server.forwarding` the media fan-out; :mod:`~conf_cli.server.local_link` in-process
  participants for services; :mod:`~conf_cli.server.accounts` the accounts file;
  :mod:`~conf_cli.server.run` the body of ``conf server``; :mod:`~conf_cli.server.workers` ``--workers N``.
- Operations: :mod:`~conf_cli.server.metrics` the Prometheus collector (reading
  :mod:`~conf_cli.server.traffic`'s per-transport counts and the hub's counters and
  :mod:`~conf_cli.server.histogram`), served by :mod:`~conf_cli.server.metrics_http`;
  :mod:`~conf_cli.server.config_file` ``--config``; :mod:`~conf_cli.server.json_log` ``--log-format json``
  and :mod:`~conf_cli.server.meeting_log` the meeting lines it carries.
"""
