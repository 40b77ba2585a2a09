"""The waiting rules: interval vs server hint, floor and cap, retry backoff."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from lrokit import DelaySource, PollingDelay, PollingPolicy
from lrokit._delay import as_seconds


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(0, 0.0), (2, 2.0), (0.25, 0.25), (timedelta(seconds=3), 3.0), (timedelta(minutes=1), 60.0)],
)
def test_as_seconds(value: float | timedelta, seconds: float) -> None:
    assert as_seconds(value) == seconds


@pytest.mark.parametrize("value", [-1, -0.001, math.inf, math.nan, timedelta(seconds=-1)])
def test_as_seconds_refuses_negative_and_non_finite(value: float | timedelta) -> None:
    with pytest.raises(ValueError, match="non-negative"):
        as_seconds(value)


def test_policy_validates_its_settings() -> None:
    with pytest.raises(ValueError, match="floor"):
        PollingPolicy(floor=10, cap=5)
    with pytest.raises(ValueError, match="max_retries"):
        PollingPolicy(max_retries=-1)
    with pytest.raises(ValueError, match="non-negative"):
        PollingPolicy(interval=-1)
    policy = PollingPolicy(interval=timedelta(seconds=2), cap=timedelta(minutes=1))
    assert (policy.interval, policy.cap) == (2.0, 60.0)
    assert "interval=2.0" in repr(policy)


@pytest.mark.parametrize(
    ("interval", "hint", "expected"),
    [
        (None, None, PollingDelay(1.0, DelaySource.INTERVAL)),  # the policy's default
        (5.0, None, PollingDelay(5.0, DelaySource.INTERVAL)),
        (5.0, 2.0, PollingDelay(5.0, DelaySource.INTERVAL)),  # a shorter hint does not win
        (5.0, 5.0, PollingDelay(5.0, DelaySource.INTERVAL)),
        (5.0, 8.0, PollingDelay(8.0, DelaySource.SERVER)),  # a longer hint wins
        (None, 3.0, PollingDelay(3.0, DelaySource.SERVER)),
        (0.0, 0.0, PollingDelay(0.1, DelaySource.FLOOR)),
        (0.05, None, PollingDelay(0.1, DelaySource.FLOOR)),
        (100.0, None, PollingDelay(30.0, DelaySource.CAP)),
        (1.0, 3600.0, PollingDelay(30.0, DelaySource.CAP)),  # not even the server beats the cap
    ],
)
def test_delay(interval: float | None, hint: float | None, expected: PollingDelay) -> None:
    policy = PollingPolicy(interval=1.0, floor=0.1, cap=30.0)
    assert policy.delay(interval, hint) == expected


def test_retry_delay_doubles_up_to_the_cap_and_respects_the_server() -> None:
    policy = PollingPolicy(retry_backoff=0.5, cap=3.0)
    assert [policy.retry_delay(n, None).seconds for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.retry_delay(5, None).source is DelaySource.CAP
    assert policy.retry_delay(1, 2.5) == PollingDelay(2.5, DelaySource.SERVER)
    assert policy.retry_delay(3, 1.0) == PollingDelay(2.0, DelaySource.INTERVAL)
    assert policy.retry_delay(0, None).seconds == 0.5
