"""One worker of ``conf server --workers``: ``python -m conf_cli.server.workers.node``.

It reads its :class:`~conf_cli.server.run.ServerConfig` as one JSON line on stdin (from
:func:`config_line`), runs that server (its ``server_started`` event goes to stdout, which the parent
reads), and stops when stdin closes (the parent has gone) or on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from conf_cli.errors import ConfError
from conf_cli.loops import fast_loop_factory
from conf_cli.server.json_log import LOG_FORMAT_ENV, use_json_logs
from conf_cli.server.run import ServerConfig, run_server

MAX_CONFIG = 1 << 20
_PATHS = ("accounts_path", "identity_file", "token_key_file")


def config_line(config: ServerConfig) -> bytes:
    """``config`` as the JSON line a worker reads."""
    values = dataclasses.asdict(config)
    return json.dumps(values, default=str).encode() + b"\n"


def parse_config(line: bytes) -> ServerConfig:
    values: dict[str, Any] = json.loads(line)
    for key in _PATHS:
        if values.get(key) is not None:
            values[key] = Path(values[key])
    for key in ("transports", "webhooks", "advertise"):
        values[key] = tuple(values.get(key) or ())
    return ServerConfig(**values)


async def _serve(config: ServerConfig) -> None:
    loop = asyncio.get_running_loop()
    server = asyncio.ensure_future(run_server(config))
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGTERM, server.cancel)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    parent_gone = asyncio.ensure_future(reader.read())
    await asyncio.wait((server, parent_gone), return_when=asyncio.FIRST_COMPLETED)
    server.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await server
    parent_gone.cancel()


def main() -> None:
    line = sys.stdin.buffer.readline(MAX_CONFIG)
    config = parse_config(line)
    logging.basicConfig(
        level=int(os.environ.get("CONF_WORKER_LOG_LEVEL", logging.WARNING)),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    if os.environ.get(LOG_FORMAT_ENV) == "json":
        use_json_logs()
    try:
        with asyncio.Runner(loop_factory=fast_loop_factory()) as runner:
            runner.run(_serve(config))
    except ConfError as exc:
        print(f"conf: worker {config.node}: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
