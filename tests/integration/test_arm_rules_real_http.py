"""Issue 13's ARM rules over real HTTP: the demo service's ``/arm/...`` endpoints on 127.0.0.1.

Each rule runs through ``Operation`` and ``AsyncOperation`` alike (``drive``), on fake clocks
(no real waiting), and each test counts the requests the service saw: exactly those the rule
needs, no more. A response hook (``on_response``) records what the operation heard, which
must be the same requests' answers, in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest

from lrokit import (
    AsyncOperation,
    AsyncPipeline,
    FinalStateVia,
    MalformedBodyError,
    MissingStatusError,
    NothingToPollError,
    Operation,
    OperationState,
    Pipeline,
    PollEvent,
    PollingPolicy,
    ProtocolError,
    ProtocolOptions,
    ResponseEvent,
    StartRejectedError,
)
from lrokit.demo import API_VERSION, DemoService
from lrokit.testing import AsyncFakeClock, FakeClock

pytestmark = pytest.mark.integration

POLLS = 3
Q = f"api-version={API_VERSION}"
POLICY = PollingPolicy(interval=1.0, max_retries=3, retry_backoff=0.5)


@pytest.fixture
def arm() -> Iterator[DemoService]:
    with DemoService(polls_to_complete=POLLS, retry_after=2) as svc:
        yield svc
    assert not svc.running


@dataclass
class Run:
    """What one operation ended with, and what was heard on the way."""

    value: Any  # the value, or the type name of the error reading it raised
    state: OperationState
    heard: list[tuple[str, int, str]]  # (request, status, path) per on_response event
    sleeps: list[float]
    token_urls: list[str | None]  # the polling URL in the token after each processed poll


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def drive(
    driver: str,
    service: DemoService,
    method: str,
    path: str,
    json: Any = None,
    options: ProtocolOptions | None = None,
    policy: PollingPolicy = POLICY,
    idempotent: bool = False,
) -> Run:
    """Start ``method path`` and wait for it through the sync or the async driver."""
    heard: list[tuple[str, int, str]] = []
    tokens: list[str | None] = []

    def hear(event: ResponseEvent[Any]) -> None:
        heard.append((event.request, event.status_code, path_of(event.url)))

    def polled(event: PollEvent[Any]) -> None:
        tokens.append(event.operation.rehydration_token.fields.polling_url)

    def outcome(operation: Operation[Any] | AsyncOperation[Any]) -> Any:
        try:
            return operation.value
        except Exception as error:  # noqa: BLE001 - the test compares the type
            return type(error).__name__

    if driver == "sync":
        clock = FakeClock()
        with Pipeline(service.endpoint, polling=policy, clock=clock, sleep=clock.sleep) as p:
            operation = Operation.prepare(
                p, method, path, json=json, options=options, idempotent=idempotent
            )
            operation.on_response(hear)
            operation.on_poll(polled)
            operation.wait_for_completion()
            return Run(outcome(operation), operation.state, heard, clock.sleeps, tokens)

    async def run() -> Run:
        clock = AsyncFakeClock()
        async with AsyncPipeline(
            service.endpoint, polling=policy, clock=clock, sleep=clock.sleep
        ) as p:
            operation = AsyncOperation.prepare(
                p, method, path, json=json, options=options, idempotent=idempotent
            )
            operation.on_response(hear)
            operation.on_poll(polled)
            await operation.wait_for_completion()
            return Run(outcome(operation), operation.state, heard, clock.sleeps, tokens)

    return asyncio.run(run())


def seen(service: DemoService) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in service.requests]


DRIVERS = pytest.mark.parametrize("driver", ["sync", "async"])


# -- rule 1: a 202 with a new Location moves the operation ----------------------------------


@DRIVERS
def test_a_moving_location_is_followed_and_the_old_url_never_polled_again(arm, driver) -> None:
    run = drive(driver, arm, "POST", f"arm/jobs?{Q}", {"name": f"move-{driver}", "moves": 2})
    assert run.value == {"name": f"move-{driver}"}
    (job,) = [r.path.split("/")[3] for r in arm.requests if r.path.startswith("/arm/results/")][:1]
    results = f"/arm/results/{job}"
    assert seen(arm) == [
        ("POST", f"/arm/jobs?{Q}"),
        ("GET", f"{results}/0?{Q}"),
        ("GET", f"{results}/1?{Q}"),  # moved: the first URL is never asked again
        ("GET", f"{results}/2?{Q}"),
    ]
    assert [status for _, status, _ in run.heard] == [202, 202, 202, 200]
    # The token follows the move (after the start, and after each moving 202).
    assert run.token_urls[:3] == [f"{results}/0?{Q}", f"{results}/1?{Q}", f"{results}/2?{Q}"]


def test_a_token_from_before_a_move_still_resumes(arm) -> None:
    # The service keeps its earlier Location URLs answering (as ARM's do), so an operation
    # restored from a token written before a move is still running there, not failed.
    clock = FakeClock()
    with Pipeline(arm.endpoint, polling=POLICY, clock=clock, sleep=clock.sleep) as p:
        operation = Operation.start(p, "POST", f"arm/jobs?{Q}", json={"name": "old", "moves": 2})
        before_the_move = str(operation.rehydration_token)
        operation.update_status()  # 202 with a new Location: moved
        restored = Operation.rehydrate(p, before_the_move)
        restored.update_status()
        assert restored.state is OperationState.RUNNING
        restored.wait_for_completion()
        assert restored.value == {"name": "old"}


# -- rule 2: a start answered 500 (or 429/503/504) is retried for every method ---------------


@DRIVERS
@pytest.mark.parametrize("code", [500, 503, 429, 504])
def test_a_post_answered_with_a_transient_error_is_retried(arm, driver, code: int) -> None:
    name = f"flaky-{code}-{driver}"
    run = drive(driver, arm, "POST", f"arm/jobs?{Q}", {"name": name, "start_faults": [code]})
    assert run.value == {"name": name}
    requests = seen(arm)
    assert requests[:2] == [("POST", f"/arm/jobs?{Q}")] * 2  # one retry, then accepted
    assert len(requests) == 2 + POLLS
    assert run.heard[0] == ("start", code, f"/arm/jobs?{Q}")  # the retried answer was heard
    assert run.sleeps[0] == 2.0  # the server's Retry-After, longer than the 0.5 s back-off


@DRIVERS
@pytest.mark.parametrize("code", [502, 408])
def test_a_post_answered_502_or_408_is_not_repeated(arm, driver, code: int) -> None:
    body = {"name": f"no-{code}-{driver}", "start_faults": [code]}
    with pytest.raises(StartRejectedError) as info:
        drive(driver, arm, "POST", f"arm/jobs?{Q}", body)
    assert info.value.status_code == code
    assert len(arm.requests) == 1  # the POST may have been processed: never sent twice


@DRIVERS
@pytest.mark.parametrize("code", [502, 408])
def test_an_idempotent_start_answered_502_or_408_is_retried(arm, driver, code: int) -> None:
    # idempotent=True sends an Operation-Id, which makes a repeated start safe.
    name = f"idem-{code}-{driver}"
    body = {"name": name, "start_faults": [code]}
    run = drive(driver, arm, "POST", f"arm/jobs?{Q}", body, idempotent=True)
    assert run.value == {"name": name}
    assert len(arm.requests) == 2 + POLLS
    assert len({r.headers["operation-id"] for r in arm.requests[:2]}) == 1


@DRIVERS
def test_start_retries_stop_at_the_budget(arm, driver) -> None:
    body = {"name": f"down-{driver}", "start_faults": [503] * 9}
    with pytest.raises(StartRejectedError) as info:
        drive(driver, arm, "POST", f"arm/jobs?{Q}", body)
    assert info.value.status_code == 503
    assert len(arm.requests) == 1 + POLICY.max_retries


# -- rule 3: the Location answer's status code decides, its body is the value ----------------


@DRIVERS
@pytest.mark.parametrize(
    ("outcome", "result", "value"),
    [
        (200, {"properties": {"provisioningState": "Failed"}}, None),  # value: the body
        (201, {"status": "Failed"}, None),
        (204, None, None),
        (400, None, "OperationFailedError"),
        (404, None, "OperationFailedError"),
    ],
)
def test_location_outcomes_by_status_code(
    arm, driver, outcome: int, result: Any, value: Any
) -> None:
    body = {"name": f"out-{outcome}-{driver}", "outcome": outcome, "result": result}
    run = drive(driver, arm, "POST", f"arm/jobs?{Q}", body)
    if value is None:
        assert run.state is OperationState.SUCCEEDED
        assert run.value == result
    else:
        assert run.state is OperationState.FAILED
        assert run.value == value
    assert len(arm.requests) == 1 + POLLS  # no request after the Location's last answer


# -- rule 4: azure-async-operation: the monitor's final answer is the value -----------------


@DRIVERS
def test_azure_async_operation_result_is_the_monitor_answer(arm, driver) -> None:
    options = ProtocolOptions(final_state_via=FinalStateVia.AZURE_ASYNC_OPERATION)
    name = f"export-{driver}"
    run = drive(driver, arm, "POST", f"arm/exports?{Q}", {"name": name}, options)
    assert run.value["status"] == "Succeeded"
    assert run.value["properties"] == {"kind": "export", "output": f"exports/{name}.json"}
    requests = seen(arm)
    assert len(requests) == 1 + POLLS
    assert all(path.startswith("/arm/asyncops/") for _, path in requests[1:])  # no Location GET


# -- rule 5: a bare 201 PUT is polled for provisioningState ---------------------------------


@DRIVERS
def test_a_bare_201_put_is_polled_until_provisioned(arm, driver) -> None:
    url = f"/arm/resources/res-{driver}?{Q}"
    run = drive(driver, arm, "PUT", url.lstrip("/"), {"location": "eastus"})
    assert run.value == {"name": f"res-{driver}", "properties": {"provisioningState": "Succeeded"}}
    assert seen(arm) == [("PUT", url)] + [("GET", url)] * POLLS


# -- rule 7: every response is heard, in order ----------------------------------------------


@DRIVERS
def test_on_response_hears_every_answer_in_order(arm, driver) -> None:
    name = f"heard-{driver}"
    body = {"name": name, "start_faults": [500], "outcome": 404}
    run = drive(driver, arm, "POST", f"arm/jobs?{Q}", body)
    assert run.value == "OperationFailedError"
    requests = arm.requests
    assert [(kind, path) for kind, _, path in run.heard] == [
        ("start" if r.method == "POST" else "poll", r.path) for r in requests
    ]
    assert [status for _, status, _ in run.heard] == [500, 202, 202, 202, 404]


# -- rule 6: the kinds of unusable answer, told apart ---------------------------------------


@DRIVERS
@pytest.mark.parametrize(
    ("method", "path", "body", "error", "requests"),
    [
        ("POST", f"arm/jobs?{Q}", {"name": "idle", "no_poll": True}, NothingToPollError, 1),
        ("PUT", f"arm/resources/html-page?{Q}", {}, MalformedBodyError, 1),
        ("PUT", f"arm/resources/empty-answer?{Q}", {}, MissingStatusError, 2),
    ],
)
def test_unusable_answers_raise_their_own_protocol_error(
    arm, driver, method: str, path: str, body: Any, error: type[ProtocolError], requests: int
) -> None:
    with pytest.raises(error) as info:
        drive(driver, arm, method, path, body)
    assert isinstance(info.value, ProtocolError)
    assert len(arm.requests) == requests  # no retry of an honest, unusable answer
