"""The web service: ``conf server --web-port PORT`` serves the page and its WebSocket on one port."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import socket
import ssl
from collections.abc import Mapping
from http import HTTPStatus
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from conf_cli import ConfError, RunningService, ServerService, ServiceContext
from conf_web.config import MAX_PAGES_PER_ADDRESS, WebConfig, is_loopback
from conf_web.ice import TURN_TTL, IceServer, parse_ice_server

if TYPE_CHECKING:
    from websockets.asyncio.server import Server as WsServer
    from websockets.asyncio.server import ServerConnection
    from websockets.http11 import Request, Response

    from conf_web.whip import Endpoints

log = logging.getLogger("conf.web")

WS_PATH = "/ws"
MAX_MESSAGE = 64 * 1024  # bytes in one WebSocket message from a page (an SDP answer fits easily)
MAX_PAGES = 200  # browsers connected at once (pages, WHIP publishers and WHEP players together)
OPEN_TIMEOUT = 30.0  # seconds for a WebSocket's handshake, or a WHIP/WHEP request to be read and answered
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/view.js": ("view.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
    "/sframe.js": ("sframe.js", "text/javascript; charset=utf-8"),
    "/e2ee.js": ("e2ee.js", "text/javascript; charset=utf-8"),
    "/sframe-worker.js": ("sframe-worker.js", "text/javascript; charset=utf-8"),
    "/h264.js": ("h264.js", "text/javascript; charset=utf-8"),
    "/features.js": ("features.js", "text/javascript; charset=utf-8"),
}


class WebService(ServerService):
    name = "web"
    description = "a web page where browsers join meetings over WebRTC"

    def options(self) -> list[click.Option]:
        return [
            click.Option(
                ["--web-port"],
                type=click.IntRange(0, 65535),
                default=None,
                help="Serve the browser page (WebRTC) on this port of --host (0 picks a free one).",
            ),
            click.Option(
                ["--cert"],
                type=click.Path(dir_okay=False, path_type=Path),
                default=None,
                help="TLS certificate (PEM) for the web page; default: plain HTTP on a loopback --host, "
                "else the server's own self-signed certificate.",
            ),
            click.Option(
                ["--key"],
                type=click.Path(dir_okay=False, path_type=Path),
                default=None,
                help="Its key (PEM).",
            ),
            click.Option(
                ["--ice-server", "ice_servers"],
                multiple=True,
                default=(),
                metavar="URL",
                help="STUN or TURN server for browsers across networks: stun:HOST[:PORT] or "
                "turn:USER:PASSWORD@HOST[:PORT][?transport=udp|tcp] (turn:HOST[:PORT] with --turn-secret); "
                "repeat for several.",
            ),
            click.Option(
                ["--turn-secret"],
                default=None,
                envvar="CONF_TURN_SECRET",
                metavar="SECRET",
                help="The secret shared with the TURN servers (coturn's static-auth-secret): each page gets "
                "credentials of its own, valid --turn-ttl seconds, after it is admitted to a meeting. "
                "Also read from $CONF_TURN_SECRET, which keeps it out of the process list.",
            ),
            click.Option(
                ["--turn-ttl"],
                type=click.IntRange(60, 7 * 86400),
                default=TURN_TTL,
                show_default=True,
                help="Seconds the TURN credentials made from --turn-secret stay valid.",
            ),
            click.Option(
                ["--web-origin", "web_origins"],
                multiple=True,
                default=(),
                metavar="ORIGIN",
                help="Another origin (SCHEME://HOST[:PORT]) whose pages may connect to the web service's "
                "WebSocket; by default only the page's own; repeat for several.",
            ),
            click.Option(
                ["--web-max-pages-per-address"],
                type=click.IntRange(1, MAX_PAGES),
                default=MAX_PAGES_PER_ADDRESS,
                show_default=True,
                help=f"Browser pages one address may have connected at once (the server takes {MAX_PAGES}).",
            ),
        ]

    def wanted(self, settings: Mapping[str, Any]) -> bool:
        return settings.get("web_port") is not None

    async def start(self, context: ServiceContext, settings: Mapping[str, Any]) -> RunningService:
        cert, key = settings.get("cert"), settings.get("key")
        if (cert is None) != (key is None):
            raise ConfError("--cert and --key go together: give both, or neither for the server's own")
        secret = settings.get("turn_secret") or None
        config = WebConfig(
            host=str(settings.get("host") or "127.0.0.1"),
            port=int(settings["web_port"]),
            cert=cert,
            key=key,
            ice_servers=[
                parse_ice_server(url, turn_secret=secret is not None)
                for url in settings.get("ice_servers") or ()
            ],
            origins=tuple(parse_origin(o) for o in settings.get("web_origins") or ()),
            turn_secret=secret,
            turn_ttl=int(settings.get("turn_ttl") or TURN_TTL),
            pages_per_address=int(settings.get("web_max_pages_per_address") or MAX_PAGES_PER_ADDRESS),
        )
        return await WebServer.start(context, config)


class WebServer(RunningService):
    """The page's files over HTTP(S), and each page's WebSocket as one :class:`BrowserSession`."""

    def __init__(self, context: ServiceContext, config: WebConfig, tls: ssl.SSLContext | None) -> None:
        self.context = context
        self.config = config
        self.tls = tls
        self.sessions: set[Any] = set()
        self.by_address: dict[str, int] = {}
        """Pages connected per address."""
        self._ws: WsServer | None = None
        self.urls: list[str] = []
        self.endpoints: Endpoints | None = None
        """WHIP and WHEP (conf_web.whip), answered on the same port."""

    @classmethod
    async def start(cls, context: ServiceContext, config: WebConfig) -> WebServer:
        from websockets.asyncio.server import serve

        from conf_web.http import HttpOrWebSocket
        from conf_web.whip import Endpoints
        from conf_web.whip import Request as WhipRequest
        from conf_web.whip import Response as WhipResponse

        web = cls(context, config, _tls_context(config))
        web.endpoints = Endpoints(context, config, web._server_ice, web._full, web._count)
        endpoints = web.endpoints

        class Connection(HttpOrWebSocket):
            async def http(self, request: WhipRequest, address: str) -> WhipResponse:
                return await endpoints.respond(request, address)

        try:
            web._ws = await serve(
                web._page,
                config.host,
                config.port,
                process_request=web._http,
                ssl=web.tls,
                max_size=MAX_MESSAGE,
                server_header="conf",
                create_connection=Connection,
                open_timeout=OPEN_TIMEOUT,
            )
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfError(f"web port {config.port} on {config.host} is busy; pick another") from None
            raise ConfError(f"cannot serve the web page on {config.host}:{config.port}: {exc}") from None
        port = web._ws.sockets[0].getsockname()[1]
        scheme = "https" if web.tls else "http"
        web.urls = [f"{scheme}://{_url_host(config.host)}:{port}/"]
        return web

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == WS_PATH and request.headers.get("Upgrade", "").lower() == "websocket":
            origins, hosts = request.headers.get_all("Origin"), request.headers.get_all("Host")
            if len(origins) > 1 or len(hosts) > 1:
                return connection.respond(HTTPStatus.BAD_REQUEST, "one Origin and one Host, please\n")
            origin = origins[0] if origins else None
            if origin is not None and not self._origin_allowed(origin, hosts[0] if hosts else None):
                log.info("web: a page from %s may not connect", origin[:100])
                return connection.respond(HTTPStatus.FORBIDDEN, "pages from another origin may not connect\n")
            refused = self._full(_address(connection))
            if refused is not None:
                return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, refused + "\n")
            return None
        static = STATIC.get(path)
        if static is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        file_name, content_type = static
        body = resources.files("conf_web").joinpath("static", file_name).read_bytes()
        response = connection.respond(HTTPStatus.OK, "")
        for name, value in (
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-cache"),
        ):
            if name in response.headers:
                del response.headers[name]
            response.headers[name] = value
        response.headers["Content-Security-Policy"] = "default-src 'self'; connect-src 'self' ws: wss:"
        return dataclasses.replace(response, body=body)

    def _origin_allowed(self, origin: str, host: str | None) -> bool:
        """Whether a page from ``origin`` may use the WebSocket: the page's own origin, or a --web-origin.

        Browsers always send ``Origin`` on a WebSocket, and a page cannot forge it; the page's own origin is
        the scheme and the ``Host`` it was reached by, which on a loopback server must be a loopback name
        (so a page of another site whose name is made to resolve to 127.0.0.1 is not taken for it).
        """
        given = origin.strip().lower().rstrip("/")
        if given in self.config.origins:
            return True
        if host is None:
            return False
        scheme = "https" if self.tls else "http"
        own = f"{scheme}://{host.strip().lower()}"
        if given != own:
            return False
        return not self.config.loopback or _loopback_host(host)

    def service_stats(self) -> dict[str, object]:
        """``server_stats.services.web``: each WHIP publisher's tracks (and simulcast layers), when any."""
        publishers = self.endpoints.publisher_stats() if self.endpoints is not None else []
        return {"whip": publishers} if publishers else {}

    def _full(self, address: str) -> str | None:
        """Why one more page (or WHIP/WHEP session) from ``address`` is refused, if it is."""
        whip = len(self.endpoints.sessions) if self.endpoints is not None else 0
        if len(self.sessions) + whip >= MAX_PAGES:
            return "too many browsers connected"
        if self.by_address.get(address, 0) >= self.config.pages_per_address:
            return f"too many browsers connected from {address}"
        return None

    def _count(self, address: str, change: int) -> None:
        """One more (or one fewer) connection from ``address`` towards the limit per address."""
        left = self.by_address.get(address, 0) + change
        if left > 0:
            self.by_address[address] = left
        else:
            self.by_address.pop(address, None)

    def _server_ice(self) -> list[IceServer]:
        """The STUN and TURN servers for the server's own end of a WHIP/WHEP connection."""
        import secrets
        import time

        user = f"whip-{secrets.token_hex(4)}-server"
        config = self.config
        return [
            s.for_user(config.turn_secret, user, time.time(), config.turn_ttl) for s in config.ice_servers
        ]

    async def _page(self, websocket: ServerConnection) -> None:
        from conf_web.session import BrowserSession

        address = _address(websocket)
        refused = self._full(address)  # again: other pages from it may have finished their handshakes
        if refused is not None:
            await websocket.close(1013, refused)
            return
        session = BrowserSession(websocket, self.context, self.config)
        self.sessions.add(session)
        self._count(address, 1)
        try:
            await session.run()
        finally:
            self.sessions.discard(session)
            self._count(address, -1)

    async def close(self) -> None:
        for session in list(self.sessions):
            await session.close()
        if self.endpoints is not None:
            await self.endpoints.close()
        if self._ws is not None:
            self._ws.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self._ws.wait_closed()


def _address(connection: ServerConnection) -> str:
    """The address a page counts under for the limit per address (an IPv6 client's /64)."""
    from conf_web.http import address_of

    return address_of(connection)


def _loopback_host(host: str) -> bool:
    """Whether a ``Host`` header (``NAME[:PORT]``, ``[V6]:PORT``) names this machine's loopback."""
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else name[1:]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    return is_loopback(name)


def parse_origin(text: str) -> str:
    """A ``--web-origin``: ``SCHEME://HOST[:PORT]``, as browsers write it in ``Origin`` (lower case)."""
    origin = text.strip().lower().rstrip("/")
    scheme, sep, rest = origin.partition("://")
    if scheme not in ("http", "https") or not sep or not rest or any(c in rest for c in "/?#@ "):
        raise ConfError(f"bad --web-origin {text[:80]!r}: expected http(s)://HOST[:PORT]")
    return origin


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):
        return socket.getfqdn()
    return f"[{host}]" if ":" in host else host


def _tls_context(config: WebConfig) -> ssl.SSLContext | None:
    """TLS as configured: the given certificate, else plain on loopback, else the server's own."""
    if config.cert is not None and config.key is not None:
        cert, key = config.cert, config.key
    elif config.loopback:
        return None
    else:
        from conf_web.certs import own_certificate

        cert, key = own_certificate([_url_host(config.host)])
    for path in (cert, key):
        if not Path(path).is_file():
            raise ConfError(f"no such certificate or key file: {path}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise ConfError(f"cannot use certificate {cert} with key {key}: {exc}") from None
    return context
