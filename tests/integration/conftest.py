"""Fixtures for tests that talk real HTTP to the embedded demo service on 127.0.0.1.

The service completes operations by poll count (``polls_to_complete``) and the client's
pipeline gets lrokit.testing's fake clock and sleep, so no test waits for real.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lrokit.demo import DemoService, VectorStoreClient
from lrokit.testing import FakeClock

#: Status polls until an operation completes, and the server's Retry-After, in these tests.
POLLS = 3
RETRY_AFTER = 2


@pytest.fixture
def service() -> Iterator[DemoService]:
    with DemoService(polls_to_complete=POLLS, retry_after=RETRY_AFTER) as svc:
        yield svc
    assert not svc.running


@pytest.fixture
def client(service: DemoService, clock: FakeClock) -> Iterator[VectorStoreClient]:
    """A client of ``service`` on the suite's fake clock (``clock``, from tests/conftest.py)."""
    with VectorStoreClient(service.endpoint, clock=clock, sleep=clock.sleep) as c:
        yield c
