"""A cluster node's sans-I/O decisions (conf_cli.server.directory) and the hub's use of them: placement,
node records, the view of the directory, claims, and the questions create and join ask."""

from __future__ import annotations

import dataclasses
import json

import pytest

from conf_cli.errors import ProtocolError
from conf_cli.protocol.control import PROTOCOL_VERSION, encode
from conf_cli.server.directory import (
    PLACED_READS,
    UNREACHABLE,
    ClaimBook,
    ClaimMeeting,
    ClusterView,
    FindHolder,
    Holder,
    LoadMeter,
    NodeInfo,
    has_room,
    is_meeting_key,
    load,
    place,
    url_for,
)
from conf_cli.server.hub import Ask, Hub
from conf_cli.server.meeting import Send
from tests.helpers.directory import Node, node, nodes

pytestmark = pytest.mark.usefixtures("cheap_scrypt")


# -- placement ----------------------------------------------------------------------------------------


def test_the_node_reached_takes_the_meeting_while_it_has_room() -> None:
    assert place(nodes(node("a", 50), node("b", 0)), "a") == "a"


def test_a_full_node_places_the_meeting_on_the_least_loaded_node_with_room() -> None:
    cluster = nodes(node("a", 90), node("b", 30), node("c", 10, cpu=0.5), node("d", 20))
    assert place(cluster, "a") == "d"  # c has fewer participants but half a core busy


def test_a_node_is_full_by_cpu_as_by_participants() -> None:
    assert not has_room(node("a", 0, cpu=0.9))
    assert not has_room(node("a", 80))
    assert has_room(node("a", 79, cpu=0.79))
    assert load(node("a", 10, cpu=0.3)) == 0.3


def test_when_no_node_has_room_the_least_loaded_of_all_takes_it_ties_by_name() -> None:
    assert place(nodes(node("a", 99), node("c", 85), node("b", 85)), "a") == "b"


def test_a_node_not_in_the_directory_yet_takes_the_meeting_itself() -> None:
    assert place(nodes(node("b", 0)), "a") == "a"
    assert place({}, "a") == "a"


def test_placement_spreads_many_meetings_over_the_nodes() -> None:
    """Meetings arriving at one node fill it to its room, then go to the least loaded of the others."""
    cluster = nodes(*(node(f"n{i}", capacity=100) for i in range(5)))
    for _ in range(200):
        chosen = place(cluster, "n0")
        cluster[chosen] = node(chosen, cluster[chosen].participants + 2)
    counts = sorted(item.participants for item in cluster.values())
    assert counts[0] >= 78 and counts[-1] <= 82  # each filled to its room (80) before any takes more


def test_url_for_picks_the_transport_the_client_came_in_on() -> None:
    assert url_for(node("b"), "zmq") == "zmq://b:7452"
    assert url_for(node("b"), "rtp") is None


def test_only_letters_digits_and_dashes_are_meeting_ids_of_the_directory() -> None:
    assert is_meeting_key("k7m-q2xw-9fd")
    for bad in ("", "a.b", "a*", "a>", "x" * 65, "a b", "é"):
        assert not is_meeting_key(bad)


# -- node records -------------------------------------------------------------------------------------


def test_a_node_record_round_trips() -> None:
    record = NodeInfo("a", ("tcp://10.0.0.1:7450",), "SHA256:x", 0.25, 12, 340.5, 3, 200)
    assert NodeInfo.parse("a", record.to_bytes()) == record


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        json.dumps({"name": "other", "urls": []}).encode(),
        json.dumps({"name": "a", "urls": "tcp://x:1"}).encode(),
        json.dumps({"name": "a", "urls": ["no scheme"]}).encode(),
        json.dumps({"name": "a", "urls": ["tcp://x:1"] * 17}).encode(),
        json.dumps({"name": "a", "urls": [], "cpu": -1}).encode(),
        json.dumps({"name": "a", "urls": [], "participants": True}).encode(),
        json.dumps({"name": "a", "urls": [], "fingerprint": 7}).encode(),
        json.dumps({"name": "a", "urls": [], "pad": "x" * 9000}).encode(),
    ],
)
def test_what_is_not_a_node_record_is_refused(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        NodeInfo.parse("a", data)


# -- the view, claims, load -----------------------------------------------------------------------------


def test_the_view_follows_the_directory_and_forgets_other_nodes_when_it_is_lost() -> None:
    view = ClusterView("a", "redis://r:6379/0")
    assert not view.reachable
    bad = view.seen({"a": node("a", 95).to_bytes(), "b": node("b").to_bytes(), "junk": b"{"}, 1.0)
    assert bad == ["junk"] and set(view.nodes) == {"a", "b"}
    assert view.reachable and view.since == 1.0
    placed = view.placement()
    assert placed is not None and placed.name == "b"
    assert view.lost(5.0) is True and view.lost(6.0) is False
    assert view.nodes == {} and view.placement() is None  # on its own until it hears again
    assert view.answered(9.0) is True and view.since == 9.0


def test_claims_are_refreshed_while_running_and_released_once_ended() -> None:
    book = ClaimBook()
    book.claimed("m1")
    book.claimed("m2")
    assert book.plan(["m1", "m2"]) == (["m1", "m2"], [])
    refresh, release = book.plan(["m2"])
    assert refresh == ["m2"] and release == ["m1"]
    assert book.plan(["m2"])[1] == ["m1"]  # not released yet (the directory was down): asked again
    book.released("m1")
    assert book.plan(["m2"]) == (["m2"], [])


def test_the_load_meter_measures_cpu_share_and_packet_rate_between_samples() -> None:
    meter = LoadMeter()
    assert meter.sample(10.0, 5.0, 1000) == (0.0, 0.0)
    assert meter.sample(12.0, 5.5, 3000) == (0.25, 1000.0)
    assert meter.sample(12.0, 6.0, 4000) == (0.0, 0.0)  # no time passed: no figure


# -- the hub in a cluster -------------------------------------------------------------------------------


def test_a_create_claims_its_meeting_id_in_the_directory_before_the_meeting_opens() -> None:
    a = Node()
    a.send({"type": "create", "name": "Ada", "passcode": "sesame"})
    assert [ask.question for ask in a.asked] == [ClaimMeeting("aaa-aaaa-aaa")]
    assert a.hub.meetings == {}
    a.answer(False)  # another node's meeting has that ID: the next one is tried
    assert [ask.question for ask in a.asked] == [ClaimMeeting("bbb-bbbb-bbb")]
    a.answer(True)
    assert list(a.hub.meetings) == ["bbb-bbbb-bbb"]
    assert [m["type"] for _, m in a.sent[-2:]] == ["meeting_created", "joined"]


def test_a_create_whose_claims_all_collide_is_refused() -> None:
    a = Node()
    a.send({"type": "create", "name": "Ada", "passcode": "sesame"})
    for _ in range(3):
        a.answer(False)
    assert a.asked == [] and a.hub.meetings == {}
    assert a.last()["code"] == "directory_unavailable"


def test_a_create_is_refused_clearly_while_the_directory_is_unreachable() -> None:
    a = Node(reachable=False)
    a.send({"type": "create", "name": "Ada"})
    assert a.asked == [] and a.last()["code"] == "directory_unavailable"
    assert (
        "cannot be reached" in a.last()["message"] and "meetings already running go on" in a.last()["message"]
    )
    b = Node()
    b.send({"type": "create", "name": "Ada"})
    b.answer(UNREACHABLE)  # lost between placement and claim
    assert b.last()["code"] == "directory_unavailable" and b.hub.meetings == {}


def test_a_full_node_sends_a_create_to_the_least_loaded_node() -> None:
    a = Node(others=(node("b", 20), node("c", 10)))
    a.view.nodes["a"] = node("a", 100)
    a.send({"type": "create", "name": "Ada"})
    assert a.asked == []
    assert a.last() == {
        "type": "redirect",
        "re": "create",
        "url": "tcp://c:7450",
        "node": "c",
        "fingerprint": "SHA256:" + "K" * 43,
    }


def test_a_join_of_a_meeting_held_elsewhere_is_redirected_to_its_holder() -> None:
    a = Node(others=(node("b"),))
    a.send({"type": "join", "meeting": "BBB BBBB BBB", "name": "Bob", "passcode": "sesame"})
    assert [ask.question for ask in a.asked] == [FindHolder("bbb-bbbb-bbb")]
    a.answer(Holder("b", node("b")))
    assert a.last() == {
        "type": "redirect",
        "re": "join",
        "url": "tcp://b:7450",
        "node": "b",
        "meeting": "bbb-bbbb-bbb",
        "fingerprint": "SHA256:" + "K" * 43,
    }


@pytest.mark.parametrize(
    ("answer", "code", "words"),
    [
        (None, "unknown_meeting", "in this cluster"),
        (Holder("a", node("a")), "unknown_meeting", "in this cluster"),
        (UNREACHABLE, "directory_unavailable", "cannot be reached"),
        (Holder("b", None), "unavailable", "not answering"),
        (Holder("b", NodeInfo("b", ("rtp://b:7454",))), "unavailable", "no tcp:// URL"),
    ],
)
def test_a_join_the_directory_cannot_send_on_is_refused_with_what_went_wrong(
    answer: object, code: str, words: str
) -> None:
    a = Node()
    a.send({"type": "join", "meeting": "bbb-bbbb-bbb", "name": "Bob", "passcode": "sesame"})
    a.answer(answer)
    assert a.last()["type"] == "error" and a.last()["code"] == code and words in a.last()["message"]


def test_an_unknown_meeting_in_the_cluster_counts_as_a_failed_attempt() -> None:
    a = Node()
    for _ in range(5):
        a.send({"type": "join", "meeting": "zzz-zzzz-zzz", "name": "Eve", "passcode": "x"})
        a.answer(None)
    a.send({"type": "join", "meeting": "zzz-zzzz-zzz", "name": "Eve", "passcode": "x"})
    assert a.asked == [] and a.last()["code"] == "rate_limited"  # guessing IDs costs as on one server


def test_an_id_that_cannot_be_a_meeting_of_the_directory_is_never_asked_about() -> None:
    a = Node()
    a.send({"type": "join", "meeting": "a.*>", "name": "Eve", "passcode": "x"})
    assert a.asked == [] and a.last()["code"] == "unknown_meeting"


# -- the front of `conf server --workers`: a node that holds no meeting -------------------------------------


def front_view(*others: NodeInfo) -> ClusterView:
    return ClusterView("front", "local:///d.sock", nodes=nodes(*others), reachable=True, holds_meetings=False)


def test_a_front_spreads_creates_in_a_row_over_its_workers_before_their_records_catch_up() -> None:
    view = front_view(node("w-1", cpu=0.05), node("w-2", cpu=0.3), node("w-3"))
    chosen = [view.placement() for _ in range(6)]
    assert [n.name for n in chosen if n is not None] == ["w-3", "w-1", "w-2", "w-3", "w-1", "w-2"]


def test_a_front_counts_a_meeting_it_placed_until_the_records_show_it_or_its_client_never_came() -> None:
    """Records read between a placement and the meeting's creation on the worker must not make the front
    forget it: the next create would go to the same worker."""
    view = front_view(node("w-1"), node("w-2"))
    assert [n.name for n in (view.placement(),) if n is not None] == ["w-1"]
    view.seen({"w-1": node("w-1").to_bytes(), "w-2": node("w-2").to_bytes()}, 1.0)  # not created yet
    assert view.placement().name == "w-2"  # type: ignore[union-attr]
    shown = dataclasses.replace(
        node("w-1"), meetings=1
    )  # w-1's record now shows its meeting: it counts from the record, not twice
    view.seen({"w-1": shown.to_bytes(), "w-2": node("w-2").to_bytes()}, 2.0)
    assert view.placed == {"w-2": [1]}
    for read in range(PLACED_READS):  # w-2's client never came: after a few reads it counts no more
        view.seen({"w-1": shown.to_bytes(), "w-2": node("w-2").to_bytes()}, 3.0 + read)
    assert view.placed == {}
    assert view.placement().name == "w-2"  # type: ignore[union-attr]


def test_a_front_skips_full_workers_and_never_places_on_itself() -> None:
    view = front_view(node("front"), node("w-1", participants=100), node("w-2", cpu=0.9), node("w-3", 50))
    assert {view.placement().name for _ in range(3)} == {"w-3"}  # type: ignore[union-attr]
    assert front_view(node("front")).placement() is None


def test_a_front_with_no_worker_refuses_a_create_and_sends_a_join_to_the_holder() -> None:
    hub = Hub()
    hub.cluster = front_view()
    hub.connected(1, 0.0, "10.0.0.1", "tcp")
    hub.received(1, encode({"type": "hello", "protocol": PROTOCOL_VERSION}), 0.0)
    sent = [a.message for a in hub.received(1, encode({"type": "create", "name": "Ada"}), 0.0)]
    assert sent[-1]["code"] == "unavailable" and "no worker" in sent[-1]["message"]
    assert hub.meetings == {}
    hub.cluster.nodes = nodes(node("w-1"))
    sent = [a.message for a in hub.received(1, encode({"type": "create", "name": "Ada"}), 0.0)]
    assert sent[-1] == {**sent[-1], "type": "redirect", "node": "w-1", "url": "tcp://w-1:7450"}
    asks = hub.received(1, encode({"type": "join", "meeting": "abc-defg-hij", "name": "Bob"}), 0.0)
    assert isinstance(asks[0], Ask) and asks[0].question == FindHolder("abc-defg-hij")
    redirect = asks[0].resume(Holder("w-1", node("w-1")), 0.0)[0]
    assert isinstance(redirect, Send) and redirect.message["meeting"] == "abc-defg-hij"
    assert hub.meetings == {}
