"""What the terminal view keeps of hands, reactions, polls, rooms, the spotlight and renames (server
messages handed over as the client link does, parsed once)."""

from __future__ import annotations

from conf_cli.client.state import receive
from conf_cli.client.ui.view import MeetingView


def view_with(*names: str) -> MeetingView:
    view = MeetingView("ada")
    participants = [{"name": n, "role": "host" if n == "ada" else "member"} for n in ("ada", *names)]
    view.apply(
        receive(
            {"type": "joined", "meeting": "m", "name": "ada", "role": "host", "participants": participants}
        )
    )
    return view


def texts(view: MeetingView) -> list[str]:
    return [text for _, text in view.log]


def test_hands_keep_their_order_and_leave_with_their_owner() -> None:
    view = view_with("bob", "cy", "dee")
    for position, name in enumerate(("bob", "cy", "dee"), 1):
        view.apply(receive({"type": "hand_raised", "name": name, "position": position}))
    view.apply(receive({"type": "hand_lowered", "name": "bob", "by": "ada"}))
    assert view.activity.hands == ["cy", "dee"]
    view.apply(receive({"type": "participant_left", "name": "cy", "reason": "left"}))
    assert view.activity.hands == ["dee"]
    assert "✋ dee raises a hand (3rd in line)" in texts(view)
    assert "bob's hand is down (ada lowered it)" in texts(view)


def test_a_poll_is_shown_with_its_options_and_its_results() -> None:
    view = view_with("bob")
    started = {"poll": 1, "question": "Lunch?", "options": ["Pizza", "Soup"], "named": True, "by": "ada"}
    view.apply(receive({"type": "poll_started", **started}))
    assert view.activity.poll is not None and "  2. Soup" in texts(view)
    view.apply(receive({"type": "vote_recorded", "poll": 1, "choice": 2}))
    assert view.activity.my_vote == 2
    closed = {"counts": [0, 1], "voters": 1, "votes": [{"name": "bob", "choice": 2}]}
    view.apply(receive({"type": "poll_closed", **started, **closed}))
    assert view.activity.poll is None
    assert "  2. Soup: 1 ████████████████████ (bob)" in texts(view)
    assert "  1. Pizza: 0 " in texts(view)


def test_rooms_spotlight_reactions_and_a_rename() -> None:
    view = view_with("bob", "cy")
    view.apply(receive({"type": "breakout_opened", "rooms": 2, "by": "ada", "ends_in": 600}))
    view.apply(receive({"type": "breakout_moved", "name": "bob", "room": 1, "by": "ada"}))
    view.apply(receive({"type": "breakout_moved", "name": "ada", "room": 2, "by": "ada"}))
    activity = view.activity
    assert activity.rooms == {"bob": 1, "ada": 2} and activity.room_of(view.me) == 2
    assert "you are now in breakout room 2: media and chat stay in it" in texts(view)
    view.apply(receive({"type": "reaction", "name": "bob", "emoji": "👍"}))
    view.apply(receive({"type": "spotlight", "name": "bob", "by": "ada"}))
    view.apply(receive({"type": "participant_renamed", "name": "bob", "new_name": "Robert", "by": "ada"}))
    assert list(view.peers) == ["ada", "Robert", "cy"] and view.peers["Robert"].name == "Robert"
    assert activity.rooms["Robert"] == 1 and activity.spotlight == "Robert"
    assert activity.reactions == {"Robert": "👍"}
    activity.forget_reaction("Robert", "👍")
    assert activity.reactions == {}
    view.apply(receive({"type": "breakout_closed", "reason": "timeout"}))
    assert activity.rooms == {} and not activity.breakout_open
    view.apply(receive({"type": "participant_renamed", "name": "ada", "new_name": "Ada L", "by": "ada"}))
    assert view.me == "Ada L" and view.my_role == "host"


def test_an_ask_to_unmute_says_who_can_turn_the_microphone_on() -> None:
    view = view_with("bob")
    view.apply(receive({"type": "unmute_requested", "name": "ada", "by": "bob"}))
    assert texts(view)[-1] == "bob asks you to turn your microphone on: /share audio (only you can)"


def test_what_the_view_keeps_is_printable() -> None:
    view = view_with("bob")
    view.apply(receive({"type": "reaction", "name": "bob\x1b[2J", "emoji": "👍"}))
    view.apply(
        {"type": "poll_started", "poll": 1, "question": "Q\x1b]52;c;x\x07", "options": ["a"], "by": "b"}
    )
    assert not any("\x1b" in text for text in texts(view))


def test_the_participants_list_and_header_show_hands_rooms_spotlight_and_reactions() -> None:
    from conf_cli.client.ui.terminal import activity_header, activity_marks

    view = view_with("bob", "cy")
    view.apply(receive({"type": "hand_raised", "name": "cy", "position": 1}))
    view.apply(receive({"type": "breakout_opened", "rooms": 2, "by": "ada"}))
    view.apply(receive({"type": "breakout_moved", "name": "cy", "room": 2, "by": "ada"}))
    view.apply(receive({"type": "spotlight", "name": "cy", "by": "ada"}))
    view.apply(receive({"type": "reaction", "name": "cy", "emoji": "🎉"}))
    assert "".join(text for text, _ in activity_marks(view.activity, "cy")) == " ✋1 room 2 ★ 🎉"
    assert activity_marks(view.activity, "bob") == []
    view.apply(
        {
            "type": "poll_started",
            "poll": 4,
            "question": "Q?",
            "options": ["a", "b"],
            "named": False,
            "by": "ada",
        }
    )
    header = "".join(text for text, _ in activity_header(view.activity, view.me))
    assert header == "  main room (breakout rooms open)  POLL 4 open: /vote N"


def test_the_pinned_persons_video_stays_on_show() -> None:
    from conf_cli.client.ui.previews import Preview, PreviewDeck

    class Still:
        frames = 0

        def renderable(self) -> None:
            return None

    deck = PreviewDeck()
    deck.add(Preview(1, "bob", "video", Still()))
    deck.add(Preview(2, "cy", "video", Still()))
    deck.pin("bob")
    assert deck.current is not None and deck.current.ssrc == 1
    deck.add(Preview(3, "dee", "screen", Still()))  # someone else's new video does not take over
    assert deck.current.ssrc == 1
    deck.add(Preview(4, "bob", "screen", Still()))
    assert deck.current.ssrc == 4
    deck.pin(None)
    deck.add(Preview(5, "eve", "video", Still()))
    assert deck.current.ssrc == 5
