"""The dominant speaker detector (sans-I/O) and the hub's active_speaker messages."""

from __future__ import annotations

import pytest

from conf_cli.media.audio_level import audio_level_extension
from conf_cli.protocol.rtp import RtpPacket
from conf_cli.server.hub import Verdict
from conf_cli.server.speaker import EVALUATE, MIN_SWITCH_INTERVAL, SpeakerDetector
from tests.helpers.hub import send, three_in_a_meeting, to

LOUD, QUIET, SILENT = 15, 60, 127
PACKET = 0.02


def talk(
    detector: SpeakerDetector, start: float, end: float, levels: dict[int, int | None]
) -> list[tuple[float, int]]:
    """Feed 20 ms packets of each participant's level (None: DTX, no packet) from ``start`` to ``end``;
    the switches, with when they happened."""
    switches = []
    steps = round((end - start) / PACKET)
    for step in range(steps):
        now = start + step * PACKET
        for who, level in levels.items():
            if level is None:
                continue
            switched = detector.observe(who, 1000 + who, level, now + who * 0.001)
            if switched is not None:
                switches.append((now, switched))
    return switches


def test_the_one_who_speaks_becomes_the_speaker_quickly() -> None:
    detector = SpeakerDetector()
    switches = talk(detector, 0.0, 1.0, {1: LOUD, 2: SILENT})
    assert [who for _, who in switches] == [1]
    assert switches[0][0] <= 0.3
    assert detector.ssrc_of(1) == 1001


def test_alternating_speakers_are_followed_within_300_ms_every_time() -> None:
    detector = SpeakerDetector()
    delays = []
    now = 0.0
    for turn in range(6):
        speaker = 1 + turn % 2
        levels: dict[int, int | None] = {1: SILENT, 2: None}  # 2 sends nothing while silent (DTX)
        levels[speaker] = LOUD
        switches = talk(detector, now, now + 2.0, levels)
        assert [who for _, who in switches] == [speaker]
        delays.append(switches[0][0] - now)
        now += 2.0
    assert max(delays) <= 0.3, delays


def test_two_people_talking_over_each_other_do_not_make_it_flap() -> None:
    detector = SpeakerDetector()
    talk(detector, 0.0, 1.0, {1: LOUD, 2: SILENT})
    assert detector.current == 1
    # Both talk, 2 a little louder (less than the margin): the floor stays with 1.
    assert talk(detector, 1.0, 5.0, {1: LOUD + 3, 2: LOUD}) == []
    assert detector.current == 1


def test_a_short_burst_does_not_take_the_floor() -> None:
    detector = SpeakerDetector()
    talk(detector, 0.0, 1.0, {1: LOUD, 2: SILENT})
    # 2 coughs for 60 ms while 1 goes on.
    switches = talk(detector, 1.0, 1.06, {1: LOUD, 2: 0})
    switches += talk(detector, 1.06, 2.0, {1: LOUD, 2: SILENT})
    assert switches == [] and detector.current == 1


def test_when_everyone_falls_silent_the_last_speaker_stays() -> None:
    detector = SpeakerDetector()
    talk(detector, 0.0, 1.0, {1: LOUD, 2: SILENT})
    assert talk(detector, 1.0, 3.0, {1: SILENT, 2: SILENT}) == []
    assert detector.current == 1


def test_quiet_background_never_takes_the_floor() -> None:
    detector = SpeakerDetector()
    assert talk(detector, 0.0, 2.0, {1: 110, 2: SILENT}) == []
    assert detector.current is None


def test_switches_are_rate_bounded() -> None:
    detector = SpeakerDetector(hold=1)
    first = talk(detector, 0.0, 0.3, {1: LOUD, 2: None})
    second = talk(detector, 0.3, 1.2, {1: None, 2: 0})  # 2 would win at once, but must wait
    assert [w for _, w in first] == [1] and [w for _, w in second] == [2]
    assert second[0][0] - first[0][0] >= MIN_SWITCH_INTERVAL - EVALUATE


def test_someone_who_leaves_is_forgotten() -> None:
    detector = SpeakerDetector()
    talk(detector, 0.0, 1.0, {1: LOUD})
    detector.forget(1)
    assert detector.current is None and detector.ssrc_of(1) is None
    assert [who for _, who in talk(detector, 1.0, 2.0, {2: LOUD})] == [2]


@pytest.mark.usefixtures("cheap_scrypt")
def test_the_hub_tells_everyone_in_the_meeting_who_speaks() -> None:
    hub = three_in_a_meeting()
    send(hub, 2, {"type": "publish", "kind": "audio", "ssrc": 2222, "codec": "opus"})
    send(hub, 3, {"type": "publish", "kind": "audio", "ssrc": 3333, "codec": "opus"})
    meeting = hub.meeting_of(1)
    assert meeting is not None
    bob, cy = meeting.tracks[2222], meeting.tracks[3333]
    announced = []
    for step in range(30):
        now = step * PACKET
        announced += hub.audio_level(2, bob, LOUD, now)
        announced += hub.audio_level(3, cy, SILENT, now)
    assert [to(announced, cid) for cid in (1, 2, 3)] == [
        [{"type": "active_speaker", "name": "Bob", "ssrc": 2222}]
    ] * 3
    assert hub.stats.speaker_switches == 1
    # Someone's level on a track that is not theirs counts for nothing.
    assert all(hub.audio_level(3, bob, 0, 1.0 + step * PACKET) == [] for step in range(30))


@pytest.mark.usefixtures("cheap_scrypt")
def test_the_route_of_an_audio_packet_names_its_track_for_the_level() -> None:
    hub = three_in_a_meeting()
    send(hub, 2, {"type": "publish", "kind": "audio", "ssrc": 2222, "codec": "opus"})
    packet = bytes(RtpPacket(111, 1, 960, 2222, b"opus", extension=audio_level_extension(20)))
    routed = hub.route(2, packet, 0.0)
    assert routed.verdict is Verdict.FORWARDED and routed.track is not None
    assert routed.track.kind == "audio" and set(routed.to) == {1, 3}


@pytest.mark.usefixtures("cheap_scrypt")
def test_a_newcomer_is_told_who_is_speaking() -> None:
    from tests.helpers.hub import MID_A, join

    hub = three_in_a_meeting()
    send(hub, 2, {"type": "publish", "kind": "audio", "ssrc": 2222, "codec": "opus"})
    meeting = hub.meeting_of(2)
    assert meeting is not None
    for step in range(30):
        hub.audio_level(2, meeting.tracks[2222], LOUD, step * PACKET)
    actions = join(hub, 4, MID_A, "Di")
    assert {"type": "active_speaker", "name": "Bob", "ssrc": 2222} in to(actions, 4)
    assert [m for m in to(actions, 1) if m["type"] == "active_speaker"] == []  # the others know already
