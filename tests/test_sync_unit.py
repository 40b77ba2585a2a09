"""The sync Operation over mocked HTTP (responses) and a fake clock: no sockets, no real sleeps."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import msgspec
import pytest
import requests
import responses

from lrokit import (
    Action,
    HookError,
    InvalidTokenError,
    InvalidTransitionError,
    Operation,
    OperationCanceledError,
    OperationError,
    OperationFailedError,
    OperationNotCompleteError,
    OperationState,
    Pipeline,
    PollingPolicy,
    PollRejectedError,
    ProtocolError,
    RehydrationToken,
    ResponseView,
    ServiceError,
    StartRejectedError,
    StatusUpdate,
    Trigger,
    UntrustedOriginError,
    WaitCancelledError,
    WaitTimeoutError,
)
from lrokit.testing import LroScript

S = OperationState
HOST = "https://svc.example.com"
JOBS = f"{HOST}/jobs?api-version=1"
MONITOR = f"{HOST}/ops/1?api-version=1"
ITEM = f"{HOST}/items/1?api-version=1"


class VectorStore(msgspec.Struct):
    """A typed result, as an SDK would declare it."""

    id: str
    name: str
    size: int = 0


class CreateVectorStoreOperation(Operation[VectorStore]):
    """An LRO subclient with a typed value."""

    value_type = VectorStore


def start_job(
    rsps: responses.RequestsMock, pipeline: Pipeline, *, retry_after: str | None = None, **kw: Any
) -> Operation[Any]:
    headers = {"Operation-Location": "/ops/1"}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    rsps.post(JOBS, status=202, json={"status": "NotStarted"}, headers=headers)
    return Operation.start(pipeline, "POST", "jobs", params={"api-version": "1"}, **kw)


def monitor(rsps: responses.RequestsMock, *statuses: str | int, **kw: Any) -> None:
    """Queue monitor answers in order: status words, or HTTP codes for bare errors."""
    for status in statuses:
        if isinstance(status, int):
            rsps.get(MONITOR, status=status, **kw)
        else:
            body: dict[str, Any] = {"status": status}
            if status == "Succeeded":
                body["result"] = {"id": "vs1", "name": "docs"}
            if status in ("Failed", "Canceled"):
                body["error"] = {"code": "Quota", "message": "out of quota"}
            rsps.get(MONITOR, json=body, **kw)


RESULT = {"id": "vs1", "name": "docs"}
QUOTA = ServiceError("Quota", "out of quota")


def scripted_job(rsps: responses.RequestsMock, pipeline: Pipeline, *statuses: str | int) -> Any:
    """``start_job`` then ``monitor(rsps, *statuses)``, as one lrokit.testing script: the
    monitor at ``/ops/1``, RESULT with Succeeded, QUOTA with Failed and Canceled."""
    script = LroScript.status_monitor(
        JOBS, statuses, monitor_url="/ops/1", result=RESULT, error=QUOTA
    )
    script.register(rsps)
    return Operation.start(pipeline, "POST", "jobs", params={"api-version": "1"})


# -- start ---------------------------------------------------------------------------------


def test_start_sends_one_request_and_follows_the_monitor(rsps, pipeline) -> None:
    operation = start_job(rsps, pipeline, json={"name": "docs"})
    assert len(rsps.calls) == 1
    request = rsps.calls[0].request
    assert (request.method, request.url) == ("POST", JOBS)
    assert request.body == b'{"name": "docs"}'
    assert operation.state is S.RUNNING
    assert not operation.has_completed
    assert operation.core.next_request_url == MONITOR
    raw = operation.get_raw_response()
    assert isinstance(raw, requests.Response)
    assert raw.status_code == 202


def test_start_that_completes_at_once(rsps, pipeline) -> None:
    rsps.put(ITEM, status=201, json={"id": "vs1", "name": "n", "status": "Succeeded"})
    operation = CreateVectorStoreOperation.start(pipeline, "PUT", ITEM, json={})
    assert operation.has_completed
    assert operation.value == VectorStore("vs1", "n")
    assert operation.update_status() is None
    assert len(rsps.calls) == 1


def test_start_rejected(rsps, pipeline) -> None:
    rsps.post(JOBS, status=409, json={"error": {"code": "Conflict", "message": "exists"}})
    with pytest.raises(StartRejectedError) as info:
        Operation.start(pipeline, "POST", JOBS)
    assert info.value.status_code == 409
    assert info.value.service_error == ServiceError("Conflict", "exists")
    assert isinstance(info.value.response, requests.Response)


def test_start_refuses_a_foreign_url_without_sending(rsps, pipeline) -> None:
    with pytest.raises(UntrustedOriginError):
        Operation.start(pipeline, "POST", "https://evil.example.net/jobs")
    assert len(rsps.calls) == 0


def test_from_response_builds_the_core_from_the_request(rsps, pipeline) -> None:
    rsps.put(ITEM, status=201, json={"properties": {"provisioningState": "Creating"}})
    rsps.get(ITEM, json={"properties": {"provisioningState": "Succeeded"}, "id": "x"})
    response = pipeline.send("PUT", ITEM, json={})
    operation = Operation.from_response(pipeline, response)
    assert operation.core.method == "PUT"
    assert operation.state is S.RUNNING
    operation.update_status()
    assert operation.value == {"properties": {"provisioningState": "Succeeded"}, "id": "x"}


# -- update_status -------------------------------------------------------------------------


def test_update_status_makes_exactly_one_request_per_call(rsps, pipeline, clock) -> None:
    operation = scripted_job(rsps, pipeline, "Running", "Running", "Succeeded")
    for expected_calls, state in ((2, S.RUNNING), (3, S.RUNNING), (4, S.SUCCEEDED)):
        response = operation.update_status()
        assert len(rsps.calls) == expected_calls
        assert rsps.calls[-1].request.url == MONITOR
        assert response is operation.get_raw_response()
        assert isinstance(response, requests.Response)
        assert operation.state is state
    assert operation.update_status() is None  # nothing left to ask
    assert len(rsps.calls) == 4
    assert clock.sleeps == []  # update_status never sleeps
    assert operation.value == {"id": "vs1", "name": "docs"}


def test_update_status_does_the_final_get_when_it_is_due(rsps, pipeline) -> None:
    rsps.put(ITEM, status=202, headers={"Azure-AsyncOperation": MONITOR})
    monitor(rsps, "Succeeded")
    rsps.get(ITEM, json={"id": "vs1", "name": "final"})
    operation = CreateVectorStoreOperation.start(pipeline, "PUT", ITEM)
    operation.update_status()
    assert operation.state is S.RUNNING
    assert operation.core.next_action is Action.FETCH_FINAL
    operation.update_status()
    assert rsps.calls[-1].request.url == ITEM
    assert operation.value == VectorStore("vs1", "final")
    assert len(rsps.calls) == 3


def test_get_raw_response_is_the_last_response(rsps, pipeline) -> None:
    operation = start_job(rsps, pipeline)
    monitor(rsps, 503, "Running")
    first = operation.update_status()
    assert first is not None
    assert first.status_code == 503
    assert operation.get_raw_response() is first
    second = operation.update_status()
    assert second is not None
    assert second is not first
    assert operation.get_raw_response() is second
    assert second.json() == {"status": "Running"}


# -- wait_for_completion: intervals and Retry-After ------------------------------------------


@pytest.mark.parametrize(
    ("interval", "expected"),
    [(2, 2.0), (0.5, 0.5), (timedelta(seconds=3), 3.0), (timedelta(milliseconds=250), 0.25)],
)
def test_wait_accepts_seconds_and_timedelta(rsps, pipeline, clock, interval, expected) -> None:
    operation = scripted_job(rsps, pipeline, "Running", "Running", "Succeeded")
    assert operation.wait_for_completion(polling_interval=interval) is operation
    assert clock.sleeps == [expected] * 3
    rsps.assert_call_count(MONITOR, 3)
    assert operation.state is S.SUCCEEDED


def test_wait_uses_the_policy_interval_by_default(rsps, pipeline, clock) -> None:
    operation = scripted_job(rsps, pipeline, "Running", "Succeeded")
    operation.wait_for_completion()
    assert clock.sleeps == [1.0, 1.0]


def test_longer_retry_after_wins_shorter_does_not(rsps, pipeline, clock) -> None:
    operation = start_job(rsps, pipeline, retry_after="5")
    rsps.get(MONITOR, json={"status": "Running"}, headers={"Retry-After": "1"})
    rsps.get(MONITOR, json={"status": "Running"}, headers={"retry-after-ms": "4500"})
    rsps.get(MONITOR, json={"status": "Succeeded"})
    operation.wait_for_completion(polling_interval=2)
    assert clock.sleeps == [5.0, 2.0, 4.5]
    assert operation.has_completed


def test_retry_after_is_capped_by_the_policy(rsps, clock) -> None:
    policy = PollingPolicy(interval=1, cap=10)
    with Pipeline(HOST, polling=policy, clock=clock, sleep=clock.sleep) as pipeline:
        operation = start_job(rsps, pipeline, retry_after="3600")
        monitor(rsps, "Succeeded")
        operation.wait_for_completion()
    assert clock.sleeps == [10.0]


def test_final_get_is_not_delayed(rsps, pipeline, clock) -> None:
    LroScript.status_monitor(
        ITEM,
        ["Running", "Succeeded"],
        method="PUT",
        monitor_url=MONITOR,
        result=VectorStore("vs1", "n"),
    ).register(rsps)
    operation = CreateVectorStoreOperation.start(pipeline, "PUT", ITEM)
    operation.wait_for_completion(polling_interval=2)
    assert clock.sleeps == [2.0, 2.0]  # two polls, then the final GET at once
    assert operation.value.name == "n"


# -- value and outcomes ------------------------------------------------------------------------


def test_value_before_completion(rsps, pipeline) -> None:
    operation = start_job(rsps, pipeline)
    with pytest.raises(OperationNotCompleteError, match="Running"):
        _ = operation.value


@pytest.mark.parametrize(
    ("word", "error_type", "state"),
    [
        ("Failed", OperationFailedError, S.FAILED),
        ("Canceled", OperationCanceledError, S.CANCELED),
    ],
)
def test_value_after_failure_raises_the_typed_error(
    rsps, pipeline, word, error_type, state
) -> None:
    operation = scripted_job(rsps, pipeline, "Running", word)
    operation.wait_for_completion()  # an outcome does not raise here
    assert operation.state is state
    with pytest.raises(error_type) as info:
        _ = operation.value
    error = info.value
    assert isinstance(error, OperationError)
    assert error.service_error == ServiceError("Quota", "out of quota")
    assert "out of quota" in str(error)
    assert error.response is operation.get_raw_response()
    assert error.response.json()["status"] == word
    assert error.rehydration_token is not None
    assert RehydrationToken.parse(error.rehydration_token).fields.state == state.value


def test_typed_value_is_decoded_once(rsps, pipeline) -> None:
    rsps.post(JOBS, status=202, headers={"Operation-Location": MONITOR})
    monitor(rsps, "Succeeded")
    operation = CreateVectorStoreOperation.start(pipeline, "POST", JOBS)
    operation.wait_for_completion()
    value = operation.value
    assert value == VectorStore("vs1", "docs")
    assert operation.value is value


def test_mismatching_final_json_is_a_clear_protocol_error(rsps, pipeline) -> None:
    rsps.post(JOBS, status=202, headers={"Operation-Location": MONITOR})
    rsps.get(MONITOR, json={"status": "Succeeded", "result": {"id": 5}})
    operation = CreateVectorStoreOperation.start(pipeline, "POST", JOBS)
    operation.wait_for_completion()
    assert operation.state is S.SUCCEEDED
    with pytest.raises(ProtocolError, match="VectorStore") as info:
        _ = operation.value
    assert isinstance(info.value.__cause__, msgspec.ValidationError)
    assert "name" in str(info.value) or "id" in str(info.value)
    assert info.value.response is operation.get_raw_response()
    assert info.value.rehydration_token is not None


def test_decode_value_can_be_overridden(rsps, pipeline) -> None:
    class Upper(Operation[str]):
        def decode_value(self, payload: Any) -> str:
            return str(payload["name"]).upper()

    rsps.post(JOBS, status=202, headers={"Operation-Location": MONITOR})
    monitor(rsps, "Succeeded")
    operation = Upper.start(pipeline, "POST", JOBS)
    operation.wait_for_completion()
    assert operation.value == "DOCS"


# -- rehydration ---------------------------------------------------------------------------------


def test_rehydrate_makes_no_request_until_update_status(rsps, pipeline) -> None:
    original = start_job(rsps, pipeline)
    token = str(original.rehydration_token)
    monitor(rsps, "Running")
    before = len(rsps.calls)
    resumed = Operation.rehydrate(pipeline, token)
    assert len(rsps.calls) == before
    assert resumed.state is S.RUNNING
    assert resumed.get_raw_response() is None
    resumed.update_status()
    assert len(rsps.calls) == before + 1
    assert rsps.calls[-1].request.url == MONITOR


def test_rehydrate_refuses_other_kinds_and_foreign_clients(rsps, pipeline) -> None:
    rsps.post(JOBS, status=202, headers={"Operation-Location": MONITOR})
    token = CreateVectorStoreOperation.start(pipeline, "POST", JOBS).rehydration_token
    with pytest.raises(InvalidTokenError, match="kind field") as info:
        Operation.rehydrate(pipeline, token)
    assert "CreateVectorStoreOperation" not in str(info.value)  # no token content
    with Pipeline("https://other.example.net/") as other, pytest.raises(UntrustedOriginError):
        CreateVectorStoreOperation.rehydrate(other, token)
    with pytest.raises(InvalidTokenError):
        CreateVectorStoreOperation.rehydrate(pipeline, "garbage!")
    assert len(rsps.calls) == 1


def test_rehydrated_success_rereads_its_value(rsps, pipeline, clock) -> None:
    rsps.put(ITEM, status=202, headers={"Operation-Location": MONITOR})
    monitor(rsps, "Succeeded")
    rsps.get(ITEM, json={"id": "vs1", "name": "again"})
    done = CreateVectorStoreOperation.start(pipeline, "PUT", ITEM).wait_for_completion()
    resumed = CreateVectorStoreOperation.rehydrate(pipeline, done.rehydration_token)
    assert resumed.has_completed
    with pytest.raises(OperationNotCompleteError, match="restored"):
        _ = resumed.value
    sleeps_before = list(clock.sleeps)
    resumed.wait_for_completion()
    assert clock.sleeps == sleeps_before
    assert rsps.calls[-1].request.url == ITEM
    assert resumed.value == VectorStore("vs1", "again")


def test_rehydrated_success_of_a_start_response_says_why_its_value_is_gone(rsps, pipeline) -> None:
    rsps.post(JOBS, status=200, json={"id": "vs1", "name": "at once"})
    done = CreateVectorStoreOperation.start(pipeline, "POST", JOBS)
    assert done.value == VectorStore("vs1", "at once")
    resumed = CreateVectorStoreOperation.rehydrate(pipeline, done.rehydration_token)
    assert resumed.has_completed
    assert resumed.wait_for_completion() is resumed
    with pytest.raises(OperationNotCompleteError, match="tokens never carry bodies"):
        _ = resumed.value
    assert len(rsps.calls) == 1


# -- timeout and cancellation -------------------------------------------------------------------


@pytest.mark.parametrize("timeout", [5, 5.0, timedelta(seconds=5)])
def test_timeout_raises_at_the_deadline_without_sleeping_past_it(
    rsps, pipeline, clock, timeout
) -> None:
    operation = start_job(rsps, pipeline)
    monitor(rsps, "Running")
    started = clock.now
    with pytest.raises(WaitTimeoutError) as info:
        operation.wait_for_completion(polling_interval=2, timeout=timeout)
    assert clock.now - started == pytest.approx(5.0)
    assert clock.sleeps == [2.0, 2.0, 1.0]
    rsps.assert_call_count(MONITOR, 2)
    assert isinstance(info.value, TimeoutError)
    assert info.value.state is S.RUNNING
    assert info.value.rehydration_token is not None
    # Still resumable.
    monitor(rsps, "Succeeded")
    operation.wait_for_completion(polling_interval=2)
    assert operation.state is S.SUCCEEDED


def test_timeout_shorter_than_retry_after(rsps, pipeline, clock) -> None:
    operation = start_job(rsps, pipeline, retry_after="30")
    with pytest.raises(WaitTimeoutError):
        operation.wait_for_completion(timeout=4)
    assert clock.sleeps == [4.0]
    rsps.assert_call_count(MONITOR, 0)


def test_zero_timeout_neither_sleeps_nor_polls(rsps, pipeline, clock) -> None:
    operation = start_job(rsps, pipeline)
    with pytest.raises(WaitTimeoutError):
        operation.wait_for_completion(timeout=0)
    assert clock.sleeps == []
    assert len(rsps.calls) == 1


def test_cancel_before_waiting(rsps, pipeline, clock) -> None:
    operation = start_job(rsps, pipeline)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(WaitCancelledError) as info:
        operation.wait_for_completion(cancel=cancel)
    assert clock.sleeps == []
    assert len(rsps.calls) == 1
    assert info.value.state is S.RUNNING
    assert info.value.rehydration_token is not None


def test_cancel_during_the_wait_leaves_the_operation_resumable(rsps, pipeline, clock) -> None:
    operation = scripted_job(rsps, pipeline, "Running", "Running", "Succeeded")
    cancel = threading.Event()
    clock.cancel_after = (2, cancel)  # the second sleep is interrupted
    with pytest.raises(WaitCancelledError):
        operation.wait_for_completion(cancel=cancel)
    rsps.assert_call_count(MONITOR, 1)
    assert operation.state is S.RUNNING
    resumed = Operation.rehydrate(pipeline, operation.rehydration_token)
    clock.cancel_after = None
    resumed.wait_for_completion()
    assert resumed.value == {"id": "vs1", "name": "docs"}


def test_cancel_during_the_final_sleep_before_the_deadline(rsps, pipeline, clock) -> None:
    operation = start_job(rsps, pipeline)
    cancel = threading.Event()
    clock.cancel_after = (1, cancel)
    with pytest.raises(WaitCancelledError):
        operation.wait_for_completion(polling_interval=10, timeout=3, cancel=cancel)


# -- transient errors ------------------------------------------------------------------------


def test_transient_503s_are_retried_with_backoff(rsps, pipeline, clock) -> None:
    operation = scripted_job(rsps, pipeline, 503, 503, "Succeeded")
    operation.wait_for_completion()
    assert clock.sleeps == [1.0, 0.5, 1.0]  # interval, then backoff 0.5 and 1.0
    assert operation.state is S.SUCCEEDED


def test_transient_retry_after_is_honoured(rsps, pipeline, clock) -> None:
    operation = start_job(rsps, pipeline)
    rsps.get(MONITOR, status=429, headers={"Retry-After": "7"})
    monitor(rsps, "Succeeded")
    operation.wait_for_completion()
    assert clock.sleeps == [1.0, 7.0]


def test_too_many_transient_errors_raise_with_the_token(rsps, pipeline, clock) -> None:
    operation = start_job(rsps, pipeline)
    monitor(rsps, 503, 503, 503, "Succeeded")
    with pytest.raises(PollRejectedError) as info:
        operation.wait_for_completion()
    rsps.assert_call_count(MONITOR, 3)  # max_retries=2: three attempts in all
    error = info.value
    assert error.status_code == 503
    assert isinstance(error.response, requests.Response)
    assert error.rehydration_token is not None
    assert RehydrationToken.parse(error.rehydration_token).fields.state == "Running"
    assert operation.state is S.RUNNING
    # The count starts over: the operation can still be completed.
    operation.wait_for_completion()
    assert operation.state is S.SUCCEEDED


def test_update_status_counts_transient_errors_too(rsps, pipeline) -> None:
    operation = start_job(rsps, pipeline)
    monitor(rsps, 503)
    assert operation.update_status() is not None
    assert operation.update_status() is not None
    with pytest.raises(PollRejectedError):
        operation.update_status()
    rsps.assert_call_count(MONITOR, 3)


@pytest.mark.parametrize("error", [requests.ConnectionError, requests.Timeout])
def test_connection_errors_are_retried(rsps, pipeline, clock, error) -> None:
    operation = start_job(rsps, pipeline)
    rsps.get(MONITOR, body=error("reset"))
    rsps.get(MONITOR, body=error("reset"))
    monitor(rsps, "Succeeded")
    operation.wait_for_completion()
    assert clock.sleeps == [1.0, 0.5, 1.0]
    assert operation.state is S.SUCCEEDED


def test_too_many_connection_errors_raise_with_the_token(rsps, pipeline) -> None:
    operation = start_job(rsps, pipeline)
    rsps.get(MONITOR, body=requests.ConnectionError("refused"))
    with pytest.raises(PollRejectedError) as info:
        operation.wait_for_completion()
    rsps.assert_call_count(MONITOR, 3)
    assert info.value.status_code == 0
    assert isinstance(info.value.__cause__, requests.ConnectionError)
    assert info.value.rehydration_token is not None
    assert operation.state is S.RUNNING


def test_a_rejected_poll_keeps_the_operation(rsps, pipeline) -> None:
    operation = start_job(rsps, pipeline)
    rsps.get(MONITOR, status=404, json={"error": {"code": "NotFound"}})
    with pytest.raises(PollRejectedError) as info:
        operation.wait_for_completion()
    assert info.value.status_code == 404
    assert info.value.service_error == ServiceError("NotFound")
    rsps.assert_call_count(MONITOR, 1)  # a 404 is not retried
    assert operation.state is S.RUNNING


def test_protocol_error_during_wait(rsps, pipeline) -> None:
    operation = start_job(rsps, pipeline)
    rsps.get(MONITOR, json={"percentComplete": 5})
    with pytest.raises(ProtocolError, match="no readable status"):
        operation.wait_for_completion()
    assert operation.state is S.RUNNING


# -- manual driving (no I/O) -----------------------------------------------------------------


def _response(code: int, body: bytes, headers: dict[str, str], url: str) -> requests.Response:
    response = requests.Response()
    response.status_code = code
    response._content = body
    response.headers.update(headers)
    response.url = url
    return response


def test_receive_apply_status_and_fire_make_no_requests(rsps, pipeline) -> None:
    operation = start_job(rsps, pipeline)
    assert len(rsps.calls) == 1
    decision = operation.receive(ResponseView.build(200, None, b'{"status": "Running"}', MONITOR))
    assert decision.action is Action.POLL
    handmade = _response(200, b'{"status": "Running"}', {"Retry-After": "2"}, MONITOR)
    assert operation.receive(handmade).retry_after == 2.0
    assert operation.get_raw_response() is handmade
    operation.apply_status(StatusUpdate(S.RUNNING, "Working"))
    assert operation.status is not None
    assert operation.status.raw_status == "Working"
    assert operation.available_triggers == (Trigger.SUCCEED, Trigger.FAIL, Trigger.CANCEL)
    assert operation.fire("cancel") is S.CANCELED
    with pytest.raises(InvalidTransitionError):
        operation.fire(Trigger.SUCCEED)
    with pytest.raises(InvalidTransitionError):
        operation.apply_status(StatusUpdate(S.SUCCEEDED))
    with pytest.raises(OperationCanceledError):
        _ = operation.value
    assert len(rsps.calls) == 1


def test_apply_status_can_complete_with_a_payload(rsps, pipeline) -> None:
    rsps.post(JOBS, status=202, headers={"Operation-Location": MONITOR})
    operation = CreateVectorStoreOperation.start(pipeline, "POST", JOBS)
    operation.apply_status(StatusUpdate(S.SUCCEEDED), {"id": "m", "name": "manual"})
    assert operation.value == VectorStore("m", "manual")
    assert operation.update_status() is None
    assert len(rsps.calls) == 1


# -- headers -----------------------------------------------------------------------------------


def test_operation_headers_are_sent_on_every_request(rsps, clock) -> None:
    with Pipeline(
        HOST, headers={"User-Agent": "lrokit-test"}, clock=clock, sleep=clock.sleep
    ) as pipeline:
        rsps.put(ITEM, status=202, headers={"Operation-Location": MONITOR})
        monitor(rsps, 503, "Running", "Succeeded")
        rsps.get(ITEM, json={"id": "1", "name": "n"})
        operation = Operation.start(
            pipeline,
            "PUT",
            ITEM,
            headers={"Authorization": "Bearer start-only"},
            operation_headers={"x-ms-client-request-id": "req-1"},
        )
        operation.wait_for_completion()
        resumed = Operation.rehydrate(
            pipeline, operation.rehydration_token, operation_headers={"x-trace": "t"}
        )
        resumed.update_status()
    assert len(rsps.calls) == 6
    for call in rsps.calls[:5]:
        assert call.request.headers["x-ms-client-request-id"] == "req-1"
        assert call.request.headers["User-Agent"] == "lrokit-test"
    assert rsps.calls[0].request.headers["Authorization"] == "Bearer start-only"
    for call in rsps.calls[1:]:
        assert "Authorization" not in call.request.headers  # start headers stay on the start
    assert rsps.calls[5].request.headers["x-trace"] == "t"


# -- hooks through the driver ------------------------------------------------------------------


def test_raising_hook_during_update_status(rsps, pipeline) -> None:
    operation = start_job(rsps, pipeline)
    monitor(rsps, "Running", "Succeeded")
    seen: list[OperationState] = []

    def hook(change: Any) -> None:
        seen.append(change.operation.state)
        raise RuntimeError("hook bug")

    operation.on_change(hook)
    operation.update_status()  # no change, no hook
    with pytest.raises(HookError):
        operation.update_status()
    assert seen == [S.SUCCEEDED]
    assert operation.state is S.SUCCEEDED
    assert operation.value == {"id": "vs1", "name": "docs"}


def test_repr_and_last_delay(rsps, pipeline) -> None:
    operation = start_job(rsps, pipeline, retry_after="3")
    assert "Running" in repr(operation)
    assert operation.pipeline is pipeline
    assert operation.last_delay is not None
    assert operation.last_delay.seconds == 3.0


def test_value_after_a_manual_succeed_explains_that_fire_carries_no_result(rsps, pipeline) -> None:
    operation = start_job(rsps, pipeline)
    operation.fire("succeed")
    with pytest.raises(OperationNotCompleteError, match=r"fire\(\) carries no result"):
        _ = operation.value
