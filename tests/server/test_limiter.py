"""The failed-attempt limiter: sliding windows per address and per target, trust for those who got in."""

from __future__ import annotations

import pytest

from conf_cli.server.limiter import (
    MAX_KEYS,
    TRUST_SECONDS,
    AttemptLimiter,
    Limits,
    address_key,
    seconds_text,
)

MEETING = "meeting:abc-defg-hjk"


def limiter(per_address: int = 3, per_target: int = 5, window: float = 60.0) -> AttemptLimiter:
    return AttemptLimiter(Limits(per_address, per_target, window))


def test_an_address_is_refused_after_its_failures_then_allowed_once_the_oldest_ages_out():
    lim = limiter()
    for now in (0.0, 10.0, 20.0):
        assert lim.retry_after("10.0.0.9", MEETING, now) == 0
        lim.failed("10.0.0.9", MEETING, now)
    assert lim.retry_after("10.0.0.9", MEETING, 21.0) == pytest.approx(39.0)  # the first failure + 60 s
    assert lim.retry_after("10.0.0.9", MEETING, 59.9) == pytest.approx(0.1)
    assert lim.retry_after("10.0.0.9", MEETING, 60.0) == 0
    lim.failed("10.0.0.9", MEETING, 60.0)
    assert lim.retry_after("10.0.0.9", MEETING, 61.0) == pytest.approx(9.0)  # now the one at 10 s decides
    assert lim.retry_after("10.0.0.9", MEETING, 80.0) == 0


def test_other_addresses_are_not_affected_by_one_address():
    lim = limiter()
    for now in range(3):
        lim.failed("10.0.0.9", MEETING, now)
    assert lim.retry_after("10.0.0.9", MEETING, 3.0) > 0
    assert lim.retry_after("10.0.0.10", MEETING, 3.0) == 0
    assert lim.retry_after("10.0.0.9", "meeting:other", 3.0) > 0  # the address window counts everywhere


def test_a_target_is_closed_to_strangers_after_failures_from_many_addresses():
    lim = limiter()
    for n in range(5):
        lim.failed(f"10.0.1.{n}", MEETING, float(n))
    assert lim.retry_after("10.0.2.1", MEETING, 5.0) == pytest.approx(55.0)
    assert lim.retry_after("10.0.2.1", "meeting:other", 5.0) == 0
    assert lim.retry_after("10.0.2.1", MEETING, 60.0) == 0


def test_an_address_that_got_in_is_never_shut_out_by_others_failures():
    """The host created the meeting from 10.0.0.1: an attack from elsewhere cannot lock them out."""
    lim = limiter()
    lim.succeeded("10.0.0.1", MEETING, 0.0)
    for n in range(1_000):
        address = f"10.9.{n // 250}.{n % 250}"
        if lim.retry_after(address, MEETING, 1.0 + n / 100) == 0:
            lim.failed(address, MEETING, 1.0 + n / 100)
    assert lim.retry_after("10.9.9.9", MEETING, 11.0) > 0  # strangers are held off ...
    assert lim.retry_after("10.0.0.1", MEETING, 11.0) == 0  # ... the host is not
    # and the host's own typos count only against the host's address
    for now in (12.0, 13.0):
        lim.failed("10.0.0.1", MEETING, now)
    assert lim.retry_after("10.0.0.1", MEETING, 14.0) == 0


def test_refused_attempts_are_not_counted_so_a_window_always_ends():
    lim = limiter(per_address=2, window=10.0)
    lim.failed("a", None, 0.0)
    lim.failed("a", None, 1.0)
    # an attacker who keeps trying while refused does not extend the wait: the edge counts only attempts
    # that went ahead, and the window only keeps the newest failures
    for now in range(2, 10):
        assert lim.retry_after("a", None, float(now)) > 0
    assert lim.retry_after("a", None, 11.0) == 0


def test_forgetting_a_target_drops_its_window_and_trust():
    lim = limiter()
    lim.succeeded("10.0.0.1", MEETING, 0.0)
    for n in range(5):
        lim.failed(f"10.0.1.{n}", MEETING, 0.0)
    lim.forget(MEETING)
    assert not lim.trusted("10.0.0.1", MEETING, 1.0)
    assert lim.retry_after("10.0.2.1", MEETING, 1.0) == 0


def test_memory_stays_bounded_under_many_addresses():
    lim = limiter()
    for n in range(MAX_KEYS + 500):
        lim.failed(f"addr-{n}", None, 0.0)
    assert len(lim._failures) <= MAX_KEYS


def test_seconds_text_rounds_up_to_whole_seconds():
    assert seconds_text(0.2) == "1 s"
    assert seconds_text(38.1) == "39 s"


def test_trust_is_bounded_per_target_and_in_targets():
    from conf_cli.server.limiter import MAX_TRUSTED_PER_TARGET

    lim = limiter()
    for n in range(MAX_TRUSTED_PER_TARGET + 1):
        lim.succeeded(f"10.1.{n // 250}.{n % 250}", MEETING, float(n))
    assert not lim.trusted("10.1.0.0", MEETING, 1000.0)  # the stalest went first
    assert lim.trusted("10.1.0.1", MEETING, 1000.0)
    for n in range(MAX_KEYS + 10):
        lim.succeeded("10.0.0.1", f"meeting:{n}", 0.0)
    assert len(lim._trusted) == MAX_KEYS
    assert not lim.trusted("10.0.0.1", "meeting:0", 1.0) and lim.trusted(
        "10.0.0.1", f"meeting:{MAX_KEYS}", 1.0
    )


def test_an_attempt_counts_from_its_start_and_only_a_success_takes_it_off():
    lim = limiter(per_address=2)
    first = lim.begin("10.6.6.6", MEETING, 0.0)
    lim.begin("10.6.6.6", MEETING, 0.0)
    assert lim.retry_after("10.6.6.6", MEETING, 0.1) == pytest.approx(59.9)  # two being checked: full
    lim.got_in(first, 0.5)
    assert lim.retry_after("10.6.6.6", MEETING, 0.6) == 0
    assert lim.trusted("10.6.6.6", MEETING, 0.6)


def test_a_void_attempt_no_longer_counts_and_voiding_after_the_window_is_harmless():
    lim = limiter(per_address=1, window=10.0)
    attempt = lim.begin("10.6.6.6", None, 0.0)
    lim.void(attempt)
    assert lim.retry_after("10.6.6.6", None, 0.1) == 0
    late = lim.begin("10.6.6.6", None, 1.0)
    assert lim.retry_after("10.6.6.6", None, 20.0) == 0
    lim.void(late)  # it had left the window already
    assert lim.retry_after("10.6.6.6", None, 20.0) == 0


def test_creates_have_a_window_of_their_own():
    lim = AttemptLimiter(Limits(per_address=5, per_target=5, window=60.0, creates_per_address=2))
    for now in (0.0, 1.0):
        assert lim.create_retry_after("10.6.6.6", now) == 0
        lim.created("10.6.6.6", now)
    assert lim.create_retry_after("10.6.6.6", 2.0) == pytest.approx(58.0)
    assert lim.retry_after("10.6.6.6", MEETING, 2.0) == 0  # creating is not failing
    assert lim.create_retry_after("10.6.6.7", 2.0) == 0


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("10.0.0.7", "10.0.0.7"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:10.0.0.7", "10.0.0.7"),
        ("fe80::1%eth0", "fe80::/64"),
        ("::1", "::1"),  # loopback is one host: its own group
        ("", ""),
        ("not an address", "not an address"),
        ("web 2001:db8:1:2::7", "web 2001:db8:1:2::/64"),
        ("web [2001:db8:1:2::7]", "web 2001:db8:1:2::/64"),
        ("rtsp 10.0.0.7", "rtsp 10.0.0.7"),
    ],
)
def test_ipv6_addresses_count_per_64(address: str, key: str):
    assert address_key(address) == key


def test_one_64_shares_one_window_and_one_trust():
    lim = limiter(per_address=2)
    lim.failed("2001:db8::1", None, 0.0)
    lim.failed("2001:db8::2", None, 0.0)
    assert lim.retry_after("2001:db8::abcd", None, 1.0) > 0
    assert lim.retry_after("2001:db8:0:1::1", None, 1.0) == 0


def test_prune_keeps_only_the_windows_and_trust_that_still_decide_something():
    """Attempts from 1,000 addresses leave 1,000 windows; once the window has passed they all go, and a
    target's trusted addresses go when their trust has expired: the tables follow what is recent."""
    limiter = AttemptLimiter(Limits(per_address=5, per_target=10_000, window=60.0))
    for n in range(1_000):
        limiter.failed(f"10.{n // 250}.{n % 250}.1", "meeting:m", float(n) / 100)
    limiter.succeeded("10.9.9.9", "meeting:m", 5.0)
    assert limiter.sizes() == {"attempt_windows": 1_001, "trusted_targets": 1}
    limiter.prune(65.0)  # the attempts up to 5 s have left the window; later ones decide still
    assert 0 < limiter.sizes()["attempt_windows"] < 1_001
    limiter.prune(70.0)
    assert limiter.sizes() == {"attempt_windows": 0, "trusted_targets": 1}
    assert limiter.trusted("10.9.9.9", "meeting:m", 70.0)
    limiter.prune(5.0 + TRUST_SECONDS)
    assert limiter.sizes() == {"attempt_windows": 0, "trusted_targets": 0}
