"""lrokit's pytest plugin: fixtures for testing code that uses lrokit.

pytest loads it by itself once lrokit is installed (the ``pytest11`` entry point ``lrokit``;
``-p no:lrokit`` turns it off). The fixtures, each new per test:

``lrokit_clock``
    a :class:`~lrokit.testing.FakeClock` (waits return at once; ``.sleeps`` records them).
``lrokit_async_clock``
    an :class:`~lrokit.testing.AsyncFakeClock`, for an ``AsyncPipeline``.
``lrokit_endpoint``
    the endpoint of ``lrokit_pipeline``: :data:`~lrokit.testing.TEST_ENDPOINT`. Override
    it (a fixture of the same name in your ``conftest.py``) to use your service's URL.
``lrokit_policy``
    the ``PollingPolicy`` of ``lrokit_pipeline``: polls every second, a fault back-off of
    0.5 s doubling, no floor, a cap of 60 s, so that recorded delays are round numbers.
    Override it to test your own policy.
``lrokit_pipeline``
    a :class:`~lrokit.Pipeline` on ``lrokit_endpoint`` with ``lrokit_policy`` and
    ``lrokit_clock``; closed after the test.
``lrokit_responses``
    a ``responses.RequestsMock`` active for the test (needs ``responses``: ``pip install
    'lrokit[testing]'``); register :class:`~lrokit.testing.LroScript` objects with it.

Only ``lrokit_responses`` imports ``responses``, and only when a test asks for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import responses

    from lrokit import Pipeline, PollingPolicy
    from lrokit.testing import AsyncFakeClock, FakeClock


@pytest.fixture
def lrokit_clock() -> FakeClock:
    """A fake monotonic clock and instant sleeper (``Pipeline(clock=c, sleep=c.sleep)``)."""
    from lrokit.testing import FakeClock  # noqa: PLC0415 - a plugin imports on use

    return FakeClock()


@pytest.fixture
def lrokit_async_clock() -> AsyncFakeClock:
    """A virtual clock and sleeper for an ``AsyncPipeline``."""
    from lrokit.testing import AsyncFakeClock  # noqa: PLC0415

    return AsyncFakeClock()


@pytest.fixture
def lrokit_endpoint() -> str:
    """The endpoint of ``lrokit_pipeline`` (override to use your service's URL)."""
    from lrokit.testing import TEST_ENDPOINT  # noqa: PLC0415

    return TEST_ENDPOINT


@pytest.fixture
def lrokit_policy() -> PollingPolicy:
    """Round-number waiting rules: 1 s polls, 0.5 s doubling back-off, cap 60 s."""
    from lrokit import PollingPolicy  # noqa: PLC0415

    return PollingPolicy(interval=1.0, floor=0.0, cap=60.0, retry_backoff=0.5)


@pytest.fixture
def lrokit_pipeline(
    lrokit_endpoint: str, lrokit_policy: PollingPolicy, lrokit_clock: FakeClock
) -> Iterator[Pipeline]:
    """A ``Pipeline`` on the fake clock; its session is closed after the test."""
    from lrokit import Pipeline  # noqa: PLC0415

    with Pipeline(
        lrokit_endpoint, polling=lrokit_policy, clock=lrokit_clock, sleep=lrokit_clock.sleep
    ) as pipeline:
        yield pipeline


@pytest.fixture
def lrokit_responses() -> Iterator[responses.RequestsMock]:
    """Mocked HTTP for ``requests`` during the test (an unexpected request gets a
    ``ConnectionError``; answers registered but never requested are not an error)."""
    try:
        import responses  # noqa: PLC0415 - only this fixture needs it
    except ImportError as error:
        raise ImportError(
            "the lrokit_responses fixture needs responses: pip install 'lrokit[testing]'"
        ) from error
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock
