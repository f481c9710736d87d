"""The admin API in process: its router and its OpenAPI document agree both ways, and its connections
are bounded in number and in lifetime (a client that opens a connection and sends nothing is dropped)."""

from __future__ import annotations

import asyncio

from conf_cli.plugin.registry import registry
from conf_cli.server.admin import AdminApi
from conf_cli.server.admin_routes import OPENAPI_PATH, ROUTES, SCHEMAS, openapi
from conf_cli.server.edge import Server
from conf_cli.server.hub import Hub

KEY = "k" * 43


def api(lifetime: float = 30.0, max_connections: int = 64) -> AdminApi:
    return AdminApi(Server(registry(), Hub()), KEY, lifetime=lifetime, max_connections=max_connections)


def test_every_route_is_documented_and_every_documented_route_is_served() -> None:
    served = {
        (route.method, route.resource.canonical)
        for route in api().app().router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    document = openapi()
    documented = {(method.upper(), path) for path, methods in document["paths"].items() for method in methods}
    assert served == documented
    assert ("GET", OPENAPI_PATH) in served and len(served) == len(ROUTES) + 1


def test_every_schema_the_document_names_is_in_it() -> None:
    text = str(openapi())
    for name in SCHEMAS:
        assert f"#/components/schemas/{name}" in text
    referenced = {part.split("'")[0] for part in text.split("#/components/schemas/")[1:]}
    assert referenced <= set(SCHEMAS)


def test_every_operation_documents_its_answers_and_the_key() -> None:
    document = openapi()
    for path, methods in document["paths"].items():
        for operation in methods.values():
            codes = set(operation["responses"])
            if path == OPENAPI_PATH:
                assert operation["security"] == [] and codes == {"200"}
            else:
                assert {"401", "429"} <= codes
    start = document["paths"]["/meetings/{meeting}/recording/start"]["post"]
    # started (201), waiting for the host's admission (202), and each way it is refused
    assert {"201", "202", "400", "404", "409", "502", "503", "504"} <= set(start["responses"])
    assert start["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/StartRecording")
    stop = document["paths"]["/meetings/{meeting}/recording/stop"]["post"]
    assert stop["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/RecordingFinished"
    )
    operations = [operation for methods in document["paths"].values() for operation in methods.values()]
    assert all("501" not in operation["responses"] for operation in operations)


async def test_a_silent_connection_is_dropped_and_connections_are_capped() -> None:
    admin = api(lifetime=1.0, max_connections=2)
    url = await admin.start("127.0.0.1", 0)
    port = int(url.rsplit(":", 1)[1])
    try:
        first = await asyncio.open_connection("127.0.0.1", port)
        second = await asyncio.open_connection("127.0.0.1", port)
        third = await asyncio.open_connection("127.0.0.1", port)
        async with asyncio.timeout(5):
            assert await third[0].read() == b""  # over the cap: closed at once
        started = asyncio.get_running_loop().time()
        async with asyncio.timeout(10):
            assert await first[0].read() == b""  # sent nothing: closed when its lifetime is up
        assert asyncio.get_running_loop().time() - started < 5
        for _, writer in (first, second, third):
            writer.close()
        await asyncio.sleep(0.1)
        assert admin.connections == 0
        # a request on a fresh connection is answered as ever
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        async with asyncio.timeout(5):
            answer = await reader.read()
        assert answer.startswith(b"HTTP/1.1 200")
        writer.close()
    finally:
        await admin.close()
