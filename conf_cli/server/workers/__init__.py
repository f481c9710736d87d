"""``conf server --workers N``: N worker processes that are the nodes of one local cluster.

Each worker (:mod:`.node`) is a full ``conf server`` on its own ports, for every transport asked for (tcp,
zmq, rtp, each with its own TLS, CURVE or SRTP, all under the server's one identity key), and a node of a
cluster (:mod:`conf_cli.server.cluster_node`). Their directory is kept by the parent process
(:mod:`conf_cli.server.local_directory`, served over a Unix socket), or is the one ``--cluster URL`` names.

The parent (:mod:`.supervisor`) starts the workers, restarts one that dies, and stops them by process ID.
Its public ports are a front that holds no meeting: it answers ``hello``, and sends each ``create`` to
the least-loaded worker and each ``join`` to the worker holding the meeting with a ``redirect`` (what any
node of a cluster does); the client then talks to that worker directly, so no media or chat byte passes
through the parent. With ``--metrics-port`` and ``--admin-port`` each worker serves its own on a
loopback port, and the parent serves the one for the whole server in front of them
(:mod:`.metrics`, :mod:`.admin`). See docs/cluster.md ("One machine: --workers").
"""
