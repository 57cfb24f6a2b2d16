"""The one back-off rule: exponential to a cap, a floor, and a server's Retry-After heard one of two ways."""

from __future__ import annotations

import pytest

from gateway.backoff import Backoff, RetryAfter


def test_the_delay_doubles_from_the_first_to_the_cap() -> None:
    b = Backoff(first_s=0.5, cap_s=60.0)
    assert [b.delay_s(n) for n in range(1, 10)] == [0.5, 1, 2, 4, 8, 16, 32, 60, 60]


def test_another_factor_and_a_cap_that_is_not_a_power_of_it() -> None:
    b = Backoff(first_s=1.0, cap_s=50.0, factor=3.0)
    assert [b.delay_s(n) for n in range(1, 6)] == [1, 3, 9, 27, 50]


def test_a_long_outage_does_not_overflow() -> None:
    # Thousands of failures in a row (a store away for a day): the power of the factor is bounded.
    assert Backoff(first_s=15.0, cap_s=600.0, factor=10.0).delay_s(100_000) == 600.0
    assert Backoff(first_s=1e-6, cap_s=1e300).delay_s(5000) == 1e300


def test_a_zero_first_delay_or_a_factor_of_one_stays_put() -> None:
    assert Backoff(first_s=0.0, cap_s=10.0).delay_s(7) == 0.0
    assert Backoff(first_s=2.0, cap_s=10.0, factor=1.0).delay_s(7) == 2.0


def test_the_floor_holds_whatever_the_server_says() -> None:
    b = Backoff(first_s=0.1, cap_s=10.0, floor_s=1.0, retry_after=RetryAfter.INSTEAD)
    assert b.delay_s(1) == 1.0
    assert b.delay_s(1, retry_after_s=0.0) == 1.0


def test_at_least_never_sooner_than_the_server_asked_nor_than_the_back_off() -> None:
    b = Backoff(first_s=0.5, cap_s=60.0)  # the journal consumers' rule
    assert b.delay_s(1, retry_after_s=30.0) == 30.0
    assert b.delay_s(6, retry_after_s=1.0) == 16.0
    assert b.delay_s(1, retry_after_s=7200.0) == 7200.0  # no cap on what the server asks unless one is set
    assert Backoff(first_s=0.5, cap_s=60.0, retry_after_cap_s=120.0).delay_s(1, retry_after_s=7200.0) == 120.0


def test_instead_takes_the_server_at_its_word_up_to_its_cap() -> None:
    b = Backoff(first_s=5.0, cap_s=300.0, floor_s=1.0, retry_after=RetryAfter.INSTEAD, retry_after_cap_s=3600.0)
    assert b.delay_s(4, retry_after_s=7.0) == 7.0  # shorter than the back-off (40 s): still heard
    assert b.delay_s(1, retry_after_s=30 * 24 * 3600.0) == 3600.0  # "until next month": an alert cannot wait
    assert b.delay_s(4) == 40.0  # no Retry-After: the back-off


@pytest.mark.parametrize("kwargs", [
    {"first_s": -1.0, "cap_s": 10.0},
    {"first_s": 20.0, "cap_s": 10.0},
    {"first_s": 1.0, "cap_s": 10.0, "factor": 0.5},
    {"first_s": 1.0, "cap_s": 10.0, "floor_s": -1.0},
])
def test_a_rule_that_makes_no_sense_is_refused_when_made(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="back-off needs"):
        Backoff(**kwargs)


def test_failures_count_from_one() -> None:
    with pytest.raises(ValueError, match="counts from 1"):
        Backoff(first_s=1.0, cap_s=10.0).delay_s(0)
