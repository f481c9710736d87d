"""One-to-one calls: the server introduces two clients, who then send media straight to each other.

- :mod:`~conf_cli.calls.board`: the server's sans-I/O rules (who is online, ringing, accept, decline, busy,
  timeout, hang-up, relay allocations).
- :mod:`~conf_cli.calls.relay`: the server's sans-I/O STUN answerer and media relay (a minimal TURN).
- :mod:`~conf_cli.calls.crypto`: X25519 key agreement, HKDF, SRTP keys and the short authentication string.
- :mod:`~conf_cli.calls.checks`: sans-I/O connectivity checks (UDP hole punching with signed STUN).
- :mod:`~conf_cli.calls.peer`: the client's call socket, the asyncio edge of the checks and of media.
- :mod:`~conf_cli.calls.media`: the call's media through the meeting pipeline.
- :mod:`~conf_cli.calls.session`: one client's calls: signalling, path choice, media.
- :mod:`~conf_cli.calls.runner`: ``conf call`` and ``/call NAME`` in a meeting; :mod:`~conf_cli.calls.console`
  its lines in a terminal.
"""
