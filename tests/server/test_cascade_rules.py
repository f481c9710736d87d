"""Cascading's decisions and formats (conf_cli.server.cascade), and the hub's choice between carrying a
join to the meeting's holder and redirecting it. Sans-I/O: no sockets."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conf_cli.protocol.control import MAX_CONTROL_BYTES, encode
from conf_cli.server.cascade import (
    MAX_DESTINATIONS,
    RELAY_BURST,
    RELAY_RATE,
    Behind,
    Relays,
    batches,
    link_key,
    node_message,
    proof,
    proof_holds,
    read_node_message,
    should_cascade,
    unwrap_control,
    unwrap_media,
    wrap_control,
    wrap_media,
)
from conf_cli.server.directory import Holder, NodeInfo
from conf_cli.server.hub import Cascade
from tests.helpers.directory import Node, node

pytestmark = pytest.mark.usefixtures("cheap_scrypt")


# -- when a join cascades ------------------------------------------------------------------------------


def test_a_join_cascades_when_the_holder_is_full_unless_told_always_or_never() -> None:
    roomy, full = node("a", participants=10), node("a", participants=100)
    assert not should_cascade("full", roomy) and should_cascade("full", full)
    assert should_cascade("always", roomy) and should_cascade("always", full)
    assert not should_cascade("never", full)


def test_a_holder_without_a_tcp_url_is_never_cascaded_to() -> None:
    zmq_only = NodeInfo("a", ("zmq://a:7452",), "SHA256:" + "K" * 43, participants=100, capacity=100)
    assert not should_cascade("always", zmq_only) and not should_cascade("full", zmq_only)


def test_the_hub_carries_a_join_to_a_full_holder_and_redirects_to_one_with_room() -> None:
    join = {"type": "join", "meeting": "bbb-bbbb-bbb", "name": "Bob", "passcode": "sesame"}
    b = Node(others=(node("h", participants=100),))
    b.send(join)
    actions = b.asked.pop(0).resume(Holder("h", node("h", participants=100)), 0.0)
    assert actions == [Cascade(1, node("h", participants=100), join)]
    assert b.hub.stats.cascaded == 1 and b.hub.stats.redirects == 0

    c = Node(others=(node("h", participants=10),))
    c.send(join)
    c.answer(Holder("h", node("h", participants=10)))
    assert c.last()["type"] == "redirect" and c.hub.stats.cascaded == 0

    always = Node(others=(node("h", participants=10),))
    always.view.cascade = "always"
    always.send(join)
    actions = always.asked.pop(0).resume(Holder("h", node("h", participants=10)), 0.0)
    assert [type(action) for action in actions] == [Cascade]


# -- the proof -----------------------------------------------------------------------------------------


def test_only_the_cluster_key_answers_a_challenge_for_that_node_and_that_nonce() -> None:
    key, other = link_key(b"s" * 32), link_key(b"t" * 32)
    nonce = os.urandom(32)
    answer = proof(key, nonce, "b")
    assert proof_holds(key, nonce, "b", answer)
    assert not proof_holds(other, nonce, "b", answer)  # another key
    assert not proof_holds(key, os.urandom(32), "b", answer)  # an old answer to a new challenge
    assert not proof_holds(key, nonce, "c", answer)  # another node's name
    assert not proof_holds(key, nonce, "b", None) and not proof_holds(key, nonce, "b", 7)


# -- envelopes -----------------------------------------------------------------------------------------


@given(st.integers(0, 2**32 - 1), st.text(max_size=200))
def test_a_wrapped_control_message_comes_out_as_it_went_in(local: int, text: str) -> None:
    inner = encode({"type": "chat", "text": text})
    wrapped = wrap_control(local, inner)
    assert wrapped is not None and wrapped.startswith(b"{")  # a control frame on a stream transport
    assert unwrap_control(wrapped) == (local, inner)
    assert json.loads(wrapped) == {"p": local, "m": {"type": "chat", "text": text}}


def test_what_would_not_fit_in_a_frame_is_not_wrapped_and_what_is_not_an_envelope_is_not_unwrapped() -> None:
    assert wrap_control(1, b"{" + b" " * (MAX_CONTROL_BYTES - 2) + b"}") is None
    assert unwrap_control(b'{"type":"chat"}') is None
    assert unwrap_control(b'{"p":12,"m":{"type":"chat"') is None  # cut short
    assert unwrap_control(b'{"p":-1,"m":{}}') is None
    assert unwrap_control(b'{"p":12345678901,"m":{}}') is None


@given(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=MAX_DESTINATIONS), st.binary(min_size=1))
def test_a_media_frame_names_its_participants_and_carries_the_packet(
    locals_: list[int], packet: bytes
) -> None:
    data = wrap_media(locals_, packet)
    assert data[0] >> 6 == 2  # a media frame on a stream transport
    assert unwrap_media(data) == (tuple(locals_), packet)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80",
        b"\x80\x00rtp",
        b"\x81\x01\x00\x00\x00\x01rtp",
        b"\x80\x02\x00\x00\x00\x01rtp",
        b"\x80\x01\0\0\0\1",
    ],
)
def test_a_malformed_media_frame_is_refused(data: bytes) -> None:
    assert unwrap_media(data) is None


def test_more_participants_than_one_frame_names_go_in_further_frames() -> None:
    locals_ = list(range(2 * MAX_DESTINATIONS + 3))
    parts = list(batches(locals_))
    assert [len(part) for part in parts] == [MAX_DESTINATIONS, MAX_DESTINATIONS, 3]
    assert [x for part in parts for x in part] == locals_


@pytest.mark.parametrize(
    "data",
    [b'{"node":"hello","name":"b"}', b'{"node":"ping"}'],
)
def test_a_node_links_own_messages_are_read(data: bytes) -> None:
    assert read_node_message(data) == json.loads(data)


@pytest.mark.parametrize(
    "data",
    [
        b'{"node":"hello","name":"' + b"b" * 600 + b'"}',
        b'{"node":"steal"}',
        b'{"node":',
        b'{"type":"hello"}',
        b"[]",
    ],
)
def test_anything_else_is_not_a_node_message(data: bytes) -> None:
    assert read_node_message(data) is None
    assert read_node_message(node_message("ping")) == {"node": "ping"}


# -- who is where --------------------------------------------------------------------------------------


def test_the_holder_knows_who_is_behind_each_node_link_within_its_bound() -> None:
    behind = Behind(limit=2)
    assert not behind.add(10, 1, 100)  # not a node link (it never proved itself)
    behind.accepted(10, "b")
    behind.accepted(20, "c")
    assert behind.add(10, 1, 100) and behind.add(10, 2, 101)
    assert not behind.add(10, 3, 102)  # the link is full
    assert not behind.add(10, 1, 103)  # that participant is there already
    assert behind.add(20, 1, 200)  # the same number on another node is another participant
    assert behind.cid(10, 1) == 100 and behind.cid(20, 1) == 200 and behind.cid(10, 9) is None
    assert behind.owner(101) == (10, 2)
    assert behind.by_link([100, 101, 200, 999]) == {10: [1, 2], 20: [1]}
    assert behind.counts[10].participants == 2
    behind.remove(100)
    assert behind.cid(10, 1) is None and behind.counts[10].participants == 1
    assert sorted(behind.dropped(10)) == [101]
    assert not behind.is_node(10) and behind.owner(101) is None and behind.is_node(20)


def test_a_node_relays_each_local_participant_over_one_link_within_its_bound() -> None:
    relays = Relays(limit=2)
    assert relays.add(1, "a") and relays.add(2, "a") and relays.add(3, "x")
    assert not relays.add(4, "a")  # that link carries its limit
    assert relays.add(1, "a") and not relays.add(1, "x")  # one link per participant
    assert relays.node_of(2) == "a" and relays.count("a") == 2 and relays.total() == 3
    assert relays.remove(2) == "a" and relays.node_of(2) is None and relays.count("a") == 1
    assert relays.dropped("a") == [1] and relays.node_of(1) is None and relays.count("a") == 0


def test_a_participant_s_control_messages_are_relayed_within_a_budget() -> None:
    relays = Relays()
    assert not relays.may_relay(1, 0.0)  # not relayed at all
    relays.add(1, "a")
    relays.add(2, "a")
    sent = sum(relays.may_relay(1, 0.0) for _ in range(2 * int(RELAY_BURST)))
    assert sent == RELAY_BURST  # a burst, then nothing more at once ...
    assert relays.may_relay(2, 0.0)  # ... for that participant only
    assert sum(relays.may_relay(1, 1.0) for _ in range(2 * int(RELAY_RATE))) == RELAY_RATE  # a second's worth
    relays.remove(1)
    assert not relays.may_relay(1, 10.0)
