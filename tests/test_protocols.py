"""The LRO protocol rules of issue 3, end to end through ``Operation`` over mocked HTTP.

Each section is one numbered rule (see docs/protocols.md); every test also counts the requests
made, because a rule is broken as much by a request it does not need as by a wrong answer.
``tests/test_core.py`` covers the same rules response by response on the sans-I/O core;
this file proves them through the public API, where the requests are real ``requests`` calls
(mocked by ``responses``) and waiting goes through the fake clock of ``tests/conftest.py``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
import responses

from lrokit import (
    FinalStateVia,
    HttpResponseError,
    Operation,
    OperationCanceledError,
    OperationError,
    OperationFailedError,
    OperationNotCompleteError,
    OperationState,
    Pipeline,
    PollRejectedError,
    ProtocolError,
    ProtocolOptions,
    RehydrationToken,
    ServiceError,
    StartRejectedError,
    StatusVocabulary,
    UntrustedOriginError,
)

S = OperationState
HOST = "https://svc.example.com"  # the conftest pipeline's endpoint
API = "api-version=2024-01-01"
START = f"{HOST}/items/1?{API}"
MONITOR = f"{HOST}/operations/1?{API}"
AAO = f"{HOST}/aao/1?{API}"
LOCATION = f"{HOST}/results/1?{API}"
FOREIGN = "https://evil.example.net/ops/1"

RUNNING = {"status": "Running"}
SUCCEEDED = {"status": "Succeeded"}


def requested(rsps: responses.RequestsMock) -> list[str]:
    """Every request made, as ``METHOD URL``, in order."""
    return [f"{call.request.method} {call.request.url}" for call in rsps.calls]


def run(pipeline: Pipeline, method: str, url: str = START, **kwargs: Any) -> Operation[Any]:
    """Start an operation and wait for it (on the fake clock)."""
    operation: Operation[Any] = Operation.start(pipeline, method, url, **kwargs)
    operation.wait_for_completion()
    return operation


def monitor(rsps: responses.RequestsMock, *bodies: Any, url: str = MONITOR) -> None:
    """Queue status-monitor answers in order (the last one repeats)."""
    for body in bodies:
        rsps.get(url, json=body)


# -- 1. polling-URL precedence -----------------------------------------------------------------


def test_operation_location_wins_over_azure_asyncoperation_and_location(rsps, pipeline) -> None:
    rsps.post(
        START,
        status=202,
        headers={
            "Operation-Location": "/operations/1",
            "Azure-AsyncOperation": AAO,
            "Location": "/results/1",
        },
    )
    monitor(rsps, RUNNING, SUCCEEDED)
    rsps.get(LOCATION, json={"id": "r1"})
    operation = run(pipeline, "POST")
    assert operation.value == {"id": "r1"}
    # Relative headers resolved against the start URL and given its api-version; the
    # Azure-AsyncOperation URL is never requested, Location only as the POST's result.
    assert requested(rsps) == [
        f"POST {START}",
        f"GET {MONITOR}",
        f"GET {MONITOR}",
        f"GET {LOCATION}",
    ]


def test_azure_asyncoperation_is_polled_and_location_is_not(rsps, pipeline) -> None:
    rsps.put(START, status=201, headers={"Azure-AsyncOperation": AAO, "Location": LOCATION})
    monitor(rsps, RUNNING, SUCCEEDED, url=AAO)
    rsps.get(START, json={"id": "1"})
    operation = run(pipeline, "PUT")
    assert operation.value == {"id": "1"}
    assert requested(rsps) == [f"PUT {START}", f"GET {AAO}", f"GET {AAO}", f"GET {START}"]


def test_location_is_read_for_the_final_state_only_when_final_state_via_says(
    rsps, pipeline
) -> None:
    rsps.put(START, status=201, headers={"Azure-AsyncOperation": AAO, "Location": LOCATION})
    monitor(rsps, RUNNING, SUCCEEDED, url=AAO)
    rsps.get(LOCATION, json={"id": "via-location"})
    operation = run(pipeline, "PUT", options=ProtocolOptions(final_state_via="location"))
    assert operation.value == {"id": "via-location"}
    assert requested(rsps) == [f"PUT {START}", f"GET {AAO}", f"GET {AAO}", f"GET {LOCATION}"]


def test_location_header_alone_is_polled(rsps, pipeline) -> None:
    rsps.post(START, status=202, headers={"Location": "/results/1"})
    rsps.get(LOCATION, status=202)
    rsps.get(LOCATION, status=200, json={"answer": 42})
    operation = run(pipeline, "POST")
    assert operation.value == {"answer": 42}
    assert requested(rsps) == [f"POST {START}", f"GET {LOCATION}", f"GET {LOCATION}"]


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_put_without_headers_polls_provisioning_state_on_the_original_url(
    rsps, pipeline, method: str
) -> None:
    rsps.add(method, START, status=201, json={"properties": {"provisioningState": "Creating"}})
    rsps.get(START, json={"properties": {"provisioningState": "Updating"}})
    done = {"id": "1", "properties": {"provisioningState": "Succeeded"}}
    rsps.get(START, json=done)
    operation = run(pipeline, method)
    assert operation.value == done
    assert requested(rsps) == [f"{method} {START}", f"GET {START}", f"GET {START}"]


@pytest.mark.parametrize("code", [200, 201, 204])
def test_status_code_alone_completes_without_a_request(rsps, pipeline, code: int) -> None:
    body = None if code == 204 else {"id": "1", "status": "active"}  # a field of the resource
    rsps.post(START, status=code, json=body)
    operation = run(pipeline, "POST")
    assert operation.value == body
    assert len(rsps.calls) == 1


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_accepted_without_anything_to_poll_is_a_protocol_error(rsps, pipeline, method: str) -> None:
    rsps.add(method, START, status=202)
    with pytest.raises(ProtocolError, match="no way to poll") as info:
        Operation.start(pipeline, method, START)
    assert info.value.response.status_code == 202
    assert len(rsps.calls) == 1


@pytest.mark.parametrize(
    ("start_url", "header", "polled"),
    [
        (START, "/operations/1", MONITOR),
        (f"{HOST}/a/b/items/1?{API}", "ops/2", f"{HOST}/a/b/items/ops/2?{API}"),
        (f"{HOST}/a/b?{API}", "../c/3?api-version=x", f"{HOST}/c/3?api-version=x"),
    ],
)
def test_relative_urls_resolve_against_the_request_that_returned_them(
    rsps, pipeline, start_url: str, header: str, polled: str
) -> None:
    rsps.post(start_url, status=202, headers={"Operation-Location": header})
    monitor(rsps, {"status": "Succeeded", "resourceLocation": "things/5"}, url=polled)
    final = f"{polled.rsplit('/', 1)[0]}/things/5?{API}"  # against the monitor's URL
    rsps.get(final, json={"id": 5})
    assert run(pipeline, "POST", start_url).value == {"id": 5}
    assert requested(rsps) == [f"POST {start_url}", f"GET {polled}", f"GET {final}"]


# -- 2. initial responses ---------------------------------------------------------------------


@pytest.mark.parametrize("code", [200, 201, 202, 204])
def test_every_accepted_start_code_polls(rsps, pipeline, code: int) -> None:
    rsps.post(START, status=code, headers={"Operation-Location": MONITOR})
    monitor(rsps, {"status": "Succeeded", "result": 1})
    assert run(pipeline, "POST").value == 1
    assert len(rsps.calls) == 2


# 429, 500, 503 and 504 are retried for every method (tests/test_arm_rules.py); 408 and 502
# only for a start that is safe to repeat, which this POST is not.
@pytest.mark.parametrize("code", [400, 401, 403, 404, 408, 409, 502])
def test_a_rejected_start_raises_with_the_service_error(rsps, pipeline, code: int) -> None:
    error = {"error": {"code": "Conflict", "message": "busy", "details": [{"code": "D1"}]}}
    rsps.post(START, status=code, json=error, headers={"Operation-Location": MONITOR})
    with pytest.raises(StartRejectedError) as info:
        Operation.start(pipeline, "POST", START)
    assert info.value.status_code == code
    assert info.value.response.status_code == code
    assert info.value.service_error == ServiceError(
        "Conflict", "busy", details=(ServiceError("D1"),)
    )
    assert len(rsps.calls) == 1  # a POST start is never repeated, and nothing is polled


@pytest.mark.parametrize("body", [b'{"error": "\xff"}', b"[" * 5000], ids=["bad UTF-8", "deep"])
def test_a_rejected_start_with_a_hostile_body_raises_start_rejected(rsps, pipeline, body) -> None:
    rsps.post(START, status=400, body=body, content_type="application/json")
    with pytest.raises(StartRejectedError) as info:
        Operation.start(pipeline, "POST", START)
    assert info.value.status_code == 400
    assert info.value.service_error is None
    assert info.value.response.content == body


@pytest.mark.parametrize("code", [200, 201])
@pytest.mark.parametrize(
    ("body", "outcome"),
    [
        ({"status": "Succeeded", "id": "1"}, None),
        ({"properties": {"provisioningState": "succeeded"}, "id": "1"}, None),
        ({"status": "Failed", "error": {"code": "Quota"}}, OperationFailedError),
        ({"properties": {"provisioningState": "Canceled"}}, OperationCanceledError),
        ({"status": "Cancelled"}, OperationCanceledError),
    ],
)
def test_a_terminal_start_body_completes_at_once_despite_polling_headers(
    rsps, pipeline, code: int, body: dict[str, Any], outcome: type[Exception] | None
) -> None:
    headers = {"Operation-Location": MONITOR, "Azure-AsyncOperation": AAO, "Location": FOREIGN}
    rsps.put(START, status=code, json=body, headers=headers)
    operation = run(pipeline, "PUT")
    assert operation.has_completed
    if outcome is None:
        assert operation.value == body
    else:
        with pytest.raises(outcome):
            _ = operation.value
    assert len(rsps.calls) == 1


@pytest.mark.parametrize("word", ["Creating", "Updating", "Accepted", "Provisioning", "Migrating"])
def test_a_non_terminal_provisioning_state_polls_until_terminal(rsps, pipeline, word: str) -> None:
    rsps.put(START, status=201, json={"properties": {"provisioningState": word}})
    rsps.get(START, json={"properties": {"provisioningState": word}})
    rsps.get(START, status=204)  # a later 204 on the original URL means done
    operation = run(pipeline, "PUT")
    assert operation.state is S.SUCCEEDED
    assert operation.value is None
    assert requested(rsps) == [f"PUT {START}", f"GET {START}", f"GET {START}"]


def test_resource_polling_failure_carries_the_error(rsps, pipeline) -> None:
    rsps.patch(START, status=200, json={"properties": {"provisioningState": "Updating"}})
    failed = {"properties": {"provisioningState": "Failed"}, "error": {"code": "Bad"}}
    rsps.get(START, json=failed)
    operation = run(pipeline, "PATCH")
    with pytest.raises(OperationFailedError) as info:
        _ = operation.value
    assert info.value.service_error == ServiceError("Bad")
    assert len(rsps.calls) == 2


# -- 3. status monitor bodies -----------------------------------------------------------------


def start_monitored(
    rsps: responses.RequestsMock, pipeline: Pipeline, method: str = "POST"
) -> Operation[Any]:
    rsps.add(method, START, status=202, headers={"Operation-Location": MONITOR})
    return Operation.start(pipeline, method, START)


@pytest.mark.parametrize(
    ("word", "state"),
    [
        ("succeeded", S.SUCCEEDED),
        ("SUCCEEDED", S.SUCCEEDED),
        ("Failed", S.FAILED),
        ("fAiLeD", S.FAILED),
        ("Canceled", S.CANCELED),
        ("Cancelled", S.CANCELED),
        ("CANCELLED", S.CANCELED),
    ],
)
def test_monitor_status_words_are_case_insensitive(
    rsps, pipeline, word: str, state: OperationState
) -> None:
    operation = start_monitored(rsps, pipeline)
    monitor(rsps, {"status": word})
    operation.wait_for_completion()
    assert operation.state is state
    assert operation.status is not None
    assert operation.status.raw_status == word
    assert len(rsps.calls) == 2


@pytest.mark.parametrize("word", ["NotStarted", "Running", "InProgress", "Queued", "Deploying"])
def test_any_other_status_is_not_terminal_and_kept_raw(rsps, pipeline, word: str) -> None:
    operation = start_monitored(rsps, pipeline)
    monitor(rsps, {"status": word}, {"status": "Succeeded", "result": "ok"})
    operation.update_status()
    assert operation.state is S.RUNNING
    assert operation.status is not None
    assert operation.status.raw_status == word
    operation.wait_for_completion()
    assert operation.value == "ok"
    assert len(rsps.calls) == 3


@pytest.mark.parametrize(
    "body",
    [
        "{}",
        "[]",
        "null",
        '"Succeeded"',
        "42",
        "true",
        '{"status": 5}',
        '{"status": ""}',
        '{"status": null}',
        '{"status": {"value": "Succeeded"}}',
        '{"status": ["Succeeded"]}',
        '{"result": 1}',
        '{"properties": {"provisioningState": "Succeeded"}}',  # not where a monitor keeps it
    ],
    ids=repr,
)
def test_a_monitor_without_a_readable_status_is_a_protocol_error(rsps, pipeline, body: str) -> None:
    operation = start_monitored(rsps, pipeline)
    rsps.get(MONITOR, body=body, content_type="application/json")
    with pytest.raises(ProtocolError) as info:
        operation.wait_for_completion()
    error = info.value
    assert isinstance(error.response, requests.Response)
    assert error.response.url == MONITOR
    assert error.response.content == body.encode()
    assert error.rehydration_token is not None
    assert RehydrationToken.parse(error.rehydration_token).fields.state == "Running"
    assert operation.state is S.RUNNING  # never taken as success
    assert len(rsps.calls) == 2


@pytest.mark.parametrize("body", ["", "{not json", "<html>busy</html>"], ids=repr)
def test_a_monitor_body_that_is_not_json_is_never_success(rsps, pipeline, body: str) -> None:
    # A body that is not JSON at all may be a transport accident (a truncated answer, a
    # proxy's page): the driver may repeat the poll within the retry budget, but it ends in
    # an error with the raw response attached, never in success.
    operation = start_monitored(rsps, pipeline)
    rsps.get(MONITOR, body=body, content_type="application/json")
    with pytest.raises(OperationError) as info:
        operation.wait_for_completion()
    assert isinstance(info.value.response, requests.Response)
    assert info.value.response.content == body.encode()
    assert info.value.rehydration_token is not None
    assert operation.state is S.RUNNING
    assert 2 <= len(rsps.calls) <= 2 + pipeline.polling.max_retries


def test_the_monitor_error_is_parsed_with_details_and_innererror(rsps, pipeline) -> None:
    operation = start_monitored(rsps, pipeline)
    innererror = {"code": "Inner", "trace": "t-1", "innererror": {"code": "Deepest"}}
    monitor(
        rsps,
        {
            "status": "Failed",
            "error": {
                "code": "DeploymentFailed",
                "message": "one resource failed",
                "target": "vm1",
                "details": [{"code": "Quota", "message": "out of cores", "details": []}],
                "innererror": innererror,
            },
        },
    )
    operation.wait_for_completion()
    with pytest.raises(OperationFailedError) as info:
        _ = operation.value
    assert info.value.service_error == ServiceError(
        code="DeploymentFailed",
        message="one resource failed",
        target="vm1",
        details=(ServiceError("Quota", "out of cores"),),
        innererror=innererror,
    )
    assert "DeploymentFailed: one resource failed" in str(info.value)
    assert len(rsps.calls) == 2


# -- 4. Location polling ------------------------------------------------------------------------


def start_location(rsps: responses.RequestsMock, pipeline: Pipeline) -> Operation[Any]:
    rsps.post(START, status=202, headers={"Location": LOCATION})
    return Operation.start(pipeline, "POST", START)


@pytest.mark.parametrize(("code", "body"), [(200, {"id": "r"}), (201, {"id": "r"}), (204, None)])
def test_location_202_runs_and_200_201_204_are_done(rsps, pipeline, code: int, body: Any) -> None:
    operation = start_location(rsps, pipeline)
    rsps.get(LOCATION, status=202)
    rsps.get(LOCATION, status=code, json=body)
    operation.update_status()
    assert operation.state is S.RUNNING
    operation.wait_for_completion()
    assert operation.value == body
    assert len(rsps.calls) == 3  # the Location answer is the result: no further GET


# -- 5. final result ----------------------------------------------------------------------------

RESULT = {"from": "monitor"}


@pytest.mark.parametrize(
    ("method", "via", "headers", "extra", "final"),
    [
        # Defaults.
        ("PUT", None, {"Operation-Location": MONITOR}, {}, START),
        ("PATCH", None, {"Operation-Location": MONITOR, "Location": LOCATION}, {}, START),
        ("POST", None, {"Operation-Location": MONITOR, "Location": LOCATION}, {}, LOCATION),
        ("POST", None, {"Operation-Location": MONITOR}, {"result": RESULT}, None),
        ("POST", None, {"Operation-Location": MONITOR}, {}, None),
        ("DELETE", None, {"Operation-Location": MONITOR, "Location": LOCATION}, {}, None),
        (
            "POST",
            None,
            {"Operation-Location": MONITOR, "Location": LOCATION},
            {"resourceLocation": "/things/5"},
            f"{HOST}/things/5?{API}",
        ),
        # final-state-via.
        ("PUT", "location", {"Operation-Location": MONITOR, "Location": LOCATION}, {}, LOCATION),
        ("PUT", "location", {"Operation-Location": MONITOR}, {}, START),  # no Location: default
        (
            "POST",
            "azure-async-operation",  # the monitor's whole final answer, not its result
            {"Azure-AsyncOperation": MONITOR, "Location": LOCATION},
            {"result": RESULT},
            None,
        ),
        ("PUT", "azure-async-operation", {"Azure-AsyncOperation": MONITOR}, {}, None),
        (
            "POST",
            "operation-location",
            {"Operation-Location": MONITOR, "Location": LOCATION},
            {"result": RESULT, "resourceLocation": "/things/5"},
            None,
        ),
        (
            "PUT",
            "operation-location",  # the monitor options make the monitor final for POST only
            {"Operation-Location": MONITOR},
            {"resourceLocation": "/things/5"},
            f"{HOST}/things/5?{API}",
        ),
        ("POST", "original-uri", {"Operation-Location": MONITOR, "Location": LOCATION}, {}, START),
    ],
)
def test_final_result_rules(
    rsps,
    pipeline,
    method: str,
    via: str | None,
    headers: dict[str, str],
    extra: dict[str, Any],
    final: str | None,
) -> None:
    rsps.add(method, START, status=202, headers=headers)
    monitor(rsps, {"status": "Succeeded", **extra})
    if final is not None:
        rsps.get(final, json={"final": True})
    operation = run(pipeline, method, options=ProtocolOptions(final_state_via=via))
    expected = [f"{method} {START}", f"GET {MONITOR}"]
    if final is not None:
        expected.append(f"GET {final}")
        assert operation.value == {"final": True}
    elif via == "azure-async-operation":
        assert operation.value == {"status": "Succeeded", **extra}
    elif method == "DELETE":
        assert operation.value is None
    else:
        assert operation.value == extra.get("result")
    assert requested(rsps) == expected  # and nothing else: no request the rule does not need


def test_a_final_get_error_raises_it_and_the_operation_is_not_succeeded(rsps, pipeline) -> None:
    operation = start_monitored(rsps, pipeline, "PUT")
    monitor(rsps, SUCCEEDED)
    rsps.get(START, status=404, json={"error": {"code": "ResourceNotFound", "message": "gone"}})
    with pytest.raises(PollRejectedError) as info:
        operation.wait_for_completion()
    assert info.value.status_code == 404
    assert info.value.service_error == ServiceError("ResourceNotFound", "gone")
    assert info.value.rehydration_token is not None
    assert operation.state is S.RUNNING
    with pytest.raises(OperationNotCompleteError):
        _ = operation.value
    assert len(rsps.calls) == 3


def test_a_transient_final_get_error_is_retried(rsps, pipeline) -> None:
    operation = start_monitored(rsps, pipeline, "PUT")
    monitor(rsps, SUCCEEDED)
    rsps.get(START, status=503)
    rsps.get(START, json={"id": "1"})
    operation.wait_for_completion()
    assert operation.value == {"id": "1"}
    assert requested(rsps) == [f"PUT {START}", f"GET {MONITOR}", f"GET {START}", f"GET {START}"]


# -- 6. failure surfaces ------------------------------------------------------------------------


def test_the_failure_types_are_distinct() -> None:
    kinds = [
        StartRejectedError,
        OperationFailedError,
        OperationCanceledError,
        ProtocolError,
        PollRejectedError,
    ]
    for kind in kinds:
        assert issubclass(kind, OperationError)
        others = [k for k in kinds if k is not kind]
        assert not any(issubclass(kind, other) for other in others), kind
    assert issubclass(StartRejectedError, HttpResponseError)
    assert issubclass(PollRejectedError, HttpResponseError)


def _assert_resumable(pipeline: Pipeline, token: str | None, state: OperationState) -> None:
    assert token is not None
    assert Operation.rehydrate(pipeline, token).state is state


def test_failed_and_canceled_carry_response_error_and_token(rsps, pipeline) -> None:
    for word, kind, state in [
        ("Failed", OperationFailedError, S.FAILED),
        ("Canceled", OperationCanceledError, S.CANCELED),
    ]:
        rsps.reset()
        operation = start_monitored(rsps, pipeline)
        monitor(rsps, {"status": word, "error": {"code": "E", "message": word}})
        operation.wait_for_completion()
        with pytest.raises(kind) as info:
            _ = operation.value
        assert info.value.response is operation.get_raw_response()
        assert info.value.response.url == MONITOR
        assert info.value.service_error == ServiceError("E", word)
        _assert_resumable(pipeline, info.value.rehydration_token, state)
        assert len(rsps.calls) == 2


def test_protocol_and_poll_errors_carry_response_error_and_token(rsps, pipeline) -> None:
    operation = start_monitored(rsps, pipeline)
    rsps.get(MONITOR, status=200, json={"percentComplete": 50})
    with pytest.raises(ProtocolError) as protocol:
        operation.update_status()
    assert protocol.value.response.json() == {"percentComplete": 50}
    assert protocol.value.service_error is None
    _assert_resumable(pipeline, protocol.value.rehydration_token, S.RUNNING)

    rsps.replace(responses.GET, MONITOR, status=403, json={"error": {"code": "Forbidden"}})
    with pytest.raises(PollRejectedError) as rejected:
        operation.update_status()
    assert rejected.value.status_code == 403
    assert rejected.value.response.status_code == 403
    assert rejected.value.service_error == ServiceError("Forbidden")
    _assert_resumable(pipeline, rejected.value.rehydration_token, S.RUNNING)
    assert len(rsps.calls) == 3


def test_poll_rejected_after_the_retries_are_spent(rsps, pipeline) -> None:
    operation = start_monitored(rsps, pipeline)
    rsps.get(MONITOR, status=503, json={"error": {"code": "Busy"}})
    with pytest.raises(PollRejectedError) as info:
        operation.wait_for_completion()
    assert info.value.status_code == 503
    assert info.value.response.status_code == 503
    _assert_resumable(pipeline, info.value.rehydration_token, S.RUNNING)
    max_retries = pipeline.polling.max_retries
    assert len(rsps.calls) == 1 + max_retries + 1


def test_a_rejected_start_has_nothing_to_resume(rsps, pipeline) -> None:
    rsps.post(START, status=400, json={"error": {"code": "BadRequest"}})
    with pytest.raises(StartRejectedError) as info:
        Operation.start(pipeline, "POST", START)
    assert info.value.response.status_code == 400
    assert info.value.service_error == ServiceError("BadRequest")
    # Nothing was started, so no token: the start itself is what to repeat.
    assert info.value.rehydration_token is None


# -- 7. request hygiene -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "polled"),
    [
        (f"{HOST}/operations/1", MONITOR),
        (f"{HOST}/operations/1?x=1", f"{HOST}/operations/1?x=1&{API}"),
        (
            f"{HOST}/operations/1?api-version=2099-01-01",
            f"{HOST}/operations/1?api-version=2099-01-01",
        ),
        (f"{HOST}/operations/1?x-api-version=7", f"{HOST}/operations/1?x-api-version=7&{API}"),
    ],
)
def test_api_version_is_carried_onto_polling_and_final_urls_once(
    rsps, pipeline, header: str, polled: str
) -> None:
    rsps.post(START, status=202, headers={"Operation-Location": header, "Location": header})
    monitor(rsps, SUCCEEDED, url=polled)
    rsps.get(polled, json={"id": 1})
    operation = run(pipeline, "POST")
    assert operation.value == {"id": 1}
    urls = [call.request.url for call in rsps.calls]
    assert urls == [START, polled, polled]
    assert all(url.count("api-version=") - url.count("x-api-version=") == 1 for url in urls)


def test_operation_headers_of_a_prepared_operation_go_on_every_request(rsps, pipeline) -> None:
    rsps.put(START, status=201, headers={"Operation-Location": MONITOR})
    monitor(rsps, RUNNING, SUCCEEDED)
    rsps.get(START, json={"id": "1"})
    operation: Operation[Any] = Operation.prepare(
        pipeline, "PUT", START, operation_headers={"x-ms-client-request-id": "abc", "x-custom": "1"}
    )
    operation.wait_for_completion()
    assert operation.value == {"id": "1"}
    assert len(rsps.calls) == 4  # start, two polls, final GET
    for call in rsps.calls:
        assert call.request.headers["x-ms-client-request-id"] == "abc"
        assert call.request.headers["x-custom"] == "1"


def test_session_cookies_are_sent_on_polls_and_the_final_get(rsps, pipeline) -> None:
    pipeline.session.cookies.set("tenant", "t1", domain="svc.example.com", path="/")
    rsps.put(
        START,
        status=201,
        headers={"Operation-Location": MONITOR, "Set-Cookie": "affinity=node-7; Path=/"},
    )
    monitor(rsps, RUNNING, SUCCEEDED)
    rsps.get(START, json={"id": "1"})
    run(pipeline, "PUT")
    cookies = [call.request.headers.get("Cookie", "") for call in rsps.calls]
    assert "tenant=t1" in cookies[0]
    for sent in cookies[1:]:
        assert "tenant=t1" in sent
        assert "affinity=node-7" in sent  # set by the start response, honoured afterwards
    assert len(cookies) == 4


@pytest.mark.parametrize("header", ["Operation-Location", "Azure-AsyncOperation", "Location"])
@pytest.mark.parametrize(
    "url", [FOREIGN, "http://svc.example.com/ops/1", "https://svc.example.com:8443/ops/1"]
)
def test_no_request_goes_to_an_untrusted_origin(rsps, clock, header: str, url: str) -> None:
    rsps.post(START, status=202, headers={header: url})
    rsps.get(url, json=SUCCEEDED)  # registered, so a request to it would be recorded
    with (
        Pipeline(
            HOST, headers={"Authorization": "Bearer secret"}, clock=clock, sleep=clock.sleep
        ) as pipeline,
        pytest.raises(UntrustedOriginError),
    ):
        Operation.start(pipeline, "POST", START)
    assert requested(rsps) == [f"POST {START}"]


@pytest.mark.parametrize("code", [301, 302, 307, 308])
def test_a_redirect_is_not_followed_past_the_origin_rule(rsps, clock, code: int) -> None:
    rsps.post(START, status=202, headers={"Operation-Location": MONITOR})
    rsps.get(MONITOR, status=code, headers={"Location": FOREIGN})
    rsps.get(FOREIGN, json=SUCCEEDED)  # registered, so a request to it would be recorded
    with Pipeline(HOST, headers={"api-key": "secret"}, clock=clock, sleep=clock.sleep) as pipeline:
        operation = Operation.start(pipeline, "POST", START)
        with pytest.raises(PollRejectedError) as info:
            operation.wait_for_completion()
    assert info.value.status_code == code
    assert operation.state is S.RUNNING
    assert requested(rsps) == [f"POST {START}", f"GET {MONITOR}"]


def test_a_redirected_start_is_rejected_not_followed(rsps, pipeline) -> None:
    rsps.put(START, status=307, headers={"Location": FOREIGN})
    rsps.put(FOREIGN, status=201, json=SUCCEEDED)
    with pytest.raises(StartRejectedError) as info:
        Operation.start(pipeline, "PUT", START)
    assert info.value.status_code == 307
    assert requested(rsps) == [f"PUT {START}"]


def test_an_untrusted_resource_location_is_not_requested(rsps, pipeline) -> None:
    operation = start_monitored(rsps, pipeline)
    monitor(rsps, {"status": "Succeeded", "resourceLocation": FOREIGN})
    rsps.get(FOREIGN, json={"stolen": True})
    with pytest.raises(UntrustedOriginError):
        operation.wait_for_completion()
    assert operation.state is S.RUNNING
    assert requested(rsps) == [f"POST {START}", f"GET {MONITOR}"]


def test_allowed_origins_may_be_polled(rsps, clock) -> None:
    other = "https://ops.example.org/operations/1"
    rsps.post(START, status=202, headers={"Operation-Location": other})
    rsps.get(f"{other}?{API}", json={"status": "Succeeded", "result": 3})
    with Pipeline(
        HOST, allowed_origins=["https://ops.example.org"], clock=clock, sleep=clock.sleep
    ) as pipeline:
        assert run(pipeline, "POST").value == 3
    assert len(rsps.calls) == 2


# -- 8. configuration ---------------------------------------------------------------------------

JOB_VOCABULARY = StatusVocabulary(
    {
        "pending": S.NOT_STARTED,
        "working": S.RUNNING,
        "done": S.SUCCEEDED,
        "error": S.FAILED,
        "aborted": S.CANCELED,
    },
    include_defaults=False,
)


class JobOperation(Operation[Any]):
    """A non-Azure service's job: ``{"state": "DONE"}``, configured, not subclassed core."""

    protocol_options = ProtocolOptions(status_path=["state"], vocabulary=JOB_VOCABULARY)


@pytest.mark.parametrize(
    ("last", "state"),
    [("DONE", S.SUCCEEDED), ("Error", S.FAILED), ("ABORTED", S.CANCELED)],
)
def test_a_custom_status_path_and_vocabulary(
    rsps, pipeline, last: str, state: OperationState
) -> None:
    rsps.post(START, status=202, headers={"Operation-Location": MONITOR})
    monitor(
        rsps,
        {"state": "PENDING"},
        {"state": "WORKING", "status": "Succeeded"},  # the default path is not read
        {"state": last, "result": {"rows": 3}},
    )
    operation = JobOperation.start(pipeline, "POST", START)
    operation.update_status()
    operation.update_status()
    assert operation.state is S.RUNNING
    operation.wait_for_completion()
    assert operation.state is state
    if state is S.SUCCEEDED:
        assert operation.value == {"rows": 3}
    assert len(rsps.calls) == 4


def test_a_word_outside_a_closed_vocabulary_keeps_the_operation_running(rsps, pipeline) -> None:
    rsps.post(START, status=202, headers={"Operation-Location": MONITOR})
    monitor(rsps, {"state": "Succeeded"}, {"state": "done"})  # "Succeeded" is not its word
    operation = JobOperation.start(pipeline, "POST", START)
    operation.update_status()
    assert operation.state is S.RUNNING
    operation.wait_for_completion()
    assert operation.state is S.SUCCEEDED
    assert len(rsps.calls) == 3


def test_options_per_operation_override_the_class(rsps, pipeline) -> None:
    rsps.put(START, status=202, headers={"Operation-Location": MONITOR, "Location": LOCATION})
    monitor(rsps, SUCCEEDED)
    rsps.get(LOCATION, json={"via": "location"})
    options = ProtocolOptions(final_state_via=FinalStateVia.LOCATION)
    operation = run(pipeline, "PUT", options=options)
    assert operation.value == {"via": "location"}
    assert len(rsps.calls) == 3


def test_an_unknown_final_state_via_is_refused() -> None:
    with pytest.raises(ValueError, match="FinalStateVia"):
        ProtocolOptions(final_state_via="somewhere")
    assert json.dumps([v.value for v in FinalStateVia]) == (
        '["location", "azure-async-operation", "operation-location", "original-uri"]'
    )
