"""Logging and OpenTelemetry spans of the sync driver (the async twin: tests/async).

Logging: one DEBUG record per processed response on ``lrokit.operation``, with its fields as
record attributes; nothing at INFO or above on the happy path; no formatting when DEBUG is
off. Tracing: off (and opentelemetry not imported) until ``enable_tracing``; then one
``lrokit.wait`` span per wait and one ``lrokit.start``/``lrokit.poll`` span per request,
checked with the SDK's in-memory exporter.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from opentelemetry import trace
from opentelemetry.trace import StatusCode

import lrokit
from lrokit import (
    Operation,
    OperationState,
    WaitCancelledError,
    WaitTimeoutError,
    _observe,
)
from suite_helpers import by_name

S = OperationState
HOST = "https://svc.example.com"
JOBS = f"{HOST}/jobs?api-version=1"
MONITOR = f"{HOST}/ops/1?api-version=1"
ITEM = f"{HOST}/items/1?api-version=1"


def happy_path(rsps: responses.RequestsMock) -> None:
    """A PUT followed by a monitor (with progress and Retry-After), then the final GET."""
    rsps.put(ITEM, status=202, headers={"Operation-Location": "/ops/1", "Retry-After": "2"})
    rsps.get(
        MONITOR,
        json={"status": "InProgress", "percentComplete": 40},
        headers={"Retry-After": "3"},
    )
    rsps.get(MONITOR, json={"status": "Running", "percentComplete": 80})
    rsps.get(MONITOR, json={"status": "Succeeded"})
    rsps.get(ITEM, json={"id": "vs1", "name": "docs"})


def lrokit_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "lrokit.operation"]


# -- logging -------------------------------------------------------------------------------


def test_happy_path_logs_one_debug_record_per_response_and_nothing_above(
    rsps, pipeline, clock, caplog
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, so that any record above DEBUG shows
    happy_path(rsps)
    operation = Operation.start(pipeline, "PUT", ITEM, json={})
    operation.wait_for_completion()
    assert operation.value == {"id": "vs1", "name": "docs"}
    assert clock.sleeps == [2.0, 3.0, 1.0]

    assert {r.levelno for r in caplog.records} == {logging.DEBUG}
    records = lrokit_records(caplog)
    assert len(records) == len(rsps.calls) == 5  # start, three polls, the final GET
    fields: list[tuple[Any, ...]] = [
        (
            r.lrokit_attempt,
            r.lrokit_state,
            r.lrokit_raw_status,
            r.lrokit_percent_complete,
            r.lrokit_http_status,
            r.lrokit_next_action,
            r.lrokit_delay,
            r.lrokit_delay_source,
        )
        for r in records
    ]
    assert fields == [
        (0, "Running", None, None, 202, "poll", 2.0, "server"),
        (1, "Running", "InProgress", 40.0, 200, "poll", 3.0, "server"),
        (2, "Running", "Running", 80.0, 200, "poll", 1.0, "strategy"),
        (3, "Running", "Succeeded", None, 200, "fetch-final", None, None),
        (3, "Succeeded", "Succeeded", None, 200, "done", None, None),
    ]
    operation_id = operation.core.operation_id
    assert {r.lrokit_operation_id for r in records} == {operation_id}
    assert {r.lrokit_operation_kind for r in records} == {Operation.kind()}
    assert records[1].getMessage() == (
        f"operation {operation_id} attempt 1: Running (status 'InProgress', HTTP 200);"
        " poll in 3 s (server)"
    )
    assert records[3].getMessage().endswith("final GET next")
    assert records[4].getMessage().endswith("Succeeded (status 'Succeeded', HTTP 200); done")


def test_a_transient_fault_is_a_debug_record_with_its_back_off(
    rsps, pipeline, clock, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    rsps.post(JOBS, status=202, headers={"Operation-Location": MONITOR})
    rsps.get(MONITOR, status=503)
    rsps.get(MONITOR, json={"status": "Succeeded", "result": 7})
    operation = Operation.start(pipeline, "POST", JOBS)
    operation.wait_for_completion()
    assert {r.levelno for r in caplog.records} == {logging.DEBUG}
    retry = lrokit_records(caplog)[1]
    assert (retry.lrokit_next_action, retry.lrokit_http_status) == ("retry", 503)
    assert (retry.lrokit_delay, retry.lrokit_delay_source) == (0.5, "strategy")
    assert "transient fault (status None, HTTP 503); retry in 0.5 s (strategy)" in (
        retry.getMessage()
    )
    assert clock.sleeps == [1.0, 0.5]


def test_an_unusable_retry_after_is_the_warning_and_is_off_the_happy_path(
    rsps, pipeline, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    rsps.post(JOBS, status=202, headers={"Operation-Location": MONITOR, "Retry-After": "soon"})
    rsps.get(MONITOR, json={"status": "Succeeded"})
    Operation.start(pipeline, "POST", JOBS).wait_for_completion()
    warnings = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert [(r.name, r.levelno) for r in warnings] == [("lrokit._parse", logging.WARNING)]


def test_nothing_is_formatted_when_debug_is_off(rsps, pipeline, caplog, monkeypatch) -> None:
    caplog.set_level(logging.INFO, logger="lrokit")

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("log_response called with DEBUG off")

    monkeypatch.setattr(_observe, "log_response", refuse)
    happy_path(rsps)
    Operation.start(pipeline, "PUT", ITEM, json={}).wait_for_completion()
    assert lrokit_records(caplog) == []


def test_manual_driving_logs_too(pipeline, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="lrokit")
    operation = Operation.prepare(pipeline, "POST", JOBS)
    operation.apply_status(lrokit.StatusUpdate(S.SUCCEEDED, "done"), {"x": 1})
    (record,) = lrokit_records(caplog)
    assert (record.lrokit_state, record.lrokit_raw_status, record.lrokit_http_status) == (
        "Succeeded",
        "done",
        None,
    )


# -- tracing ------------------------------------------------------------------------------


def test_tracing_is_off_and_opentelemetry_unimported_by_default() -> None:
    program = textwrap.dedent(
        f"""
        import sys, responses
        import lrokit
        from lrokit import Operation, Pipeline

        with responses.RequestsMock() as rsps, Pipeline({HOST!r}) as pipeline:
            rsps.post({JOBS!r}, status=202, headers={{"Operation-Location": {MONITOR!r}}})
            rsps.get({MONITOR!r}, json={{"status": "Succeeded", "result": 1}})
            operation = Operation.start(pipeline, "POST", {JOBS!r})
            operation.wait_for_completion(polling_interval=0)
            assert operation.value == 1
        assert not lrokit._observe.tracing_enabled()
        loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
        assert not loaded, loaded
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


def test_a_wait_is_one_span_with_a_child_span_per_request(rsps, pipeline, spans) -> None:
    happy_path(rsps)
    operation = Operation.prepare(pipeline, "PUT", ITEM, json={})
    operation.wait_for_completion()
    (wait,) = by_name(spans, "lrokit.wait")
    (start,) = by_name(spans, "lrokit.start")
    polls = by_name(spans, "lrokit.poll")
    assert len(polls) == 4  # three polls and the final GET
    for child in (start, *polls):
        assert child.parent is not None
        assert child.parent.span_id == wait.context.span_id
        assert child.context.trace_id == wait.context.trace_id
        assert child.attributes["lrokit.operation.id"] == operation.core.operation_id
        assert child.status.status_code is StatusCode.UNSET
    assert dict(start.attributes) == {
        "lrokit.operation.id": operation.core.operation_id,
        "lrokit.operation.kind": Operation.kind(),
        "http.request.method": "PUT",
        "http.response.status_code": 202,
        "lrokit.attempt": 0,
        "lrokit.state": "Running",
        "lrokit.next_action": "poll",
        "lrokit.delay": 2.0,
        "lrokit.delay.source": "server",
    }
    first = polls[0].attributes
    assert (first["http.request.method"], first["http.response.status_code"]) == ("GET", 200)
    assert (first["lrokit.status"], first["lrokit.percent_complete"]) == ("InProgress", 40.0)
    assert (first["lrokit.delay"], first["lrokit.delay.source"]) == (3.0, "server")
    assert [p.attributes["lrokit.next_action"] for p in polls] == [
        "poll",
        "poll",
        "fetch-final",
        "done",
    ]
    assert "lrokit.delay" not in polls[3].attributes
    assert wait.parent is None
    assert (wait.attributes["lrokit.state"], wait.attributes["lrokit.attempt"]) == (
        "Succeeded",
        3,
    )
    assert wait.attributes["lrokit.wait.outcome"] == "completed"
    assert wait.status.status_code is StatusCode.UNSET
    assert wait.start_time <= start.start_time
    assert polls[-1].end_time <= wait.end_time


def test_the_request_span_is_current_during_the_request(rsps, pipeline, spans) -> None:
    seen: list[str] = []

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        current = trace.get_current_span()
        seen.append(getattr(current, "name", "?"))
        return 200, {"Content-Type": "application/json"}, '{"status": "Succeeded"}'

    rsps.post(JOBS, status=202, headers={"Operation-Location": MONITOR})
    rsps.add_callback("GET", MONITOR, callback=answer)
    Operation.start(pipeline, "POST", JOBS).wait_for_completion()
    assert seen == ["lrokit.poll"]
    assert trace.get_current_span() is trace.INVALID_SPAN  # and nothing leaked afterwards


def test_update_status_spans_are_children_of_the_callers_span(
    rsps, pipeline, provider, spans
) -> None:
    rsps.post(JOBS, status=202, headers={"Operation-Location": MONITOR})
    rsps.get(MONITOR, json={"status": "Running"})
    with provider.get_tracer("app").start_as_current_span("app.request") as parent:
        operation = Operation.start(pipeline, "POST", JOBS)
        operation.update_status()
    (start,) = by_name(spans, "lrokit.start")
    (poll,) = by_name(spans, "lrokit.poll")
    assert by_name(spans, "lrokit.wait") == []
    for span in (start, poll):
        assert span.parent is not None
        assert span.parent.span_id == parent.get_span_context().span_id


def test_faults_mark_their_request_span_as_errors(rsps, pipeline, spans) -> None:
    rsps.post(JOBS, status=202, headers={"Operation-Location": MONITOR})
    rsps.get(MONITOR, status=503)
    rsps.get(MONITOR, body=requests.ConnectionError("reset"))
    rsps.get(MONITOR, json={"status": "Succeeded"})
    Operation.start(pipeline, "POST", JOBS).wait_for_completion()
    unavailable, lost, done = by_name(spans, "lrokit.poll")
    assert unavailable.status.status_code is StatusCode.ERROR
    assert unavailable.status.description == "transient fault (HTTP 503)"
    assert lost.status.status_code is StatusCode.ERROR
    assert [e.name for e in lost.events] == ["exception"]
    assert lost.events[0].attributes["exception.type"] == "lrokit.PollTransportError"
    assert "ConnectionError: reset" in lost.status.description
    assert "http.response.status_code" not in lost.attributes
    assert done.status.status_code is StatusCode.UNSET
    (wait,) = by_name(spans, "lrokit.wait")
    assert wait.attributes["lrokit.wait.outcome"] == "completed"


def test_a_wait_that_ends_early_says_how(rsps, pipeline, clock, spans) -> None:
    rsps.post(JOBS, status=202, headers={"Operation-Location": MONITOR})
    rsps.get(MONITOR, json={"status": "Running"})
    operation = Operation.start(pipeline, "POST", JOBS)
    with pytest.raises(WaitTimeoutError):
        operation.wait_for_completion(timeout=2.5)
    cancel = threading.Event()
    clock.cancel_after = (len(clock.sleeps) + 1, cancel)
    with pytest.raises(WaitCancelledError):
        operation.wait_for_completion(cancel=cancel)
    clock.cancel_after = None
    for update in operation.poll_iter():
        assert update.state is S.RUNNING
        break  # leaving the loop closes the generator
    timed_out, cancelled, stopped = by_name(spans, "lrokit.wait")
    assert timed_out.attributes["lrokit.wait.outcome"] == "timeout"
    assert timed_out.attributes["lrokit.wait.timeout"] == 2.5
    assert timed_out.status.status_code is StatusCode.ERROR
    assert [e.attributes["exception.type"] for e in timed_out.events] == ["lrokit.WaitTimeoutError"]
    assert cancelled.attributes["lrokit.wait.outcome"] == "cancelled"
    assert stopped.attributes["lrokit.wait.outcome"] == "stopped"
    assert stopped.status.status_code is StatusCode.UNSET
    assert {s.attributes["lrokit.state"] for s in (timed_out, cancelled, stopped)} == {"Running"}


def test_a_rejected_poll_ends_both_spans_with_the_error(rsps, pipeline, spans) -> None:
    rsps.post(JOBS, status=202, headers={"Operation-Location": MONITOR})
    rsps.get(MONITOR, status=404, json={"error": {"code": "NotFound", "message": "gone"}})
    with pytest.raises(lrokit.PollRejectedError):
        Operation.start(pipeline, "POST", JOBS).wait_for_completion()
    (poll,) = by_name(spans, "lrokit.poll")
    (wait,) = by_name(spans, "lrokit.wait")
    assert poll.status.status_code is StatusCode.ERROR
    assert wait.attributes["lrokit.wait.outcome"] == "error"
    assert wait.status.status_code is StatusCode.ERROR


def test_disable_tracing_stops_new_spans(rsps, pipeline, spans) -> None:
    lrokit.disable_tracing()
    assert not _observe.tracing_enabled()
    rsps.post(JOBS, status=202, headers={"Operation-Location": MONITOR})
    rsps.get(MONITOR, json={"status": "Succeeded"})
    Operation.start(pipeline, "POST", JOBS).wait_for_completion()
    assert spans.get_finished_spans() == ()


def test_enable_tracing_without_opentelemetry_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"lrokit\[otel\]"):
        lrokit.enable_tracing()
    assert not _observe.tracing_enabled()


def test_the_docs_list_every_record_field_and_span_attribute() -> None:
    page = (Path(__file__).resolve().parents[1] / "docs" / "observability.md").read_text()
    for name in (*_observe.RECORD_FIELDS, *_observe.SPAN_ATTRIBUTES):
        assert f"| `{name}` |" in page, name
