"""Fixtures for tests that talk real HTTP to the embedded demo service on 127.0.0.1.

The service completes operations by poll count (``polls_to_complete``) and the client's
pipeline gets a fake clock and sleep, so no test waits for real.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from lrokit.demo import DemoService, VectorStoreClient

#: Status polls until an operation completes, and the server's Retry-After, in these tests.
POLLS = 3
RETRY_AFTER = 2


class FakeTime:
    """A monotonic clock that only moves when the fake sleep is called."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float, cancel: threading.Event | None) -> bool:
        self.sleeps.append(seconds)
        self.now += seconds
        return cancel is not None and cancel.is_set()


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def service() -> Iterator[DemoService]:
    with DemoService(polls_to_complete=POLLS, retry_after=RETRY_AFTER) as svc:
        yield svc
    assert not svc.running


@pytest.fixture
def client(service: DemoService, fake_time: FakeTime) -> Iterator[VectorStoreClient]:
    with VectorStoreClient(service.endpoint, clock=fake_time.clock, sleep=fake_time.sleep) as c:
        yield c
