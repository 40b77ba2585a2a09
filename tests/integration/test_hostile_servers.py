"""lrokit against hostile servers on 127.0.0.1, through both drivers (requests and httpx).

Each case is bounded in time: the server's handlers end after ``hostile_server.MAX_SECONDS``
whatever the client does, and each wait has a deadline or a retry budget of zero. The
assertions are the documented promises: a wait ends by its deadline plus
``DEADLINE_SLACK`` (docs/waiting.md), a body is held only up to its cap plus a small
constant (tracemalloc), the error is the typed one, and no string lrokit produced (errors,
reprs, log records, span texts, tokens) holds the secret planted in every URL.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hostile_server import SECRET, HostileServer
from lrokit import (
    AsyncOperation,
    AsyncPipeline,
    BodyTooLargeError,
    CancelRejectedError,
    LroError,
    Operation,
    OperationState,
    Pipeline,
    PollingPolicy,
    PollTransportError,
    ProtocolError,
    RetriesExhaustedError,
    WaitTimeoutError,
    disable_tracing,
    enable_tracing,
)

pytestmark = pytest.mark.integration

#: How far past its deadline a wait may end (docs/waiting.md).
DEADLINE_SLACK = 0.1
TIMEOUT = 1.0
#: What a read holds besides the body itself: one chunk, the decoder, the HTTP library's
#: buffers (measured: under 1.5 MiB).
MEMORY_CONSTANT = 2 * 2**20
NO_RETRIES = PollingPolicy(interval=0.05, floor=0.0, max_retries=0)

Driver = Callable[..., Any]


class Run:
    """What one wait did: how long it took, how it ended, and the operation."""

    def __init__(self) -> None:
        self.elapsed = 0.0
        self.error: BaseException | None = None
        self.operation: Any = None
        self.growth = 0


def run_sync(endpoint: str, path: str, wait: dict[str, Any], **settings: Any) -> Run:
    """Start an operation at ``path`` and wait on it; the wait alone is timed and its
    memory growth traced."""
    result = Run()
    with Pipeline(endpoint, polling=settings.pop("polling", NO_RETRIES), **settings) as p:
        result.operation = Operation.start(p, "POST", path)
        with traced_memory(result):
            started = time.monotonic()
            try:
                result.operation.wait_for_completion(**wait)
            except LroError as error:
                result.error = error
            result.elapsed = time.monotonic() - started
    return result


async def _run_async(endpoint: str, path: str, wait: dict[str, Any], **settings: Any) -> Run:
    result = Run()
    polling = settings.pop("polling", NO_RETRIES)
    async with AsyncPipeline(endpoint, polling=polling, **settings) as p:
        result.operation = await AsyncOperation.start(p, "POST", path)
        with traced_memory(result):
            started = time.monotonic()
            try:
                await result.operation.wait_for_completion(**wait)
            except LroError as error:
                result.error = error
            result.elapsed = time.monotonic() - started
    return result


def run_async(endpoint: str, path: str, wait: dict[str, Any], **settings: Any) -> Run:
    """:func:`run_sync` through ``AsyncOperation`` and httpx."""
    return asyncio.run(_run_async(endpoint, path, wait, **settings))


@contextmanager
def traced_memory(result: Run) -> Iterator[None]:
    """Record in ``result.growth`` the peak of memory allocated inside the block above
    what was allocated when it began (bytes)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        yield
        result.growth = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


DRIVERS = pytest.mark.parametrize("run", [run_sync, run_async], ids=["requests", "httpx"])


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with HostileServer(bomb_bytes=256 * 2**20) as hostile:
        yield hostile


# -- 1. deadlines hold against slow and endless answers --------------------------------------


@DRIVERS
@pytest.mark.parametrize("behaviour", ["trickle-headers", "trickle-body"])
def test_a_trickled_answer_does_not_stretch_a_wait(server, run, behaviour) -> None:
    result = run(server.endpoint, f"start/{behaviour}", {"timeout": TIMEOUT})
    assert isinstance(result.error, WaitTimeoutError)
    assert TIMEOUT <= result.elapsed < TIMEOUT + DEADLINE_SLACK


@DRIVERS
def test_request_timeout_bounds_the_whole_request_without_a_wait_deadline(server, run) -> None:
    # No wait deadline: the pipeline's request_timeout alone ends the trickled request,
    # which is a transient fault (the budget of 0 retries ends the wait).
    result = run(server.endpoint, "start/trickle-headers", {}, request_timeout=0.5)
    assert isinstance(result.error, RetriesExhaustedError)
    assert 0.5 <= result.elapsed < 0.5 + DEADLINE_SLACK


@DRIVERS
def test_an_endless_body_ends_at_the_cap_within_the_deadline(server, run) -> None:
    cap = 2 * 2**20
    result = run(server.endpoint, "start/endless", {"timeout": TIMEOUT}, max_status_body_bytes=cap)
    assert isinstance(result.error, BodyTooLargeError)
    assert (result.error.limit, result.error.setting) == (cap, "max_status_body_bytes")
    assert result.elapsed < TIMEOUT + DEADLINE_SLACK
    assert result.growth < cap + MEMORY_CONSTANT


@DRIVERS
def test_an_endless_body_under_a_large_cap_ends_at_the_deadline(server, run) -> None:
    result = run(
        server.endpoint, "start/endless", {"timeout": TIMEOUT}, max_status_body_bytes=2**40
    )
    assert isinstance(result.error, WaitTimeoutError)
    assert TIMEOUT <= result.elapsed < TIMEOUT + DEADLINE_SLACK


# -- 2. bodies are bounded in decoded bytes ---------------------------------------------------


@DRIVERS
def test_a_gzip_bomb_is_read_only_up_to_the_status_cap(server, run) -> None:
    cap = 4 * 2**20  # the default
    result = run(server.endpoint, "start/bomb", {"timeout": 10})
    assert isinstance(result.error, BodyTooLargeError)
    assert result.error.limit == cap
    assert result.growth < cap + MEMORY_CONSTANT
    assert result.error.operation is result.operation
    assert result.error.rehydration_token is not None


@DRIVERS
def test_a_256_mib_final_value_is_read_only_up_to_the_value_cap(server, run) -> None:
    cap = 16 * 2**20
    result = run(server.endpoint, "start/final-huge", {"timeout": 20}, max_value_body_bytes=cap)
    assert isinstance(result.error, BodyTooLargeError)
    assert (result.error.limit, result.error.setting) == (cap, "max_value_body_bytes")
    assert result.growth < cap + MEMORY_CONSTANT
    # Resumable: the final GET is still due, and the token restores.
    operation = result.operation
    assert operation.state is OperationState.RUNNING
    with Pipeline(server.endpoint) as p:
        again = Operation.rehydrate(p, result.error.rehydration_token)
    assert again.core.next_request_url == operation.core.next_request_url


@DRIVERS
def test_a_chunked_body_over_the_value_cap_is_read_only_up_to_it(server, run) -> None:
    cap = 8 * 2**20
    result = run(server.endpoint, "start/final-endless", {"timeout": 20}, max_value_body_bytes=cap)
    assert isinstance(result.error, BodyTooLargeError)
    # A body of unknown length grows its buffer by up to an eighth (docs/waiting.md).
    assert result.growth < cap + cap // 8 + MEMORY_CONSTANT


# -- 3. secrets stay out of every string lrokit produces --------------------------------------


class SecretCancel(Operation[Any]):
    cancel_request = ("POST", "{monitor}:cancel")


class AsyncSecretCancel(AsyncOperation[Any]):
    cancel_request = ("POST", "{monitor}:cancel")


def _strings_of(error: BaseException) -> list[str]:
    found = [str(error), repr(error), *getattr(error, "__notes__", ())]
    for name in ("url", "rehydration_token", "reason"):
        value = getattr(error, name, None)
        if isinstance(value, str):
            found.append(value)
    token = getattr(error, "rehydration_token", None)
    if isinstance(token, str):
        found.append(_decoded(token))
    return found


def _decoded(token: str) -> str:
    payload = token.partition(".")[0]
    return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()


class Collector:
    """Every string an operation produced: errors, reprs, tokens, log records, spans."""

    def __init__(self) -> None:
        self.strings: list[str] = []
        self.errors: list[BaseException] = []

    def call(self, action: Callable[[], object]) -> None:
        try:
            action()
        except LroError as error:
            self.errors.append(error)
            self.strings += _strings_of(error)

    def operation(self, operation: Any) -> None:
        self.strings += [
            repr(operation),
            repr(operation.core),
            _decoded(str(operation.rehydration_token)),
        ]

    def spans(self, exporter: InMemorySpanExporter) -> None:
        for span in exporter.get_finished_spans():
            self.strings += [str(value) for value in span.attributes.values()]
            self.strings.append(str(span.status.description))
            for event in span.events:
                self.strings += [str(value) for value in event.attributes.values()]

    def logs(self, caplog: pytest.LogCaptureFixture) -> None:
        for record in caplog.records:
            self.strings.append(record.getMessage())
            self.strings += [str(value) for value in vars(record).values()]


@pytest.fixture
def traced() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    enable_tracing(provider)
    try:
        yield exporter
    finally:
        disable_tracing()
        provider.shutdown()


SECRET_POLICY = PollingPolicy(interval=0.01, floor=0.0, max_retries=1, retry_backoff=0.01)


def test_no_string_holds_a_secret_planted_in_every_url_field_sync(traced, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="lrokit")
    seen = Collector()
    with HostileServer() as server, Pipeline(server.endpoint, polling=SECRET_POLICY) as p:
        # Start URL, monitor (Operation-Location), Location: all with a secret.
        operation = SecretCancel.start(p, "POST", f"start/secret?sig={SECRET}")
        seen.call(operation.update_status)  # a monitor answer that is not JSON
        seen.call(operation.wait_for_completion)  # ... until the budget is spent
        seen.call(operation.cancel)  # the cancel URL: the monitor's, with its query
        # The final URL (a resourceLocation with a secret), whose answer is not JSON.
        final = Operation.start(p, "POST", f"start/secret-final?sig={SECRET}")
        seen.call(lambda: final.wait_for_completion(timeout=5))
        seen.operation(operation)
        seen.operation(final)
        server.close()  # now no answer at all: the HTTP library's errors quote the URL
        seen.call(operation.update_status)
        seen.call(operation.wait_for_completion)
    seen.spans(traced)
    seen.logs(caplog)
    for kind in (ProtocolError, RetriesExhaustedError, PollTransportError):
        assert any(isinstance(error, kind) for error in seen.errors), kind
    assert any(isinstance(error, CancelRejectedError) for error in seen.errors)
    assert final.core.final_url is not None
    assert SECRET in final.core.final_url  # the secret was really in the final URL
    assert len(seen.strings) > 50
    assert [s for s in seen.strings if SECRET in s] == []


def test_no_string_holds_a_secret_planted_in_every_url_field_async(traced, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="lrokit")
    seen = Collector()

    async def scenario(server: HostileServer) -> None:
        async with AsyncPipeline(server.endpoint, polling=SECRET_POLICY) as p:
            operation = await AsyncSecretCancel.start(p, "POST", f"start/secret?sig={SECRET}")
            await acall(operation.update_status)
            await acall(operation.wait_for_completion)
            await acall(operation.cancel)
            final = await AsyncOperation.start(p, "POST", f"start/secret-final?sig={SECRET}")
            await acall(lambda: final.wait_for_completion(timeout=5))
            seen.operation(operation)
            seen.operation(final)
            server.close()
            await acall(operation.update_status)
            await acall(operation.wait_for_completion)

    async def acall(action: Callable[[], Awaitable[object]]) -> None:
        try:
            await action()
        except LroError as error:
            seen.errors.append(error)
            seen.strings += _strings_of(error)

    with HostileServer() as server:
        asyncio.run(scenario(server))
    seen.spans(traced)
    seen.logs(caplog)
    for kind in (ProtocolError, RetriesExhaustedError, PollTransportError):
        assert any(isinstance(error, kind) for error in seen.errors), kind
    assert any(isinstance(error, CancelRejectedError) for error in seen.errors)
    assert len(seen.strings) > 50
    assert [s for s in seen.strings if SECRET in s] == []
