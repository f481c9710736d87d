"""Node links, the asyncio edge of cascading (:mod:`conf_cli.server.cascade` holds the decisions).

On the holder, :class:`NodeLinks` takes links that prove they are nodes and gives each participant
behind them a :class:`VirtualLink` in the server's table of links: the hub and the forwarder treat it as
any participant's link, and its media goes down the node link through :class:`NodeFanout`, once per
packet for every participant behind that node. On the node the participants reached, it opens one
:class:`Uplink` per holder (a client link of the tcp transport, the holder's key checked against the
directory's fingerprint) and relays their control messages and media over it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from conf_cli.errors import ConfError
from conf_cli.plugin.security import Security, Trust
from conf_cli.plugin.transport import Link, Listener, ServerEvents, TransportOptions
from conf_cli.protocol.control import Message, encode
from conf_cli.protocol.events import Error
from conf_cli.server.cascade import (
    NODE_TRANSPORT,
    Behind,
    LinkCounts,
    Relays,
    batches,
    link_key,
    node_message,
    proof,
    proof_holds,
    read_node_message,
    unwrap_control,
    unwrap_media,
    wrap_control,
    wrap_media,
)
from conf_cli.server.directory import NodeInfo, url_for
from conf_cli.server.hub import Close, peer_host
from conf_cli.server.meeting import Send
from conf_cli.urls import parse_server_url

if TYPE_CHECKING:
    from conf_cli.plugin.registry import Registry
    from conf_cli.server.hub import Action, Hub


class Server(ServerEvents, Protocol):
    """What node links need of a server (:class:`conf_cli.server.edge.Server` is one)."""

    registry: Registry
    hub: Hub
    links: dict[int, Link]

    def apply(self, actions: list[Action]) -> None: ...


log = logging.getLogger("conf.server")

PING_INTERVAL = 2.0
"""An uplink says it is alive this often (the holder's hub times a silent node link out)."""
MAX_QUEUED = 256
"""Control messages an uplink holds while it connects; more, and the participant is refused."""
CONNECT_TIMEOUT = 5.0
SILENCE = 3 * PING_INTERVAL
"""An uplink whose holder answered no ping for this long is closed (the holder is gone)."""
MAX_PEER = 100
"""Characters of a participant's address a node passes on."""


class NodeFanout(Listener):
    """Sends one media packet to many participants behind node links: one frame per node link."""

    url = "node://links"

    def __init__(self, links: NodeLinks) -> None:
        self.node_links = links

    def forward_media(self, packet: bytes, links: Iterable[Link]) -> int:
        nodes = self.node_links
        sent = 0
        for link_id, locals_ in nodes.behind.by_link(link.id for link in links).items():
            sent += nodes.send_down(link_id, locals_, packet)
        return sent

    async def close(self) -> None:
        return None


class VirtualLink(Link):
    """A participant behind a node link, as the holder's server sees it."""

    def __init__(
        self, links: NodeLinks, node_link: Link, local: int, node: str, fanout: NodeFanout, host: str = ""
    ) -> None:
        # The participant's own address as its node saw it, so that limits per address count it as theirs.
        super().__init__(f"{host or f'#{local}'} (via node {node})", fanout)
        self.node_links = links
        self.node_link = node_link
        self.local = local
        self.media_ordered = node_link.media_ordered
        self._closing = False

    def send_control(self, data: bytes) -> None:
        if self._closing:
            return
        self.stats.control_out += 1
        self.node_links.send_wrapped(self.node_link, self.local, data)

    def send_media(self, packet: bytes) -> bool:
        if self._closing:
            return False
        self.stats.media_out += 1
        return bool(self.node_links.send_down(self.node_link.id, [self.local], packet))

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self.node_links.closed_here(self)

    @property
    def is_closing(self) -> bool:
        return self._closing or self.node_link.is_closing


class Uplink:
    """This node's link to a holder: its participants' control and media go up it."""

    def __init__(self, links: NodeLinks, node: NodeInfo) -> None:
        self.node_links = links
        self.node = node.name
        self.info = node
        self.link: Link | None = None
        self.queue: list[bytes] = []
        self.ready = False
        self.counts = LinkCounts()
        self.heard = time.monotonic()
        """When the holder last said anything (it answers each ping)."""
        self.task = asyncio.create_task(self._run(), name=f"node-link-{node.name}")

    async def _run(self) -> None:
        links = self.node_links
        url = url_for(self.info, NODE_TRANSPORT)
        try:
            if url is None:
                raise ConfError(f"node {self.node} has no {NODE_TRANSPORT}:// URL")
            if links.security is None or self.info.fingerprint is None:
                raise ConfError("node links need encryption and the holder's fingerprint")
            address = parse_server_url(url)
            trust = Trust(
                url, self.info.fingerprint, pin=False, expected_from=f"the directory's record of {self.node}"
            )
            security = dataclasses.replace(links.security, identity=None, trust=trust)
            options = TransportOptions(connect_timeout=CONNECT_TIMEOUT, security=security)
            transport = links.server.registry.transport_for(NODE_TRANSPORT)
            async with asyncio.timeout(CONNECT_TIMEOUT * 2):
                self.link = await transport.connect(address.host, address.port, _UplinkEvents(self), options)
            self.link.send_control(node_message("hello", name=links.name))
            while True:
                await asyncio.sleep(PING_INTERVAL)
                if self.link.is_closing:
                    return
                if time.monotonic() - self.heard > SILENCE:
                    raise ConfError(f"node {self.node} said nothing for {SILENCE:g} s")
                self.link.send_control(node_message("ping"))
        except Exception as exc:  # whatever went wrong, its participants must hear of it
            log.warning("node link to %s failed: %s", self.node, exc)
            self.node_links.uplink_closed(self, f"the link to node {self.node} failed: {exc}")

    def send(self, data: bytes) -> bool:
        if self.ready and self.link is not None:
            self.counts.control_out += 1
            self.link.send_control(data)
            return True
        if len(self.queue) >= MAX_QUEUED:
            return False
        self.queue.append(data)
        return True

    def send_media(self, local: int, packet: bytes) -> None:
        if self.ready and self.link is not None:
            self.counts.packets_out += 1
            self.counts.deliveries_out += 1
            self.link.send_media(wrap_media((local,), packet))

    def control(self, data: bytes) -> None:
        link = self.link
        assert link is not None
        self.counts.control_in += 1
        self.heard = time.monotonic()
        wrapped = unwrap_control(data)
        if wrapped is not None:
            self.node_links.down_control(self, *wrapped)
            return
        message = read_node_message(data)
        if message is None:
            self.counts.refused += 1
        elif message["node"] == "challenge" and not self.ready:
            nonce = message.get("nonce")
            if not isinstance(nonce, str) or len(nonce) != 64:
                link.close()
                return
            link.send_control(
                node_message(
                    "auth", mac=proof(self.node_links.key, bytes.fromhex(nonce), self.node_links.name)
                )
            )
            self.ready = True
            for queued in self.queue:
                link.send_control(queued)
            self.queue.clear()
        elif message["node"] == "close" and isinstance(message.get("p"), int):
            self.node_links.down_close(self, int(message["p"]))  # type: ignore[call-overload]

    def media(self, data: bytes) -> None:
        unwrapped = unwrap_media(data)
        if unwrapped is None:
            self.counts.refused += 1
            return
        self.counts.packets_in += 1
        self.node_links.down_media(self, *unwrapped)

    def close(self) -> None:
        self.task.cancel()
        if self.link is not None:
            self.link.close()


class _UplinkEvents:
    def __init__(self, uplink: Uplink) -> None:
        self.uplink = uplink

    def control_received(self, data: bytes) -> None:
        self.uplink.control(data)

    def media_received(self, packet: bytes, arrival: float | None = None) -> None:
        self.uplink.media(packet)

    def closed(self, reason: str) -> None:
        self.uplink.node_links.uplink_closed(
            self.uplink, f"the link to node {self.uplink.node} closed: {reason}"
        )


class NodeLinks:
    """A node's node links: those that come in (it holds meetings) and those it opens (it carries
    participants to holders)."""

    def __init__(self, server: Server, name: str, secret: bytes | None, security: Security | None) -> None:
        self.server = server
        self.name = name
        self.key = link_key(secret) if secret is not None else b""
        self.security = security
        self.behind = Behind()
        self.fanout = NodeFanout(self)
        self.relays = Relays()
        self.uplinks: dict[str, Uplink] = {}
        self.challenges: dict[int, tuple[str, bytes]] = {}
        """Links that said hello as a node: the name they gave and the nonce they must answer."""
        self.refused = 0
        """Links that claimed to be nodes and did not prove it."""

    # -- on the holder ----------------------------------------------------------------------------------

    def control_in(self, link: Link, data: bytes) -> bool:
        """A control frame from ``link``; True if it was a node link's (handled here)."""
        behind = self.behind
        if behind.is_node(link.id):
            self._from_node(link, data)
            return True
        pending = self.challenges.get(link.id)
        if pending is not None:
            message = read_node_message(data)
            name, nonce = pending
            del self.challenges[link.id]
            if (
                message is None
                or message["node"] != "auth"
                or not proof_holds(self.key, nonce, name, message.get("mac"))
            ):
                self._refuse(link, "a node link that did not prove it holds the cluster's key")
                return True
            behind.accepted(link.id, name)
            self.server.hub.greet(link.id)
            self.server.hub.seen(link.id, time.monotonic())
            log.info("node link from %s accepted", name)
            return True
        if data.startswith(b'{"node":'):
            message = read_node_message(data)
            if (
                message is None
                or message["node"] != "hello"
                or not self.key
                or self.server.hub.is_greeted(link.id)
            ):
                self._refuse(link, "a node hello that cannot be taken")
                return True
            claimed = message.get("name")
            if not isinstance(claimed, str) or not 0 < len(claimed) <= 64:
                self._refuse(link, "a node hello without a name")
                return True
            nonce = os.urandom(32)
            self.challenges[link.id] = (claimed, nonce)
            link.send_control(node_message("challenge", nonce=nonce.hex()))
            return True
        return False

    def _refuse(self, link: Link, why: str) -> None:
        self.refused += 1
        self.server.apply([_close(link.id, why)])

    def _from_node(self, link: Link, data: bytes) -> None:
        server, behind = self.server, self.behind
        now = time.monotonic()
        server.hub.seen(link.id, now)
        counts = behind.counts[link.id]
        counts.control_in += 1
        wrapped = unwrap_control(data)
        if wrapped is not None:
            local, inner = wrapped
            cid = behind.cid(link.id, local)
            vlink = server.links.get(cid) if cid is not None else None
            if vlink is None:
                counts.refused += 1
                return
            server.control_received(vlink, inner)
            return
        message = read_node_message(data)
        if message is None:
            counts.refused += 1
            return
        kind, number = message["node"], message.get("p")
        if kind == "open" and isinstance(number, int):
            local = number
            host = message.get("peer")
            host = host if isinstance(host, str) and len(host) <= MAX_PEER else ""
            vlink = VirtualLink(self, link, local, behind.nodes[link.id], self.fanout, host)
            if not behind.add(link.id, local, vlink.id):
                counts.refused += 1
                self.send_wrapped(link, local, encode(_refusal("the node link to this node is full")))
                link.send_control(node_message("close", p=local))
                return
            server.link_opened(vlink)
            server.hub.greet(vlink.id)
        elif kind == "ping":
            link.send_control(node_message("ping"))
        elif kind == "close" and isinstance(number, int):
            cid = behind.cid(link.id, number)
            vlink = server.links.get(cid) if cid is not None else None
            if isinstance(vlink, VirtualLink):
                vlink._closing = True
                self._gone(vlink)

    def media_in(self, link: Link, data: bytes) -> bool:
        """A media frame from ``link``; True if it was a node link's (handled here)."""
        behind = self.behind
        if not behind.is_node(link.id):
            return False
        counts = behind.counts[link.id]
        unwrapped = unwrap_media(data)
        if unwrapped is None or len(unwrapped[0]) != 1:
            counts.refused += 1
            return True
        counts.packets_in += 1
        cid = behind.cid(link.id, unwrapped[0][0])
        vlink = self.server.links.get(cid) if cid is not None else None
        if vlink is None:
            counts.refused += 1
            return True
        counts.deliveries_in += 1
        self.server.media_received(vlink, unwrapped[1])
        return True

    def send_wrapped(self, node_link: Link, local: int, data: bytes) -> None:
        wrapped = wrap_control(local, data)
        counts = self.behind.counts.get(node_link.id)
        if wrapped is None:
            if counts is not None:
                counts.refused += 1
            return
        if counts is not None:
            counts.control_out += 1
        node_link.send_control(wrapped)

    def send_down(self, link_id: int, locals_: list[int], packet: bytes) -> int:
        """``packet`` down node link ``link_id`` once, for ``locals_``; the participants it reached."""
        node_link = self.server.links.get(link_id)
        counts = self.behind.counts.get(link_id)
        if node_link is None or counts is None:
            return 0
        sent = 0
        for batch in batches(locals_):
            counts.packets_out += 1
            counts.deliveries_out += len(batch)
            if node_link.send_media(wrap_media(batch, packet)):
                sent += len(batch)
        return sent

    def closed_here(self, vlink: VirtualLink) -> None:
        """The holder closes a participant behind a node link: tell the node, and forget it."""
        if not vlink.node_link.is_closing:
            vlink.node_link.send_control(node_message("close", p=vlink.local))
        asyncio.get_running_loop().call_soon(self._gone, vlink)

    def _gone(self, vlink: VirtualLink) -> None:
        if self.server.links.get(vlink.id) is vlink:
            self.behind.remove(vlink.id)
            self.server.link_closed(vlink, "closed")

    def link_closed(self, link: Link) -> None:
        """A link closed: if it was a node link, everyone behind it leaves."""
        self.challenges.pop(link.id, None)
        if not self.behind.is_node(link.id):
            return
        log.info("node link from %s closed", self.behind.nodes[link.id])
        for cid in self.behind.dropped(link.id):
            vlink = self.server.links.get(cid)
            if isinstance(vlink, VirtualLink):
                vlink._closing = True
                self.server.link_closed(vlink, "node link closed")

    # -- on the node the participants reached -----------------------------------------------------------

    def relay(self, cid: int, node: NodeInfo, request: Message) -> None:
        """Carry connection ``cid`` to ``node`` (the holder of the meeting ``request`` joins)."""
        link = self.server.links.get(cid)
        if link is None:
            return
        uplink = self.uplinks.get(node.name)
        if uplink is None:
            uplink = self.uplinks[node.name] = Uplink(self, node)
        data = encode(request)
        wrapped = wrap_control(cid, data)
        if not self.relays.add(cid, node.name) or wrapped is None:
            self.server.apply(
                [
                    _send(
                        cid,
                        _refusal("this node carries too many participants to the meeting's node", request),
                    )
                ]
            )
            return
        uplink.counts.participants = self.relays.count(node.name)
        opened = node_message("open", p=cid, peer=peer_host(link.peer)[:MAX_PEER])
        if not (uplink.send(opened) and uplink.send(wrapped)):
            self.relays.remove(cid)
            self.server.apply([_send(cid, _refusal("the meeting's node is not answering yet", request))])

    def relayed(self, cid: int) -> Uplink | None:
        node = self.relays.node_of(cid)
        return None if node is None else self.uplinks.get(node)

    def up_control(self, link: Link, data: bytes) -> bool:
        uplink = self.relayed(link.id)
        if uplink is None:
            return False
        now = time.monotonic()
        self.server.hub.seen(link.id, now)
        wrapped = wrap_control(link.id, data)
        if wrapped is None or not self.relays.may_relay(link.id, now) or not uplink.send(wrapped):
            uplink.counts.refused += 1
        return True

    def up_media(self, link: Link, packet: bytes) -> bool:
        uplink = self.relayed(link.id)
        if uplink is None:
            return False
        uplink.send_media(link.id, packet)
        return True

    def local_closed(self, link: Link) -> None:
        node = self.relays.remove(link.id)
        uplink = self.uplinks.get(node) if node is not None else None
        if uplink is not None:
            uplink.counts.participants = self.relays.count(uplink.node)
            uplink.send(node_message("close", p=link.id))

    def down_control(self, uplink: Uplink, local: int, data: bytes) -> None:
        link = self.server.links.get(local)
        if link is None or self.relays.node_of(local) != uplink.node:
            uplink.counts.refused += 1
            return
        self.server.hub.seen(local, time.monotonic())
        link.send_control(data)

    def down_media(self, uplink: Uplink, locals_: tuple[int, ...], packet: bytes) -> None:
        links, node_of = self.server.links, self.relays.node_of
        for local in locals_:
            link = links.get(local)
            if link is not None and node_of(local) == uplink.node:
                uplink.counts.deliveries_in += 1
                link.send_media(packet)

    def down_close(self, uplink: Uplink, local: int) -> None:
        if self.relays.node_of(local) == uplink.node:
            self.relays.remove(local)
            link = self.server.links.get(local)
            if link is not None:
                link.close()

    def uplink_closed(self, uplink: Uplink, why: str) -> None:
        if self.uplinks.get(uplink.node) is not uplink:
            return
        del self.uplinks[uplink.node]
        uplink.task.cancel()
        for cid in self.relays.dropped(uplink.node):
            link = self.server.links.get(cid)
            if link is not None:
                with contextlib.suppress(Exception):
                    link.send_control(encode(_refusal(why)))
                link.close()

    # -- reports and the end ----------------------------------------------------------------------------

    def stats(self) -> dict[str, object]:
        return {
            "links_in": {
                self.behind.nodes[link]: dataclasses.asdict(counts)
                for link, counts in self.behind.counts.items()
            },
            "links_out": {name: dataclasses.asdict(up.counts) for name, up in self.uplinks.items()},
            "refused": self.refused,
        }

    async def close(self) -> None:
        for uplink in list(self.uplinks.values()):
            uplink.close()
        self.uplinks.clear()


def _refusal(text: str, request: Message | None = None) -> Message:
    ident = request.get("id") if request is not None else None
    return Error(
        code="unavailable",
        message=text,
        re=request.get("type") if request is not None else None,
        id=ident if isinstance(ident, str | int) else None,
    ).to_message()


def _send(cid: int, message: Message) -> Send:
    return Send((cid,), message)


def _close(cid: int, why: str) -> Close:
    return Close(cid, why)
