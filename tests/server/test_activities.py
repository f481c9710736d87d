"""Hands, reactions, polls, the spotlight, renaming and asks to unmute: the meeting's rules, no network."""

from __future__ import annotations

from conf_cli.server.meeting import Send
from tests.helpers.meeting import ADA, BOB, CY, DEE, meeting_with, refused

EVERYONE = (ADA, BOB, CY, DEE)


def messages(sends: list[Send], pid: int) -> list[dict]:
    return [s.message for s in sends if pid in s.to]


# -- hands --------------------------------------------------------------------------------------------


def test_hands_queue_in_the_order_they_went_up_and_move_up_when_one_goes_down():
    meeting = meeting_with(ADA, BOB, CY, DEE)
    hands = meeting.activities
    assert hands.hand(CY, None, now=0) == [
        Send(EVERYONE, {"type": "hand_raised", "name": "Cy", "position": 1})
    ]
    assert hands.hand(BOB, True, now=0)[0].message == {"type": "hand_raised", "name": "Bob", "position": 2}
    assert hands.hand(DEE, None, now=0)[0].message["position"] == 3
    assert hands.hand(BOB, True, now=0) == []  # already up: nothing
    assert hands.hand(CY, None, now=1) == [Send(EVERYONE, {"type": "hand_lowered", "name": "Cy"})]
    assert hands.hand(CY, False, now=1) == []  # already down
    # A newcomer learns the queue as it now is.
    meeting.leave(DEE)
    sends = meeting.join(5, "Eve", passcode_ok=True)
    assert [m for m in messages(sends, 5) if m["type"] == "hand_raised"] == [
        {"type": "hand_raised", "name": "Bob", "position": 1}
    ]


def test_host_and_admins_lower_anyone_members_only_themselves():
    meeting = meeting_with(ADA, BOB, CY, DEE, admins=(BOB,))
    hands = meeting.activities
    for pid in (CY, DEE):
        hands.hand(pid, True, now=0)
    refused("not_allowed", hands.lower_hand, DEE, "Cy", False, now=0)
    assert hands.hands == [CY, DEE]
    assert hands.lower_hand(DEE, "Dee", False, now=0)[0].message == {"type": "hand_lowered", "name": "Dee"}
    assert hands.lower_hand(BOB, "Cy", False, now=0)[0].message == {
        "type": "hand_lowered",
        "name": "Cy",
        "by": "Bob",
    }
    for pid in (BOB, CY, DEE):
        hands.hand(pid, True, now=5)
    lowered = hands.lower_hand(ADA, None, True, now=5)
    assert [s.message["name"] for s in lowered] == ["Bob", "Cy", "Dee"] and hands.hands == []


def test_raising_and_lowering_a_hand_is_rate_limited_per_person():
    meeting = meeting_with(ADA, BOB)
    for _ in range(5):
        meeting.activities.hand(BOB, None, now=0)
    refusal = refused("rate_limited", meeting.activities.hand, BOB, None, now=0)
    assert 0 < refusal.retry_after <= 1
    meeting.activities.hand(ADA, None, now=0)  # another person's allowance is their own
    meeting.activities.hand(BOB, None, now=1.0)


def test_a_hand_goes_down_with_its_owner():
    meeting = meeting_with(ADA, BOB, CY)
    meeting.activities.hand(BOB, True, now=0)
    meeting.activities.hand(CY, True, now=0)
    meeting.leave(BOB)
    assert meeting.activities.hands == [CY]


# -- reactions ----------------------------------------------------------------------------------------


def test_reactions_reach_everyone_are_validated_and_rate_limited():
    meeting = meeting_with(ADA, BOB, CY)
    assert meeting.activities.react(BOB, "👍", now=0) == [
        Send((ADA, BOB, CY), {"type": "reaction", "name": "Bob", "emoji": "👍"})
    ]
    refused("bad_request", meeting.activities.react, BOB, "<script>", now=0)
    for _ in range(4):
        meeting.activities.react(BOB, "🎉", now=0)
    assert refused("rate_limited", meeting.activities.react, BOB, "🎉", now=0).retry_after is not None
    meeting.activities.react(BOB, "🎉", now=1.5)


def test_no_reactions_where_chat_is_forbidden():
    meeting = meeting_with(ADA, BOB)
    meeting.set_permission(ADA, "chat", False, "Bob")
    refused("forbidden", meeting.activities.react, BOB, "👏", now=0)


# -- polls --------------------------------------------------------------------------------------------


def test_an_anonymous_poll_counts_votes_changed_until_it_closes():
    meeting = meeting_with(ADA, BOB, CY, DEE)
    polls = meeting.activities
    (started,) = polls.start_poll(ADA, "Lunch?", ["Pizza", "Sushi", "Soup"], False, now=0)
    assert started == Send(
        EVERYONE,
        {
            "type": "poll_started",
            "poll": 1,
            "question": "Lunch?",
            "options": ["Pizza", "Sushi", "Soup"],
            "named": False,
            "by": "Ada",
        },
    )
    assert polls.vote(BOB, 1, None, now=0) == [
        Send((BOB,), {"type": "vote_recorded", "poll": 1, "choice": 1})
    ]
    polls.vote(CY, 2, 1, now=0)
    polls.vote(BOB, 2, None, now=1)  # changed
    polls.vote(ADA, 3, None, now=1)
    refused("bad_request", polls.vote, DEE, 4, None, now=1)
    refused("no_poll", polls.vote, DEE, 1, 7, now=1)
    (closed,) = polls.close_poll(ADA, now=2)
    assert closed.to == EVERYONE
    assert closed.message == {
        "type": "poll_closed",
        "poll": 1,
        "question": "Lunch?",
        "options": ["Pizza", "Sushi", "Soup"],
        "counts": [0, 2, 1],
        "voters": 3,
        "by": "Ada",
    }
    refused("no_poll", polls.vote, DEE, 1, None, now=3)
    refused("no_poll", polls.close_poll, ADA, now=3)


def test_a_named_poll_says_who_chose_what_and_a_leaver_takes_their_vote_along():
    meeting = meeting_with(ADA, BOB, CY, DEE)
    polls = meeting.activities
    polls.start_poll(ADA, "Ready?", ["yes", "no"], True, now=0)
    refused("busy", polls.start_poll, ADA, "Another?", ["a", "b"], False, now=0)
    polls.vote(CY, 2, None, now=0)
    polls.vote(BOB, 1, None, now=0)
    polls.vote(DEE, 1, None, now=0)
    polls.vote(CY, 1, None, now=1)
    meeting.leave(DEE)
    closed = polls.close_poll(ADA, now=2)[0].message
    assert closed["counts"] == [2, 0] and closed["voters"] == 2
    assert closed["votes"] == [{"name": "Bob", "choice": 1}, {"name": "Cy", "choice": 1}]


def test_only_the_host_runs_polls_and_options_must_differ():
    meeting = meeting_with(ADA, BOB, admins=(BOB,))
    refused("not_allowed", meeting.activities.start_poll, BOB, "Q?", ["a", "b"], False, now=0)
    refused("bad_request", meeting.activities.start_poll, ADA, "Q?", ["Yes", "yes"], False, now=0)
    meeting.activities.start_poll(ADA, "Q?", ["a", "b"], False, now=0)
    refused("not_allowed", meeting.activities.close_poll, BOB, now=0)


def test_a_newcomer_gets_the_open_poll_and_the_spotlight():
    meeting = meeting_with(ADA, BOB)
    meeting.activities.start_poll(ADA, "Q?", ["a", "b"], False, now=0)
    meeting.activities.set_spotlight(ADA, "Bob", now=0)
    kinds = [m["type"] for m in messages(meeting.join(CY, "Cy", passcode_ok=True), CY)]
    assert kinds == ["joined", "poll_started", "spotlight"]


# -- spotlight, rename, ask to unmute ------------------------------------------------------------------


def test_the_host_pins_someone_for_everyone_and_it_goes_when_they_leave():
    meeting = meeting_with(ADA, BOB, CY)
    refused("not_allowed", meeting.activities.set_spotlight, BOB, "Bob", now=0)
    refused("unknown_participant", meeting.activities.set_spotlight, ADA, "Zed", now=0)
    assert meeting.activities.set_spotlight(ADA, "Bob", now=0) == [
        Send((ADA, BOB, CY), {"type": "spotlight", "name": "Bob", "by": "Ada"})
    ]
    sends = meeting.leave(BOB)
    assert Send((ADA, CY), {"type": "spotlight"}) in sends
    meeting.activities.set_spotlight(ADA, "Cy", now=1)
    assert meeting.activities.set_spotlight(ADA, None, now=1) == [
        Send((ADA, CY), {"type": "spotlight", "by": "Ada"})
    ]


def test_the_host_renames_someone_and_names_stay_unique():
    meeting = meeting_with(ADA, BOB, CY)
    refused("not_allowed", meeting.rename, BOB, "Cy", "Cyril", now=0)
    refused("name_taken", meeting.rename, ADA, "Cy", "BOB", now=0)
    meeting.activities.hand(CY, True, now=0)
    assert meeting.rename(ADA, "cy", "Cyril", now=0) == [
        Send((ADA, BOB, CY), {"type": "participant_renamed", "name": "Cy", "new_name": "Cyril", "by": "Ada"})
    ]
    assert meeting.find("cyril").pid == CY
    refused("unknown_participant", meeting.find, "Cy")
    assert meeting.activities.catch_up()[0] == {"type": "hand_raised", "name": "Cyril", "position": 1}


def test_no_renaming_in_an_end_to_end_encrypted_meeting():
    meeting = meeting_with(ADA, BOB)
    meeting.e2ee = True
    refused("not_allowed", meeting.rename, ADA, "Bob", "Robert", now=0)


def test_asking_to_unmute_tells_the_person_and_starts_nothing():
    meeting = meeting_with(ADA, BOB, CY)
    assert meeting.activities.ask_unmute(ADA, "Bob", now=0) == [
        Send((BOB, ADA), {"type": "unmute_requested", "name": "Bob", "by": "Ada"})
    ]
    assert "audio" not in meeting.participants[BOB].sharing and not meeting.tracks
    refused("not_allowed", meeting.activities.ask_unmute, CY, "Bob", now=0)
    meeting.set_permission(ADA, "audio", False, "Bob")
    refused("forbidden", meeting.activities.ask_unmute, ADA, "Bob", now=0)
    meeting.publish(CY, "audio", 1234, "opus")
    refused("bad_request", meeting.activities.ask_unmute, ADA, "Cy", now=0)


def test_the_hosts_requests_are_rate_limited_too():
    meeting = meeting_with(ADA, BOB)
    for n in range(100):
        meeting.activities.set_spotlight(ADA, "Bob" if n % 2 else None, now=0)
    refused("rate_limited", meeting.activities.set_spotlight, ADA, "Bob", now=0)
