"""Issue 13's ARM rules over mocked HTTP (``responses``), each counting the requests made.

The same rules run over real HTTP against the demo service, through both drivers, in
``tests/integration/test_arm_rules_real_http.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
import responses

from lrokit import (
    FinalStateVia,
    HookError,
    MalformedBodyError,
    MissingStatusError,
    NothingToPollError,
    Operation,
    OperationFailedError,
    OperationState,
    Pipeline,
    PollingPolicy,
    PollRejectedError,
    ProtocolError,
    ProtocolOptions,
    ResponseEvent,
    ResponseView,
    StartRejectedError,
)

HOST = "https://svc.example.com"  # the conftest pipeline's endpoint
API = "api-version=2024-01-01"
START = f"{HOST}/items/1?{API}"
MONITOR = f"{HOST}/operations/1?{API}"
LOCATION = f"{HOST}/results/1?{API}"
S = OperationState


def requested(rsps: responses.RequestsMock) -> list[str]:
    return [f"{call.request.method} {call.request.url}" for call in rsps.calls]


def run(pipeline: Pipeline, method: str, url: str = START, **kwargs: Any) -> Operation[Any]:
    operation: Operation[Any] = Operation.start(pipeline, method, url, **kwargs)
    operation.wait_for_completion()
    return operation


# -- rule 1 ------------------------------------------------------------------------------------


def test_a_202_with_a_new_location_moves_the_operation(rsps, pipeline) -> None:
    second, third = f"{HOST}/results/1/b?{API}", f"{HOST}/results/1/c?{API}"
    rsps.post(START, status=202, headers={"Location": LOCATION})
    rsps.get(LOCATION, status=202, headers={"Location": "/results/1/b"})
    rsps.get(second, status=202, headers={"Location": "c"})  # relative to the URL polled
    rsps.get(third, status=202)
    rsps.get(third, json={"done": True})
    operation = Operation.start(pipeline, "POST", START)
    operation.update_status()
    token = operation.rehydration_token
    assert Operation.rehydrate(pipeline, token).core.next_request_url == second
    operation.wait_for_completion()
    assert operation.value == {"done": True}
    assert requested(rsps) == [
        f"POST {START}",
        f"GET {LOCATION}",
        f"GET {second}",
        f"GET {third}",
        f"GET {third}",
    ]


def test_a_status_monitor_keeps_its_url(rsps, pipeline) -> None:
    rsps.post(START, status=202, headers={"Azure-AsyncOperation": MONITOR})
    rsps.get(MONITOR, json={"status": "Running"}, headers={"Location": LOCATION})
    rsps.get(MONITOR, json={"status": "Succeeded", "result": 1})
    assert run(pipeline, "POST").value == 1
    assert requested(rsps) == [f"POST {START}", f"GET {MONITOR}", f"GET {MONITOR}"]


# -- rule 2 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [429, 500, 503, 504])
@pytest.mark.parametrize("method", ["POST", "PATCH", "PUT"])
def test_a_transient_start_answer_is_retried_for_every_method(
    rsps, pipeline, clock, code: int, method: str
) -> None:
    rsps.add(method, START, status=code, headers={"Retry-After": "3"})
    rsps.add(method, START, status=202, headers={"Location": LOCATION})
    rsps.get(LOCATION, json={"ok": True})
    assert run(pipeline, method).value == {"ok": True}
    assert requested(rsps) == [f"{method} {START}", f"{method} {START}", f"GET {LOCATION}"]
    assert clock.sleeps[0] == 3.0  # the server's Retry-After, not the 0.5 s back-off


@pytest.mark.parametrize("code", [408, 502])
def test_408_and_502_are_retried_only_for_idempotent_starts(rsps, pipeline, code: int) -> None:
    rsps.post(START, status=code)
    with pytest.raises(StartRejectedError):
        Operation.start(pipeline, "POST", START)
    assert len(rsps.calls) == 1
    rsps.replace(responses.POST, START, status=code)
    rsps.post(START, status=202, headers={"Location": LOCATION})
    rsps.get(LOCATION, json={"ok": True})
    assert run(pipeline, "POST", idempotent=True).value == {"ok": True}
    assert len(rsps.calls) == 1 + 3


def test_retry_start_on_is_a_policy_setting(rsps, clock) -> None:
    policy = PollingPolicy(interval=1.0, max_retries=2, retry_start_on={409})
    with Pipeline(f"{HOST}/", polling=policy, clock=clock, sleep=clock.sleep) as pipeline:
        rsps.post(START, status=500)
        with pytest.raises(StartRejectedError):
            Operation.start(pipeline, "POST", START)
        assert len(rsps.calls) == 1  # 500 is not in this policy's set
        rsps.replace(responses.POST, START, status=409)
        with pytest.raises(StartRejectedError) as info:
            Operation.start(pipeline, "POST", START)
        assert info.value.status_code == 409
        assert len(rsps.calls) == 1 + 3  # retried within max_retries, then raised
    with pytest.raises(ValueError, match="retry_start_on"):
        PollingPolicy(retry_start_on={200})
    assert PollingPolicy().retry_start_on == frozenset({429, 500, 503, 504})


# -- rule 3 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "body"),
    [
        (200, {"properties": {"provisioningState": "Failed"}}),
        (201, {"status": "Canceled", "error": {"code": "X"}}),
        (204, None),
    ],
)
def test_a_location_done_code_is_success_and_its_body_the_value(
    rsps, pipeline, code: int, body: Any
) -> None:
    rsps.post(START, status=202, headers={"Location": LOCATION})
    rsps.get(LOCATION, status=code, json=body)
    operation = run(pipeline, "POST")
    assert operation.state is S.SUCCEEDED
    assert operation.value == body
    assert len(rsps.calls) == 2


@pytest.mark.parametrize("code", [400, 404, 409])
def test_a_location_error_status_is_the_failure(rsps, pipeline, code: int) -> None:
    rsps.post(START, status=202, headers={"Location": LOCATION})
    rsps.get(LOCATION, status=code, json={"error": {"code": "Broken", "message": "no"}})
    operation = run(pipeline, "POST")
    assert operation.state is S.FAILED
    with pytest.raises(OperationFailedError) as info:
        _ = operation.value
    assert info.value.service_error is not None
    assert info.value.service_error.code == "Broken"
    assert len(rsps.calls) == 2


@pytest.mark.parametrize("code", [300, 304])
def test_a_location_answer_that_is_neither_done_nor_an_error_is_rejected(
    rsps, pipeline, code: int
) -> None:
    # Only 4xx/5xx report a failure on a Location URL; a 3xx answer is not an outcome.
    rsps.post(START, status=202, headers={"Location": LOCATION})
    rsps.get(LOCATION, status=code)
    operation = Operation.start(pipeline, "POST", START)
    with pytest.raises(PollRejectedError):
        operation.update_status()
    assert operation.state is S.RUNNING
    assert len(rsps.calls) == 2


# -- rule 4 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_azure_async_operation_takes_the_monitors_final_answer(rsps, pipeline, method: str) -> None:
    final = {"status": "Succeeded", "name": "x", "result": {"ignored": True}}
    rsps.add(
        method, START, status=202, headers={"Azure-AsyncOperation": MONITOR, "Location": LOCATION}
    )
    rsps.get(MONITOR, json={"status": "InProgress"})
    rsps.get(MONITOR, json=final)
    options = ProtocolOptions(final_state_via=FinalStateVia.AZURE_ASYNC_OPERATION)
    operation = run(pipeline, method, options=options)
    assert operation.value == final
    assert requested(rsps) == [f"{method} {START}", f"GET {MONITOR}", f"GET {MONITOR}"]


def test_operation_location_keeps_the_result_member(rsps, pipeline) -> None:
    final = {"status": "Succeeded", "result": {"n": 1}, "extra": "seen"}
    rsps.post(START, status=202, headers={"Operation-Location": MONITOR})
    rsps.get(MONITOR, json=final)

    class Whole(Operation[Any]):
        def decode_value(self, payload: Any) -> Any:
            return (payload, self.final_document)  # the decoder sees the whole document

    options = ProtocolOptions(final_state_via=FinalStateVia.OPERATION_LOCATION)
    operation = Whole.start(pipeline, "POST", START, options=options)
    operation.wait_for_completion()
    assert operation.value == ({"n": 1}, final)
    assert len(rsps.calls) == 2


# -- rule 5 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
@pytest.mark.parametrize("code", [201, 202])
def test_a_bare_201_or_202_put_polls_the_resource(rsps, pipeline, method: str, code: int) -> None:
    rsps.add(method, START, status=code, json={"name": "r"} if code == 201 else None)
    rsps.get(START, json={"properties": {"provisioningState": "Creating"}})
    rsps.get(START, json={"name": "r"})  # no provisioningState: done
    operation = run(pipeline, method)
    assert operation.value == {"name": "r"}
    assert requested(rsps) == [f"{method} {START}", f"GET {START}", f"GET {START}"]


def test_a_bare_200_put_is_done_at_once(rsps, pipeline) -> None:
    rsps.put(START, json={"name": "r"})
    assert run(pipeline, "PUT").value == {"name": "r"}
    assert len(rsps.calls) == 1


@pytest.mark.parametrize("code", [200, 201])
def test_an_empty_resource_answer_is_a_protocol_error(rsps, pipeline, code: int) -> None:
    rsps.put(START, status=201)
    rsps.get(START, status=code, body=b"")
    operation = Operation.start(pipeline, "PUT", START)
    with pytest.raises(MissingStatusError):
        operation.wait_for_completion()
    assert operation.state is S.RUNNING
    assert len(rsps.calls) == 2  # an honest empty answer: not retried as a garbled one


# -- rule 6 ------------------------------------------------------------------------------------


def test_the_kinds_of_unusable_answer_are_told_apart(rsps, pipeline) -> None:
    rsps.post(START, status=202)
    with pytest.raises(NothingToPollError):
        Operation.start(pipeline, "POST", START)
    rsps.replace(responses.POST, START, status=200, body=b"<html>")
    with pytest.raises(MalformedBodyError):
        Operation.start(pipeline, "POST", START)
    rsps.replace(responses.POST, START, status=202, headers={"Operation-Location": MONITOR})
    rsps.get(MONITOR, json={"percentComplete": 5})
    operation = Operation.start(pipeline, "POST", START)
    with pytest.raises(MissingStatusError) as info:
        operation.update_status()
    assert info.value.rehydration_token is not None
    for kind in (MalformedBodyError, MissingStatusError, NothingToPollError):
        assert issubclass(kind, ProtocolError)  # callers that catch ProtocolError still do


# -- rule 7 ------------------------------------------------------------------------------------


def test_on_response_sees_every_response_in_order(rsps, pipeline) -> None:
    rsps.post(START, status=500)
    rsps.post(START, status=202, headers={"Operation-Location": MONITOR, "Location": LOCATION})
    rsps.get(MONITOR, status=503)
    rsps.get(MONITOR, body=b"<html>")  # garbled: retried
    rsps.get(MONITOR, json={"status": "Succeeded"})
    rsps.get(LOCATION, json={"final": 1})
    heard: list[tuple[str, int]] = []
    operation: Operation[Any] = Operation.prepare(pipeline, "POST", START)
    operation.on_response(lambda event: heard.append((event.request, event.status_code)))
    operation.wait_for_completion()
    assert operation.value == {"final": 1}
    assert heard == [
        ("start", 500),
        ("start", 202),
        ("poll", 503),
        ("poll", 200),
        ("poll", 200),
        ("final", 200),
    ]
    assert len(heard) == len(rsps.calls)


def test_on_response_sees_rejected_and_unusable_answers(rsps, pipeline) -> None:
    rsps.post(START, status=202, headers={"Operation-Location": MONITOR})
    rsps.get(MONITOR, json={})
    rsps.get(MONITOR, status=404)
    events: list[ResponseEvent[Any]] = []
    operation = Operation.start(pipeline, "POST", START)
    operation.on_response(events.append)
    with pytest.raises(MissingStatusError):
        operation.update_status()
    with pytest.raises(PollRejectedError):
        operation.update_status()
    assert [(e.request, e.status_code, e.url) for e in events] == [
        ("poll", 200, MONITOR),
        ("poll", 404, MONITOR),
    ]
    assert events[0].operation is operation
    assert events[0].response is rsps.calls[1].response


def test_a_raising_response_hook_never_loses_the_answer(rsps, pipeline) -> None:
    rsps.post(START, status=202, headers={"Operation-Location": MONITOR})
    rsps.get(MONITOR, json={"status": "Succeeded", "result": 7})
    operation: Operation[Any] = Operation.prepare(pipeline, "POST", START)

    def boom(event: ResponseEvent[Any]) -> None:
        raise RuntimeError(event.request)

    operation.on_response(boom)
    with pytest.raises(HookError) as info:
        operation.send_start()
    assert [str(e) for e in info.value.errors] == ["start"]
    assert operation.state is S.RUNNING  # the start answer was applied all the same
    with pytest.raises(HookError):
        operation.update_status()
    assert operation.value == 7
    assert len(rsps.calls) == 2


def test_a_restored_location_result_reread_with_an_error_is_rejected(rsps, pipeline) -> None:
    rsps.post(START, status=202, headers={"Location": LOCATION})
    rsps.get(LOCATION, json={"ok": True})
    operation = run(pipeline, "POST")
    restored = Operation.rehydrate(pipeline, operation.rehydration_token)
    rsps.replace(responses.GET, LOCATION, status=404)
    with pytest.raises(PollRejectedError):
        restored.update_status()  # a result that was Succeeded cannot turn Failed
    assert restored.state is S.SUCCEEDED


def test_on_response_hears_responses_fed_by_hand(pipeline) -> None:
    heard: list[tuple[str, int]] = []
    operation: Operation[Any] = Operation.prepare(pipeline, "POST", START)
    operation.on_response(lambda event: heard.append((event.request, event.status_code)))
    operation.receive(ResponseView.build(202, {"Location": LOCATION}, url=START))
    operation.receive(ResponseView.build(200, body='{"n": 1}', url=LOCATION))
    assert heard == [("start", 202), ("poll", 200)]
    assert operation.value == {"n": 1}
