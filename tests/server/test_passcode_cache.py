"""The meeting's passcode key (conf_cli.server.passcode.PasscodeCache), alone and in the hub: once the
server knows a meeting's passcode, a join is checked by HMAC under a key kept in memory, without a scrypt
hash; wrong guesses are refused and counted as before; the key goes with the meeting, and a changed
passcode voids it."""

from __future__ import annotations

from typing import Any

import pytest

from conf_cli.protocol.control import PROTOCOL_VERSION, encode
from conf_cli.server.hub import Deferred, Hub
from conf_cli.server.limiter import AttemptLimiter, Limits
from conf_cli.server.passcode import PasscodeCache, PasscodeHash
from tests.helpers.hub import create, greet, make_hub, send, settle, to

pytestmark = pytest.mark.usefixtures("cheap_scrypt")

MID = "aaa-bbbb-ccc"
TARGET = f"meeting:{MID}"


# -- the cache alone ----------------------------------------------------------------------------------


def test_the_right_passcode_matches_the_kept_key_and_others_do_not():
    stored = PasscodeHash.of("pw-123")
    cache = PasscodeCache()
    assert cache.check(TARGET, "pw-123", stored, 0.0) is None  # nothing kept yet: hash it
    cache.remember(TARGET, "pw-123", stored, 0.0)
    assert cache.check(TARGET, "pw-123", stored, 1.0) is True
    for wrong in ("pw-124", "PW-123", "pw-123 ", "", "pw-12"):
        assert cache.check(TARGET, wrong, stored, 1.0) is False, wrong
    assert cache.check("meeting:other", "pw-123", stored, 1.0) is None
    assert (
        cache.check(TARGET, "\ud800", stored, 1.0) is False
    )  # a lone surrogate from JSON: refused, no error


def test_the_key_is_drawn_at_random_for_each_meeting():
    """The kept tag is an HMAC under a random key, not a plain hash of the passcode: the same passcode
    gives another tag in another cache (or meeting), so tags say nothing about passcodes being equal."""
    stored = PasscodeHash.of("pw-123")
    one, two = PasscodeCache(), PasscodeCache()
    one.remember(TARGET, "pw-123", stored, 0.0)
    two.remember(TARGET, "pw-123", stored, 0.0)
    (kept_one, _), (kept_two, _) = one._keys[TARGET], two._keys[TARGET]
    assert kept_one.key != kept_two.key and kept_one.tag != kept_two.tag
    assert b"pw-123" not in kept_one.key + kept_one.tag


def test_a_changed_passcode_voids_the_kept_key():
    old, new = PasscodeHash.of("pw-123"), PasscodeHash.of("new-pw-9")
    cache = PasscodeCache()
    cache.remember(TARGET, "pw-123", old, 0.0)
    assert cache.check(TARGET, "pw-123", new, 1.0) is None  # kept for another hash: hash this one
    assert len(cache) == 0
    cache.remember(TARGET, "new-pw-9", new, 2.0)
    assert cache.check(TARGET, "new-pw-9", new, 3.0) is True
    assert cache.check(TARGET, "pw-123", new, 3.0) is False


def test_keys_are_bounded_and_dropped_when_unused():
    stored = PasscodeHash.of("pw-123")
    cache = PasscodeCache(limit=2, idle=100.0)
    cache.remember("meeting:a", "pw-123", stored, 0.0)
    cache.remember("meeting:b", "pw-123", stored, 1.0)
    assert cache.check("meeting:a", "pw-123", stored, 2.0) is True  # a is used: b is now the stalest
    cache.remember("meeting:c", "pw-123", stored, 3.0)
    assert len(cache) == 2
    assert cache.check("meeting:b", "pw-123", stored, 4.0) is None
    assert cache.check("meeting:c", "wrong-1", stored, 50.0) is False  # a wrong guess keeps nothing alive
    cache.prune(102.5)  # a was last used at 2, c at 3
    assert len(cache) == 1
    assert cache.check("meeting:a", "pw-123", stored, 102.5) is None
    assert cache.check("meeting:c", "pw-123", stored, 102.5) is True
    assert cache.check("meeting:c", "pw-123", stored, 202.6) is None  # unused for 100 s: gone


def test_forget_drops_the_key():
    stored = PasscodeHash.of("pw-123")
    cache = PasscodeCache()
    cache.remember(TARGET, "pw-123", stored, 0.0)
    cache.forget(TARGET)
    cache.forget(TARGET)  # twice is fine
    assert len(cache) == 0 and cache.check(TARGET, "pw-123", stored, 1.0) is None


def test_a_cache_of_no_keys_keeps_none():
    stored = PasscodeHash.of("pw-123")
    cache = PasscodeCache(limit=0)
    cache.remember(TARGET, "pw-123", stored, 0.0)
    assert len(cache) == 0 and cache.check(TARGET, "pw-123", stored, 0.0) is None


# -- in the hub ---------------------------------------------------------------------------------------


def limited_hub(**kwargs: Any) -> Hub:
    """Two failures per address and three per meeting in 10 s; the meeting is MID, its passcode pw-123."""
    hub = make_hub(MID, limiter=AttemptLimiter(Limits(2, 3, 10.0)), **kwargs)
    create(hub, 1, "Ada")
    return hub


def hello(hub: Hub, cid: int, address: str, now: float = 0.0) -> None:
    hub.connected(cid, now, f"{address}:{40000 + cid}")
    send(hub, cid, {"type": "hello", "protocol": PROTOCOL_VERSION}, now)


def join_now(hub: Hub, cid: int, passcode: str, now: float) -> list[Any]:
    """What the hub answers a join at once, before the edge has carried out anything."""
    request = {"type": "join", "meeting": MID, "name": f"p{cid}", "passcode": passcode}
    return hub.received(cid, encode(request), now)


def answer(actions: list[Any], cid: int) -> dict[str, Any]:
    assert not any(isinstance(a, Deferred) for a in actions), actions  # answered without hashing
    return to(actions, cid)[0]


def test_once_the_meeting_exists_the_right_passcode_is_let_in_without_hashing():
    hub = limited_hub()
    for cid in range(2, 12):
        hello(hub, cid, f"10.0.0.{cid}")
        assert answer(join_now(hub, cid, "pw-123", 1.0), cid)["type"] == "joined"
    assert hub.stats.passcode_checks == 10 and hub.stats.passcode_hashed == 0
    assert len(hub.meetings[MID].participants) == 11


def test_a_wrong_passcode_is_refused_at_once_and_counted_by_the_limiter():
    hub = limited_hub()
    hello(hub, 2, "10.6.6.6")
    for now in (1.0, 2.0):
        assert answer(join_now(hub, 2, "guess-1", now), 2)["code"] == "wrong_passcode"
    # Both wrong guesses count: the address's window is full, even for the right passcode, with no check.
    assert answer(join_now(hub, 2, "pw-123", 3.0), 2)["code"] == "rate_limited"
    assert hub.stats.passcode_checks == 2 and hub.stats.attempts_refused == 1
    assert hub.stats.passcode_hashed == 0
    assert answer(join_now(hub, 2, "pw-123", 11.0), 2)["type"] == "joined"  # the window ends


def test_simultaneous_wrong_guesses_get_at_most_the_limit_of_checks():
    """30 connections from one address guess at once: two checks (the limit), 28 refused before any."""
    hub = limited_hub()
    codes = []
    for cid in range(10, 40):
        hello(hub, cid, "10.6.6.6")
        codes.append(answer(join_now(hub, cid, f"guess{cid}", 1.0), cid)["code"])
    assert codes.count("wrong_passcode") == 2 and codes.count("rate_limited") == 28
    assert hub.stats.passcode_checks == 2


def test_guesses_from_many_addresses_are_limited_per_meeting():
    hub = limited_hub()
    codes = []
    for n in range(6):
        hello(hub, 10 + n, f"10.6.{n}.1")
        codes.append(answer(join_now(hub, 10 + n, "guess", 1.0), 10 + n)["code"])
    assert codes == ["wrong_passcode"] * 3 + ["rate_limited"] * 3


def test_without_a_key_the_right_passcode_is_hashed_once_then_the_key_answers():
    hub = limited_hub()
    hub.passcodes.forget(TARGET)  # as if dropped (unused for a day, or too many meetings)
    hello(hub, 2, "10.0.0.2")
    (check,) = join_now(hub, 2, "pw-123", 1.0)
    assert isinstance(check, Deferred) and hub.stats.passcode_hashed == 1
    assert to(settle([check], 1.5), 2)[0]["type"] == "joined"
    hello(hub, 3, "10.0.0.3")
    assert answer(join_now(hub, 3, "pw-123", 2.0), 3)["type"] == "joined"
    assert hub.stats.passcode_hashed == 1 and hub.stats.passcode_checks == 2


def test_a_wrong_passcode_hashed_keeps_no_key():
    hub = limited_hub()
    hub.passcodes.forget(TARGET)
    hello(hub, 2, "10.0.0.2")
    (check,) = join_now(hub, 2, "guess-1", 1.0)
    assert to(settle([check], 1.5), 2)[0]["code"] == "wrong_passcode"
    assert len(hub.passcodes) == 0


def test_the_key_goes_when_the_meeting_ends_and_a_new_meeting_under_that_id_has_its_own():
    hub = make_hub(MID, MID)  # hands out the same ID twice
    create(hub, 1, "Ada")
    greet(hub, 2)
    send(hub, 2, {"type": "join", "meeting": MID, "name": "Bob", "passcode": "pw-123"})
    assert len(hub.passcodes) == 1
    send(hub, 1, {"type": "end"})
    assert MID not in hub.meetings and len(hub.passcodes) == 0
    create(hub, 3, "Cy", passcode="other-pw")  # the passcode of MID has changed
    greet(hub, 4)
    old = send(hub, 4, {"type": "join", "meeting": MID, "name": "Dee", "passcode": "pw-123"})
    assert to(old, 4)[0]["code"] == "wrong_passcode"
    new = hub.received(
        4, encode({"type": "join", "meeting": MID, "name": "Dee", "passcode": "other-pw"}), 1.0
    )
    assert answer(new, 4)["type"] == "joined"


def test_the_hub_drops_unused_keys_and_spent_windows_as_time_passes():
    hub = limited_hub(passcodes=PasscodeCache(idle=100.0), heartbeat_timeout=1_000.0)
    hello(hub, 2, "10.6.6.6")
    assert answer(join_now(hub, 2, "guess-1", 1.0), 2)["code"] == "wrong_passcode"
    assert hub.table_sizes()["attempt_windows"] >= 1 and hub.table_sizes()["passcode_keys"] == 1
    hub.tick(50.0)  # the 10 s window has passed: nothing left to decide
    assert hub.table_sizes()["attempt_windows"] == 0
    hub.tick(150.0)  # nobody joined for 100 s: the key goes, the meeting stays
    assert hub.table_sizes()["passcode_keys"] == 0 and MID in hub.meetings
    hello(hub, 3, "10.0.0.3", 150.0)
    (check,) = join_now(hub, 3, "pw-123", 150.0)
    assert isinstance(check, Deferred)  # hashed again, and kept again
    assert to(settle([check], 150.0), 3)[0]["type"] == "joined"
    assert hub.table_sizes()["passcode_keys"] == 1
