"""The chat rate limit and the codec rule of the meeting (sans-I/O: time is passed in)."""

from __future__ import annotations

import pytest

from conf_cli.errors import RequestRefused
from conf_cli.protocol.control import CODECS
from conf_cli.server.meeting import CHAT_BURST, CHAT_RATE, Meeting
from conf_cli.server.passcode import PasscodeHash

PASSCODE = PasscodeHash(salt=b"s" * 16, digest=b"d" * 64)
ADA, BOB, CY = 1, 2, 3


def meeting() -> Meeting:
    m = Meeting("abc-defg-hjk", PASSCODE)
    for pid, name in ((ADA, "Ada"), (BOB, "Bob"), (CY, "Cy")):
        m.join(pid, name, passcode_ok=True)
    return m


def refused_chat(m: Meeting, pid: int, now: float) -> RequestRefused:
    with pytest.raises(RequestRefused) as info:
        m.chat(pid, "one too many", now=now)
    return info.value


def test_a_burst_of_chat_passes_then_more_is_refused_with_the_wait():
    m = meeting()
    for n in range(int(CHAT_BURST)):
        assert m.chat(BOB, f"message {n}", now=100.0)[0].to == (ADA, BOB, CY)
    refusal = refused_chat(m, BOB, now=100.0)
    assert refusal.code == "rate_limited"
    assert str(refusal) == "you are sending chat messages too fast; try again in 1 s"
    assert refusal.retry_after == pytest.approx(1 / CHAT_RATE)


def test_the_limit_is_per_participant_and_refills_with_time():
    m = meeting()
    for n in range(int(CHAT_BURST)):
        m.chat(BOB, f"message {n}", now=0.0)
    refused_chat(m, BOB, now=0.5)
    assert m.chat(CY, "I may still speak", now=0.5)[0].message["from"] == "Cy"
    assert m.chat(BOB, "after a second", now=1.5)[0].message["text"] == "after a second"
    refused_chat(m, BOB, now=1.5)
    for n in range(int(CHAT_BURST)):  # a long pause refills the burst, and no more
        m.chat(BOB, f"again {n}", now=1000.0)
    refused_chat(m, BOB, now=1000.0)


def test_refused_chat_is_relayed_to_nobody_and_costs_nothing():
    m = meeting()
    for _ in range(int(CHAT_BURST)):
        m.chat(BOB, "x", now=0.0)
    for _ in range(100):  # hammering while refused does not push the wait further out
        refused_chat(m, BOB, now=0.0)
    assert m.chat(BOB, "back", now=1 / CHAT_RATE)[0].message["text"] == "back"


def test_a_steady_rate_within_the_limit_is_never_refused():
    m = meeting()
    for n in range(200):
        m.chat(BOB, f"message {n}", now=n / CHAT_RATE)


@pytest.mark.parametrize(("kind", "codec"), [("video", "h264"), ("screen", "H264"), ("audio", "OPUS")])
def test_a_codec_is_stored_in_its_canonical_spelling(kind, codec):
    m = meeting()
    (started,) = m.publish(BOB, kind, 7, codec)
    assert started.message["codec"] == CODECS[kind] == m.tracks[7].codec


@pytest.mark.parametrize(("kind", "codec"), [("audio", "H264"), ("video", "opus"), ("screen", "opus")])
def test_a_codec_must_be_its_kinds(kind, codec):
    m = meeting()
    with pytest.raises(RequestRefused) as info:
        m.publish(BOB, kind, 7, codec)
    assert info.value.code == "bad_request"
    assert str(info.value) == f"{kind} is carried as {CODECS[kind]}, not {codec}"
    assert not m.tracks
