"""The client: one link to a server, the meeting loop, media, calls and the terminal.

- :mod:`~conf_cli.client.link`: the link to a server, the handshake, heartbeats, requests
  (:class:`~conf_cli.client.link.Client`).
- :mod:`~conf_cli.client.prompt`: the prompt's one grammar (sans-I/O).
- :mod:`~conf_cli.client.meeting_loop`: typed lines in, server events out, until the meeting ends for us;
  :mod:`~conf_cli.client.runner` creates or joins a meeting and runs it in the terminal or machine mode.
- :mod:`~conf_cli.client.desktop_control`: remote control on this side (asking, answering, the viewer and the
  input injector).
- :mod:`~conf_cli.client.keyring`: end-to-end encryption keys (sans-I/O).
- :mod:`~conf_cli.client.media`: publishing and receiving tracks; :mod:`~conf_cli.client.calls`: one-to-one
  calls; :mod:`~conf_cli.client.ui`: the terminal view.
"""
