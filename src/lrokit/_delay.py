"""How long to wait before the next request, from the user's settings and the server's hint."""

from __future__ import annotations

import enum
import math
from datetime import timedelta

import msgspec

__all__ = ["DelaySource", "PollingDelay", "PollingPolicy", "as_seconds"]


class DelaySource(str, enum.Enum):
    """Which rule chose a delay."""

    INTERVAL = "interval"
    """The polling interval (the caller's, or the policy's default)."""
    SERVER = "server"
    """The server's Retry-After hint, longer than the interval."""
    FLOOR = "floor"
    """Raised to the policy's floor."""
    CAP = "cap"
    """Lowered to the policy's cap."""


class PollingDelay(msgspec.Struct, frozen=True):
    """A chosen delay and the rule that chose it."""

    seconds: float
    source: DelaySource


def as_seconds(value: float | timedelta) -> float:
    """Seconds from a number or a ``timedelta``; negative and non-finite values are refused."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"a delay must be a non-negative number of seconds, not {value!r}")
    return seconds


class PollingPolicy:
    """The waiting rules: ``clamp(max(interval, server_hint), floor, cap)``.

    Args:
        interval: the default delay between polls when the caller gives none.
        floor: no delay is shorter (protects services from a zero interval).
        cap: no delay is longer, not even one the server asks for.
        max_retries: consecutive transient failures (HTTP 408/429/5xx, connection errors)
            tolerated on polls before the poll fails with a typed error.
        retry_backoff: the first retry delay; doubled per consecutive failure, up to ``cap``.
    """

    __slots__ = ("cap", "floor", "interval", "max_retries", "retry_backoff")

    def __init__(
        self,
        *,
        interval: float | timedelta = 1.0,
        floor: float | timedelta = 0.0,
        cap: float | timedelta = 120.0,
        max_retries: int = 5,
        retry_backoff: float | timedelta = 0.5,
    ) -> None:
        self.interval = as_seconds(interval)
        self.floor = as_seconds(floor)
        self.cap = as_seconds(cap)
        if self.floor > self.cap:
            raise ValueError("floor must not exceed cap")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.max_retries = max_retries
        self.retry_backoff = as_seconds(retry_backoff)

    def delay(self, interval: float | None, hint: float | None) -> PollingDelay:
        """The delay before the next poll given the caller's interval (None: the default)."""
        base = self.interval if interval is None else interval
        if hint is not None and hint > base:
            return self._clamp(hint, DelaySource.SERVER)
        return self._clamp(base, DelaySource.INTERVAL)

    def retry_delay(self, failures: int, hint: float | None) -> PollingDelay:
        """The delay before repeating a request after ``failures`` consecutive transient errors."""
        backoff = self.retry_backoff * (2 ** max(0, failures - 1))
        if hint is not None and hint > backoff:
            return self._clamp(hint, DelaySource.SERVER)
        return self._clamp(backoff, DelaySource.INTERVAL)

    def _clamp(self, seconds: float, source: DelaySource) -> PollingDelay:
        if seconds > self.cap:
            return PollingDelay(self.cap, DelaySource.CAP)
        if seconds < self.floor:
            return PollingDelay(self.floor, DelaySource.FLOOR)
        return PollingDelay(seconds, source)

    def __repr__(self) -> str:
        return (
            f"PollingPolicy(interval={self.interval}, floor={self.floor}, cap={self.cap},"
            f" max_retries={self.max_retries}, retry_backoff={self.retry_backoff})"
        )


DEFAULT_POLICY = PollingPolicy()
