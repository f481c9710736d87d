"""The publisher's side of simulcast: which layers a picture gets, the halving scaler, and dynacast
pausing and resuming layers (a resumed layer starts with a keyframe)."""

from __future__ import annotations

import random
from types import SimpleNamespace

import av
import numpy as np

from conf_cli.client.media.publisher import (
    Publisher,
    plan_layers,
    scaled,
    simulcast_track,
)
from conf_cli.media.congestion import split_target
from conf_cli.media.source import CapturedFrame
from conf_cli.protocol.rtcp import Pli


def test_a_720p_camera_gets_three_layers_and_a_small_one_gets_one() -> None:
    assert [(w, h) for w, h, _, _ in plan_layers("video", 1280, 720, 1_200_000)] == [
        (320, 180),
        (640, 360),
        (1280, 720),
    ]
    assert [b for _, _, b, _ in plan_layers("video", 1280, 720, 1_200_000)] == [120_000, 400_000, 1_200_000]
    assert len(plan_layers("video", 640, 360, 1_000_000)) == 2
    assert len(plan_layers("video", 320, 240, 1_000_000)) == 1


def test_a_screen_keeps_its_resolution_and_gives_up_frame_rate_first() -> None:
    (low, middle, top) = plan_layers("screen", 1920, 1080, 2_000_000)
    assert middle[:2] == (1920, 1080) and middle[3] == 3
    assert top[3] == 1 and low[3] > middle[3]


def test_a_narrow_uplink_shrinks_the_highest_layers_first() -> None:
    nominal = [120_000, 400_000, 1_200_000]
    assert split_target(2_000_000, nominal) == nominal
    assert split_target(600_000, nominal) == [120_000, 400_000, 80_000]
    assert split_target(100_000, nominal) == [100_000, 0, 0]
    assert split_target(600_000, nominal, [True, False, True]) == [120_000, 0, 480_000]


def test_halving_keeps_every_other_sample_of_each_plane() -> None:
    rng = np.random.default_rng(1)
    planes = rng.integers(0, 256, (720 * 3 // 2, 1280), dtype=np.uint8)
    half = scaled(av.VideoFrame.from_ndarray(planes, format="yuv420p"), 640, 360).to_ndarray()
    assert np.array_equal(half[:360], planes[:720:2, ::2])
    u = planes[720:900].reshape(360, 640)
    assert np.array_equal(half[360:450].reshape(180, 320), u[::2, ::2])


def frame(i: int) -> CapturedFrame:
    picture = av.VideoFrame.from_ndarray(np.full((720, 1280, 3), i % 256, np.uint8), format="rgb24")
    return CapturedFrame(picture, 1_700_000_000 + i / 30)


def test_a_paused_layer_is_not_encoded_and_resumes_with_a_keyframe() -> None:
    track = simulcast_track("video", 1280, 720, 30, 1_200_000, random.Random(1))
    low, middle, top = track.layers
    assert [layer.size for layer in track.layers] == [(320, 180), (640, 360), (1280, 720)]
    encoded = {layer.ssrc for layer, units in track.encode_layers(frame(0))}
    assert encoded == {low.ssrc, middle.ssrc, top.ssrc}
    sent: list[dict[str, object]] = []
    source = SimpleNamespace(kind="video")
    publisher = Publisher(
        "pattern",
        source,  # type: ignore[arg-type]
        send_control=sent.append,
        send_media=lambda _: None,
        notify=sent.append,
    )
    publisher.tracks[False] = track
    publisher.layers_active(top.ssrc, [low.ssrc])
    for i in range(1, 4):
        assert {layer.ssrc for layer, _ in track.encode_layers(frame(i))} <= {low.ssrc}
    publisher.feedback(Pli(0, top.ssrc))  # someone needs the high layer again
    resumed = [units for layer, units in track.encode_layers(frame(4)) if layer is top]
    assert resumed and resumed[0] and resumed[0][0].keyframe
