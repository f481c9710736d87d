"""One-to-one calls: the server introduces two clients, who then send media straight to each other.

- the server's side lives in :mod:`conf_cli.server.edge.call_board` (sans-I/O rules: who is online, ringing,
  accept, decline, busy, timeout, hang-up, relay allocations) and :mod:`conf_cli.server.edge.call_relay` (the
  sans-I/O STUN answerer and media relay, a minimal TURN).
- :mod:`~conf_cli.client.calls.crypto`: X25519 key agreement, HKDF, SRTP keys and the short authentication
  string.
- :mod:`~conf_cli.client.calls.checks`: sans-I/O connectivity checks (UDP hole punching with signed STUN).
- :mod:`~conf_cli.client.calls.peer`: the client's call socket, the asyncio edge of the checks and of media.
- :mod:`~conf_cli.client.calls.media`: the call's media through the meeting pipeline.
- :mod:`~conf_cli.client.calls.session`: one client's calls: signalling, path choice, media.
- :mod:`~conf_cli.client.calls.runner`: ``conf call`` and ``/call NAME`` in a meeting;
:mod:`~conf_cli.client.ui.call_console`   its lines in a terminal.
"""
