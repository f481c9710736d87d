"""A cluster node's side of failover (docs/cluster.md, "Failover"), sans-I/O: where ``welcome`` tells a
client to reconnect, and what a node that does not hold a meeting does with a ``resume`` for it: sends it
on to the live holder, takes the meeting over from its record once the dead holder's claim lapsed (only
after winning the claim), asks the client to try again meanwhile, and refuses retryably what needs an
unreachable directory."""

from __future__ import annotations

from typing import Any

import pytest

from conf_cli.plugin.cluster import DirectoryUnavailable
from conf_cli.protocol.control import PROTOCOL_VERSION, encode
from conf_cli.server.directory import UNREACHABLE, ClaimMeeting, ClusterView, FindHolder, Holder, NodeInfo
from conf_cli.server.hub import RESUME_RETRY_AFTER, Hub
from tests.helpers.directory import ClusterHub
from tests.helpers.hub_resume import CLOCK, KEY, Server, Store, meeting_of_three

pytestmark = pytest.mark.usefixtures("cheap_scrypt")


def node(name: str, *urls: str, participants: int = 0) -> NodeInfo:
    return NodeInfo(
        name, urls or (f"tcp://{name}:7450", f"rtp://{name}:7454"), "SHA256:K", participants=participants
    )


class Node(ClusterHub):
    """Hub ``b`` of a cluster whose records are ``store``."""

    def __init__(self, store: Store, *others: NodeInfo, reachable: bool = True) -> None:
        view = ClusterView("b", "redis://r:6379/0", "SHA256:K", reachable=reachable)
        view.nodes = {n.name: n for n in (node("b"), *others)}
        hub = Hub(resume_key=KEY, wall_clock=lambda: CLOCK, records=store, urls=["tcp://b:7450"])
        super().__init__(hub, view)

    def connect(self, cid: int, scheme: str = "tcp") -> dict[str, Any]:
        self.hub.connected(cid, 0.0, f"10.0.0.{cid}:5000", scheme)
        self.keep(self.hub.received(cid, encode({"type": "hello", "protocol": PROTOCOL_VERSION}), 0.0))
        return self.to(cid)[-1]

    def resume(self, cid: int, token: str) -> None:
        self.connect(cid)
        self.keep(self.hub.received(cid, encode({"type": "resume", "token": token}), 0.0))

    def to(self, cid: int) -> list[dict[str, Any]]:
        return [m for to, m in self.sent if cid in to]


def killed_meeting() -> tuple[Store, str, dict[int, str]]:
    """A meeting held by node a (Ada host, Bo, Cy), its record in the shared store, and everyone's
    token: then node a dies."""
    a = Server()
    meeting = meeting_of_three(a)
    a.send(1, {"type": "lock"})
    return a.store, meeting, {cid: a.token(cid) for cid in (1, 2, 3)}


def test_welcome_lists_this_node_s_urls_then_the_other_live_nodes_for_the_same_transport() -> None:
    b = Node(Store(), node("c", participants=50), node("d"), node("e", "zmq://e:7452"))
    welcome = b.connect(1)
    assert welcome["urls"] == ["tcp://b:7450", "tcp://d:7450", "tcp://c:7450"]  # least loaded first
    assert b.connect(2, "rtp")["urls"] == ["tcp://b:7450", "rtp://d:7454", "rtp://c:7454"]
    many = Node(Store(), *(node(f"n{i}") for i in range(40)))
    assert len(many.connect(1)["urls"]) == 1 + 8  # bounded


def test_a_resume_of_a_meeting_held_by_a_live_node_is_redirected_there() -> None:
    store, meeting, tokens = killed_meeting()
    b = Node(store, node("c"))
    b.resume(9, tokens[2])
    assert [ask.question for ask in b.asked] == [FindHolder(meeting)]
    b.answer(Holder("c", node("c")))
    assert b.to(9)[-1] == {
        "type": "redirect",
        "re": "resume",
        "url": "tcp://c:7450",
        "node": "c",
        "meeting": meeting,
        "fingerprint": "SHA256:K",
    }
    assert b.hub.meetings == {}


def test_a_meeting_whose_holder_s_claim_lapsed_is_claimed_and_restored_with_everyone_s_role() -> None:
    store, meeting, tokens = killed_meeting()
    b = Node(store)
    b.resume(9, tokens[1])
    b.answer(None)  # nobody holds it: the dead node's claim lapsed
    assert [ask.question for ask in b.asked] == [ClaimMeeting(meeting)]
    assert b.hub.meetings == {}  # nothing restored before the claim is won
    b.answer(True)
    joined = next(m for m in b.to(9) if m["type"] == "joined")
    assert joined["resumed"] is True and joined["name"] == "Ada" and joined["role"] == "host"
    assert joined["locked"] is True  # the record's settings came along
    assert b.hub.stats.meetings_restored == 1
    b.resume(10, tokens[2])  # the next one finds the meeting here: no question asked
    assert b.asked == []
    assert [m for m in b.to(10) if m["type"] == "joined"][-1]["name"] == "Bo"


def test_of_two_nodes_racing_only_the_claim_s_winner_restores_the_other_redirects_to_it() -> None:
    store, meeting, tokens = killed_meeting()
    b = Node(store, node("c"))
    b.resume(9, tokens[2])
    b.answer(None)
    b.answer(False)  # node c claimed it first
    assert [ask.question for ask in b.asked] == [FindHolder(meeting)]
    b.answer(Holder("c", node("c")))
    assert b.to(9)[-1]["type"] == "redirect" and b.to(9)[-1]["node"] == "c"
    assert b.hub.meetings == {} and b.hub.stats.meetings_restored == 0


@pytest.mark.parametrize(
    ("answers", "code", "words"),
    [
        ([Holder("a", None)], "try_again", "stopped answering"),
        ([UNREACHABLE], "directory_unavailable", "cannot be reached"),
        ([None, UNREACHABLE], "directory_unavailable", "cannot be reached"),
    ],
)
def test_a_resume_that_must_wait_is_refused_with_a_retryable_code(
    answers: list[object], code: str, words: str
) -> None:
    store, _, tokens = killed_meeting()
    b = Node(store)
    b.resume(9, tokens[3])
    for answer in answers:
        b.answer(answer)
    error = b.to(9)[-1]
    assert error["type"] == "error" and error["code"] == code and words in error["message"]
    assert error["retry_after"] == RESUME_RETRY_AFTER
    assert b.hub.meetings == {}


def test_a_record_the_directory_cannot_give_is_refused_retryably_not_as_an_ended_meeting() -> None:
    store, _, tokens = killed_meeting()

    class Down(Store):
        def load(self, meeting: str) -> bytes | None:
            raise DirectoryUnavailable("the cluster's directory (redis://r:6379/0) cannot be reached")

    down = Down()
    down.records = store.records
    b = Node(down)
    b.resume(9, tokens[3])
    b.answer(None)
    b.answer(True)
    error = b.to(9)[-1]
    assert error["code"] == "directory_unavailable" and "retry_after" in error


def test_a_meeting_this_node_holds_resumes_without_the_directory() -> None:
    store, _, tokens = killed_meeting()
    b = Node(store)
    b.resume(9, tokens[1])
    b.answer(None)
    b.answer(True)
    b.view.lost(1.0)  # the directory goes away
    b.resume(10, tokens[2])
    assert b.asked == []
    assert [m for m in b.to(10) if m["type"] == "joined"][-1]["name"] == "Bo"


def test_a_token_of_another_identity_is_refused_without_asking_the_directory() -> None:
    other = Server(key=type(KEY).from_identity(bytes(32)))
    meeting_of_three(other)
    b = Node(other.store)
    b.resume(9, other.token(2))
    assert b.asked == [] and b.to(9)[-1]["code"] == "resume_refused"
