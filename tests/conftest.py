"""Shared fixtures of the unit suite: a fake clock and sleep, a pipeline, mocked HTTP.

No unit test opens a socket or really sleeps: HTTP goes through ``responses`` and every wait
goes through :class:`FakeClock`, which records the delays it was asked for and advances
its own time instead.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import responses

from lrokit import Pipeline, PollingPolicy

ENDPOINT = "https://svc.example.com/"


class FakeClock:
    """A monotonic clock and a :data:`lrokit._pipeline.Sleeper` that share one fake time.

    ``sleeps`` records every requested delay. ``cancel_after`` sets the given event once
    that many sleeps have happened (to cancel a wait from "another thread" deterministically).
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self.cancel_after: tuple[int, threading.Event] | None = None

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float, cancel: threading.Event | None) -> bool:
        assert seconds >= 0, "a negative sleep means a broken delay computation"
        if cancel is not None and cancel.is_set():
            return True
        self.sleeps.append(seconds)
        self.now += seconds
        if self.cancel_after is not None and len(self.sleeps) >= self.cancel_after[0]:
            self.cancel_after[1].set()
            return True
        return False


@pytest.fixture
def clock() -> FakeClock:
    """A fresh fake clock per test."""
    return FakeClock()


@pytest.fixture
def policy() -> PollingPolicy:
    """A policy with round numbers, so recorded delays are easy to assert."""
    return PollingPolicy(interval=1.0, floor=0.0, cap=60.0, max_retries=2, retry_backoff=0.5)


@pytest.fixture
def pipeline(clock: FakeClock, policy: PollingPolicy) -> Iterator[Pipeline]:
    """A pipeline on the fake clock; its session is closed afterwards."""
    with Pipeline(ENDPOINT, polling=policy, clock=clock, sleep=clock.sleep) as p:
        yield p


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    """Mocked HTTP for ``requests``; an unexpected request fails with ConnectionError."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock
