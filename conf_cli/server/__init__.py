"""The server: the sans-I/O core that decides, and the asyncio edge that moves bytes.

Sans-I/O (time passed in as ``now``, actions returned):

- :mod:`~conf_cli.server.hub`: connections, the handshake, many meetings, heartbeats, media routes.
- :mod:`~conf_cli.server.meeting`: the rules of one meeting; :mod:`~conf_cli.server.people` who takes part;
  :mod:`~conf_cli.server.activities` hands, reactions, polls, the spotlight; :mod:`~conf_cli.server.breakout`
  breakout rooms; :mod:`~conf_cli.server.remote_control` the consent rules of remote control;
  :mod:`~conf_cli.server.feedback` RTCP feedback and resends.
- Access: :mod:`~conf_cli.server.passcode` meeting IDs and passcode hashes; :mod:`~conf_cli.server.tokens`
  access tokens; :mod:`~conf_cli.server.limiter` attempt limits.
- :mod:`~conf_cli.server.call_board` and :mod:`~conf_cli.server.call_relay`: one-to-one calls' signalling
  rules and the STUN answerer and relay.
- For operators: :mod:`~conf_cli.server.operator` (the admin API's actions), :mod:`~conf_cli.server.journal`
  (what meetings note for webhooks), :mod:`~conf_cli.server.histogram` (join latency).

asyncio and files:

- :mod:`~conf_cli.server.edge`: the :class:`~conf_cli.server.edge.Server`; :mod:`~conf_cli.server.forwarding`
  the media fan-out; :mod:`~conf_cli.server.local_link` in-process participants for services;
  :mod:`~conf_cli.server.accounts` the accounts file; :mod:`~conf_cli.server.run` the body of
  ``conf server``; :mod:`~conf_cli.server.workers` ``--workers N``.
- Operations: :mod:`~conf_cli.server.operations` starts :mod:`~conf_cli.server.admin` (the admin HTTP API,
  routes and OpenAPI document in :mod:`~conf_cli.server.admin_routes`) and
  :mod:`~conf_cli.server.webhooks`; :mod:`~conf_cli.server.metrics` is the Prometheus collector (reading
  :mod:`~conf_cli.server.traffic`'s per-transport counts and the hub's counters), served by
  :mod:`~conf_cli.server.metrics_http`; :mod:`~conf_cli.server.config_file` reads ``--config``;
  :mod:`~conf_cli.server.json_log` writes ``--log-format json`` and :mod:`~conf_cli.server.meeting_log` the
  meeting lines it carries.
"""
