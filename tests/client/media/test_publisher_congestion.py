"""A publisher's congestion control, without a network: its estimate's shares go to its encoders (audio
first), the server's RFC 8888 reports about its own tracks feed the estimate, and nobody else's do."""

from __future__ import annotations

import random

from conf_cli.client.media.publisher import RETARGET_DOWN, OutgoingTrack, Publisher
from conf_cli.media.congestion import AUDIO_BITRATE
from conf_cli.media.source import Source
from conf_cli.protocol.control import Message
from conf_cli.protocol.rtcp import CcfbBlock, CongestionFeedback


class NoSource(Source):
    kind = "video"

    def read(self) -> None:
        return None

    def close(self) -> None:
        pass


def publisher(sent: list[Message], **options: object) -> Publisher:
    pub = Publisher(
        "pattern",
        NoSource(),
        send_control=sent.append,
        send_media=lambda packet: None,
        notify=lambda event: None,
        bitrate=1_000_000,
        rng=random.Random(3),
        **options,  # type: ignore[arg-type]
    )
    pub.tracks[False] = OutgoingTrack("video", False, 30.0, 1_000_000, random.Random(1))
    pub.tracks[True] = OutgoingTrack("audio", True, 30.0, 1_000_000, random.Random(2))
    return pub


def test_audio_keeps_its_share_and_video_gets_the_rest_within_the_rate_asked_for() -> None:
    pub = publisher([])
    video, audio = pub.tracks[False], pub.tracks[True]
    pub.controller.target = 300_000
    pub._adapt(10.0)
    assert audio.target_bitrate == AUDIO_BITRATE
    assert video.target_bitrate == int(300_000 * 0.95) - AUDIO_BITRATE
    pub.controller.target = 250_000  # a small step, soon after: the encoder is not restarted for it
    pub._adapt(10.0 + RETARGET_DOWN / 2)
    assert video.target_bitrate == int(300_000 * 0.95) - AUDIO_BITRATE
    pub.controller.target = 5_000_000  # plenty: video gets what was asked for, no more
    pub._adapt(20.0)
    assert video.target_bitrate == 1_000_000


def test_feedback_about_its_own_tracks_feeds_the_estimate_and_nobody_elses_does() -> None:
    sent: list[Message] = []
    pub = publisher(sent, feedback=True)
    video = pub.tracks[False]
    for seq in range(40):
        pub.controller.on_sent(video.ssrc, seq, 1200, seq * 0.01)
    others = CongestionFeedback(0, [CcfbBlock.received(video.ssrc ^ 1, 0, [0] * 40)], 1000)
    pub.congestion_feedback(others)
    assert pub.controller.feedback_reports == 0  # not about our tracks: ignored
    ours = CongestionFeedback(0, [CcfbBlock.received(video.ssrc, 0, [40 - n for n in range(40)])], 1000)
    pub.congestion_feedback(ours)
    assert pub.controller.feedback_reports == 1
    assert len(pub.controller.history) == 0  # every packet reported on, and forgotten
    assert pub.stats_event(video)["estimator"] == "feedback"


def test_a_simulcast_tracks_estimate_is_split_among_its_layers_and_reported_per_layer() -> None:
    from conf_cli.client.media.publisher import simulcast_track
    from conf_cli.media.congestion import RESUME_AFTER

    pub = publisher([])
    video = pub.tracks[False] = simulcast_track("video", 1280, 720, 30.0, 1_500_000, random.Random(4))
    low, middle, top = video.layers
    assert [layer.bitrate for layer in video.layers] == [150_000, 500_000, 1_500_000]
    # the uplink narrows to about 800 kbit/s: the top layer is paused, the two below keep their rates
    pub.controller.target = 800_000
    pub._adapt(10.0)
    assert (low.congested, middle.congested, top.congested) == (False, False, True)
    assert top.idle and not low.idle
    video_share = int(800_000 * 0.95) - AUDIO_BITRATE
    assert (low.target_bitrate, middle.target_bitrate) == (150_000, min(500_000, video_share - 150_000))
    stats = pub.stats_event(video)
    assert stats["target_bitrate"] == low.target_bitrate + middle.target_bitrate
    assert [layer["target_bitrate"] for layer in stats["layers"]] == [150_000, 500_000, 0]
    assert stats["layers"][2]["paused"] == "congestion" and "paused" not in stats["layers"][0]
    # the uplink widens again: the top layer resumes (with a keyframe), at its share
    encoder = FakeEncoder()
    top.video_encoder = encoder  # type: ignore[assignment]
    pub.controller.target = 3_000_000
    pub._adapt(10.0 + RETARGET_AFTER_PAUSE)
    assert not top.congested and encoder.keyframes == 1
    assert top.target_bitrate == 1_500_000
    assert pub.stats_event(video)["target_bitrate"] == 2_150_000
    assert RESUME_AFTER <= RETARGET_AFTER_PAUSE


RETARGET_AFTER_PAUSE = 3.0


class FakeEncoder:
    def __init__(self) -> None:
        self.keyframes = 0
        self.bitrate = 1_500_000

    def request_keyframe(self) -> None:
        self.keyframes += 1
