"""How long to wait before the next request, from the user's settings and the server's hint.

One rule decides every delay (see :class:`PollingPolicy`)::

    delay = clamp(max(strategy(attempt), server_hint), floor, cap)

A *strategy* is any callable from the attempt number (1 for the first poll after the start
response) to seconds: :class:`FixedDelay`, :class:`ExponentialDelay`, :class:`DelaySequence`,
or a function of your own. The chosen delay travels with the rule that chose it
(:class:`PollingDelay`), so a test, a hook or a log line can say *why* lrokit waits that long.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Iterable
from datetime import timedelta
from typing import Protocol, TypeAlias

import msgspec

__all__ = [
    "DEFAULT_POLICY",
    "DEFAULT_RETRY_STRATEGY",
    "DEFAULT_STRATEGY",
    "DELAY_LABELS",
    "RETRY_START_ON",
    "DelaySequence",
    "DelaySource",
    "DelayStrategy",
    "ExponentialDelay",
    "FixedDelay",
    "Interval",
    "PollingDelay",
    "PollingPolicy",
    "as_seconds",
]


class DelaySource(str, enum.Enum):
    """Which part of the delay rule chose a delay."""

    STRATEGY = "strategy"
    """The delay strategy (the caller's ``polling_interval``, the policy's strategy, or the
    retry back-off after a transient fault)."""
    SERVER = "server"
    """The server's Retry-After hint, longer than the strategy's delay."""
    FLOOR = "floor"
    """Raised to the policy's floor."""
    CAP = "cap"
    """Lowered to the policy's cap."""
    INTERVAL = "strategy"
    """Old name of :attr:`STRATEGY` (an alias: ``DelaySource.INTERVAL is DelaySource.STRATEGY``)."""


#: How the progress displays of ``lrokit demo`` and ``lrokit poll`` name the rule that chose
#: a delay, one word for one thing in both (logs and spans keep the enum's values). A strategy
#: delay after a transient fault is shown as "back-off".
DELAY_LABELS: dict[DelaySource, str] = {
    DelaySource.STRATEGY: "interval",
    DelaySource.SERVER: "server's Retry-After",
    DelaySource.FLOOR: "floor",
    DelaySource.CAP: "cap",
}


class PollingDelay(msgspec.Struct, frozen=True):
    """A chosen delay and the rule that chose it.

    Attributes:
        seconds: how long to wait.
        source: which part of the delay rule decided.
    """

    seconds: float
    source: DelaySource


def as_seconds(value: float | timedelta) -> float:
    """Seconds from a number or a ``timedelta``; negative and non-finite values are refused."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"a delay must be a non-negative number of seconds, not {value!r}")
    return seconds


class DelayStrategy(Protocol):
    """Seconds to wait before attempt number ``attempt`` (1, 2, 3, ...).

    Any callable with this shape is a strategy, a plain function or lambda included. The
    policy checks what it returns: a negative or non-finite number raises ``ValueError``.
    """

    def __call__(self, attempt: int, /) -> float:
        """The delay in seconds before attempt ``attempt``."""
        ...


#: What ``wait_for_completion(polling_interval=...)`` and :meth:`PollingPolicy.delay` accept:
#: seconds, a ``timedelta``, a strategy, or None for the policy's own strategy.
Interval: TypeAlias = "float | timedelta | DelayStrategy | None"


def _jitter(seconds: float, jitter: float, rng: random.Random | None) -> float:
    # Only ever shortens: the strategy's own maximum stays a true maximum, and clients that
    # started together drift apart instead of polling in lock-step.
    if not jitter or not seconds:
        return seconds
    draw = (rng or random).random()  # in [0, 1)
    return seconds * (1.0 - jitter * draw)


def _check_jitter(jitter: float) -> float:
    jitter = float(jitter)
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(f"jitter is a fraction between 0 and 1, not {jitter!r}")
    return jitter


class FixedDelay:
    """The same delay before every attempt (what a number as ``polling_interval`` means)."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float | timedelta) -> None:
        self.seconds = as_seconds(seconds)

    def __call__(self, attempt: int, /) -> float:
        """Always :attr:`seconds`."""
        return self.seconds

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FixedDelay) and other.seconds == self.seconds

    def __hash__(self) -> int:
        return hash((FixedDelay, self.seconds))

    def __repr__(self) -> str:
        return f"FixedDelay({self.seconds})"


class ExponentialDelay:
    """``first * factor ** (attempt - 1)``, at most ``max_delay``, optionally jittered.

    Args:
        first: the delay before the first attempt.
        factor: the growth per attempt (>= 1).
        max_delay: the strategy's own ceiling (the policy's ``cap`` still applies on top).
        jitter: a fraction in [0, 1]; each delay is shortened by a random share of up to
            that fraction, so it lies in ``(d * (1 - jitter), d]`` for the unjittered ``d``.
        rng: the random source of the jitter (inject a seeded ``random.Random`` in tests);
            the ``random`` module's when omitted.
    """

    __slots__ = ("factor", "first", "jitter", "max_delay", "rng")

    def __init__(
        self,
        first: float | timedelta = 1.0,
        *,
        factor: float = 2.0,
        max_delay: float | timedelta = 30.0,
        jitter: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        self.first = as_seconds(first)
        if not (factor >= 1.0 and math.isfinite(factor)):
            raise ValueError(f"factor must be a finite number >= 1, not {factor!r}")
        self.factor = float(factor)
        self.max_delay = as_seconds(max_delay)
        self.jitter = _check_jitter(jitter)
        self.rng = rng

    def base(self, attempt: int) -> float:
        """The unjittered delay before ``attempt``."""
        exponent = max(0, attempt - 1)
        try:
            seconds = self.first * self.factor**exponent
        except OverflowError:  # a very long-lived operation: long past the ceiling
            return self.max_delay
        return min(seconds, self.max_delay)

    def __call__(self, attempt: int, /) -> float:
        """The (jittered) delay before ``attempt``."""
        return _jitter(self.base(attempt), self.jitter, self.rng)

    def __repr__(self) -> str:
        return (
            f"ExponentialDelay({self.first}, factor={self.factor}, max_delay={self.max_delay},"
            f" jitter={self.jitter})"
        )


class DelaySequence:
    """Explicit delays, one per attempt, then the last one for ever.

    ``DelaySequence([1, 1, 1, 2, 4, 8, 16, 32])`` waits 1 s before attempts 1-3, 2 s before
    attempt 4, ... and 32 s before attempt 8 and every later one.

    Args:
        delays: at least one delay (seconds or ``timedelta``).
        jitter: as for :class:`ExponentialDelay`.
        rng: as for :class:`ExponentialDelay`.
    """

    __slots__ = ("delays", "jitter", "rng")

    def __init__(
        self,
        delays: Iterable[float | timedelta],
        *,
        jitter: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        self.delays = tuple(as_seconds(d) for d in delays)
        if not self.delays:
            raise ValueError("a DelaySequence needs at least one delay")
        self.jitter = _check_jitter(jitter)
        self.rng = rng

    def base(self, attempt: int) -> float:
        """The unjittered delay before ``attempt``."""
        return self.delays[min(max(attempt, 1), len(self.delays)) - 1]

    def __call__(self, attempt: int, /) -> float:
        """The (jittered) delay before ``attempt``."""
        return _jitter(self.base(attempt), self.jitter, self.rng)

    def __repr__(self) -> str:
        return f"DelaySequence({list(self.delays)}, jitter={self.jitter})"


#: The default polling strategy: 1 s, 1 s, 1 s, 2, 4, 8, 16, then 32 s (Azure.Core's
#: sequence), each shortened by up to 20 % at random. Quick operations are seen finishing
#: within about a second; long ones settle at about two polls a minute; jitter spreads the
#: polls of operations that were started together.
DEFAULT_STRATEGY: DelayStrategy = DelaySequence((1, 1, 1, 2, 4, 8, 16, 32), jitter=0.2)

#: The default back-off after a transient fault: 0.5 s doubling per consecutive fault up to
#: 30 s, each shortened by up to 20 % at random.
DEFAULT_RETRY_STRATEGY: DelayStrategy = ExponentialDelay(
    0.5, factor=2.0, max_delay=30.0, jitter=0.2
)


_NO_CEILING = 24 * 3600.0
# Enum members as globals for the per-response path (an Enum class attribute costs ten times
# as much to read).
_STRATEGY, _SERVER, _CAP, _FLOOR = (
    DelaySource.STRATEGY,
    DelaySource.SERVER,
    DelaySource.CAP,
    DelaySource.FLOOR,
)


def _strategy_of(interval: float | timedelta | DelayStrategy) -> DelayStrategy:
    if isinstance(interval, (int, float, timedelta)):
        return FixedDelay(interval)
    if callable(interval):
        return interval
    raise TypeError(f"expected seconds, a timedelta or a delay strategy, not {interval!r}")


def _checked(strategy: DelayStrategy, attempt: int) -> float:
    seconds = strategy(attempt)
    if isinstance(seconds, timedelta):  # tolerated from user callables
        seconds = seconds.total_seconds()
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds < 0:
        raise ValueError(
            f"delay strategy {strategy!r} returned {seconds!r} for attempt {attempt};"
            " expected a non-negative finite number of seconds"
        )
    return float(seconds)


#: The answers to a start request that are retried for every method (``retry_start_on``):
#: 429 and 503 say that the request was not processed; 500 and 504 are retried for POST and
#: PATCH by azure-core's own retry policy too.
RETRY_START_ON = frozenset({429, 500, 503, 504})


class PollingPolicy:
    """The waiting rules: ``clamp(max(strategy(attempt), server_hint), floor, cap)``.

    Args:
        strategy: the delay before each poll when the caller gives no ``polling_interval``
            (:data:`DEFAULT_STRATEGY` when omitted).
        interval: shorthand for ``strategy=FixedDelay(interval)``; not with ``strategy``.
        floor: no delay is shorter (protects services from a zero interval).
        cap: no delay is longer, not even one the server asks for.
        max_retries: consecutive transient faults (HTTP 408/429/500/502/503/504, connection
            errors, timeouts, unreadable bodies) tolerated on one request before it fails
            with a typed error; 0 turns retrying off.
        retry: the back-off strategy after transient faults, called with the number of
            consecutive faults (:data:`DEFAULT_RETRY_STRATEGY` when omitted).
        retry_backoff: shorthand for a retry strategy of ``retry_backoff`` doubling per
            consecutive fault, without jitter, bounded only by ``cap``; not with ``retry``.
        retry_start_on: the HTTP statuses after which a start request is sent again
            whatever its method, within ``max_retries`` and honouring ``Retry-After``
            (:data:`RETRY_START_ON`: 429, 500, 503, 504, the Azure SDKs' convention). A
            start that is safe to repeat (PUT, DELETE, ``idempotent=True``) is also sent
            again after 408 and 502. An empty set retries only those safe starts.

    All durations are seconds or ``timedelta``; the server's hint and the floor and cap
    apply to retry delays exactly as to poll delays.
    """

    __slots__ = ("cap", "floor", "max_retries", "retry", "retry_start_on", "strategy")

    def __init__(
        self,
        *,
        strategy: DelayStrategy | None = None,
        interval: float | timedelta | None = None,
        floor: float | timedelta = 0.0,
        cap: float | timedelta = 120.0,
        max_retries: int = 5,
        retry: DelayStrategy | None = None,
        retry_backoff: float | timedelta | None = None,
        retry_start_on: Iterable[int] = RETRY_START_ON,
    ) -> None:
        if strategy is not None and interval is not None:
            raise ValueError("give either strategy or interval, not both")
        if retry is not None and retry_backoff is not None:
            raise ValueError("give either retry or retry_backoff, not both")
        self.floor = as_seconds(floor)
        self.cap = as_seconds(cap)
        if self.floor > self.cap:
            raise ValueError("floor must not exceed cap")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError("max_retries must be an integer >= 0")
        self.max_retries = max_retries
        statuses = frozenset(retry_start_on)
        if any(
            isinstance(code, bool) or not isinstance(code, int) or not 400 <= code <= 599
            for code in statuses
        ):
            raise ValueError("retry_start_on holds HTTP error statuses (integers 400-599)")
        self.retry_start_on: frozenset[int] = statuses
        if interval is not None:
            self.strategy: DelayStrategy = FixedDelay(interval)
        elif strategy is not None:
            self.strategy = _strategy_of(strategy)
        else:
            self.strategy = DEFAULT_STRATEGY
        if retry_backoff is not None:
            # No ceiling of its own: the policy's cap bounds it (and says so in the source).
            self.retry: DelayStrategy = ExponentialDelay(
                retry_backoff, factor=2.0, max_delay=_NO_CEILING
            )
        elif retry is not None:
            self.retry = _strategy_of(retry)
        else:
            self.retry = DEFAULT_RETRY_STRATEGY

    @property
    def interval(self) -> float | None:
        """The seconds of a fixed strategy, or None for any other strategy."""
        strategy = self.strategy
        return strategy.seconds if isinstance(strategy, FixedDelay) else None

    def delay(
        self, interval: Interval = None, hint: float | None = None, *, attempt: int = 1
    ) -> PollingDelay:
        """The delay before poll number ``attempt``.

        Args:
            interval: the caller's ``polling_interval`` (seconds, ``timedelta`` or a
                strategy); None uses the policy's strategy.
            hint: the server's Retry-After in seconds, or None.
            attempt: the number of the poll about to be made (1 for the first poll after
                the start response); only strategies that change over time look at it.
        """
        if type(interval) is float and 0.0 <= interval < math.inf:
            # A fixed number of seconds (what waits pass): FixedDelay(interval)'s answer,
            # without building one for each response.
            return self._choose(interval, hint)
        strategy = self.strategy if interval is None else _strategy_of(interval)
        return self._choose(_checked(strategy, attempt), hint)

    def retry_delay(self, failures: int, hint: float | None = None) -> PollingDelay:
        """The delay before repeating a request after ``failures`` consecutive transient faults."""
        failures = max(1, failures)
        return self._choose(_checked(self.retry, failures), hint)

    def _choose(self, seconds: float, hint: float | None) -> PollingDelay:
        source = _STRATEGY
        if hint is not None and hint > seconds:
            seconds, source = hint, _SERVER
        if seconds > self.cap:
            return PollingDelay(self.cap, _CAP)
        if seconds < self.floor:
            return PollingDelay(self.floor, _FLOOR)
        return PollingDelay(seconds, source)

    def __repr__(self) -> str:
        return (
            f"PollingPolicy(strategy={self.strategy!r}, floor={self.floor}, cap={self.cap},"
            f" max_retries={self.max_retries}, retry={self.retry!r})"
        )


#: The policy of a :class:`~lrokit.Pipeline` created without ``polling=``.
DEFAULT_POLICY = PollingPolicy()
