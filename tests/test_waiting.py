"""Waiting rules through the sync Operation: delays, Retry-After, deadlines, stopping the wait,
service-side cancel, transient faults and safe start retries.

HTTP goes through ``responses``; time through the fake clock of ``conftest.py`` (or freezegun
for HTTP-dates), so no test sleeps except the two that check real prompt wake-ups (< 0.1 s).
The ``policy`` fixture: interval 1 s, floor 0, cap 60 s, max_retries 2, retry back-off 0.5 s.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any

import pytest
import requests
import responses
from freezegun import freeze_time

from lrokit import (
    CancelNotSupportedError,
    CancelRejectedError,
    DelaySequence,
    DelaySource,
    ExponentialDelay,
    InvalidTransitionError,
    LroError,
    Operation,
    OperationCanceledError,
    OperationCore,
    OperationNotCompleteError,
    OperationState,
    Pipeline,
    PollEvent,
    PollingDelay,
    PollingPolicy,
    PollRejectedError,
    PollTransportError,
    ProtocolError,
    RehydrationToken,
    ResponseView,
    RetriesExhaustedError,
    StartOutcomeUnknownError,
    StartRejectedError,
    StateChange,
    UntrustedOriginError,
    WaitCancelledError,
    WaitTimeoutError,
)
from lrokit._delay import DEFAULT_STRATEGY
from lrokit._pipeline import default_sleep

S = OperationState
HOST = "https://svc.example.com"
JOBS = f"{HOST}/jobs?api-version=1"
MONITOR = f"{HOST}/ops/1?api-version=1"
ITEM = f"{HOST}/items/1?api-version=1"
STRATEGY, SERVER, FLOOR, CAP = (
    DelaySource.STRATEGY,
    DelaySource.SERVER,
    DelaySource.FLOOR,
    DelaySource.CAP,
)


def start_job(
    rsps: responses.RequestsMock,
    pipeline: Pipeline,
    *,
    headers: dict[str, str] | None = None,
    cls: type[Operation[Any]] = Operation,
) -> Operation[Any]:
    rsps.post(JOBS, status=202, headers={"Operation-Location": "/ops/1", **(headers or {})})
    return cls.start(pipeline, "POST", JOBS)


def monitor(rsps: responses.RequestsMock, *answers: str | int, **kw: Any) -> None:
    """Queue monitor answers: status words, or HTTP codes for bare errors."""
    for answer in answers:
        if isinstance(answer, int):
            rsps.get(MONITOR, status=answer, **kw)
        else:
            body: dict[str, Any] = {"status": answer}
            if answer == "Succeeded":
                body["result"] = {"id": "vs1"}
            rsps.get(MONITOR, json=body, **kw)


def with_policy(clock: Any, **settings: Any) -> Pipeline:
    """A pipeline on the fake clock with a policy of its own."""
    return Pipeline(HOST, polling=PollingPolicy(**settings), clock=clock, sleep=clock.sleep)


# -- the delay rule, end to end -----------------------------------------------------------------


def test_an_explicit_interval_is_a_fixed_strategy_and_a_longer_hint_wins(
    rsps, pipeline, clock
) -> None:
    operation = start_job(rsps, pipeline)
    rsps.get(MONITOR, json={"status": "Running"}, headers={"Retry-After": "5"})
    rsps.get(MONITOR, json={"status": "Running"}, headers={"Retry-After": "1"})
    monitor(rsps, "Succeeded")
    operation.wait_for_completion(polling_interval=2)
    assert clock.sleeps == [2.0, 5.0, 2.0]


def test_the_policy_strategy_sees_the_attempt_number(rsps, clock) -> None:
    with with_policy(clock, strategy=DelaySequence([1, 2, 4])) as pipeline:
        operation = start_job(rsps, pipeline)
        monitor(rsps, "Running", "Running", "Running", "Succeeded")
        operation.wait_for_completion()
    assert clock.sleeps == [1.0, 2.0, 4.0, 4.0]  # then the last, for ever


def test_polling_interval_may_be_a_strategy_or_a_function(rsps, pipeline, clock) -> None:
    operation = start_job(rsps, pipeline)
    monitor(rsps, "Running", "Running", "Succeeded")
    operation.wait_for_completion(polling_interval=lambda attempt: attempt / 10)
    assert clock.sleeps == [0.1, 0.2, 0.3]


def test_the_default_strategy_starts_at_about_a_second(rsps, clock) -> None:
    with Pipeline(HOST, clock=clock, sleep=clock.sleep) as pipeline:
        operation = start_job(rsps, pipeline)
        monitor(rsps, *["Running"] * 9, "Succeeded")
        operation.wait_for_completion()
    assert len(clock.sleeps) == 10
    for attempt, slept in enumerate(clock.sleeps, start=1):
        base = DEFAULT_STRATEGY.base(attempt)  # type: ignore[attr-defined]
        assert 0.8 * base < slept <= base


@pytest.mark.parametrize(
    ("settings", "interval", "hint", "expected"),
    [
        ({"interval": 1}, None, None, PollingDelay(1.0, STRATEGY)),
        ({"interval": 1}, 2, "5", PollingDelay(5.0, SERVER)),
        ({"interval": 1, "floor": 0.5}, 0.1, None, PollingDelay(0.5, FLOOR)),
        ({"interval": 1, "cap": 10}, None, "3600", PollingDelay(10.0, CAP)),
    ],
)
def test_the_chosen_delay_and_its_source_are_on_the_operation_and_in_poll_events(
    rsps, clock, settings, interval, hint, expected
) -> None:
    headers = {} if hint is None else {"Retry-After": hint}
    with with_policy(clock, **settings) as pipeline:
        rsps.post(JOBS, status=202, headers={"Operation-Location": MONITOR})
        operation = Operation.prepare(pipeline, "POST", JOBS)
        events: list[PollEvent[Any]] = []
        operation.on_poll(events.append)
        rsps.get(MONITOR, json={"status": "Running"}, headers=headers)
        monitor(rsps, "Succeeded")
        operation.wait_for_completion(polling_interval=interval)
    assert events[1].next_delay == expected  # after the first poll
    assert clock.sleeps[1] == expected.seconds
    assert events[-1].next_delay is None  # completed: nothing to wait for
    assert operation.last_delay is None


def test_a_jittered_delay_is_drawn_once_so_hooks_see_what_is_slept(rsps, clock) -> None:
    strategy = ExponentialDelay(1, factor=2, max_delay=8, jitter=0.5, rng=random.Random(3))
    with with_policy(clock, strategy=strategy) as pipeline:
        rsps.post(JOBS, status=202, headers={"Operation-Location": MONITOR})
        operation = Operation.prepare(pipeline, "POST", JOBS)
        shown: list[float] = []
        operation.on_poll(lambda e: shown.append(e.next_delay.seconds) if e.next_delay else None)
        monitor(rsps, *["Running"] * 6, "Succeeded")
        operation.wait_for_completion()
    assert clock.sleeps == shown
    for attempt, slept in enumerate(clock.sleeps, start=1):
        assert 0.5 * strategy.base(attempt) < slept <= strategy.base(attempt)
    assert len(set(clock.sleeps)) == len(clock.sleeps)  # really jittered


def test_update_status_then_wait_with_another_interval_replans(rsps, pipeline, clock) -> None:
    operation = start_job(rsps, pipeline)
    monitor(rsps, "Running", "Succeeded")
    operation.update_status()
    assert operation.last_delay == PollingDelay(1.0, STRATEGY)
    operation.wait_for_completion(polling_interval=3)
    assert clock.sleeps == [3.0]


# -- Retry-After forms ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"Retry-After": "2.5"}, 2.5),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"x-ms-retry-after-ms": "4000"}, 4.0),
        ({"retry-after-ms": "7000", "Retry-After": "2"}, 7.0),  # milliseconds first
        ({"retry-after-ms": "oops", "Retry-After": "4"}, 4.0),  # unusable: the next one
        ({"Retry-After": "0.2"}, 1.0),  # shorter than the interval: the interval
    ],
)
def test_retry_after_forms(rsps, pipeline, clock, headers, expected) -> None:
    operation = start_job(rsps, pipeline, headers=headers)
    monitor(rsps, "Succeeded")
    operation.wait_for_completion()
    assert clock.sleeps == [expected]


@freeze_time("2015-10-21 07:27:50", tz_offset=0)
def test_retry_after_as_an_http_date(rsps, pipeline, clock) -> None:
    operation = start_job(rsps, pipeline, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    rsps.get(
        MONITOR,
        json={"status": "Running"},
        headers={"Retry-After": "Wed, 21 Oct 2015 07:00:00 GMT"},  # passed: 0 s, the interval
    )
    monitor(rsps, "Succeeded")
    operation.wait_for_completion()
    assert clock.sleeps == [10.0, 1.0]


@pytest.mark.parametrize(
    "value", ["soon", "-1", "nan", "inf", "1e9", "Wed, 21 Oct 2015 07:28:00", "", "3 s"]
)
def test_garbage_retry_after_is_ignored_with_a_log_record(
    rsps, pipeline, clock, caplog, value
) -> None:
    caplog.set_level(logging.WARNING, logger="lrokit")
    operation = start_job(rsps, pipeline, headers={"Retry-After": value})
    monitor(rsps, "Succeeded")
    operation.wait_for_completion()
    assert clock.sleeps == [1.0]  # as if there were no hint
    records = [r for r in caplog.records if r.name.startswith("lrokit")]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert "retry-after" in records[0].getMessage()
    assert repr(value) in records[0].getMessage()


def test_a_huge_garbage_value_is_logged_shortened(rsps, pipeline, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="lrokit")
    start_job(rsps, pipeline, headers={"retry-after-ms": "x" * 5000})
    (record,) = [r for r in caplog.records if r.name.startswith("lrokit")]
    assert len(record.getMessage()) < 200


# -- deadlines -------------------------------------------------------------------------------


def test_the_wait_ends_at_the_deadline_not_one_delay_later(rsps, pipeline, clock) -> None:
    operation = start_job(rsps, pipeline, headers={"Retry-After": "30"})
    started = clock.now
    with pytest.raises(WaitTimeoutError):
        operation.wait_for_completion(timeout=5)
    assert clock.sleeps == [5.0]
    assert clock.now - started == 5.0
    rsps.assert_call_count(MONITOR, 0)  # no request at the deadline


def test_the_timeout_error_carries_the_last_status_and_the_token(rsps, pipeline, clock) -> None:
    operation = start_job(rsps, pipeline)
    rsps.get(MONITOR, json={"status": "InProgress", "percentComplete": 40})
    with pytest.raises(WaitTimeoutError) as info:
        operation.wait_for_completion(polling_interval=2, timeout=3)
    error = info.value
    assert error.state is S.RUNNING
    assert error.status is not None
    assert (error.status.raw_status, error.status.percent_complete) == ("InProgress", 40.0)
    assert error.rehydration_token is not None
    assert RehydrationToken.parse(error.rehydration_token).fields.state == "Running"
    assert isinstance(error, TimeoutError)
    assert clock.sleeps == [2.0, 1.0]
    with pytest.raises(OperationNotCompleteError):  # never a half-finished value
        _ = operation.value


def test_the_deadline_holds_while_backing_off_from_faults(rsps, clock) -> None:
    with with_policy(clock, interval=1, max_retries=100, retry_backoff=0.5) as pipeline:
        operation = start_job(rsps, pipeline)
        monitor(rsps, 503)
        started = clock.now
        with pytest.raises(WaitTimeoutError):
            operation.wait_for_completion(timeout=4)
    assert clock.now - started == pytest.approx(4.0)
    assert clock.sleeps == [1.0, 0.5, 1.0, 1.5]  # the 2 s back-off is cut to the deadline
    rsps.assert_call_count(MONITOR, 3)


def test_the_deadline_bounds_the_request_in_flight(rsps, clock) -> None:
    with Pipeline(
        HOST, polling=PollingPolicy(interval=2), clock=clock, sleep=clock.sleep, request_timeout=30
    ) as pipeline:
        operation = start_job(rsps, pipeline)
        monitor(rsps, "Running", "Running")
        with pytest.raises(WaitTimeoutError):
            operation.wait_for_completion(timeout=5)
        assert [c.request.req_kwargs["timeout"] for c in rsps.calls[1:]] == [3.0, 1.0]
        operation.update_status()  # no deadline: the pipeline's own timeout
        assert rsps.calls[-1].request.req_kwargs["timeout"] == 30


def test_a_connect_read_pair_is_bounded_too(rsps, clock) -> None:
    with Pipeline(
        HOST,
        polling=PollingPolicy(interval=2),
        clock=clock,
        sleep=clock.sleep,
        request_timeout=(1.0, 60.0),
    ) as pipeline:
        operation = start_job(rsps, pipeline)
        monitor(rsps, "Succeeded")
        operation.wait_for_completion(timeout=10)
    assert rsps.calls[1].request.req_kwargs["timeout"] == (1.0, 8.0)


def test_a_request_that_times_out_at_the_deadline_is_a_timeout_not_a_fault(rsps, clock) -> None:
    with with_policy(clock, interval=1, max_retries=0) as pipeline:
        operation = start_job(rsps, pipeline)

        def slow_answer(request: Any) -> Any:
            clock.now += 10  # the request ran into the deadline
            raise requests.ReadTimeout("read timed out")

        rsps.add_callback(responses.GET, MONITOR, callback=slow_answer)
        with pytest.raises(WaitTimeoutError) as info:
            operation.wait_for_completion(timeout=3)
    assert isinstance(info.value.__cause__, requests.ReadTimeout)
    assert operation.consecutive_failures == 0


def test_the_deadline_bounds_the_start_request_too(rsps, clock) -> None:
    with Pipeline(
        HOST, polling=PollingPolicy(interval=1), clock=clock, sleep=clock.sleep, request_timeout=30
    ) as pipeline:
        rsps.put(ITEM, status=202, headers={"Operation-Location": MONITOR})
        monitor(rsps, "Succeeded")
        rsps.get(ITEM, json={"id": "1"})
        Operation.prepare(pipeline, "PUT", ITEM).wait_for_completion(timeout=7)
        assert rsps.calls[0].request.req_kwargs["timeout"] == 7.0

        def lost(request: Any) -> Any:
            clock.now += 10
            raise requests.ConnectTimeout("no connection")

        rsps.add_callback(responses.PUT, f"{HOST}/other", callback=lost)
        with pytest.raises(WaitTimeoutError) as info:
            Operation.prepare(pipeline, "PUT", f"{HOST}/other").wait_for_completion(timeout=3)
    assert isinstance(info.value.__cause__, requests.ConnectTimeout)
    assert info.value.state is S.NOT_STARTED


# -- stopping the wait (client side) -----------------------------------------------------------


def test_a_set_event_interrupts_a_real_sleep_promptly(rsps) -> None:
    with Pipeline(HOST, polling=PollingPolicy(interval=10)) as pipeline:
        operation = start_job(rsps, pipeline)
        cancel = threading.Event()
        timer = threading.Timer(0.05, cancel.set)
        started = time.monotonic()
        timer.start()
        try:
            with pytest.raises(WaitCancelledError) as info:
                operation.wait_for_completion(cancel=cancel)
        finally:
            timer.cancel()
            timer.join()
    assert time.monotonic() - started < 1.0  # well under the 10 s delay
    assert info.value.state is S.RUNNING
    assert info.value.rehydration_token is not None
    rsps.assert_call_count(MONITOR, 0)


def test_default_sleep_wakes_on_the_event() -> None:
    cancel = threading.Event()
    assert default_sleep(0.01, cancel) is False
    assert default_sleep(0.01, None) is False
    timer = threading.Timer(0.02, cancel.set)
    started = time.monotonic()
    timer.start()
    try:
        assert default_sleep(5.0, cancel) is True
    finally:
        timer.join()
    assert time.monotonic() - started < 1.0


def test_stopping_the_wait_leaves_the_operation_resumable(rsps, pipeline, clock) -> None:
    operation = start_job(rsps, pipeline)
    monitor(rsps, "Running", "Succeeded")
    cancel = threading.Event()
    clock.cancel_after = (2, cancel)
    with pytest.raises(WaitCancelledError) as info:
        operation.wait_for_completion(cancel=cancel)
    assert info.value.status is not None
    assert info.value.status.raw_status == "Running"
    clock.cancel_after = None
    operation.wait_for_completion()  # the same object, waited on again
    assert operation.value == {"id": "vs1"}


def test_stopping_the_wait_during_start_retries(rsps, clock) -> None:
    with with_policy(clock, interval=1, retry_backoff=0.5) as pipeline:
        rsps.put(ITEM, status=503)
        operation = Operation.prepare(pipeline, "PUT", ITEM)
        cancel = threading.Event()
        clock.cancel_after = (1, cancel)
        with pytest.raises(WaitCancelledError):
            operation.wait_for_completion(cancel=cancel)
        assert operation.state is S.NOT_STARTED
        assert len(rsps.calls) == 1
        clock.cancel_after = None
        rsps.replace(responses.PUT, ITEM, status=200, json={"id": "x"})
        operation.wait_for_completion()  # the start is still there to send
    assert operation.value == {"id": "x"}


def test_start_retries_respect_the_deadline(rsps, clock) -> None:
    with with_policy(clock, interval=1, max_retries=50, retry_backoff=1) as pipeline:
        rsps.put(ITEM, status=503)
        operation = Operation.prepare(pipeline, "PUT", ITEM)
        with pytest.raises(WaitTimeoutError):
            operation.wait_for_completion(timeout=2.5)
    assert clock.sleeps == [1.0, 1.5]
    assert len(rsps.calls) == 2


# -- transient faults on polls ------------------------------------------------------------------


@pytest.mark.parametrize("code", [408, 429, 500, 502, 503, 504])
def test_transient_answers_are_retried(rsps, pipeline, clock, code) -> None:
    operation = start_job(rsps, pipeline)
    monitor(rsps, code, "Succeeded")
    operation.wait_for_completion()
    assert clock.sleeps == [1.0, 0.5]
    assert operation.state is S.SUCCEEDED


@pytest.mark.parametrize("code", [400, 401, 403, 404, 409, 501, 505])
def test_other_errors_are_not_retried(rsps, pipeline, code) -> None:
    operation = start_job(rsps, pipeline)
    monitor(rsps, code)
    with pytest.raises(PollRejectedError) as info:
        operation.wait_for_completion()
    assert not isinstance(info.value, RetriesExhaustedError)
    rsps.assert_call_count(MONITOR, 1)


@pytest.mark.parametrize(
    "error",
    [
        requests.ConnectionError,
        requests.ConnectTimeout,
        requests.ReadTimeout,
        requests.exceptions.ChunkedEncodingError,
    ],
)
def test_answers_that_never_arrive_are_retried(rsps, pipeline, clock, error) -> None:
    operation = start_job(rsps, pipeline)
    rsps.get(MONITOR, body=error("lost"))
    monitor(rsps, "Succeeded")
    operation.wait_for_completion()
    assert clock.sleeps == [1.0, 0.5]
    assert operation.state is S.SUCCEEDED


@pytest.mark.parametrize(
    "body",
    ["", '{"status": "Succ', "<html>502 Bad Gateway</html>", b'{"status": "\xff"}', b"[" * 5000],
)
def test_unreadable_bodies_are_retried_and_change_nothing(rsps, pipeline, clock, body) -> None:
    operation = start_job(rsps, pipeline)
    changes: list[StateChange[Any]] = []
    events: list[PollEvent[Any]] = []
    operation.on_change(changes.append)
    operation.on_poll(events.append)
    rsps.get(MONITOR, body=body, status=200)
    monitor(rsps, "Succeeded")
    operation.wait_for_completion()
    assert clock.sleeps == [1.0, 0.5]
    assert events[0].state is S.RUNNING
    assert events[0].status is None
    assert events[0].next_delay == PollingDelay(0.5, STRATEGY)
    assert [(c.previous, c.state) for c in changes] == [(S.RUNNING, S.SUCCEEDED)]


def test_the_budget_counts_consecutive_faults_only(rsps, pipeline, clock) -> None:
    operation = start_job(rsps, pipeline)  # max_retries=2
    monitor(rsps, 503, 503, "Running", 503, 503, "Succeeded")
    operation.wait_for_completion()
    assert clock.sleeps == [1.0, 0.5, 1.0, 1.0, 0.5, 1.0]
    assert operation.state is S.SUCCEEDED


def test_a_longer_server_hint_wins_over_the_backoff(rsps, pipeline, clock) -> None:
    operation = start_job(rsps, pipeline)
    monitor(rsps, 429, headers={"retry-after-ms": "2500"})
    monitor(rsps, "Succeeded")
    operation.update_status()
    assert operation.last_delay == PollingDelay(2.5, SERVER)
    assert operation.consecutive_failures == 1
    operation.wait_for_completion()
    assert clock.sleeps == [2.5]


def test_exhausted_retries_raise_a_typed_error_that_keeps_the_token(rsps, pipeline) -> None:
    operation = start_job(rsps, pipeline)
    monitor(rsps, 503, 502, 504, "Succeeded")
    with pytest.raises(RetriesExhaustedError) as info:
        operation.wait_for_completion()
    error = info.value
    assert isinstance(error, PollRejectedError)
    assert (error.status_code, error.failures) == (504, 3)
    assert error.response.status_code == 504
    assert RehydrationToken.parse(error.rehydration_token).fields.state == "Running"
    assert operation.state is S.RUNNING
    assert operation.consecutive_failures == 0  # the count starts over
    operation.wait_for_completion()
    assert operation.state is S.SUCCEEDED


def test_exhaustion_through_manual_receive_names_the_last_status(pipeline) -> None:
    operation = Operation(pipeline, OperationCore("POST", JOBS))
    operation.receive(ResponseView.build(202, {"Operation-Location": MONITOR}))
    operation.receive(ResponseView.build(503))
    operation.receive(ResponseView.build(503))
    with pytest.raises(RetriesExhaustedError) as info:
        operation.receive(ResponseView.build(502))
    assert (info.value.status_code, info.value.failures) == (502, 3)


def test_max_retries_zero_turns_retrying_off(rsps, clock) -> None:
    with with_policy(clock, interval=1, max_retries=0) as pipeline:
        operation = start_job(rsps, pipeline)
        rsps.get(MONITOR, body=requests.ConnectionError("refused"))
        with pytest.raises(RetriesExhaustedError) as info:
            operation.wait_for_completion()
    assert info.value.status_code == 0
    assert info.value.failures == 1
    assert isinstance(info.value.__cause__, requests.ConnectionError)
    rsps.assert_call_count(MONITOR, 1)


def test_the_final_get_is_retried_too(rsps, pipeline, clock) -> None:
    rsps.put(ITEM, status=202, headers={"Operation-Location": MONITOR})
    monitor(rsps, "Succeeded")
    rsps.get(ITEM, status=503)
    rsps.get(ITEM, body="{trunc", status=200)
    rsps.get(ITEM, json={"id": "done"})
    operation = Operation.start(pipeline, "PUT", ITEM)
    operation.wait_for_completion()
    assert clock.sleeps == [1.0, 0.5, 1.0]  # poll; no wait before the final GET; 2 back-offs
    assert operation.value == {"id": "done"}


# -- update_status: one request, typed outcomes -----------------------------------------------


def test_update_status_on_a_lost_answer_raises_a_typed_counted_error(rsps, pipeline) -> None:
    operation = start_job(rsps, pipeline)
    rsps.get(MONITOR, body=requests.ConnectionError("reset"))
    with pytest.raises(PollTransportError) as first:
        operation.update_status()
    assert (first.value.failures, first.value.retries_left) == (1, 1)
    assert isinstance(first.value.__cause__, requests.ConnectionError)
    assert first.value.rehydration_token is not None
    assert operation.last_delay == PollingDelay(0.5, STRATEGY)
    assert operation.state is S.RUNNING
    with pytest.raises(PollTransportError) as second:
        operation.update_status()
    assert (second.value.failures, second.value.retries_left) == (2, 0)
    with pytest.raises(RetriesExhaustedError) as spent:
        operation.update_status()
    assert spent.value.status_code == 0
    assert not isinstance(spent.value, PollTransportError)  # `except PollTransportError` ends
    rsps.assert_call_count(MONITOR, 3)


def test_update_status_returns_none_only_when_nothing_is_left(rsps, pipeline) -> None:
    operation = start_job(rsps, pipeline)
    monitor(rsps, 503, "Succeeded")
    answer = operation.update_status()
    assert answer is not None
    assert answer.status_code == 503  # a transient answer is returned; nothing changed
    assert operation.state is S.RUNNING
    assert operation.consecutive_failures == 1
    assert operation.update_status() is not None
    assert operation.state is S.SUCCEEDED
    assert operation.update_status() is None
    rsps.assert_call_count(MONITOR, 2)


def test_update_status_raises_for_an_unreadable_body_and_counts_it(rsps, pipeline) -> None:
    operation = start_job(rsps, pipeline)
    rsps.get(MONITOR, body="<html>", status=200)
    monitor(rsps, "Running")
    with pytest.raises(ProtocolError):
        operation.update_status()
    assert operation.consecutive_failures == 1
    assert operation.state is S.RUNNING
    operation.update_status()
    assert operation.consecutive_failures == 0


def test_a_readable_answer_without_status_is_not_retried(rsps, pipeline) -> None:
    operation = start_job(rsps, pipeline)
    rsps.get(MONITOR, json={"percentComplete": 5})
    with pytest.raises(ProtocolError, match="no readable status"):
        operation.wait_for_completion()
    rsps.assert_call_count(MONITOR, 1)
    assert operation.consecutive_failures == 0


# -- start retries: only when safe ---------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_idempotent_starts_are_retried(rsps, pipeline, clock, method) -> None:
    rsps.add(method, ITEM, status=503, headers={"Retry-After": "2"})
    rsps.add(method, ITEM, body=requests.ConnectionError("reset"))
    rsps.add(method, ITEM, status=202, headers={"Operation-Location": MONITOR})
    operation = Operation.start(pipeline, method, ITEM)
    assert operation.state is S.RUNNING
    assert clock.sleeps == [2.0, 1.0]  # the server's hint, then the back-off
    assert len(rsps.calls) == 3


def test_a_post_start_is_never_repeated_blindly(rsps, pipeline) -> None:
    # 502 may come after the request reached the service (429/500/503/504 are retried for
    # every method, see tests/test_arm_rules.py); no answer at all may too.
    rsps.post(JOBS, status=502)
    with pytest.raises(StartRejectedError) as info:
        Operation.start(pipeline, "POST", JOBS)
    assert info.value.status_code == 502
    rsps.replace(responses.POST, JOBS, body=requests.ConnectionError("reset"))
    with pytest.raises(StartOutcomeUnknownError) as lost:
        Operation.start(pipeline, "POST", JOBS)
    assert isinstance(lost.value.__cause__, requests.ConnectionError)
    assert (lost.value.method, lost.value.reason) == ("POST", "no answer")
    assert lost.value.operation.start_outcome_unknown
    with pytest.raises(StartOutcomeUnknownError):
        lost.value.operation.wait_for_completion()  # not sent again
    assert len(rsps.calls) == 2
    assert all("Operation-Id" not in c.request.headers for c in rsps.calls)


def test_idempotent_true_sends_an_operation_id_and_retries(rsps, pipeline, clock) -> None:
    rsps.post(JOBS, status=500)
    rsps.post(JOBS, body=requests.ReadTimeout("no answer"))
    rsps.post(JOBS, status=202, headers={"Operation-Location": MONITOR})
    operation = Operation.start(pipeline, "POST", JOBS, idempotent=True)
    ids = {c.request.headers["Operation-Id"] for c in rsps.calls}
    assert ids == {operation.core.operation_id}
    assert len(rsps.calls) == 3
    assert clock.sleeps == [0.5, 1.0]
    monitor(rsps, "Succeeded")
    operation.update_status()
    assert "Operation-Id" not in rsps.calls[-1].request.headers  # polls do not carry it


def test_a_callers_operation_id_makes_the_start_safe_too(rsps, pipeline) -> None:
    rsps.post(JOBS, status=503)
    rsps.post(JOBS, status=202, headers={"Operation-Location": MONITOR})
    Operation.start(pipeline, "POST", JOBS, headers={"operation-id": "abc-1"}, idempotent=True)
    assert [c.request.headers["Operation-Id"] for c in rsps.calls] == ["abc-1", "abc-1"]


def test_start_retries_are_bounded(rsps, pipeline) -> None:
    rsps.put(ITEM, status=503)
    with pytest.raises(StartRejectedError) as info:
        Operation.start(pipeline, "PUT", ITEM)
    assert info.value.status_code == 503
    assert len(rsps.calls) == 3  # max_retries=2
    rsps.replace(responses.PUT, ITEM, body=requests.ConnectionError("down"))
    with pytest.raises(requests.ConnectionError):
        Operation.start(pipeline, "PUT", ITEM)
    assert len(rsps.calls) == 6


def test_a_start_refused_for_good_is_not_retried(rsps, pipeline) -> None:
    rsps.put(ITEM, status=409, json={"error": {"code": "Conflict"}})
    with pytest.raises(StartRejectedError):
        Operation.start(pipeline, "PUT", ITEM)
    assert len(rsps.calls) == 1


# -- cancelling the operation (service side) ---------------------------------------------------


class CancellableOperation(Operation[Any]):
    """A service with POST {monitor}:cancel."""

    cancel_request = ("POST", "{monitor}:cancel")


CANCEL = f"{HOST}/ops/1:cancel?api-version=1"


def test_cancel_is_not_supported_by_default(rsps, pipeline) -> None:
    operation = start_job(rsps, pipeline)
    with pytest.raises(CancelNotSupportedError, match="cancel_request") as info:
        operation.cancel()
    assert isinstance(info.value, NotImplementedError)
    assert len(rsps.calls) == 1
    assert operation.state is S.RUNNING


def test_cancel_moves_to_canceled_when_the_service_confirms(rsps, pipeline) -> None:
    operation = start_job(rsps, pipeline, cls=CancellableOperation)
    changes: list[StateChange[Any]] = []
    operation.on_change(changes.append)
    rsps.post(CANCEL, json={"status": "Canceled", "error": {"code": "Canceled"}})
    response = operation.cancel()
    assert response.status_code == 200
    assert operation.get_raw_response() is response
    assert operation.state is S.CANCELED
    assert [(c.previous, c.state) for c in changes] == [(S.RUNNING, S.CANCELED)]
    with pytest.raises(OperationCanceledError):
        _ = operation.value
    assert operation.update_status() is None


def test_cancel_accepted_but_not_yet_done_changes_nothing(rsps, pipeline, clock) -> None:
    operation = start_job(rsps, pipeline, cls=CancellableOperation)
    rsps.post(CANCEL, status=202, json={"status": "Cancelling"})
    operation.cancel()
    assert operation.state is S.RUNNING  # "Cancelling" is not Canceled
    rsps.replace(responses.POST, CANCEL, status=202)  # no body at all
    operation.cancel()
    assert operation.state is S.RUNNING
    monitor(rsps, "Canceled")
    operation.wait_for_completion()  # the poll reports the outcome
    assert operation.state is S.CANCELED


def test_cancel_refused_by_the_service(rsps, pipeline) -> None:
    operation = start_job(rsps, pipeline, cls=CancellableOperation)
    rsps.post(CANCEL, status=409, json={"error": {"code": "AlreadyDone", "message": "late"}})
    with pytest.raises(CancelRejectedError) as info:
        operation.cancel()
    assert info.value.status_code == 409
    assert info.value.service_error is not None
    assert info.value.service_error.code == "AlreadyDone"
    assert info.value.rehydration_token is not None
    assert operation.state is S.RUNNING


def test_cancel_of_a_completed_or_unstarted_operation_sends_nothing(rsps, pipeline) -> None:
    operation = start_job(rsps, pipeline, cls=CancellableOperation)
    monitor(rsps, "Succeeded")
    operation.update_status()
    with pytest.raises(InvalidTransitionError):
        operation.cancel()
    prepared = CancellableOperation.prepare(pipeline, "POST", JOBS)
    with pytest.raises(LroError, match="not been started"):
        prepared.cancel()
    assert len(rsps.calls) == 2


def test_cancel_with_delete_on_the_monitor_and_custom_targets(rsps, pipeline) -> None:
    class DeleteMonitor(Operation[Any]):
        cancel_request = ("delete", "{monitor}")

    class ById(Operation[Any]):
        cancel_request = ("POST", "/jobs/{operation_id}/cancel")

    class Custom(Operation[Any]):
        def cancel_target(self) -> tuple[str, str]:
            return "PATCH", f"{HOST}/custom"

    for _ in range(3):
        rsps.post(JOBS, status=202, headers={"Operation-Location": MONITOR})
    first = DeleteMonitor.start(pipeline, "POST", JOBS)
    assert first.cancel_target() == ("DELETE", MONITOR)
    second = ById.start(pipeline, "POST", JOBS)
    assert second.cancel_target() == (
        "POST",
        f"{HOST}/jobs/{second.core.operation_id}/cancel?api-version=1",
    )
    third = Custom.start(pipeline, "POST", JOBS)
    rsps.patch(f"{HOST}/custom", json={"status": "Canceled"})
    third.cancel()
    assert third.state is S.CANCELED


def test_a_cancel_target_outside_the_trusted_origins_is_refused(rsps, pipeline) -> None:
    class Elsewhere(Operation[Any]):
        cancel_request = ("POST", "https://evil.example.net/cancel")

    operation = start_job(rsps, pipeline, cls=Elsewhere)
    with pytest.raises(UntrustedOriginError):
        operation.cancel()
    assert len(rsps.calls) == 1


def test_monitor_is_the_polling_url_whatever_the_protocol(rsps, pipeline) -> None:
    rsps.put(ITEM, status=201, json={"properties": {"provisioningState": "Creating"}})
    operation = CancellableOperation.start(pipeline, "PUT", ITEM)  # resource polling
    assert operation.cancel_target() == ("POST", f"{HOST}/items/1:cancel?api-version=1")


def test_a_session_like_object_without_adapters_makes_a_pipeline() -> None:
    # The whole-request bound is fitted into requests' own adapters; a session-like object
    # (a benchmark's in-memory double, bench/bench_polling.py) has none, and still makes a
    # pipeline: Pipeline() raised AttributeError on it.
    class SessionDouble:
        def __init__(self) -> None:
            self.headers: dict[str, str] = {}

        def close(self) -> None:
            pass

    double = SessionDouble()
    with Pipeline(HOST, session=double) as pipeline:  # type: ignore[arg-type]
        assert pipeline.session is double
