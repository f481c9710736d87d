"""What a participant's screen knows about the meeting, built from server events."""

from __future__ import annotations

from typing import Any

import pytest

from conf_cli.client.state import receive
from conf_cli.client.ui.view import MeetingView, PeerView, TrackView
from conf_cli.server.meeting import Meeting, Send
from conf_cli.server.passcode import PasscodeHash

MID = "abc-defg-hjk"


def snapshot(**overrides: Any) -> dict[str, Any]:
    base = {
        "meeting": MID,
        "participants": [
            {"name": "Ada", "role": "host", "sharing": [], "forbidden": []},
            {"name": "Bob", "role": "admin", "sharing": ["screen"], "forbidden": []},
            {"name": "Cy", "role": "member", "sharing": [], "forbidden": ["chat"]},
        ],
        "locked": False,
        "forbidden": ["video"],
    }
    return {**base, **overrides}


def joined_view(me: str = "Cy") -> MeetingView:
    view = MeetingView(me="")
    view.apply(receive({"type": "joined", "name": me, "role": "member", **snapshot()}))
    view.log.clear()
    return view


def last_note(view: MeetingView) -> tuple[str, str]:
    return view.log[-1]


# -- joining and the whole state ----------------------------------------------------------------------


def test_a_fresh_view_knows_nothing():
    view = MeetingView(me="Ada")
    assert view.meeting == ""
    assert view.peers == {}
    assert view.my_role == "member"
    assert view.ended is None
    assert list(view.log) == []


def test_meeting_created_keeps_the_passcode():
    view = MeetingView(me="Ada")
    view.apply(receive({"type": "meeting_created", "meeting": MID, "passcode": "sesame"}))
    assert (view.meeting, view.passcode) == (MID, "sesame")
    assert list(view.log) == [("bold green", f"meeting {MID} created, passcode sesame")]


def test_the_invite_link_is_shown():
    view = MeetingView(me="Ada")
    link = f"http://127.0.0.1:8080/?meeting={MID}&passcode=sesame"
    view.apply(receive({"type": "meeting_created", "meeting": MID, "passcode": "sesame", "invite": link}))
    view.apply({"type": "invite", "meeting": MID, "url": link + "&name=Bo"})
    assert list(view.log)[1:] == [
        ("green", f"browsers join at {link}"),
        ("bold green", f"invite: {link}&name=Bo"),
    ]


def test_joined_loads_the_snapshot():
    view = MeetingView(me="typed name")
    view.apply(receive({"type": "joined", "name": "Cy", "role": "member", **snapshot(locked=True)}))
    assert view.me == "Cy"
    assert view.meeting == MID
    assert view.locked is True
    assert view.forbidden == {"video"}
    assert view.peers == {
        "Ada": PeerView("Ada", "host"),
        "Bob": PeerView("Bob", "admin", sharing={"screen"}),
        "Cy": PeerView("Cy", "member", forbidden={"chat"}),
    }
    assert list(view.peers) == ["Ada", "Bob", "Cy"]
    assert view.my_role == "member"
    assert list(view.log) == [("green", f"you joined meeting {MID} as member; type /help for commands")]


def test_participants_reloads_everything_and_lists_them():
    view = joined_view()
    view.apply(receive({"type": "participant_joined", "name": "Ghost", "role": "member"}))
    view.apply(receive({"type": "participants", **snapshot(locked=True, forbidden=[])}))
    assert "Ghost" not in view.peers
    assert view.locked is True
    assert view.forbidden == set()
    assert last_note(view) == ("cyan", "in the meeting: Ada (host), Bob (admin; screen), Cy (member)")


def test_participants_listing_shows_every_share_sorted():
    view = joined_view()
    participants = [{"name": "Ada", "role": "host", "sharing": ["video", "audio", "screen"], "forbidden": []}]
    view.apply(receive({"type": "participants", **snapshot(participants=participants)}))
    assert last_note(view) == ("cyan", "in the meeting: Ada (host; audio, screen, video)")


# -- comings and goings -------------------------------------------------------------------------------


def test_participant_joined():
    view = joined_view()
    view.apply(receive({"type": "participant_joined", "name": "Dee", "role": "member"}))
    assert view.peers["Dee"] == PeerView("Dee", "member")
    assert list(view.peers)[-1] == "Dee"
    assert last_note(view) == ("green", "Dee joined")


@pytest.mark.parametrize(
    ("reason", "note"),
    [
        ("left", "Bob left"),
        ("kicked", "Bob left (kicked; they stay out until /unban Bob)"),
        ("timeout", "Bob left (timeout)"),
        (None, "Bob left"),
    ],
)
def test_participant_left(reason, note):
    view = joined_view()
    event = {"type": "participant_left", "name": "Bob"}
    if reason:
        event["reason"] = reason
    view.apply(receive(event))
    assert "Bob" not in view.peers
    assert last_note(view) == ("yellow", note)


def test_participant_left_for_someone_unknown_is_harmless():
    view = joined_view()
    view.apply(receive({"type": "participant_left", "name": "Zed", "reason": "left"}))
    assert set(view.peers) == {"Ada", "Bob", "Cy"}


# -- roles and permissions ----------------------------------------------------------------------------


def test_role_changed_for_someone_else():
    view = joined_view()
    view.apply(receive({"type": "role_changed", "name": "Bob", "role": "member", "by": "Ada"}))
    assert view.peers["Bob"].role == "member"
    assert last_note(view) == ("magenta", "Bob is now member by Ada")


def test_role_changed_for_me():
    view = joined_view()
    view.apply(receive({"type": "role_changed", "name": "Cy", "role": "admin", "by": "Ada"}))
    assert view.my_role == "admin"
    assert last_note(view) == ("magenta", "you are now admin by Ada")


def test_role_changed_without_by_is_a_succession():
    view = joined_view()
    view.apply(receive({"type": "role_changed", "name": "Bob", "role": "host"}))
    assert view.peers["Bob"].role == "host"
    assert last_note(view) == ("magenta", "Bob is now host")


def test_becoming_host_lifts_personal_forbids():
    view = joined_view()
    view.apply(receive({"type": "role_changed", "name": "Cy", "role": "host"}))
    assert view.peers["Cy"].forbidden == set()
    assert view.my_role == "host"


def test_role_changed_for_someone_unknown_is_only_noted():
    view = joined_view()
    before = {
        name: PeerView(p.name, p.role, set(p.sharing), set(p.forbidden)) for name, p in view.peers.items()
    }
    view.apply(receive({"type": "role_changed", "name": "Zed", "role": "admin", "by": "Ada"}))
    assert view.peers == before
    assert last_note(view) == ("magenta", "Zed is now admin by Ada")


def test_meeting_wide_permission_changes():
    view = joined_view()
    view.apply(receive({"type": "permission_changed", "what": "chat", "allowed": False, "by": "Ada"}))
    assert view.forbidden == {"chat", "video"}
    assert last_note(view) == ("magenta", "Ada forbade chat for members")
    view.apply(receive({"type": "permission_changed", "what": "video", "allowed": True, "by": "Bob"}))
    assert view.forbidden == {"chat"}
    assert last_note(view) == ("magenta", "Bob permitted video for members")
    # Nobody's own list changes.
    assert view.peers["Ada"].forbidden == set() and view.peers["Cy"].forbidden == {"chat"}


def test_named_permission_changes():
    view = joined_view()
    view.apply(
        receive({"type": "permission_changed", "what": "audio", "allowed": False, "by": "Ada", "name": "Bob"})
    )
    assert view.peers["Bob"].forbidden == {"audio"}
    assert view.forbidden == {"video"}
    assert last_note(view) == ("magenta", "Ada forbade audio for Bob")
    view.apply(
        receive({"type": "permission_changed", "what": "chat", "allowed": True, "by": "Ada", "name": "Cy"})
    )
    assert view.peers["Cy"].forbidden == set()
    assert last_note(view) == ("magenta", "Ada permitted chat for Cy")


def test_named_permission_for_someone_unknown_changes_nothing():
    view = joined_view()
    view.apply(
        receive({"type": "permission_changed", "what": "audio", "allowed": False, "by": "Ada", "name": "Zed"})
    )
    assert view.forbidden == {"video"}
    assert all("audio" not in p.forbidden for p in view.peers.values())


# -- shares -------------------------------------------------------------------------------------------


def test_share_started_and_stopped():
    view = joined_view()
    view.apply(receive({"type": "share_started", "name": "Ada", "kind": "video", "ssrc": 1, "codec": "h264"}))
    assert view.peers["Ada"].sharing == {"video"}
    assert last_note(view) == ("blue", "Ada is sharing video")
    view.apply(receive({"type": "share_stopped", "name": "Bob", "kind": "screen", "reason": "forbidden"}))
    assert view.peers["Bob"].sharing == set()
    assert last_note(view) == ("blue", "Bob stopped sharing screen")
    view.apply(receive({"type": "share_stopped", "name": "Zed", "kind": "screen"}))
    assert last_note(view) == ("blue", "Zed stopped sharing screen")


# -- lock, chat, errors -------------------------------------------------------------------------------


def test_meeting_locked_and_unlocked():
    view = joined_view()
    view.apply(receive({"type": "meeting_locked", "locked": True, "by": "Bob"}))
    assert view.locked is True
    assert last_note(view) == ("magenta", "Bob locked the meeting")
    view.apply(receive({"type": "meeting_locked", "locked": False, "by": "Ada"}))
    assert view.locked is False
    assert last_note(view) == ("magenta", "Ada unlocked the meeting")


def test_chat_lines():
    view = joined_view("Cy")
    view.apply(receive({"type": "chat", "from": "Ada", "text": "hello", "private": False}))
    view.apply(receive({"type": "chat", "from": "Cy", "text": "hi!", "private": False}))
    view.apply(receive({"type": "chat", "from": "Bob", "text": "psst", "private": True, "to": "Cy"}))
    assert list(view.log) == [
        ("", "Ada: hello"),
        ("bold", "Cy: hi!"),
        ("italic yellow", "[private] Bob → Cy: psst"),
    ]


def test_error_is_shown():
    view = joined_view()
    view.apply(receive({"type": "error", "code": "not_allowed", "message": "only the host can change roles"}))
    assert last_note(view) == ("bold red", "error: only the host can change roles")
    assert view.ended is None


# -- the end ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "ended", "style"),
    [
        ({"type": "kicked", "by": "Ada"}, "Ada removed you from the meeting", "bold red"),
        ({"type": "meeting_closed", "by": "Bob", "reason": "ended"}, "Bob ended the meeting", "bold red"),
        ({"type": "left", "meeting": MID, "reason": "left"}, "you left the meeting", "yellow"),
        ({"type": "disconnected", "reason": "timed out"}, "connection lost: timed out", "bold red"),
    ],
)
def test_events_that_end_the_meeting_for_me(event, ended, style):
    view = joined_view()
    view.apply(receive(event))
    assert view.ended == ended
    assert list(view.log) == [(style, ended)]


@pytest.mark.parametrize(
    "event",
    [{"type": "welcome", "protocol": 1}, {"type": "pong"}, {"type": "future_thing"}, {}, {"type": None}],
)
def test_other_events_change_nothing(event):
    view = joined_view()
    before = (view.meeting, view.locked, set(view.forbidden), dict(view.peers), view.ended)
    view.apply(event)
    assert (view.meeting, view.locked, set(view.forbidden), dict(view.peers), view.ended) == before
    assert list(view.log) == []


def test_the_log_keeps_the_latest_500_lines():
    view = joined_view()
    for number in range(600):
        view.apply(receive({"type": "chat", "from": "Ada", "text": str(number), "private": False}))
    assert len(view.log) == 500
    assert view.log[0] == ("", "Ada: 100")
    assert view.log[-1] == ("", "Ada: 599")


# -- a view fed by a real meeting stays true to it ----------------------------------------------------


def test_views_fed_by_the_meeting_agree_with_its_state():
    meeting = Meeting(MID, PasscodeHash(salt=b"s" * 16, digest=b"d" * 64))
    names = {1: "Ada", 2: "Bob", 3: "Cy", 4: "Dee", 5: "Eve"}
    views: dict[int, MeetingView] = {}

    def deliver(sends: list[Send]) -> None:
        for send in sends:
            for pid in send.to:
                views.setdefault(pid, MeetingView(me=names[pid])).apply(receive(send.message))

    for pid in (1, 2, 3, 4):
        deliver(meeting.join(pid, names[pid], passcode_ok=True))
    deliver(meeting.set_permission(1, "chat", False, "Bob"))
    deliver(meeting.set_permission(1, "video", False))
    deliver(meeting.set_role(1, "Cy", "admin"))
    deliver(meeting.set_permission(1, "screen", False, "Cy"))
    deliver(meeting.set_locked(3, True))
    deliver(meeting.set_role(1, "Bob", "host"))
    deliver(meeting.kick(2, "Dee"))
    deliver(meeting.set_permission(2, "audio", False, "Ada"))
    deliver(meeting.leave(2, "timeout"))
    deliver(meeting.set_locked(3, False))
    deliver(meeting.join(5, "Eve", passcode_ok=True))
    deliver(meeting.set_permission(1, "video", True))

    assert views[4].ended == "Bob removed you from the meeting"
    state = meeting.snapshot()
    expected = {
        p["name"]: PeerView(p["name"], p["role"], set(p["sharing"]), set(p["forbidden"]))
        for p in state["participants"]
    }
    assert {p["name"]: p["role"] for p in state["participants"]} == {
        "Ada": "host",
        "Cy": "admin",
        "Eve": "member",
    }
    for pid in meeting.participants:
        view = views[pid]
        assert view.peers == expected, view.me
        assert view.locked == state["locked"]
        assert view.forbidden == set(state["forbidden"])
        assert view.meeting == MID


def test_local_media_events_are_noted_and_stats_are_not() -> None:
    view = joined_view()
    before = len(view.log)
    view.apply({"type": "publish_started", "source": "pattern", "kind": "video", "ssrc": 1, "codec": "H264"})
    view.apply({"type": "track_started", "name": "Bob", "kind": "screen", "ssrc": 2, "codec": "H264"})
    view.apply({"type": "track_stats", "name": "Bob", "kind": "screen", "ssrc": 2, "frames": 3, "fps": 3.0})
    view.apply(
        receive(
            {
                "type": "publish_stopped",
                "source": "pattern",
                "kind": "video",
                "ssrc": 1,
                "reason": "forbidden",
            }
        )
    )
    assert [text for _, text in list(view.log)[before:]] == [
        "you are sharing video from pattern",
        "receiving Bob's screen",
        "you stopped sharing video (forbidden)",
    ]


# -- received tracks and their figures ----------------------------------------------------------------


def stats(name: str = "Bob", kind: str = "screen", ssrc: int = 2, **figures: Any) -> dict[str, Any]:
    base = {"frames": 30, "fps": 29.5, "bitrate": 812_000, "loss_rate": 0.0125, "jitter_ms": 3.25}
    described = {"name": name, "kind": kind, "ssrc": ssrc, "codec": "H264"}
    return {"type": "track_stats", **described, **base, **figures}


def test_a_started_track_is_listed_before_its_first_figures() -> None:
    view = joined_view()
    view.apply({"type": "track_started", "name": "Bob", "kind": "screen", "ssrc": 2, "codec": "H264"})
    assert view.tracks == {("Bob", "screen"): TrackView("Bob", "screen", ssrc=2, codec="H264")}


def test_track_stats_keep_the_latest_figures_per_track() -> None:
    view = joined_view()
    view.apply({"type": "track_started", "name": "Bob", "kind": "screen", "ssrc": 2, "codec": "H264"})
    view.apply({"type": "track_started", "name": "Ada", "kind": "audio", "ssrc": 3, "codec": "opus"})
    view.apply(stats(fps=10.0))
    view.apply(stats(rtt_ms=1.5))
    view.apply(stats("Ada", "audio", 3, fps=50.0, bitrate=32_000, loss_rate=0, jitter_ms=0.5))
    assert list(view.tracks) == [("Bob", "screen"), ("Ada", "audio")]
    bob = view.tracks[("Bob", "screen")]
    figures = (bob.fps, bob.bitrate, bob.loss_rate, bob.jitter_ms, bob.rtt_ms)
    assert figures == (29.5, 812_000, 0.0125, 3.25, 1.5)
    ada = view.tracks[("Ada", "audio")]
    assert (ada.fps, ada.bitrate, ada.rtt_ms, ada.codec) == (50.0, 32_000, None, "H264")


def test_track_ended_drops_the_track_quietly() -> None:
    view = joined_view()
    view.apply(stats())
    before = list(view.log)
    view.apply({**stats(), "type": "track_ended", "reason": "stopped"})
    assert view.tracks == {}
    assert list(view.log) == before


def test_a_replaced_track_is_not_dropped_by_its_predecessor() -> None:
    view = joined_view()
    view.apply(stats(ssrc=2))
    view.apply({"type": "track_started", "name": "Bob", "kind": "screen", "ssrc": 7, "codec": "H264"})
    view.apply(stats(ssrc=2, fps=1.0))  # a late report from the old track
    view.apply({**stats(ssrc=2), "type": "track_ended", "reason": "replaced"})
    assert view.tracks[("Bob", "screen")].ssrc == 7
    assert view.tracks[("Bob", "screen")].fps == 0.0


def test_odd_figures_do_not_break_the_view() -> None:
    view = joined_view()
    view.apply({"type": "track_stats", "name": "Bob", "kind": "video", "fps": "fast", "rtt_ms": True})
    track = view.tracks[("Bob", "video")]
    assert (track.ssrc, track.fps, track.rtt_ms) == (None, 0.0, None)
    view.apply({"type": "track_ended", "name": "Bob", "kind": "video"})
    assert view.tracks == {}


# -- end-to-end encryption -----------------------------------------------------------------------------


def test_an_e2ee_meeting_shows_its_security_code():
    view = MeetingView(me="")
    view.apply(receive({"type": "joined", "name": "Cy", "role": "member", **snapshot(e2ee=True)}))
    assert view.e2ee is True and view.security_code is None
    code = "01234 56789 01234 56789 01234 56789"
    view.apply({"type": "security_code", "code": code, "participants": ["Ada", "Bob", "Cy"]})
    assert view.security_code == code
    assert last_note(view) == (
        "bold cyan",
        f"end-to-end encrypted; security code {code} (Ada, Bob, Cy): "
        "compare it aloud, everyone must see the same",
    )
    assert joined_view().e2ee is False


def test_remote_control_events_are_told_in_words():
    view = MeetingView("Ada")
    view.apply(
        receive({"type": "control_requested", "controller": "Bob", "controlled": "Ada", "timeout": 30.0})
    )
    assert view.log[-1] == ("bold yellow", "Bob asks to control your desktop: y to allow, n to refuse (30 s)")
    view.apply(receive({"type": "control_granted", "controller": "Bob", "controlled": "Ada"}))
    assert "Ctrl-R or /revoke takes it back" in view.log[-1][1]
    view.apply(
        receive(
            {
                "type": "control_revoked",
                "controller": "Bob",
                "controlled": "Ada",
                "by": "Ada",
                "reason": "revoked",
            }
        )
    )
    assert view.log[-1][1] == "remote control of Ada's desktop by Bob ended by Ada (revoked)"
    bob = MeetingView("Bob")
    bob.apply(
        receive({"type": "control_requested", "controller": "Bob", "controlled": "Ada", "timeout": 30.0})
    )
    assert "asked Ada for control" in bob.log[-1][1]
    bob.apply(
        receive({"type": "control_denied", "controller": "Bob", "controlled": "Ada", "reason": "timeout"})
    )
    assert bob.log[-1][1] == "remote control of Ada's desktop by Bob: no answer in time"


def test_how_remote_control_ended_is_kept_for_the_goodbye():
    view = MeetingView("Bob")
    view.apply(receive({"type": "error", "code": "busy", "message": "Ada is busy", "re": "control_request"}))
    assert view.control_outcome == "remote control refused: Ada is busy"
    view.apply(
        receive({"type": "control_requested", "controller": "Bob", "controlled": "Ada", "timeout": 30.0})
    )
    assert view.control_outcome is None
    view.apply(
        receive({"type": "control_denied", "controller": "Bob", "controlled": "Ada", "reason": "rejected"})
    )
    assert view.control_outcome == "remote control of Ada's desktop by Bob: refused"


def test_taking_control_back_here_is_said_at_once():
    view = joined_view("Ada")
    view.apply({"type": "control_stopped", "controller": "Bob", "controlled": "Ada"})
    assert "you took your desktop back from Bob" in last_note(view)[1]
    view = joined_view("Bob")
    view.apply({"type": "control_stopped", "controller": "Bob", "controlled": "Ada"})
    assert "you let go of Ada's desktop" in last_note(view)[1]


def test_the_active_speaker_is_remembered_and_the_preview_can_follow_them() -> None:
    from conf_cli.client.ui.previews import Preview, PreviewDeck

    view = joined_view()
    view.apply({"type": "active_speaker", "name": "Bob", "ssrc": 42})
    assert view.speaker == "Bob"

    class Picture:
        frames = 0

    deck = PreviewDeck()
    deck.add(Preview(1, "Ada", "video", Picture()))  # type: ignore[arg-type]
    deck.add(Preview(2, "Bob", "screen", Picture()))  # type: ignore[arg-type]
    deck.add(Preview(3, "Cy", "video", Picture()))  # type: ignore[arg-type]
    assert (
        deck.speaker("Bob") is None and deck.current is not None and deck.current.ssrc == 3
    )  # not following
    deck.follow = True
    followed = deck.speaker("Bob")
    assert followed is not None and followed.ssrc == 2 and deck.current is followed
    assert deck.speaker("Nobody") is None and deck.current is followed  # no video of theirs: stays put


def test_the_view_knows_who_records_from_the_snapshot_and_the_events() -> None:
    view = MeetingView(me="")
    participants = [*snapshot()["participants"], {"name": "R (recorder)", "role": "member", "recorder": True}]
    view.apply(
        receive({"type": "joined", "name": "Cy", "role": "member", **snapshot(participants=participants)})
    )
    assert view.recorders == ["R (recorder)"]
    view.apply(
        receive({"type": "participant_joined", "name": "S (recorder)", "role": "member", "recorder": True})
    )
    view.apply(receive({"type": "recording_started", "by": "S (recorder)"}))
    assert view.recorders == ["R (recorder)", "S (recorder)"]
    assert last_note(view) == ("bold red", "this meeting is being recorded by S (recorder)")
    view.apply(receive({"type": "recording_stopped", "by": "R (recorder)", "reason": "recording_forbidden"}))
    view.apply(receive({"type": "participant_left", "name": "R (recorder)", "reason": "recording_forbidden"}))
    assert view.recorders == ["S (recorder)"]
