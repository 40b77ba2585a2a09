"""Fixtures of the async suite: mocked HTTP for httpx, a fake async clock, an AsyncPipeline.

``MockHttp`` plays the role ``responses`` plays for the sync tests: answers queued per
(method, URL) and given in order (the last one repeats), every request recorded, and an
unexpected request fails the test. It is an ``httpx.MockTransport`` handler, so requests go
through the real ``httpx.AsyncClient`` and lrokit's default sender. No test sleeps for real:
``AsyncFakeClock`` records the delays and advances its own time (yielding to the event loop
once, so that other tasks run as they would during a real sleep); it is lrokit's public
``lrokit.testing.AsyncFakeClock``, from the ``lrokit_async_clock`` fixture of lrokit's
pytest plugin.

The tests run on asyncio through anyio's pytest plugin (``pytest.mark.anyio``; the
``anyio_backend`` fixture and the ``policy`` the pipelines use are ``tests/conftest.py``'s).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from async_helpers import MockHttp

from lrokit import AsyncPipeline, PollingPolicy
from lrokit.testing import AsyncFakeClock, LroScript, mock_transport

ENDPOINT = "https://svc.example.com/"


@pytest.fixture
def clock(lrokit_async_clock: AsyncFakeClock) -> AsyncFakeClock:
    """A fresh fake clock per test (the lrokit pytest plugin's)."""
    return lrokit_async_clock


@pytest.fixture
def http() -> MockHttp:
    """Mocked HTTP for httpx."""
    return MockHttp()


@pytest.fixture
async def pipeline(
    anyio_backend: str, http: MockHttp, clock: AsyncFakeClock, policy: PollingPolicy
) -> AsyncIterator[AsyncPipeline]:
    """An async pipeline over the mock, on the fake clock; closed afterwards."""
    async with AsyncPipeline(
        ENDPOINT, http.client(), polling=policy, clock=clock, sleep=clock.sleep
    ) as p:
        yield p


@pytest.fixture
async def serve(
    anyio_backend: str, clock: AsyncFakeClock, policy: PollingPolicy
) -> AsyncIterator[Callable[..., AsyncPipeline]]:
    """``serve(*scripts)``: an async pipeline whose requests lrokit.testing scripts answer
    (through httpx's MockTransport), on the fake clock; closed afterwards."""
    async with contextlib.AsyncExitStack() as stack:

        def make(*scripts: LroScript) -> AsyncPipeline:
            client = httpx.AsyncClient(transport=mock_transport(*scripts))
            stack.push_async_callback(client.aclose)
            pipeline = AsyncPipeline(
                ENDPOINT, client, polling=policy, clock=clock, sleep=clock.sleep
            )
            stack.push_async_callback(pipeline.aclose)
            return pipeline

        yield make
