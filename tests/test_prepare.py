"""``Operation.prepare``: an operation that exists, with hooks and a token, before its start."""

from __future__ import annotations

import pytest
import responses

from lrokit import (
    LroError,
    Operation,
    OperationState,
    Pipeline,
    StartRejectedError,
    StateChange,
    UntrustedOriginError,
)

ENDPOINT = "https://svc.example.com/"  # the conftest pipeline's endpoint

START = f"{ENDPOINT}jobs"
MONITOR = f"{ENDPOINT}operations/1"


def _accept(rsps: responses.RequestsMock) -> None:
    rsps.post(START, status=202, headers={"Operation-Location": MONITOR})


def test_prepare_sends_nothing_and_is_not_started(
    pipeline: Pipeline, rsps: responses.RequestsMock
) -> None:
    operation = Operation[object].prepare(pipeline, "POST", "jobs", json={"a": 1})
    assert operation.state is OperationState.NOT_STARTED
    assert not operation.has_completed
    assert len(rsps.calls) == 0


def test_hooks_subscribed_after_prepare_see_the_first_transition(
    pipeline: Pipeline, rsps: responses.RequestsMock
) -> None:
    _accept(rsps)
    operation = Operation[object].prepare(pipeline, "POST", "jobs", json={"a": 1})
    seen: list[tuple[OperationState, OperationState]] = []
    operation.on_change(lambda e: seen.append((e.previous, e.state)))
    response = operation.send_start()
    assert response.status_code == 202
    assert seen == [(OperationState.NOT_STARTED, OperationState.RUNNING)]
    assert rsps.calls[0].request.body == b'{"a": 1}'


def test_start_request_is_sent_only_once(pipeline: Pipeline, rsps: responses.RequestsMock) -> None:
    _accept(rsps)
    operation = Operation[object].prepare(pipeline, "POST", "jobs")
    operation.send_start()
    with pytest.raises(LroError, match="no start request left"):
        operation.send_start()
    assert len(rsps.calls) == 1


def test_update_status_sends_a_pending_start_first(
    pipeline: Pipeline, rsps: responses.RequestsMock
) -> None:
    _accept(rsps)
    operation = Operation[object].prepare(pipeline, "POST", "jobs")
    response = operation.update_status()
    assert response is not None
    assert response.request.method == "POST"
    assert operation.state is OperationState.RUNNING
    assert len(rsps.calls) == 1


def test_wait_for_completion_starts_a_prepared_operation(
    pipeline: Pipeline, rsps: responses.RequestsMock
) -> None:
    _accept(rsps)
    rsps.get(MONITOR, json={"status": "Succeeded", "result": {"n": 7}})
    operation = Operation[object].prepare(pipeline, "POST", "jobs")
    changes: list[StateChange[Operation[object]]] = []
    operation.on_change(changes.append)
    assert operation.wait_for_completion().value == {"n": 7}
    assert [(c.previous, c.state) for c in changes] == [
        (OperationState.NOT_STARTED, OperationState.RUNNING),
        (OperationState.RUNNING, OperationState.SUCCEEDED),
    ]
    assert [c.request.method for c in rsps.calls] == ["POST", "GET"]


def test_rejected_start_leaves_the_operation_not_started_and_retryable(
    pipeline: Pipeline, rsps: responses.RequestsMock
) -> None:
    rsps.post(START, status=503, json={"error": {"code": "Busy", "message": "later"}})
    operation = Operation[object].prepare(pipeline, "POST", "jobs")
    with pytest.raises(StartRejectedError) as caught:
        operation.send_start()
    assert caught.value.service_error is not None
    assert caught.value.service_error.code == "Busy"
    assert operation.state is OperationState.NOT_STARTED
    rsps.replace(responses.POST, START, status=202, headers={"Operation-Location": MONITOR})
    operation.send_start()
    assert operation.state is OperationState.RUNNING


def test_prepare_refuses_a_foreign_url_before_any_request(
    pipeline: Pipeline, rsps: responses.RequestsMock
) -> None:
    with pytest.raises(UntrustedOriginError):
        Operation[object].prepare(pipeline, "POST", "https://elsewhere.example/jobs")
    assert len(rsps.calls) == 0
