"""conf's cluster backends: the directory ``conf server --cluster URL`` nodes share.

``redis://HOST:PORT/DB`` (and ``rediss://``) keeps it in Redis, ``nats://HOST:PORT`` in a NATS JetStream
key-value store. Each is a thin :class:`conf_cli.ClusterBackend`; what goes in the directory, and when, is
conf's own (docs/cluster.md).
"""

from __future__ import annotations

from collections.abc import Callable

from conf_cli import ClusterBackendFactory, hookimpl

from .nats_backend import NatsBackends
from .redis_backend import RedisBackends


@hookimpl
def conf_register_cluster_backends(register: Callable[[ClusterBackendFactory], None]) -> None:
    register(RedisBackends())
    register(NatsBackends())
