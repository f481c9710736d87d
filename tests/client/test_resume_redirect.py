"""A reconnecting client's rules for a cluster's answers to its ``resume`` (docs/protocol.md, "Resuming"):
its token goes only to a node presenting the key it already accepted, and a redirect to a node that
cannot be reached is a reason to ask again shortly, not to give up."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from conf_cli.client.link import RESUME_REDIRECT_RETRY, Client
from conf_cli.errors import ConfError, RequestRefused
from conf_cli.identity import fingerprint
from conf_cli.plugin.registry import registry
from conf_cli.plugin.security import Security, Trust
from conf_cli.plugin.transport import TransportOptions
from conf_cli.urls import parse_server_url

KEY = bytes(range(32))


def client() -> Client:
    trust = Trust("tcp://127.0.0.1:9", fingerprint(KEY), pin=False)
    trust.accepted = KEY  # the key the node we were on presented
    options = TransportOptions(security=Security(registry().ciphers, trust=trust))
    made = Client(registry(), parse_server_url("tcp://127.0.0.1:9"), options)
    made.send = lambda message: None  # type: ignore[method-assign]  # nothing to send it to here
    return made


def redirect(fingerprint_named: str) -> dict[str, Any]:
    return {
        "type": "redirect",
        "re": "resume",
        "url": "tcp://127.0.0.1:1",
        "node": "b",
        "meeting": "aaa-aaaa-aaa",
        "fingerprint": fingerprint_named,
    }


async def test_a_resume_redirected_to_a_node_with_another_key_is_refused_before_the_token_goes() -> None:
    c = client()
    c.events.put_nowait(redirect(fingerprint(bytes(32))))
    with pytest.raises(ConfError, match="presents another key"):
        await c._ask_cluster({"type": "resume", "token": "t"}, {"joined"})
    assert str(c.address) == "tcp://127.0.0.1:9"  # it never went there


async def test_a_resume_redirected_to_a_node_that_cannot_be_reached_is_to_be_tried_again_shortly() -> None:
    c = client()
    c.events.put_nowait(redirect(fingerprint(KEY)))  # port 1: nothing listens there
    with pytest.raises(RequestRefused) as refused:
        async with asyncio.timeout(15):
            await c._ask_cluster({"type": "resume", "token": "t"}, {"joined"})
    assert refused.value.code == "try_again" and refused.value.retry_after == RESUME_REDIRECT_RETRY
    assert "cannot be reached" in str(refused.value)


def test_a_renewed_resume_token_s_urls_are_where_the_client_reconnects_from_then_on() -> None:
    """``welcome`` listed node a alone; a renewed token names node b too (it joined the cluster since):
    a reconnection tries our own URL, then both, each held to the key already accepted."""
    c = client()
    c.welcome = {"type": "welcome", "urls": ["tcp://127.0.0.1:9", "tcp://127.0.0.1:10"]}
    assert [str(address) for address, _ in c._resume_targets()] == ["tcp://127.0.0.1:9", "tcp://127.0.0.1:10"]
    renewed = {
        "type": "resume_token",
        "token": "p.t",
        "expires": 1.0,
        "urls": ["tcp://127.0.0.1:9", "tcp://127.0.0.1:10", "tcp://127.0.0.1:11"],
    }
    c.control_received(json.dumps(renewed).encode())
    assert c.resume_token == "p.t" and c.welcome["type"] == "welcome"  # the welcome itself is kept as it came
    targets = c._resume_targets()
    assert [str(address) for address, _ in targets] == [
        "tcp://127.0.0.1:9",
        "tcp://127.0.0.1:10",
        "tcp://127.0.0.1:11",
    ]
    for _, options in targets[1:]:
        assert options.security is not None and options.security.trust is not None
        assert options.security.trust.pin is False
    # A token without URLs (a participant carried over a node link) leaves the list as it was.
    c.control_received(json.dumps({"type": "resume_token", "token": "p.u", "expires": 2.0}).encode())
    assert c.resume_token == "p.u" and len(c._resume_targets()) == 3
