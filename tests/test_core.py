"""The sans-I/O core, driven with ResponseView.build: start, polls, final resource, tokens."""

from __future__ import annotations

import email.utils
import json
from collections.abc import Mapping
from typing import Any

import msgspec
import pytest
from freezegun import freeze_time
from hypothesis import given, settings
from hypothesis import strategies as st

import lrokit._core as core_module
from lrokit import (
    Action,
    FinalStateVia,
    InvalidTokenError,
    InvalidTransitionError,
    OperationCore,
    OperationState,
    OriginPolicy,
    PollingProtocol,
    PollRejectedError,
    ProtocolError,
    ProtocolOptions,
    RehydrationToken,
    ResponseView,
    ServiceError,
    StartRejectedError,
    StatusUpdate,
    StatusVocabulary,
    UntrustedOriginError,
)

S = OperationState
HOST = "https://svc.example.com"
API = "api-version=2024-01-01"
START = f"{HOST}/items/1?api-version=2024-01-01"
MONITOR = f"{HOST}/operations/op1?api-version=2024-01-01"
LOCATION = f"{HOST}/results/op1?api-version=2024-01-01"
POLICY = OriginPolicy(HOST + "/")
#: The monitor's final answer that test_final_state_via's cases get.
FINAL_MONITOR = {"status": "Succeeded", "result": {"r": 1}, "resourceLocation": f"{HOST}/other"}


def view(
    status_code: int,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    url: str = START,
) -> ResponseView:
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    return ResponseView.build(status_code, headers, body, url)


def make(method: str = "PUT", url: str = START, **kwargs: Any) -> OperationCore:
    kwargs.setdefault("origin_policy", POLICY)
    kwargs.setdefault("created_at", 1234.5)
    return OperationCore(method, url, **kwargs)


def monitor_core(method: str = "POST", headers: Mapping[str, str] | None = None) -> OperationCore:
    core = make(method)
    core.receive(view(202, headers=headers or {"Operation-Location": MONITOR}))
    return core


def frozen(core: OperationCore) -> tuple[Any, ...]:
    """Everything observable about a core, to prove that nothing changed."""
    return (
        core.state,
        core.next_action,
        core.attempt,
        core.status,
        core.error,
        core.polling_url,
        core.final_url,
        core.has_payload,
        core.snapshot(),
    )


# -- start responses -----------------------------------------------------------------------


@pytest.mark.parametrize("code", [200, 201, 202])
def test_start_with_operation_location_runs(code: int) -> None:
    core = make("POST")
    decision = core.receive(view(code, {"status": "Running"}, {"Operation-Location": MONITOR}))
    assert decision.action is Action.POLL
    assert decision.url == MONITOR
    assert (decision.previous, decision.state) == (S.NOT_STARTED, S.RUNNING)
    assert decision.changed
    assert core.protocol is PollingProtocol.STATUS_MONITOR
    assert core.next_request_url == MONITOR
    assert not core.has_completed


@pytest.mark.parametrize("code", [200, 201, 204])
def test_start_without_anything_to_poll_is_done_by_status_code(code: int) -> None:
    core = make("POST")
    body = None if code == 204 else {"id": "x"}
    decision = core.receive(view(code, body))
    assert decision.action is Action.DONE
    assert decision.url is None
    assert core.state is S.SUCCEEDED
    assert core.protocol is PollingProtocol.NONE
    assert core.has_payload
    assert core.payload == body
    assert core.next_request_url is None


@pytest.mark.parametrize("code", [100, 301, 304, 400, 401, 403, 404, 409, 429, 500, 503])
def test_start_errors_are_rejected_with_the_service_error(code: int) -> None:
    core = make("PUT")
    raw = object()
    response = ResponseView.build(
        code,
        {"Operation-Location": MONITOR},
        json.dumps({"error": {"code": "Conflict", "message": "no", "details": [{"code": "D"}]}}),
        START,
        raw,
    )
    before = frozen(core)
    with pytest.raises(StartRejectedError) as info:
        core.receive(response)
    error = info.value
    assert error.status_code == code
    assert error.response is raw
    assert error.service_error == ServiceError(
        code="Conflict", message="no", details=(ServiceError(code="D"),)
    )
    assert frozen(core) == before
    assert core.next_action is None  # the next response is still taken as the start response


def test_start_error_with_garbage_body_has_no_service_error() -> None:
    with pytest.raises(StartRejectedError) as info:
        make().receive(view(500, "<html>oops</html>"))
    assert info.value.service_error is None


@pytest.mark.parametrize("code", [200, 201])
@pytest.mark.parametrize(
    ("word", "state"),
    [("Succeeded", S.SUCCEEDED), ("failed", S.FAILED), ("Cancelled", S.CANCELED)],
)
def test_terminal_start_body_completes_at_once_ignoring_polling_headers(
    code: int, word: str, state: OperationState
) -> None:
    core = make("PUT")
    body = {"status": word, "error": {"code": "E", "message": "m"}, "id": 7}
    headers = {
        "Operation-Location": MONITOR,
        "Azure-AsyncOperation": MONITOR,
        # Even a Location the client would refuse to poll: it is not polled.
        "Location": "https://elsewhere.example.net/x",
        "Retry-After": "30",
    }
    decision = core.receive(view(code, body, headers))
    assert decision.action is Action.DONE
    assert (decision.previous, decision.state) == (S.NOT_STARTED, state)
    assert core.state is state
    assert core.polling_url is None
    assert core.next_request_url is None
    assert core.protocol is PollingProtocol.NONE
    if state is S.SUCCEEDED:
        assert core.payload == body
        assert core.error is None
    else:
        assert core.error == ServiceError("E", "m")
        assert not core.has_payload


def test_terminal_provisioning_state_in_start_body_completes() -> None:
    core = make("PUT")
    body = {"properties": {"provisioningState": "Succeeded"}}
    core.receive(view(201, body, {"Azure-AsyncOperation": MONITOR}))
    assert core.state is S.SUCCEEDED
    assert core.payload == body


@pytest.mark.parametrize(
    ("headers", "protocol", "polling"),
    [
        (
            {
                "Operation-Location": MONITOR,
                "Azure-AsyncOperation": f"{HOST}/aao?api-version=1",
                "Location": LOCATION,
            },
            PollingProtocol.STATUS_MONITOR,
            MONITOR,
        ),
        (
            {"Azure-AsyncOperation": f"{HOST}/aao?api-version=1", "Location": LOCATION},
            PollingProtocol.STATUS_MONITOR,
            f"{HOST}/aao?api-version=1",
        ),
        ({"Location": LOCATION}, PollingProtocol.LOCATION, LOCATION),
    ],
    ids=["operation-location", "azure-asyncoperation", "location"],
)
def test_polling_header_precedence(
    headers: dict[str, str], protocol: PollingProtocol, polling: str
) -> None:
    core = make("PUT")
    decision = core.receive(view(202, None, headers))
    assert core.protocol is protocol
    assert core.polling_url == polling == decision.url
    assert core.location_url == LOCATION  # kept for the final GET either way


def test_header_names_are_case_insensitive() -> None:
    core = make("POST")
    core.receive(view(202, None, {"OPERATION-LOCATION": MONITOR}))
    assert core.polling_url == MONITOR


@pytest.mark.parametrize(
    ("reference", "request_url", "expected"),
    [
        ("/operations/9", START, f"{HOST}/operations/9?api-version=2024-01-01"),
        ("operations/9", f"{HOST}/items/1", f"{HOST}/items/operations/9"),
        ("../ops/9?api-version=x", f"{HOST}/a/b/c", f"{HOST}/a/ops/9?api-version=x"),
        ("//svc.example.com/ops/9", START, f"{HOST}/ops/9?api-version=2024-01-01"),
        ("/operations/9", "", f"{HOST}/operations/9?api-version=2024-01-01"),
    ],
)
def test_relative_polling_urls_resolve_against_the_request(
    reference: str, request_url: str, expected: str
) -> None:
    core = make("POST", START if request_url == "" else request_url)
    core.receive(view(202, None, {"Operation-Location": reference}, url=request_url))
    assert core.polling_url == expected


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
@pytest.mark.parametrize(
    ("code", "body"),
    [
        (202, None),
        (201, {"properties": {"provisioningState": "Creating"}}),
        (200, {"properties": {"provisioningState": "Updating"}}),
    ],
)
def test_put_without_headers_polls_the_original_url(
    method: str, code: int, body: dict[str, Any] | None
) -> None:
    core = make(method)
    decision = core.receive(view(code, body))
    assert core.protocol is PollingProtocol.RESOURCE
    assert decision.url == START
    assert core.state is S.RUNNING


@pytest.mark.parametrize("method", ["PUT", "PATCH", "POST"])
def test_a_resource_status_field_is_not_an_lro_status(method: str) -> None:
    # {"status": "active"} is the resource's own field: without polling headers and without
    # provisioningState, a 200 means done by its status code.
    core = make(method)
    decision = core.receive(view(200, {"id": "1", "status": "active"}))
    assert core.protocol is PollingProtocol.NONE
    assert decision.action is Action.DONE
    assert core.state is OperationState.SUCCEEDED
    assert core.payload == {"id": "1", "status": "active"}


@pytest.mark.parametrize(
    ("method", "code", "body"),
    [
        ("POST", 202, None),
        ("DELETE", 202, None),
        ("POST", 200, {"status": "Running"}),
        ("DELETE", 201, {"status": "InProgress"}),
        ("POST", 202, "accepted, not JSON"),
    ],
)
def test_nothing_to_poll_is_a_protocol_error(method: str, code: int, body: Any) -> None:
    core = make(method)
    before = frozen(core)
    with pytest.raises(ProtocolError, match="no way to poll"):
        core.receive(view(code, body))
    assert frozen(core) == before


def test_start_body_that_is_not_json_is_a_protocol_error_for_200() -> None:
    core = make("PUT")
    with pytest.raises(ProtocolError, match="not JSON"):
        core.receive(view(200, "{broken", {"Operation-Location": MONITOR}))
    assert core.state is S.NOT_STARTED
    # ... but an "accepted" answer's body is not needed.
    core.receive(view(202, "{broken", {"Operation-Location": MONITOR}))
    assert core.state is S.RUNNING


def test_start_retry_after_is_reported() -> None:
    core = make("POST")
    decision = core.receive(view(202, None, {"Operation-Location": MONITOR, "Retry-After": "7"}))
    assert decision.retry_after == 7.0
    assert decision.status is not None
    assert decision.status.retry_after == 7.0


@freeze_time("2024-05-01 12:00:00")
def test_http_date_retry_after_uses_the_wall_clock() -> None:
    core = make("POST")
    when = email.utils.format_datetime(
        email.utils.parsedate_to_datetime("Wed, 01 May 2024 12:00:10 GMT"), usegmt=True
    )
    decision = core.receive(view(202, None, {"Operation-Location": MONITOR, "Retry-After": when}))
    assert decision.retry_after == pytest.approx(10.0)


# -- status monitor polls --------------------------------------------------------------------


def test_monitor_running_poll() -> None:
    core = monitor_core()
    decision = core.receive(
        view(200, {"status": "InProgress", "percentComplete": 40}, {"Retry-After": "3"}, MONITOR)
    )
    assert decision.action is Action.POLL
    assert decision.url == MONITOR
    assert (decision.previous, decision.state) == (S.RUNNING, S.RUNNING)
    assert not decision.changed
    assert decision.status == StatusUpdate(S.RUNNING, "InProgress", 40.0, None, None, 3.0)
    assert core.attempt == 1


def test_monitor_not_started_keeps_the_operation_running() -> None:
    core = monitor_core()
    decision = core.receive(view(200, {"status": "NotStarted"}))
    assert decision.status is not None
    assert decision.status.state is S.NOT_STARTED
    assert core.state is S.RUNNING


def test_monitor_succeeded_post_without_location_takes_the_result() -> None:
    core = monitor_core("POST")
    decision = core.receive(view(200, {"status": "Succeeded", "result": {"answer": 42}}))
    assert decision.action is Action.DONE
    assert (decision.previous, decision.state) == (S.RUNNING, S.SUCCEEDED)
    assert core.payload == {"answer": 42}
    assert core.next_request_url is None


@pytest.mark.parametrize(
    ("word", "state"), [("Failed", S.FAILED), ("Canceled", S.CANCELED), ("CANCELLED", S.CANCELED)]
)
def test_monitor_failure_outcomes_keep_the_service_error(word: str, state: OperationState) -> None:
    core = monitor_core("PUT")
    body = {"status": word, "error": {"code": "Quota", "message": "too many"}}
    decision = core.receive(view(200, body))
    assert decision.action is Action.DONE
    assert core.state is state
    assert core.error == ServiceError("Quota", "too many")
    assert decision.status is not None
    assert decision.status.error == core.error
    assert core.final_url is None  # no final GET for a failure
    assert not core.has_payload


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"status": None},
        {"status": 3},
        {"status": ""},
        {"status": ["Succeeded"]},
        {"properties": {"provisioningState": "Succeeded"}},  # not where a monitor keeps it
        [],
        "null",
        "{not json",
        "",
    ],
    ids=lambda b: repr(b)[:30],
)
def test_monitor_without_readable_status_is_a_protocol_error(body: Any) -> None:
    core = monitor_core()
    before = frozen(core)
    with pytest.raises(ProtocolError) as info:
        core.receive(view(200, body))
    assert frozen(core) == before
    assert info.value.rehydration_token == str(core.token())


@pytest.mark.parametrize("code", [408, 429, 500, 502, 503, 504])
def test_transient_poll_answers_are_retried(code: int) -> None:
    core = monitor_core()
    before = frozen(core)
    decision = core.receive(view(code, {"error": {"code": "Busy"}}, {"Retry-After": "4"}))
    assert decision.action is Action.RETRY
    assert decision.url == MONITOR
    assert decision.retry_after == 4.0
    assert decision.status is None
    assert frozen(core) == before


@pytest.mark.parametrize("code", [301, 400, 401, 403, 404, 409, 410])
def test_poll_errors_are_rejected(code: int) -> None:
    core = monitor_core()
    before = frozen(core)
    with pytest.raises(PollRejectedError) as info:
        core.receive(view(code, {"error": {"code": "NotFound", "message": "gone"}}))
    assert info.value.status_code == code
    assert info.value.service_error == ServiceError("NotFound", "gone")
    assert info.value.rehydration_token == str(core.token())
    assert frozen(core) == before


def test_response_after_completion_is_a_protocol_error() -> None:
    core = monitor_core()
    core.receive(view(200, {"status": "Failed"}))
    with pytest.raises(ProtocolError, match="completed"):
        core.receive(view(200, {"status": "Succeeded"}))
    assert core.state is S.FAILED


def test_custom_vocabulary_and_status_path() -> None:
    options = ProtocolOptions(
        status_path=("job", "phase"),
        vocabulary=StatusVocabulary({"done": S.SUCCEEDED, "broken": S.FAILED}),
    )
    core = make("POST", options=options)
    core.receive(view(202, {"job": {"phase": "queued"}}, {"Operation-Location": MONITOR}))
    assert core.state is S.RUNNING
    core.receive(view(200, {"job": {"phase": "queued"}}))
    assert core.status is not None
    assert core.status.raw_status == "queued"
    with pytest.raises(ProtocolError):
        core.receive(view(200, {"status": "Succeeded"}))  # the default path is not read
    core.receive(view(200, {"job": {"phase": "DONE"}, "result": 1}))
    assert core.state is S.SUCCEEDED
    assert core.payload == 1


# -- Location polling ------------------------------------------------------------------------


def location_core(method: str = "POST") -> OperationCore:
    core = make(method)
    core.receive(view(202, None, {"Location": LOCATION}))
    assert core.protocol is PollingProtocol.LOCATION
    return core


def test_location_202_is_running() -> None:
    core = location_core()
    decision = core.receive(view(202, None, {"Retry-After": "2"}, LOCATION))
    assert decision.action is Action.POLL
    assert decision.url == LOCATION
    assert core.state is S.RUNNING
    assert decision.retry_after == 2.0
    assert core.attempt == 1


@pytest.mark.parametrize(("code", "body"), [(200, {"id": "r"}), (201, {"id": "r"}), (204, None)])
def test_location_done_codes_succeed_with_the_body(code: int, body: Any) -> None:
    core = location_core()
    decision = core.receive(view(code, body, url=LOCATION))
    assert decision.action is Action.DONE
    assert core.state is S.SUCCEEDED
    assert core.payload == body
    assert core.final_url is None  # the Location answer is the result: no second GET


@pytest.mark.parametrize(
    "body",
    [
        {"status": "Failed", "error": {"code": "Boom"}},
        {"status": "Canceled"},
        {"properties": {"provisioningState": "Failed"}},
    ],
)
def test_location_done_code_succeeds_whatever_the_body_says(body: Any) -> None:
    # Rule 3 of issue 13 (reversing the earlier rule): the status code decides, the body is
    # the result, even when it carries a Failed status or provisioningState.
    core = location_core()
    decision = core.receive(view(200, body, url=LOCATION))
    assert (decision.action, core.state) == (Action.DONE, S.SUCCEEDED)
    assert core.payload == body
    assert core.error is None
    assert core.status is not None
    assert core.status.raw_status is None


@pytest.mark.parametrize("code", [400, 404, 409])
def test_location_error_status_is_the_failure(code: int) -> None:
    core = location_core()
    decision = core.receive(view(code, {"error": {"code": "Boom", "message": "no"}}))
    assert (decision.action, core.state) == (Action.DONE, S.FAILED)
    assert core.error == ServiceError("Boom", "no")
    assert not core.has_payload
    assert core.next_request_url is None


def test_location_202_with_a_new_location_moves_the_operation() -> None:
    core = location_core()
    moved = core.receive(view(202, None, {"Location": "/results/op1/step2"}, LOCATION))
    step2 = f"{HOST}/results/op1/step2?api-version=2024-01-01"
    assert (moved.action, moved.url, core.next_request_url) == (Action.POLL, step2, step2)
    assert core.location_url == step2
    token = OperationCore.restore(core.token(), origin_policy=POLICY)
    assert token.next_request_url == step2  # the token carries the new URL
    # Relative to the URL that returned it; a 202 without Location keeps the URL.
    core.receive(view(202, None, {"Location": "step3"}, step2))
    step3 = f"{HOST}/results/op1/step3?api-version=2024-01-01"
    assert core.next_request_url == step3
    assert core.receive(view(202, None, {}, step3)).url == step3
    core.receive(view(200, {"id": "r"}, url=step3))
    assert core.payload == {"id": "r"}


def test_location_move_outside_the_origin_is_refused_and_changes_nothing() -> None:
    core = location_core()
    before = frozen(core)
    with pytest.raises(UntrustedOriginError):
        core.receive(view(202, None, {"Location": "https://evil.example/x"}, LOCATION))
    assert frozen(core) == before


def test_a_monitor_keeps_its_url_when_a_poll_carries_location() -> None:
    core = monitor_core()
    core.receive(view(200, {"status": "Running"}, {"Location": "/elsewhere"}, MONITOR))
    assert core.next_request_url == MONITOR


def test_location_invalid_json_is_a_protocol_error_and_changes_nothing() -> None:
    core = location_core()
    before = frozen(core)
    with pytest.raises(ProtocolError):
        core.receive(view(200, "{nope"))
    assert frozen(core) == before


def test_location_transient_is_retried() -> None:
    core = location_core()
    assert core.receive(view(503)).action is Action.RETRY
    assert core.state is S.RUNNING


# -- resource (provisioningState) polling ----------------------------------------------------


def resource_core() -> OperationCore:
    core = make("PUT")
    core.receive(view(201, {"properties": {"provisioningState": "Creating"}}))
    assert core.protocol is PollingProtocol.RESOURCE
    return core


def test_resource_polling_follows_provisioning_state() -> None:
    core = resource_core()
    assert core.receive(view(200, {"properties": {"provisioningState": "Updating"}})).url == START
    assert core.state is S.RUNNING
    done = {"id": "1", "properties": {"provisioningState": "Succeeded"}}
    decision = core.receive(view(200, done))
    assert decision.action is Action.DONE
    assert core.state is S.SUCCEEDED
    assert core.payload == done
    assert core.final_url is None


def test_resource_failed_and_no_provisioning_state_and_204() -> None:
    failed = resource_core()
    failed.receive(
        view(200, {"properties": {"provisioningState": "Failed"}, "error": {"code": "F"}})
    )
    assert failed.state is S.FAILED
    assert failed.error == ServiceError("F")

    plain = resource_core()
    plain.receive(view(200, {"id": "1"}))  # a resource without provisioningState is provisioned
    assert plain.state is S.SUCCEEDED
    assert plain.payload == {"id": "1"}

    empty = resource_core()
    empty.receive(view(204))
    assert empty.state is S.SUCCEEDED
    assert empty.payload is None


# -- final resource selection ----------------------------------------------------------------


def succeed(core: OperationCore, **extra: Any) -> Any:
    return core.receive(view(200, {"status": "Succeeded", **extra}, url=MONITOR))


def test_resource_location_wins() -> None:
    core = monitor_core("POST", {"Operation-Location": MONITOR, "Location": LOCATION})
    decision = succeed(core, resourceLocation="/things/5", result={"ignored": True})
    assert decision.action is Action.FETCH_FINAL
    assert decision.url == f"{HOST}/things/5?api-version=2024-01-01"
    assert (decision.previous, decision.state) == (S.RUNNING, S.RUNNING)
    assert core.state is S.RUNNING  # not succeeded until the result is read
    assert core.next_request_url == decision.url
    final = core.receive(view(200, {"id": 5}, url=decision.url))
    assert final.action is Action.DONE
    assert (final.previous, final.state) == (S.RUNNING, S.SUCCEEDED)
    assert final.status is not None
    assert final.status.state is S.SUCCEEDED
    assert core.payload == {"id": 5}


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_put_final_get_is_the_original_url(method: str) -> None:
    core = monitor_core(method, {"Operation-Location": MONITOR, "Location": LOCATION})
    decision = succeed(core)
    assert decision.action is Action.FETCH_FINAL
    assert decision.url == START  # api-version already there: not added twice
    assert decision.url.count("api-version=") == 1


def test_post_final_get_is_location_when_present() -> None:
    core = monitor_core("POST", {"Operation-Location": MONITOR, "Location": LOCATION})
    decision = succeed(core, result={"r": 1})
    assert decision.action is Action.FETCH_FINAL
    assert decision.url == LOCATION


def test_delete_does_no_final_get() -> None:
    core = monitor_core("DELETE", {"Operation-Location": MONITOR, "Location": LOCATION})
    decision = succeed(core, result={"r": 1})
    assert decision.action is Action.DONE
    assert core.state is S.SUCCEEDED
    assert core.payload is None
    assert core.final_url is None


@pytest.mark.parametrize(
    ("method", "via", "action", "url", "payload"),
    [
        ("PUT", FinalStateVia.LOCATION, Action.FETCH_FINAL, LOCATION, None),
        ("POST", FinalStateVia.ORIGINAL_URI, Action.FETCH_FINAL, START, None),
        ("DELETE", FinalStateVia.ORIGINAL_URI, Action.FETCH_FINAL, START, None),
        # azure-async-operation: the monitor's whole final answer, for every method
        # (issue 13, rule 4); operation-location: its result member, for POST only (a PUT
        # follows the defaults, here the monitor's resourceLocation).
        ("PUT", FinalStateVia.AZURE_ASYNC_OPERATION, Action.DONE, None, FINAL_MONITOR),
        ("POST", FinalStateVia.AZURE_ASYNC_OPERATION, Action.DONE, None, FINAL_MONITOR),
        ("DELETE", FinalStateVia.AZURE_ASYNC_OPERATION, Action.DONE, None, FINAL_MONITOR),
        ("PUT", FinalStateVia.OPERATION_LOCATION, Action.FETCH_FINAL, f"{HOST}/other?{API}", None),
        ("POST", FinalStateVia.OPERATION_LOCATION, Action.DONE, None, {"r": 1}),
        ("POST", "location", Action.FETCH_FINAL, LOCATION, None),
    ],
)
def test_final_state_via(
    method: str, via: FinalStateVia | str, action: Action, url: str | None, payload: Any
) -> None:
    core = make(method, options=ProtocolOptions(final_state_via=via))
    core.receive(view(202, None, {"Operation-Location": MONITOR, "Location": LOCATION}))
    decision = succeed(core, result={"r": 1}, resourceLocation=f"{HOST}/other")
    assert decision.action is action
    assert decision.url == url
    if action is Action.DONE:
        assert core.payload == payload


def test_final_state_via_location_without_a_location_header_uses_the_defaults() -> None:
    core = make("PUT", options=ProtocolOptions(final_state_via="location"))
    core.receive(view(202, None, {"Operation-Location": MONITOR}))
    decision = succeed(core, result={"r": 1})
    assert (decision.action, decision.url) == (Action.FETCH_FINAL, START)


def test_final_get_transient_rejected_and_invalid() -> None:
    core = monitor_core("PUT")
    succeed(core)
    before = frozen(core)
    retry = core.receive(view(503, headers={"Retry-After": "1"}))
    assert (retry.action, retry.url) == (Action.RETRY, START)
    assert frozen(core) == before
    with pytest.raises(PollRejectedError):
        core.receive(view(404))
    with pytest.raises(ProtocolError):
        core.receive(view(200, "{bad"))
    assert frozen(core) == before
    assert core.next_action is Action.FETCH_FINAL
    core.receive(view(204))
    assert core.state is S.SUCCEEDED
    assert core.payload is None
    assert core.has_payload


# -- api-version -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"{HOST}/operations/1", f"{HOST}/operations/1?api-version=2024-01-01"),
        (f"{HOST}/operations/1?x=1", f"{HOST}/operations/1?x=1&api-version=2024-01-01"),
        (
            f"{HOST}/operations/1?api-version=2099-01-01",
            f"{HOST}/operations/1?api-version=2099-01-01",
        ),
    ],
)
def test_api_version_carried_onto_polling_and_final_urls(header: str, expected: str) -> None:
    core = monitor_core("POST", {"Operation-Location": header, "Location": header})
    assert core.polling_url == expected
    decision = succeed(core)
    assert decision.url == expected
    assert decision.url is not None
    assert decision.url.count("api-version") == 1


def test_no_api_version_when_the_start_url_has_none() -> None:
    core = make("POST", f"{HOST}/items/1")
    core.receive(view(202, None, {"Location": f"{HOST}/ops/1"}, f"{HOST}/items/1"))
    assert core.polling_url == f"{HOST}/ops/1"
    assert core.api_version is None


# -- origin policy ----------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["Operation-Location", "Azure-AsyncOperation", "Location"])
@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example.net/ops/1",
        "http://svc.example.com/ops/1",  # downgrade
        "https://svc.example.com:8443/ops/1",
        "//evil.example.net/ops/1",
    ],
)
def test_foreign_polling_urls_are_refused(header: str, url: str) -> None:
    core = make("POST")
    before = frozen(core)
    with pytest.raises(UntrustedOriginError):
        core.receive(view(202, None, {header: url}))
    assert core.state is S.NOT_STARTED
    assert (core.state, core.next_action) == (before[0], before[1])


def test_allowed_origins_are_accepted() -> None:
    policy = OriginPolicy(HOST, allowed=["https://ops.example.org:443/anything"])
    core = make("POST", origin_policy=policy)
    core.receive(view(202, None, {"Operation-Location": "https://OPS.example.org/ops/1"}))
    assert core.state is S.RUNNING


def test_foreign_resource_location_is_refused() -> None:
    core = monitor_core("POST")
    with pytest.raises(UntrustedOriginError):
        succeed(core, resourceLocation="https://evil.example.net/r")
    assert core.state is S.RUNNING
    assert core.final_url is None


def test_without_origin_policy_anything_goes() -> None:
    core = OperationCore("POST", START)
    core.receive(view(202, None, {"Operation-Location": "https://other.example.net/o"}))
    assert core.polling_url == "https://other.example.net/o?api-version=2024-01-01"


# -- apply_status (manual driving) ------------------------------------------------------------


def test_apply_status_drives_a_fresh_core() -> None:
    core = make("POST")
    decision = core.apply_status(StatusUpdate(S.RUNNING, "Working", retry_after=2.0))
    assert (decision.action, decision.previous, decision.state) == (
        Action.POLL,
        S.NOT_STARTED,
        S.RUNNING,
    )
    assert decision.retry_after == 2.0
    assert core.attempt == 1
    done = core.apply_status(StatusUpdate(S.SUCCEEDED), payload={"v": 1})
    assert (done.action, done.state) == (Action.DONE, S.SUCCEEDED)
    assert core.payload == {"v": 1}
    assert core.attempt == 2


@pytest.mark.parametrize("state", [S.FAILED, S.CANCELED])
def test_apply_status_failure_keeps_the_error(state: OperationState) -> None:
    core = monitor_core()
    core.apply_status(StatusUpdate(state, error=ServiceError("X")))
    assert core.state is state
    assert core.error == ServiceError("X")


@pytest.mark.parametrize("first", [S.SUCCEEDED, S.FAILED, S.CANCELED])
@pytest.mark.parametrize("second", list(OperationState))
def test_apply_status_after_completion_is_refused(
    first: OperationState, second: OperationState
) -> None:
    core = monitor_core()
    core.apply_status(StatusUpdate(first), payload="value")
    before = frozen(core)
    with pytest.raises(InvalidTransitionError):
        core.apply_status(StatusUpdate(second), payload="other")
    assert frozen(core) == before
    assert core.payload == ("value" if first is S.SUCCEEDED else None)


# -- snapshot / restore -----------------------------------------------------------------------


def _stage_start_monitor() -> OperationCore:
    return monitor_core("POST", {"Operation-Location": MONITOR, "Location": LOCATION})


def _stage_running() -> OperationCore:
    core = _stage_start_monitor()
    core.receive(view(200, {"status": "Running"}))
    return core


def _stage_retrying() -> OperationCore:
    core = _stage_running()
    core.receive(view(503))
    return core


def _stage_location() -> OperationCore:
    return location_core("POST")


def _stage_resource() -> OperationCore:
    return resource_core()


def _stage_fetch_final() -> OperationCore:
    core = monitor_core("PUT", {"Operation-Location": MONITOR})
    succeed(core)
    return core


def _stage_failed() -> OperationCore:
    core = _stage_running()
    core.receive(view(200, {"status": "Failed", "error": {"code": "E"}}))
    return core


def _stage_canceled() -> OperationCore:
    core = _stage_running()
    core.receive(view(200, {"status": "Canceled"}))
    return core


NON_SUCCEEDED_STAGES = [
    _stage_start_monitor,
    _stage_running,
    _stage_retrying,
    _stage_location,
    _stage_resource,
    _stage_fetch_final,
    _stage_failed,
    _stage_canceled,
]


def _roundtrip(core: OperationCore, **kwargs: Any) -> OperationCore:
    token = RehydrationToken.parse(str(core.token()))
    return OperationCore.restore(token, origin_policy=POLICY, **kwargs)


@pytest.mark.parametrize("stage", NON_SUCCEEDED_STAGES, ids=lambda f: f.__name__[7:])
def test_snapshot_restore_round_trip(stage: Any) -> None:
    core = stage()
    restored = _roundtrip(core)
    assert restored.snapshot() == core.snapshot()
    assert restored.state is core.state
    assert restored.protocol is core.protocol
    assert restored.next_action is core.next_action
    assert restored.next_request_url == core.next_request_url
    assert restored.has_completed is core.has_completed
    assert restored.created_at == 1234.5


def test_restore_does_not_fire_triggers(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = [stage().token() for stage in NON_SUCCEEDED_STAGES]

    def forbidden(*args: object) -> object:
        raise AssertionError("restore must set the state, not transition into it")

    monkeypatch.setattr(core_module, "next_state", forbidden)
    for token in tokens:
        restored = OperationCore.restore(token, origin_policy=POLICY)
        assert restored.state.value == token.fields.state


def test_restored_running_core_finishes_like_the_original() -> None:
    original = _stage_running()
    restored = _roundtrip(original)
    for core in (original, restored):
        decision = core.receive(view(200, {"status": "Succeeded"}))
        assert (decision.action, decision.url) == (Action.FETCH_FINAL, LOCATION)
        core.receive(view(200, {"id": 1}))
        assert core.payload == {"id": 1}
    assert restored.attempt == original.attempt


def test_restored_failure_has_no_body_but_the_outcome() -> None:
    restored = _roundtrip(_stage_failed())
    assert restored.state is S.FAILED
    assert restored.next_action is Action.DONE
    assert restored.error is None  # bodies never travel in tokens
    assert restored.next_request_url is None


def test_restored_success_rereads_its_result() -> None:
    # PUT via the monitor: the final GET of the original URL is repeated.
    core = _stage_fetch_final()
    core.receive(view(200, {"id": 1}))
    restored = _roundtrip(core)
    assert restored.state is S.SUCCEEDED
    assert not restored.has_payload
    assert restored.next_request_url == START
    decision = restored.receive(view(200, {"id": 1}))
    assert (decision.previous, decision.state, decision.action) == (
        S.SUCCEEDED,
        S.SUCCEEDED,
        Action.DONE,
    )
    assert restored.payload == {"id": 1}

    # POST whose result is in the monitor: the monitor is read again.
    post = monitor_core("POST")
    succeed(post, result=5)
    again = _roundtrip(post)
    assert again.next_request_url == MONITOR
    again.receive(view(200, {"status": "Succeeded", "result": 5}))
    assert again.payload == 5
    assert again.state is S.SUCCEEDED


def test_restored_put_success_without_final_url_rereads_the_resource() -> None:
    # A PUT that completed in its start response: the resource itself is read again.
    core = make("PUT")
    core.receive(view(201, {"id": 1, "properties": {"provisioningState": "Succeeded"}}))
    restored = _roundtrip(core)
    assert restored.state is S.SUCCEEDED
    assert not restored.has_payload
    assert restored.next_request_url == START
    restored.receive(view(200, {"id": 1}))
    assert restored.payload == {"id": 1}


def test_restored_post_success_from_the_start_response_has_nothing_to_reread() -> None:
    core = make("POST")
    core.receive(view(200, {"answer": 42}))
    restored = _roundtrip(core)
    assert restored.state is S.SUCCEEDED
    assert not restored.has_payload
    assert restored.next_request_url is None


def test_restored_delete_success_needs_nothing() -> None:
    core = make("DELETE")
    core.receive(view(204))
    restored = _roundtrip(core)
    assert restored.state is S.SUCCEEDED
    assert restored.has_payload
    assert restored.payload is None
    assert restored.next_request_url is None


def test_restored_delete_success_via_monitor_polls_nothing() -> None:
    core = monitor_core("DELETE")
    succeed(core)
    restored = _roundtrip(core)
    assert (restored.has_payload, restored.payload, restored.next_request_url) == (True, None, None)


def test_operation_id_is_made_on_first_use_and_kept_in_the_token() -> None:
    core = make("POST")
    assert core._operation_id is None  # creation stays cheap
    first = core.operation_id
    assert len(first) == 36
    assert core.operation_id == first
    assert core.snapshot().operation_id == first
    assert OperationCore("POST", START, operation_id="given").operation_id == "given"


def test_a_token_before_the_start_response_cannot_be_restored() -> None:
    with pytest.raises(InvalidTokenError, match="no URL"):
        OperationCore.restore(make("POST").token())


def test_restore_checks_the_kind() -> None:
    core = make("POST", kind="pkg.CreateThing")
    core.receive(view(202, None, {"Operation-Location": MONITOR}))
    token = core.token()
    with pytest.raises(InvalidTokenError, match="kind field") as info:
        OperationCore.restore(token, kind="pkg.DeleteThing")
    assert "CreateThing" not in str(info.value)  # the token's content is never echoed
    assert OperationCore.restore(token, kind="pkg.CreateThing").kind == "pkg.CreateThing"
    anonymous = monitor_core().token()
    assert OperationCore.restore(anonymous, kind="pkg.DeleteThing").state is S.RUNNING


def test_restore_keeps_final_state_via() -> None:
    core = make("PUT", options=ProtocolOptions(final_state_via="location"))
    core.receive(view(202, None, {"Operation-Location": MONITOR, "Location": LOCATION}))
    restored = _roundtrip(core)
    assert restored.options.final_state_via is FinalStateVia.LOCATION
    assert succeed(restored).url == LOCATION


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"state": "Paused"}, InvalidTokenError),
        ({"protocol": "carrier-pigeon"}, InvalidTokenError),
        ({"pending": "sleep"}, InvalidTokenError),
        ({"final_state_via": "somewhere"}, InvalidTokenError),
        ({"attempt": -1}, InvalidTokenError),
        ({"pending": "done"}, InvalidTokenError),
        ({"polling_url": None}, InvalidTokenError),
        ({"polling_url": "file:///etc/passwd"}, InvalidTokenError),
        ({"polling_url": "https://evil.example.net/ops"}, UntrustedOriginError),
        ({"initial_url": "https://evil.example.net/items"}, UntrustedOriginError),
        ({"location_url": "http://svc.example.com/x"}, UntrustedOriginError),
    ],
)
def test_inconsistent_or_foreign_tokens_are_refused(
    changes: dict[str, Any], error: type[Exception]
) -> None:
    fields = msgspec.structs.replace(_stage_running().snapshot(), **changes)
    with pytest.raises(error):
        OperationCore.restore(RehydrationToken(fields), origin_policy=POLICY)


def test_repr_mentions_state_and_protocol() -> None:
    text = repr(_stage_running())
    assert "Running" in text
    assert "status-monitor" in text


# -- property: any sequence of responses keeps the core consistent ---------------------------

_urls = st.sampled_from(
    ["/ops/1", f"{HOST}/ops/2?api-version=9", "https://evil.example.net/x", "", "rel"]
)
_words = st.sampled_from(["Running", "Succeeded", "Failed", "Canceled", "NotStarted", "Odd", ""])
_bodies = st.one_of(
    st.none(),
    st.sampled_from(["{bad", "[]", "null", "{}"]),
    st.fixed_dictionaries(
        {},
        optional={
            "status": st.one_of(_words, st.integers()),
            "resourceLocation": _urls,
            "result": st.integers(),
            "error": st.one_of(st.just({"code": "E"}), st.just("text")),
            "properties": st.fixed_dictionaries({"provisioningState": _words}),
        },
    ),
)
_headers = st.dictionaries(
    st.sampled_from(["Operation-Location", "Azure-AsyncOperation", "Location", "Retry-After"]),
    st.one_of(_urls, st.sampled_from(["5", "-1", "soon"])),
    max_size=3,
)
_responses = st.tuples(
    st.sampled_from([200, 201, 202, 204, 301, 400, 404, 429, 500, 503]), _bodies, _headers
)


@settings(max_examples=200, derandomize=True, deadline=None, database=None)
@given(
    st.sampled_from(["PUT", "POST", "DELETE", "PATCH"]),
    st.sampled_from([None, *FinalStateVia]),
    st.lists(_responses, max_size=6),
)
def test_any_response_sequence_keeps_the_core_consistent(
    method: str, via: FinalStateVia | None, sequence: list[tuple[int, Any, dict[str, str]]]
) -> None:
    core = make(method, options=ProtocolOptions(final_state_via=via))
    for code, body, headers in sequence:
        before = frozen(core)
        try:
            decision = core.receive(view(code, body, headers))
        except (ProtocolError, StartRejectedError, PollRejectedError, UntrustedOriginError):
            assert core.state is before[0]  # nothing the core could not use moves it
            assert core.next_action is before[1]
            continue
        assert decision.state is core.state
        # Terminal exactly when there is nothing left to do.
        assert (core.next_action is Action.DONE) is core.state.is_terminal
        if core.state.is_terminal:
            assert core.next_request_url is None
        if decision.action is not Action.DONE:
            assert decision.url is not None
            assert decision.url == core.next_request_url
            restored = _roundtrip(core)
            assert restored.next_request_url == core.next_request_url
