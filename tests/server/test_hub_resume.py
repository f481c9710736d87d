"""The hub's rules for resuming a seat (docs/protocol.md, "Resuming"): seats kept for a grace period,
taken back quietly or from a connection still open (never cloned), refused to whoever left, was removed
or holds an altered token, and meetings recreated from their record by a restarted server."""

from __future__ import annotations

import pytest

from conf_cli.server.directory import ClusterView, NodeInfo
from conf_cli.server.hub import HOST_RETURN_WAIT, NODES_TOLD_INTERVAL, Close, Rebind
from conf_cli.server.resume import REFRESH_SECONDS, SEAT_GRACE, ResumeKey, seat_for
from tests.helpers.hub_resume import CLOCK, KEY, Server, meeting_of_three

pytestmark = pytest.mark.usefixtures("cheap_scrypt")


def test_everyone_in_a_meeting_gets_a_resume_token_and_a_new_one_on_a_role_change() -> None:
    server = Server()
    meeting_of_three(server)
    assert all(server.to(cid, "resume_token") for cid in (1, 2, 3))
    first = server.token(2)
    server.send(1, {"type": "set_role", "name": "Bo", "role": "admin"})
    assert KEY.read(server.token(2), CLOCK).role == "admin" and server.token(2) != first
    assert [to for to, m in server.sent if m["type"] == "resume_token"][-1] == (2,)  # to its owner alone


def test_tokens_are_renewed_before_they_expire() -> None:
    server = Server()
    meeting_of_three(server)
    before = len(server.to(3, "resume_token"))
    server.keep(server.hub.tick(1.0), 1.0)
    assert len(server.to(3, "resume_token")) == before
    server.wall = CLOCK + REFRESH_SECONDS
    server.keep(server.hub.tick(2.0), 2.0)
    assert len(server.to(3, "resume_token")) == before + 1


def test_a_renewed_token_carries_where_to_reconnect_as_the_cluster_is_now() -> None:
    """``welcome.urls`` is computed at hello; a node that joins the cluster later reaches a long-lived
    client with a fresh resume token at the next tick, and one that leaves it too, at most once per
    NODES_TOLD_INTERVAL; while the directory cannot be reached nothing is sent (clients keep their list).
    A participant on a service's link (``local``) gets no URLs, and no token for a change of nodes."""
    own = "tcp://10.0.1.1:7450"
    server = Server(urls=[own])
    server.hub.cluster = ClusterView("a", "redis://10.0.0.1:6379/0", reachable=True)
    server.greet(1, scheme="tcp")
    server.greet(2, scheme="local")
    server.send(1, {"type": "create", "name": "Ada", "passcode": "sesame"})
    server.send(2, {"type": "join", "meeting": server.meeting(), "name": "Bo", "passcode": "sesame"})
    assert server.to(1, "welcome")[-1]["urls"] == [own]
    assert server.to(1, "resume_token")[-1]["urls"] == [own]
    assert "urls" not in server.to(2, "resume_token")[-1]

    def tick(now: float) -> None:  # both stay connected (heartbeats), then the server's tick
        for cid in (1, 2):
            server.hub.seen(cid, now)
        server.keep(server.hub.tick(now), now)

    # Node b joins the cluster: at the next tick Ada's new token names it.
    late = NodeInfo("b", ("tcp://10.0.1.2:7450", "zmq://10.0.1.2:7452"), "SHA256:" + "B" * 43)
    server.hub.cluster.nodes["b"] = late
    before, bo_before = len(server.to(1, "resume_token")), len(server.to(2, "resume_token"))
    tick(1.0)
    renewed = server.to(1, "resume_token")
    assert len(renewed) == before + 1
    assert renewed[-1]["urls"] == [own, "tcp://10.0.1.2:7450"]  # b's URL for the transport Ada came in on
    assert KEY.read(renewed[-1]["token"], server.wall).name == "Ada"
    assert len(server.to(2, "resume_token")) == bo_before
    assert server.hub.stats.tokens_for_nodes == 1
    tick(1.5)
    assert len(server.to(1, "resume_token")) == before + 1  # nothing changed since: nothing sent

    # b leaves at once: told once NODES_TOLD_INTERVAL has passed since the last change was told.
    del server.hub.cluster.nodes["b"]
    tick(2.0)
    assert len(server.to(1, "resume_token")) == before + 1
    tick(1.0 + NODES_TOLD_INTERVAL)
    assert len(server.to(1, "resume_token")) == before + 2
    assert server.to(1, "resume_token")[-1]["urls"] == [own]

    # The directory goes away (what it said of the others is forgotten): no token, the list stays.
    server.hub.cluster.nodes["b"] = late
    tick(30.0)
    assert len(server.to(1, "resume_token")) == before + 3
    server.hub.cluster.lost(40.0)
    tick(50.0)
    assert len(server.to(1, "resume_token")) == before + 3

    # Every token is renewed before it expires, as before.
    server.wall = CLOCK + REFRESH_SECONDS
    tick(60.0)
    assert len(server.to(1, "resume_token")) == before + 4
    assert KEY.read(server.to(2, "resume_token")[-1]["token"], server.wall).name == "Bo"
    assert "urls" not in server.to(2, "resume_token")[-1]


def test_a_vanished_participant_s_seat_is_kept_and_taken_back_quietly() -> None:
    server = Server()
    meeting = meeting_of_three(server)
    token = server.token(2)
    server.sent.clear()
    server.keep(server.hub.disconnected(2, "disconnected", 10.0), 10.0)
    server.keep(server.hub.tick(10.0 + SEAT_GRACE - 0.5), 10.0 + SEAT_GRACE - 0.5)
    assert server.sent == []  # nobody is told anything while the seat is kept
    server.greet(9, 11.0)
    server.send(9, {"type": "resume", "token": token}, 11.0)
    assert Rebind(9, 2, {"type": "left", "meeting": meeting, "reason": "resumed"}) in server.other
    joined = server.to(2, "joined")[-1]  # from now on connection 9 is known as the seat's, 2
    assert joined["resumed"] is True and joined["name"] == "Bo" and joined["role"] == "member"
    assert [t["ssrc"] for t in joined["tracks"]] == [77]  # its track was kept
    assert not server.to(1) and not server.to(3)  # quietly: the others heard nothing
    server.send(2, {"type": "publish", "kind": "video", "ssrc": 77, "codec": "H264"})  # published again
    assert not server.to(1)  # as it was: nothing changes
    server.send(2, {"type": "chat", "text": "back"})
    assert server.to(1, "chat")[-1]["from"] == "Bo"


def test_a_seat_not_taken_back_within_the_grace_is_given_up() -> None:
    server = Server()
    meeting_of_three(server)
    server.keep(server.hub.disconnected(2, "timeout", 10.0), 10.0)
    server.keep(server.hub.tick(10.0 + SEAT_GRACE), 10.0 + SEAT_GRACE)
    left = server.to(1, "participant_left")
    assert [(m["name"], m["reason"]) for m in left] == [("Bo", "timeout")]
    assert server.to(1, "share_stopped")[-1]["reason"] == "left"


def test_a_token_presented_while_its_owner_is_connected_moves_the_seat_never_clones_it() -> None:
    server = Server()
    meeting = meeting_of_three(server)
    stolen = server.token(2)
    server.sent.clear()
    server.greet(9)
    server.send(9, {"type": "resume", "token": stolen})
    rebind = next(a for a in server.other if isinstance(a, Rebind))
    assert rebind == Rebind(9, 2, {"type": "left", "meeting": meeting, "reason": "resumed"})
    server.send(1, {"type": "who"})
    names = [p["name"] for p in server.to(1, "participants")[-1]["participants"]]
    assert names == ["Ada", "Bo", "Cy"]  # one Bo
    assert not server.to(1, "participant_joined") and not server.to(1, "participant_left")


@pytest.mark.parametrize("how", ["left", "kicked"])
def test_whoever_left_or_was_removed_cannot_resume(how: str) -> None:
    server = Server()
    meeting_of_three(server)
    token = server.token(3)
    if how == "left":
        server.send(3, {"type": "leave"})
    else:
        server.send(1, {"type": "kick", "name": "Cy"})
    server.sent.clear()
    server.greet(9)
    server.send(9, {"type": "resume", "token": token})
    assert [m.get("code") for m in server.to(9)] == [None, "resume_refused"]
    assert not server.to(1)  # nothing of it reached the meeting


def test_an_altered_or_foreign_token_is_refused_and_gives_nothing_of_the_meeting() -> None:
    server = Server()
    meeting = meeting_of_three(server)
    raised = KEY.read(server.token(3), CLOCK)
    other = ResumeKey.from_identity(bytes(32))
    forged = [
        other.issue(seat_for(meeting, raised.seat, "Cy", "host", CLOCK)),  # another server's key
        _swap_payload(server.token(3), server.token(1)),  # Ada's claims under Cy's tag
        KEY.issue(seat_for(meeting, raised.seat, "Cy", "member", CLOCK - 3600)),  # expired
    ]
    for number, token in enumerate(forged, start=20):
        server.sent.clear()
        server.greet(number)
        server.send(number, {"type": "resume", "token": token})
        assert [m["type"] for m in server.to(number)] == ["welcome", "error"]
        assert server.to(number, "error")[0]["code"] == "resume_refused"
        assert not server.to(1) and not server.to(3)
    assert server.hub.stats.resumes_refused == 3
    assert server.hub.limiter.retry_after("10.0.0.22", None, 0.0) == 0  # counted: 3 of the 5 allowed


def _swap_payload(tagged: str, claims: str) -> str:
    return f"{claims.split('.')[0]}.{tagged.split('.')[1]}"


def test_a_host_whose_seat_was_given_up_comes_back_as_admin_beside_the_new_host() -> None:
    server = Server()
    meeting_of_three(server)
    token = server.token(1)
    server.keep(server.hub.disconnected(1, "disconnected", 1.0), 1.0)
    server.keep(server.hub.tick(1.0 + SEAT_GRACE), 1.0 + SEAT_GRACE)  # Bo succeeds as host
    server.greet(9)
    server.send(9, {"type": "resume", "token": token})
    joined = server.to(9, "joined")[-1]
    assert joined["resumed"] is True and joined["role"] == "admin"
    assert server.to(2, "participant_joined")[-1]["name"] == "Ada"  # not quiet: she had left


def test_a_server_without_a_resume_key_gives_no_tokens_and_takes_none() -> None:
    server = Server(key=None)
    meeting_of_three(server)
    assert not any(m["type"] == "resume_token" for _, m in server.sent)
    server.keep(server.hub.disconnected(2, "disconnected", 1.0), 1.0)
    assert server.to(1, "participant_left")  # no seat kept: nothing could take it back
    server.greet(9)
    server.send(9, {"type": "resume", "token": "e30.AAAA"})
    assert server.to(9, "error")[-1]["code"] == "resume_refused"


def test_an_end_to_end_encrypted_meeting_keeps_no_seat_so_that_keys_go_round() -> None:
    server = Server()
    key = "A" * 43 + "="
    server.greet(1)
    server.greet(2)
    server.send(1, {"type": "create", "name": "Ada", "e2ee": True, "e2ee_key": key})
    meeting = server.meeting()
    server.send(
        2, {"type": "join", "meeting": meeting, "name": "Bo", "e2ee_key": key, "passcode": _passcode(server)}
    )
    token = server.token(2)
    server.keep(server.hub.disconnected(2, "disconnected", 1.0), 1.0)
    assert server.to(1, "participant_left")
    server.greet(9)
    server.send(9, {"type": "resume", "token": token, "e2ee_key": key})
    assert server.to(1, "participant_joined")[-1]["key"] == key


def _passcode(server: Server) -> str:
    return next(m["passcode"] for _, m in server.sent if m["type"] == "meeting_created")


def test_a_restarted_server_recreates_the_meeting_from_its_record() -> None:
    server = Server()
    meeting = meeting_of_three(server)
    server.send(1, {"type": "set_role", "name": "Cy", "role": "admin"})
    server.send(1, {"type": "forbid", "what": "chat", "name": "Bo"})
    server.send(1, {"type": "forbid", "what": "screen"})
    server.send(1, {"type": "lock"})
    tokens = {cid: server.token(cid) for cid in (1, 2, 3)}
    stale_admin = KEY.issue(seat_for(meeting, KEY.read(tokens[2], CLOCK).seat, "Bo", "admin", CLOCK))
    restarted = Server(server.store)  # the same identity and folder, nothing in memory
    restarted.greet(12)
    restarted.send(12, {"type": "resume", "token": stale_admin})  # an older token with a higher role
    joined = restarted.to(12, "joined")[-1]
    assert joined["meeting"] == meeting and joined["locked"] is True and joined["forbidden"] == ["screen"]
    assert joined["role"] == "member"  # the record's role: a stale token raises nobody
    assert joined["participants"][0]["forbidden"] == ["chat"]
    restarted.greet(11)
    restarted.send(11, {"type": "resume", "token": tokens[1]})
    restarted.greet(13)
    restarted.send(13, {"type": "resume", "token": tokens[3]})
    assert restarted.to(11, "joined")[-1]["role"] == "host"
    assert restarted.to(13, "joined")[-1]["role"] == "admin"
    assert restarted.hub.stats.meetings_restored == 1
    for cid in (11, 12, 13):
        restarted.send(cid, {"type": "leave"})
    assert meeting not in restarted.store.records  # the meeting ended: its record went


def test_a_recreated_meeting_whose_host_does_not_come_back_gets_one() -> None:
    server = Server()
    meeting_of_three(server)
    token = server.token(2)
    restarted = Server(server.store)
    restarted.greet(12, 100.0)
    restarted.send(12, {"type": "resume", "token": token}, 100.0)
    restarted.keep(restarted.hub.tick(100.0 + HOST_RETURN_WAIT - 1), 100.0 + HOST_RETURN_WAIT - 1)
    assert not restarted.to(12, "role_changed")
    restarted.keep(restarted.hub.tick(100.0 + HOST_RETURN_WAIT), 100.0 + HOST_RETURN_WAIT)
    assert restarted.to(12, "role_changed")[-1] == {"type": "role_changed", "name": "Bo", "role": "host"}


def test_a_token_for_a_meeting_that_ended_or_was_never_recorded_is_refused() -> None:
    server = Server()
    meeting_of_three(server)
    token = server.token(2)
    server.send(1, {"type": "end"})
    server.greet(9)
    server.send(9, {"type": "resume", "token": token})
    assert server.to(9, "error")[-1]["code"] == "unknown_meeting"
    assert not any(isinstance(action, Close) for action in server.other)
