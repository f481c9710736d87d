"""Server services: the hook, their options on `conf server`, and the in-process link they meet through."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import click
from click.testing import CliRunner

from conf_cli import cli as cli_module
from conf_cli.client.link import Client
from conf_cli.plugin.hookspecs import hookimpl
from conf_cli.plugin.registry import create_registry
from conf_cli.plugin.services import RunningService, ServerService
from conf_cli.plugin.transport import TransportOptions
from conf_cli.protocol.rtp import RtpPacket
from conf_cli.server.edge import Endpoint, Server
from conf_cli.server.local_link import LocalTransport
from conf_cli.urls import ServerAddress


class _Running(RunningService):
    def __init__(self, server: Server, port: int) -> None:
        self.urls = [f"echo://127.0.0.1:{port}"]
        self.server = server
        self.closed = False

    async def close(self) -> None:
        self.closed = True


class _EchoService(ServerService):
    name = "echo"
    description = "a service for tests"

    def __init__(self) -> None:
        self.started: list[_Running] = []

    def options(self) -> list[click.Option]:
        return [click.Option(["--echo-port"], type=int, default=None, help="Serve echo on this port.")]

    def wanted(self, settings: Mapping[str, Any]) -> bool:
        return settings.get("echo_port") is not None

    async def start(self, server: Server, settings: Mapping[str, Any]) -> RunningService:
        running = _Running(server, settings["echo_port"])
        self.started.append(running)
        return running


class _Plugin:
    def __init__(self, service: ServerService) -> None:
        self.service = service

    @hookimpl
    def conf_register_server_services(self, register: Any) -> None:
        register(self.service)


async def _next(client: Client, kind: str, text: str | None = None) -> dict[str, Any]:
    async with asyncio.timeout(5):
        while True:
            event = await client.events.get()
            if event["type"] == kind and text in (None, event.get("text")):
                return event


async def test_a_service_starts_when_its_option_asks_and_stops_with_the_server() -> None:
    service = _EchoService()
    registry = create_registry((_Plugin(service),))
    assert registry.services["echo"] is service
    server = Server(registry)
    await server.start([Endpoint("tcp", "127.0.0.1", 0)])
    assert await server.start_services({"echo_port": None}) == []
    assert await server.start_services({"echo_port": 7000}) == ["echo://127.0.0.1:7000"]
    await server.close()
    assert service.started[0].closed


def test_service_options_appear_on_conf_server() -> None:
    registry = create_registry((_Plugin(_EchoService()),))
    before = list(cli_module.server.params)
    try:
        cli_module.add_plugin_options(registry)
        cli_module.add_plugin_options(registry)  # once only
        assert [p.name for p in cli_module.server.params].count("echo_port") == 1
        result = CliRunner().invoke(cli_module.cli, ["server", "--help"])
        assert "--echo-port" in result.output
    finally:
        cli_module.server.params[:] = before


async def test_an_in_process_participant_meets_a_tcp_client() -> None:
    registry = create_registry()
    server = Server(registry)
    (url,) = await server.start([Endpoint("tcp", "127.0.0.1", 0)])
    local = Client(registry, ServerAddress("local", "gateway", 0), transport=LocalTransport(server))
    address = ServerAddress("tcp", "127.0.0.1", int(url.rsplit(":", 1)[1]))
    remote = Client(registry, address, TransportOptions())  # the server above runs without encryption
    try:
        await local.connect()
        created, _ = await local.create("gateway", passcode="pass-123")
        await remote.connect()
        await remote.join(created["meeting"], "bob", passcode="pass-123")
        assert (await _next(local, "participant_joined"))["name"] == "bob"

        local.send({"type": "chat", "text": "from inside"})
        await _next(remote, "chat", "from inside")
        remote.send({"type": "chat", "text": "from outside"})
        await _next(local, "chat", "from outside")

        # Media both ways, through the hub's rules: a published track is forwarded, nothing else.
        received: dict[str, list[bytes]] = {"local": [], "remote": []}
        local.media_handler = received["local"].append
        remote.media_handler = received["remote"].append
        packet = bytes(
            RtpPacket(payload_type=96, sequence_number=1, timestamp=0, ssrc=0xABC, payload=b"x" * 40)
        )
        assert local.link is not None
        local.link.send_media(packet)  # not published yet: refused
        local.send({"type": "publish", "kind": "video", "ssrc": 0xABC, "codec": "H264"})
        await _next(remote, "share_started")
        local.link.send_media(packet)
        async with asyncio.timeout(5):
            while not received["remote"]:
                await asyncio.sleep(0.01)
        assert received["remote"] == [packet]
        assert server.hub.stats.media_refused == 1

        await local.close()
        assert (await _next(remote, "participant_left"))["name"] == "gateway"
        assert (await _next(local, "disconnected"))["reason"] == "closed by the service"
    finally:
        await remote.close()
        await server.close()


async def test_the_server_closing_a_local_link_tells_its_client() -> None:
    registry = create_registry()
    server = Server(registry)
    local = Client(registry, ServerAddress("local", "gateway", 0), transport=LocalTransport(server))
    await local.connect()
    (link,) = server.links.values()
    assert link.peer == "gateway"
    link.close()
    assert (await _next(local, "disconnected"))["reason"] == "closed by the server"
    assert server.links == {}
    await server.close()
