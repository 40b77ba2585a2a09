"""Logging and OpenTelemetry spans of the async driver: the twin of tests/test_observability.py
(one DEBUG record per processed response and nothing above it on the happy path; a
``lrokit.wait`` span per wait with a ``lrokit.start``/``lrokit.poll`` child per request)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

from lrokit import AsyncOperation, AsyncPipeline, ResponseView, async_wait_all
from lrokit.testing import AsyncFakeClock
from suite_helpers import by_name

pytestmark = pytest.mark.anyio

HOST = "https://svc.example.com"
JOBS = f"{HOST}/jobs?api-version=1"
MONITOR = f"{HOST}/ops/1?api-version=1"
ITEM = f"{HOST}/items/1?api-version=1"


def happy_path(http: Any) -> None:
    """The sync suite's happy path: a PUT, a monitor with progress and Retry-After, a final GET."""
    http.add("PUT", ITEM, status=202, headers={"Operation-Location": "/ops/1", "Retry-After": "2"})
    http.add(
        "GET",
        MONITOR,
        json={"status": "InProgress", "percentComplete": 40},
        headers={"Retry-After": "3"},
    )
    http.add("GET", MONITOR, json={"status": "Running", "percentComplete": 80})
    http.add("GET", MONITOR, json={"status": "Succeeded"})
    http.add("GET", ITEM, json={"id": "vs1", "name": "docs"})


async def test_happy_path_logs_one_debug_record_per_response_and_nothing_above(
    http, pipeline, clock, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    happy_path(http)
    operation = await AsyncOperation.start(pipeline, "PUT", ITEM, json={})
    await operation.wait_for_completion()
    assert operation.value == {"id": "vs1", "name": "docs"}
    assert clock.sleeps == [2.0, 3.0, 1.0]
    # httpx logs each request at INFO itself; lrokit's own loggers stay at DEBUG.
    ours = [r for r in caplog.records if r.name.split(".")[0] == "lrokit"]
    assert {r.levelno for r in ours} == {logging.DEBUG}
    records = [r for r in caplog.records if r.name == "lrokit.operation"]
    fields = [
        (r.lrokit_attempt, r.lrokit_state, r.lrokit_raw_status, r.lrokit_http_status)
        for r in records
    ]
    plans = [(r.lrokit_next_action, r.lrokit_delay, r.lrokit_delay_source) for r in records]
    assert [(*f, *p) for f, p in zip(fields, plans, strict=True)] == [
        (0, "Running", None, 202, "poll", 2.0, "server"),
        (1, "Running", "InProgress", 200, "poll", 3.0, "server"),
        (2, "Running", "Running", 200, "poll", 1.0, "strategy"),
        (3, "Running", "Succeeded", 200, "fetch-final", None, None),
        (3, "Succeeded", "Succeeded", 200, "done", None, None),
    ]
    assert {r.lrokit_operation_id for r in records} == {operation.core.operation_id}


async def test_a_wait_is_one_span_with_a_child_span_per_request(http, pipeline, spans) -> None:
    happy_path(http)
    operation = AsyncOperation.prepare(pipeline, "PUT", ITEM, json={})
    await operation.wait_for_completion()
    (wait,) = by_name(spans, "lrokit.wait")
    (start,) = by_name(spans, "lrokit.start")
    polls = by_name(spans, "lrokit.poll")
    assert len(polls) == 4
    for child in (start, *polls):
        assert child.parent is not None
        assert child.parent.span_id == wait.context.span_id
        assert child.attributes["lrokit.operation.id"] == operation.core.operation_id
    assert (start.attributes["http.request.method"], start.attributes["lrokit.delay"]) == (
        "PUT",
        2.0,
    )
    first = polls[0].attributes
    assert (first["lrokit.status"], first["lrokit.percent_complete"]) == ("InProgress", 40.0)
    assert (first["lrokit.delay"], first["lrokit.delay.source"]) == (3.0, "server")
    assert first["http.response.status_code"] == 200
    assert [p.attributes["lrokit.next_action"] for p in polls] == [
        "poll",
        "poll",
        "fetch-final",
        "done",
    ]
    assert wait.attributes["lrokit.wait.outcome"] == "completed"
    assert wait.attributes["lrokit.state"] == "Succeeded"


class SpanWitness:
    """An AsyncSender that notes which span is current while it "sends" (no network)."""

    transport_errors: tuple[type[BaseException], ...] = (ConnectionError,)

    def __init__(self) -> None:
        self.current: list[str] = []

    async def send(
        self, method: str, url: str, *, headers: Mapping[str, str], **options: Any
    ) -> ResponseView:
        self.current.append(getattr(trace.get_current_span(), "name", "?"))
        if method == "POST":
            return ResponseView.build(202, {"Operation-Location": MONITOR}, b"", url)
        return ResponseView.build(200, {}, b'{"status": "Succeeded"}', url)

    async def aclose(self) -> None:
        pass


async def test_the_request_span_is_current_during_the_request(spans) -> None:
    sender = SpanWitness()
    clock = AsyncFakeClock()
    async with AsyncPipeline(HOST, sender, clock=clock, sleep=clock.sleep) as pipeline:
        operation = await AsyncOperation.start(pipeline, "POST", JOBS)
        await operation.wait_for_completion()
    assert sender.current == ["lrokit.start", "lrokit.poll"]
    assert trace.get_current_span() is trace.INVALID_SPAN


async def test_update_status_spans_are_children_of_the_callers_span(
    http, pipeline, provider, spans
) -> None:
    http.add("POST", JOBS, status=202, headers={"Operation-Location": MONITOR})
    http.add("GET", MONITOR, json={"status": "Running"})
    with provider.get_tracer("app").start_as_current_span("app.request") as parent:
        operation = await AsyncOperation.start(pipeline, "POST", JOBS)
        await operation.update_status()
    assert by_name(spans, "lrokit.wait") == []
    for span in (*by_name(spans, "lrokit.start"), *by_name(spans, "lrokit.poll")):
        assert span.parent is not None
        assert span.parent.span_id == parent.get_span_context().span_id


async def test_a_cancelled_task_and_a_closed_poll_iter_are_stopped_waits(
    http, pipeline, spans
) -> None:
    http.add("POST", JOBS, status=202, headers={"Operation-Location": MONITOR})
    http.add("GET", MONITOR, json={"status": "Running"})
    operation = await AsyncOperation.start(pipeline, "POST", JOBS)
    task = asyncio.ensure_future(operation.wait_for_completion())
    for _ in range(5):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with contextlib.aclosing(operation.poll_iter()) as updates:
        async for _ in updates:
            break
    cancelled, closed = by_name(spans, "lrokit.wait")
    for span in (cancelled, closed):
        assert span.attributes["lrokit.wait.outcome"] == "stopped"
        assert span.status.status_code is StatusCode.UNSET


async def test_async_wait_all_gives_each_operation_its_wait_span(http, pipeline, spans) -> None:
    ops = []
    for number in (1, 2):
        monitor = f"{HOST}/ops/{number}?api-version=1"
        http.add("GET", monitor, json={"status": "Succeeded", "result": number})
        operation = AsyncOperation.from_response(
            pipeline,
            ResponseView.build(202, {"Operation-Location": monitor}, b"", JOBS),
            method="POST",
        )
        ops.append(operation)
    result = await async_wait_all(ops)
    assert [op.value for op in result.done] == [1, 2]
    waits = by_name(spans, "lrokit.wait")
    assert sorted(w.attributes["lrokit.operation.id"] for w in waits) == sorted(
        op.core.operation_id for op in ops
    )
    for poll in by_name(spans, "lrokit.poll"):
        (wait,) = (w for w in waits if w.context.span_id == poll.parent.span_id)
        assert wait.attributes["lrokit.operation.id"] == poll.attributes["lrokit.operation.id"]
