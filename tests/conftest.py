"""Shared fixtures of the unit suite: a fake clock and sleep, a pipeline, mocked HTTP, the
anyio backend of the async tests, and tracing into an in-memory exporter (``spans``; pick
spans out with ``suite_helpers.by_name``).

No unit test opens a socket or really sleeps: HTTP goes through ``responses`` and every wait
goes through lrokit's public :class:`lrokit.testing.FakeClock`, which records the delays it
was asked for and advances its own time instead.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import responses
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import lrokit
from lrokit import Pipeline, PollingPolicy, _observe
from lrokit.testing import FakeClock

ENDPOINT = "https://svc.example.com/"


# lrokit's own suite uses its pytest plugin (lrokit.testing.pytest_plugin, loaded by its
# entry point): the short fixture names below are the plugin's, set to this suite's values.


@pytest.fixture
def lrokit_endpoint() -> str:
    """The suite's service endpoint (overrides the plugin's)."""
    return ENDPOINT


@pytest.fixture
def policy() -> PollingPolicy:
    """A policy with round numbers, so recorded delays are easy to assert."""
    return PollingPolicy(interval=1.0, floor=0.0, cap=60.0, max_retries=2, retry_backoff=0.5)


@pytest.fixture
def lrokit_policy(policy: PollingPolicy) -> PollingPolicy:
    """The plugin's pipeline uses ``policy`` (which test modules may override)."""
    return policy


@pytest.fixture
def clock(lrokit_clock: FakeClock) -> FakeClock:
    """A fresh fake clock per test."""
    return lrokit_clock


@pytest.fixture
def pipeline(lrokit_pipeline: Pipeline) -> Pipeline:
    """A pipeline on the fake clock; its session is closed after the test."""
    return lrokit_pipeline


@pytest.fixture
def rsps(lrokit_responses: responses.RequestsMock) -> responses.RequestsMock:
    """Mocked HTTP for ``requests``; an unexpected request fails with ConnectionError."""
    return lrokit_responses


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio (lrokit's async driver is asyncio-only)."""
    return "asyncio"


@pytest.fixture
def provider() -> Iterator[TracerProvider]:
    """An SDK tracer provider of this test's own (the global one is never set)."""
    provider = TracerProvider()
    yield provider
    provider.shutdown()


@pytest.fixture
def spans(provider: TracerProvider) -> Iterator[InMemorySpanExporter]:
    """Tracing on, into an in-memory exporter; off again afterwards."""
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    lrokit.enable_tracing(provider)
    assert _observe.tracing_enabled()
    yield exporter
    lrokit.disable_tracing()
