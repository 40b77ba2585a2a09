"""The delay rule clamp(max(strategy(attempt), hint), floor, cap) and the delay strategies."""

from __future__ import annotations

import math
import random
from datetime import timedelta

import pytest

from lrokit import (
    DelaySequence,
    DelaySource,
    ExponentialDelay,
    FixedDelay,
    PollingDelay,
    PollingPolicy,
)
from lrokit._delay import DEFAULT_POLICY, DEFAULT_RETRY_STRATEGY, DEFAULT_STRATEGY, as_seconds

STRATEGY, SERVER, FLOOR, CAP = (
    DelaySource.STRATEGY,
    DelaySource.SERVER,
    DelaySource.FLOOR,
    DelaySource.CAP,
)


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
    with pytest.raises(ValueError, match="max_retries"):
        PollingPolicy(max_retries=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-negative"):
        PollingPolicy(interval=-1)
    with pytest.raises(ValueError, match="strategy or interval"):
        PollingPolicy(interval=1, strategy=FixedDelay(2))
    with pytest.raises(ValueError, match="retry or retry_backoff"):
        PollingPolicy(retry_backoff=1, retry=FixedDelay(2))
    with pytest.raises(TypeError, match="delay strategy"):
        PollingPolicy(strategy="fast")  # type: ignore[arg-type]
    policy = PollingPolicy(interval=timedelta(seconds=2), cap=timedelta(minutes=1))
    assert (policy.interval, policy.cap) == (2.0, 60.0)
    assert policy.strategy == FixedDelay(2)
    assert "FixedDelay(2.0)" in repr(policy)
    assert PollingPolicy(strategy=DelaySequence([1, 2])).interval is None


def test_interval_is_an_alias_of_strategy() -> None:
    assert DelaySource.INTERVAL is DelaySource.STRATEGY
    assert DelaySource("strategy") is DelaySource.STRATEGY


# -- the rule ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "hint", "expected"),
    [
        (None, None, PollingDelay(1.0, STRATEGY)),  # the policy's strategy
        (5.0, None, PollingDelay(5.0, STRATEGY)),
        (5.0, 2.0, PollingDelay(5.0, STRATEGY)),  # a shorter hint does not win
        (5.0, 5.0, PollingDelay(5.0, STRATEGY)),  # a tie is the strategy's
        (5.0, 8.0, PollingDelay(8.0, SERVER)),  # a longer hint wins
        (None, 3.0, PollingDelay(3.0, SERVER)),
        (0.0, 0.0, PollingDelay(0.1, FLOOR)),
        (0.05, None, PollingDelay(0.1, FLOOR)),
        (0.0, 0.05, PollingDelay(0.1, FLOOR)),  # a short hint is raised to the floor too
        (100.0, None, PollingDelay(30.0, CAP)),
        (1.0, 3600.0, PollingDelay(30.0, CAP)),  # not even the server beats the cap
        (timedelta(seconds=4), None, PollingDelay(4.0, STRATEGY)),
        (FixedDelay(7), 1.0, PollingDelay(7.0, STRATEGY)),
        (lambda attempt: 0.5 * attempt, None, PollingDelay(1.5, STRATEGY)),  # attempt 3
    ],
)
def test_delay_rule(interval: object, hint: float | None, expected: PollingDelay) -> None:
    policy = PollingPolicy(interval=1.0, floor=0.1, cap=30.0)
    assert policy.delay(interval, hint, attempt=3) == expected  # type: ignore[arg-type]


def test_floor_equal_to_cap_pins_every_delay() -> None:
    policy = PollingPolicy(interval=5, floor=2, cap=2)
    assert policy.delay(None, None) == PollingDelay(2.0, CAP)
    assert policy.delay(0, None) == PollingDelay(2.0, FLOOR)
    assert policy.delay(0, 9.0) == PollingDelay(2.0, CAP)


def test_the_strategy_sees_the_attempt_number() -> None:
    seen: list[int] = []

    def strategy(attempt: int) -> float:
        seen.append(attempt)
        return float(attempt)

    policy = PollingPolicy(strategy=strategy, cap=10)
    assert [policy.delay(attempt=n).seconds for n in (1, 2, 5, 50)] == [1.0, 2.0, 5.0, 10.0]
    assert seen == [1, 2, 5, 50]
    assert policy.delay(attempt=50).source is CAP


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, "1"])
def test_a_strategy_returning_nonsense_is_a_clear_error(bad: object) -> None:
    policy = PollingPolicy(strategy=lambda attempt: bad)  # type: ignore[arg-type,return-value]
    with pytest.raises(ValueError, match="returned"):
        policy.delay()


def test_a_strategy_may_return_a_timedelta() -> None:
    policy = PollingPolicy(strategy=lambda attempt: timedelta(milliseconds=250))  # type: ignore[arg-type,return-value]
    assert policy.delay() == PollingDelay(0.25, STRATEGY)


# -- strategies ------------------------------------------------------------------------------


def test_fixed_delay() -> None:
    fixed = FixedDelay(timedelta(seconds=2))
    assert [fixed(n) for n in (1, 2, 100)] == [2.0, 2.0, 2.0]
    assert fixed == FixedDelay(2.0)
    assert fixed != FixedDelay(3.0)
    assert hash(fixed) == hash(FixedDelay(2))
    assert repr(fixed) == "FixedDelay(2.0)"
    with pytest.raises(ValueError, match="non-negative"):
        FixedDelay(-1)


def test_exponential_delay_grows_to_its_ceiling() -> None:
    exp = ExponentialDelay(0.5, factor=2, max_delay=5)
    assert [exp(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert exp(0) == 0.5  # attempts below 1 count as the first
    assert exp(10**6) == 5.0  # no overflow for an operation polled for ever
    assert ExponentialDelay(1, factor=1)(40) == 1.0
    assert "factor=2.0" in repr(exp)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"factor": 0.5}, "factor"),
        ({"factor": math.inf}, "factor"),
        ({"jitter": -0.1}, "jitter"),
        ({"jitter": 1.5}, "jitter"),
        ({"max_delay": -1}, "non-negative"),
    ],
)
def test_exponential_delay_validates(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ExponentialDelay(1, **kwargs)  # type: ignore[arg-type]


def test_jitter_stays_within_its_bounds_and_is_reproducible() -> None:
    exp = ExponentialDelay(1, factor=2, max_delay=8, jitter=0.25, rng=random.Random(7))
    draws = [exp(n) for n in range(1, 200)]
    for n, seconds in zip(range(1, 200), draws, strict=True):
        base = exp.base(n)
        assert base * 0.75 < seconds <= base
    assert len(set(draws[10:])) > 100  # really random at the ceiling
    again = ExponentialDelay(1, factor=2, max_delay=8, jitter=0.25, rng=random.Random(7))
    assert [again(n) for n in range(1, 200)] == draws


def test_jitter_extremes() -> None:
    class Top(random.Random):
        def random(self) -> float:
            return 0.999999

    class Bottom(random.Random):
        def random(self) -> float:
            return 0.0

    assert ExponentialDelay(4, jitter=0.5, rng=Bottom())(1) == 4.0  # never longer
    assert ExponentialDelay(4, jitter=0.5, rng=Top())(1) == pytest.approx(2.0, abs=1e-5)
    assert ExponentialDelay(4, jitter=1.0, rng=Top())(1) == pytest.approx(0.0, abs=1e-5)
    assert ExponentialDelay(0, jitter=1.0, rng=Top())(1) == 0.0


def test_delay_sequence_then_the_last() -> None:
    seq = DelaySequence([1, 1, 1, 2, 4, 8, 16, 32])
    assert [seq(n) for n in range(1, 12)] == [1, 1, 1, 2, 4, 8, 16, 32, 32, 32, 32]
    assert seq(0) == 1.0
    assert DelaySequence([timedelta(seconds=3)])(9) == 3.0
    with pytest.raises(ValueError, match="at least one"):
        DelaySequence([])
    with pytest.raises(ValueError, match="non-negative"):
        DelaySequence([1, -1])
    jittered = DelaySequence([10, 20], jitter=0.1, rng=random.Random(1))
    assert all(9.0 < jittered(1) <= 10.0 for _ in range(50))
    assert all(18.0 < jittered(2) <= 20.0 for _ in range(50))
    assert "jitter=0.1" in repr(jittered)


def test_the_default_strategy_is_neither_hammering_nor_flat() -> None:
    """1, 1, 1, 2, 4, 8, 16, 32 s (shortened by at most 20 %), then 32 s for ever."""
    assert DEFAULT_POLICY.strategy is DEFAULT_STRATEGY
    assert isinstance(DEFAULT_STRATEGY, DelaySequence)
    assert DEFAULT_STRATEGY.delays == (1, 1, 1, 2, 4, 8, 16, 32)
    for attempt in range(1, 30):
        delay = DEFAULT_POLICY.delay(attempt=attempt)
        base = DEFAULT_STRATEGY.base(attempt)
        assert 0.8 * base < delay.seconds <= base
        assert delay.source is STRATEGY
    # An hour of polling costs about 120 requests, not 3600, and the first poll comes
    # within a second.
    assert sum(DEFAULT_STRATEGY.base(n) for n in range(1, 120)) > 3600
    assert DEFAULT_STRATEGY.base(1) == 1.0
    assert (DEFAULT_POLICY.floor, DEFAULT_POLICY.cap, DEFAULT_POLICY.max_retries) == (0, 120, 5)


# -- retries ---------------------------------------------------------------------------------


def test_retry_backoff_doubles_up_to_the_cap_and_respects_the_server() -> None:
    policy = PollingPolicy(retry_backoff=0.5, cap=3.0)
    assert [policy.retry_delay(n).seconds for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.retry_delay(5).source is CAP
    assert policy.retry_delay(1, 2.5) == PollingDelay(2.5, SERVER)
    assert policy.retry_delay(3, 1.0) == PollingDelay(2.0, STRATEGY)
    assert policy.retry_delay(0).seconds == 0.5  # counted from 1


def test_retry_strategy_can_be_any_strategy() -> None:
    policy = PollingPolicy(retry=DelaySequence([0.1, 0.2]), floor=0.15)
    assert policy.retry_delay(1) == PollingDelay(0.15, FLOOR)
    assert policy.retry_delay(7) == PollingDelay(0.2, STRATEGY)


def test_default_retry_backoff_is_jittered_exponential() -> None:
    assert PollingPolicy().retry is DEFAULT_RETRY_STRATEGY
    assert isinstance(DEFAULT_RETRY_STRATEGY, ExponentialDelay)
    for failures, base in [(1, 0.5), (2, 1.0), (3, 2.0), (7, 30.0), (50, 30.0)]:
        assert 0.8 * base < PollingPolicy().retry_delay(failures).seconds <= base
