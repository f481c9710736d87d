"""``conf server --workers N``: one front process hands each client's connection to one of N servers.

The front (:mod:`.front`) accepts TCP connections, answers each client's ``hello`` and reads its first
``create`` or ``join``; then it passes the connected socket, with the bytes it read from the request on,
to a worker process (:mod:`.worker`) over a Unix socket pair (``socket.send_fds``). A worker is an
ordinary :class:`~conf_cli.server.edge.Server` that adopts sockets instead of accepting them. A ``create``
goes to the worker with the fewest meetings; the front picks the new meeting's ID, whose first character names
that worker, so a ``join`` goes to the worker whose character the ID starts with. Meeting IDs are therefore
unique across workers, and no state is shared between them. Only the TCP transport is handed on this way;
ZeroMQ and RTP/UDP servers run in one process.
"""
