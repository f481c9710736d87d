"""What ``conf server`` runs for its operators beside the meetings: the admin API (``--admin-port``),
the recorders it starts (:mod:`conf_cli.server.recorders`) and webhooks (``--webhook``). All need the
server in one process; their secrets live in the server's folder (:mod:`conf_cli.paths`), recordings in
its ``recordings/`` folder."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from conf_cli.errors import ConfError
from conf_cli.paths import ADMIN_KEY_FILE, ADMIN_URL_FILE, WEBHOOK_KEY_FILE, load_or_create_secret
from conf_cli.server.admin import AdminApi
from conf_cli.server.edge import Server
from conf_cli.server.recorders import Recorders, loopback_url
from conf_cli.server.recordings import MAX_RECORDINGS, Recordings
from conf_cli.server.webhooks import Webhooks, check_url


@dataclass
class Operations:
    """The admin API and webhooks of a running server; :meth:`close` stops both."""

    server: Server
    admin: AdminApi | None = None
    url_file: Path | None = None
    recorders: Recorders | None = None

    @property
    def admin_url(self) -> str | None:
        return self.admin.url if self.admin is not None else None

    async def close(self) -> None:
        if self.recorders is not None:  # each finishes its file, and its webhook is queued
            await self.recorders.close()
            self.recorders = None
        if self.admin is not None:
            await self.admin.close()
            self.admin = None
        if self.url_file is not None:  # unless another server wrote its own meanwhile
            with contextlib.suppress(OSError):
                if self.url_file.read_text(encoding="utf-8").strip() == self.admin_url:
                    self.url_file.unlink()
            self.url_file = None
        # the webhooks close with the server (Server.close)


async def start_operations(
    server: Server,
    folder: Path,
    *,
    admin_host: str,
    admin_port: int | None,
    webhooks: tuple[str, ...],
    fingerprint: str | None = None,
    encryption: str = "on",
    max_recordings: int = MAX_RECORDINGS,
    url_file: bool = True,
) -> Operations:
    """Start the webhooks and the admin API that the options ask for (either may be absent); write the
    API's URL to ``admin.url`` unless ``url_file`` is False (a worker's API, which its parent fronts)."""
    for url in webhooks:
        check_url(url)
    operations = Operations(server)
    if webhooks:
        hooks = Webhooks(list(webhooks), load_or_create_secret(folder / WEBHOOK_KEY_FILE).encode("utf-8"))
        await hooks.start()
        server.use_webhooks(hooks)
    if admin_port is not None:
        listening = [listener.url for listener in server.listeners]
        if listening:
            operations.recorders = Recorders(
                server,
                folder,
                url=loopback_url(listening),
                fingerprint=fingerprint,
                encryption=encryption,
                registry=Recordings(limit=max_recordings),
            )
        api = AdminApi(server, load_or_create_secret(folder / ADMIN_KEY_FILE), recorders=operations.recorders)
        await serve_admin(operations, api, folder if url_file else None, admin_host, admin_port)
    return operations


async def serve_admin(
    operations: Operations, api: AdminApi, folder: Path | None, host: str, port: int
) -> None:
    """Start ``api`` on ``host``:``port``, as ``operations``' admin API; write its URL to ``admin.url``
    in ``folder`` (None: nowhere)."""
    url = await api.start(host, port)
    operations.admin = api
    if folder is None:
        return
    operations.url_file = folder / ADMIN_URL_FILE
    try:
        operations.url_file.write_text(url + "\n", encoding="utf-8")
    except OSError as exc:
        await operations.close()
        raise ConfError(f"cannot write {operations.url_file}: {exc.strerror or exc}") from None
