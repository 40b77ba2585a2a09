"""One table of operation lives, run through both drivers: ``Operation`` over ``responses`` and
``AsyncOperation`` over httpx's ``MockTransport``, each on a fake clock.

Every row says what the service answers, how the caller waits, and what must come of it: the
requests in order, the delays slept, the final state, and the value or the error. Both sides
must match the row, and so each other: the async twin has the sync operation's semantics.
The rows are the scenarios of ``test_sync_unit.py``, ``test_waiting.py`` and
``test_protocols.py`` that a start and a wait can express.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
import requests
import responses
from async_helpers import Answer, MockHttp

from lrokit import (
    AsyncOperation,
    AsyncPipeline,
    MissingStatusError,
    Operation,
    OperationCanceledError,
    OperationFailedError,
    OperationState,
    Pipeline,
    PollingPolicy,
    PollRejectedError,
    RetriesExhaustedError,
    StartOutcomeUnknownError,
    StartRejectedError,
    WaitTimeoutError,
)
from lrokit.testing import AsyncFakeClock, FakeClock

S = OperationState
HOST = "https://svc.example.com"
JOBS = f"{HOST}/jobs?api-version=1"
MONITOR = f"{HOST}/ops/1?api-version=1"
ITEM = f"{HOST}/items/1?api-version=1"
LOCATION = f"{HOST}/results/1?api-version=1"
OL = {"Operation-Location": "/ops/1"}
RESULT = {"id": "vs1", "name": "docs"}
POLICY = PollingPolicy(interval=1.0, floor=0.0, cap=60.0, max_retries=2, retry_backoff=0.5)
#: "No answer" in a row: the sync side raises requests' exception, the async side httpx's.
LOST = {
    # No connection: the request never left (requests' ConnectTimeout says so by its type).
    "connect": (requests.ConnectTimeout, httpx.ConnectError),
    "timeout": (requests.ReadTimeout, httpx.ReadTimeout),
    # The connection broke after the request was sent: the service may have it.
    "dropped": (requests.ConnectionError, httpx.RemoteProtocolError),
}


@dataclass(frozen=True)
class Reply:
    """One answer of the service to ``method url``, or ``lost`` (no answer)."""

    method: str
    url: str
    status: int = 200
    json: Any = None
    body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    lost: str | None = None


def status(word: str, **headers: str) -> Reply:
    """A monitor answer with ``status`` = ``word`` (a result or error where it fits)."""
    body: dict[str, Any] = {"status": word}
    if word == "Succeeded":
        body["result"] = RESULT
    if word in ("Failed", "Canceled"):
        body["error"] = {"code": "Quota", "message": "out of quota"}
    return Reply("GET", MONITOR, json=body, headers=headers)


def code(number: int, url: str = MONITOR, **headers: str) -> Reply:
    """A bare HTTP error answer to a poll."""
    return Reply("GET", url, status=number, headers=headers)


def started(method: str = "POST", url: str = JOBS, **headers: str) -> Reply:
    """A 202 start answer following the status monitor."""
    return Reply(method, url, status=202, json={"status": "NotStarted"}, headers={**OL, **headers})


@dataclass(frozen=True)
class Case:
    """A start, a wait, and what must come of them."""

    name: str
    method: str
    url: str
    replies: tuple[Reply, ...]
    requests: tuple[tuple[str, str], ...]
    sleeps: tuple[float, ...]
    state: OperationState | None = None
    value: Any = None
    raises: str | None = None  # the error's type name, or "transport" (the sides differ)
    interval: Any = None
    timeout: float | None = None


def polls(count: int, url: str = MONITOR) -> tuple[tuple[str, str], ...]:
    return (("GET", url),) * count


CASES = [
    Case(
        "interval-in-seconds",
        "POST",
        JOBS,
        (started(), status("Running"), status("Running"), status("Succeeded")),
        (("POST", JOBS), *polls(3)),
        (2.0, 2.0, 2.0),
        S.SUCCEEDED,
        RESULT,
        interval=2,
    ),
    Case(
        "interval-as-timedelta",
        "POST",
        JOBS,
        (started(), status("Running"), status("Succeeded")),
        (("POST", JOBS), *polls(2)),
        (0.25, 0.25),
        S.SUCCEEDED,
        RESULT,
        interval=timedelta(milliseconds=250),
    ),
    Case(
        "the-policy-interval",
        "POST",
        JOBS,
        (started(), status("Running"), status("Succeeded")),
        (("POST", JOBS), *polls(2)),
        (1.0, 1.0),
        S.SUCCEEDED,
        RESULT,
    ),
    Case(
        "a-longer-retry-after-wins",
        "POST",
        JOBS,
        (
            started(**{"Retry-After": "5"}),
            status("Running", **{"Retry-After": "1"}),
            status("Running", **{"retry-after-ms": "4500"}),
            status("Succeeded"),
        ),
        (("POST", JOBS), *polls(3)),
        (5.0, 2.0, 4.5),
        S.SUCCEEDED,
        RESULT,
        interval=2,
    ),
    Case(
        "retry-after-capped",
        "POST",
        JOBS,
        (started(**{"Retry-After": "3600"}), status("Succeeded")),
        (("POST", JOBS), *polls(1)),
        (60.0,),
        S.SUCCEEDED,
        RESULT,
    ),
    Case(
        "final-get-not-delayed",
        "PUT",
        ITEM,
        (
            started("PUT", ITEM),
            status("Running"),
            status("Succeeded"),
            Reply("GET", ITEM, json={"id": "vs1", "name": "final"}),
        ),
        (("PUT", ITEM), *polls(2), ("GET", ITEM)),
        (2.0, 2.0),
        S.SUCCEEDED,
        {"id": "vs1", "name": "final"},
        interval=2,
    ),
    Case(
        "failed",
        "POST",
        JOBS,
        (started(), status("Running"), status("Failed")),
        (("POST", JOBS), *polls(2)),
        (1.0, 1.0),
        S.FAILED,
        raises="OperationFailedError",
    ),
    Case(
        "canceled",
        "POST",
        JOBS,
        (started(), status("Canceled")),
        (("POST", JOBS), *polls(1)),
        (1.0,),
        S.CANCELED,
        raises="OperationCanceledError",
    ),
    Case(
        "timeout-at-the-deadline",
        "POST",
        JOBS,
        (started(), status("Running")),
        (("POST", JOBS), *polls(2)),
        (2.0, 2.0, 1.0),
        S.RUNNING,
        raises="WaitTimeoutError",
        interval=2,
        timeout=5,
    ),
    Case(
        "zero-timeout",
        "POST",
        JOBS,
        (started(), status("Running")),
        (("POST", JOBS),),
        (),
        S.RUNNING,
        raises="WaitTimeoutError",
        timeout=0,
    ),
    Case(
        "transient-503s",
        "POST",
        JOBS,
        (started(), code(503), code(503), status("Succeeded")),
        (("POST", JOBS), *polls(3)),
        (1.0, 0.5, 1.0),
        S.SUCCEEDED,
        RESULT,
    ),
    Case(
        "throttled-with-retry-after",
        "POST",
        JOBS,
        (started(), code(429, **{"Retry-After": "7"}), status("Succeeded")),
        (("POST", JOBS), *polls(2)),
        (1.0, 7.0),
        S.SUCCEEDED,
        RESULT,
    ),
    Case(
        "retries-exhausted",
        "POST",
        JOBS,
        (started(), code(503), code(502), code(504), status("Succeeded")),
        (("POST", JOBS), *polls(3)),
        (1.0, 0.5, 1.0),
        S.RUNNING,
        raises="RetriesExhaustedError",
    ),
    Case(
        "lost-answers-retried",
        "POST",
        JOBS,
        (
            started(),
            Reply("GET", MONITOR, lost="connect"),
            Reply("GET", MONITOR, lost="timeout"),
            status("Succeeded"),
        ),
        (("POST", JOBS), *polls(3)),
        (1.0, 0.5, 1.0),
        S.SUCCEEDED,
        RESULT,
    ),
    Case(
        "a-404-is-not-retried",
        "POST",
        JOBS,
        (started(), code(404)),
        (("POST", JOBS), *polls(1)),
        (1.0,),
        S.RUNNING,
        raises="PollRejectedError",
    ),
    Case(
        "no-readable-status",
        "POST",
        JOBS,
        (started(), Reply("GET", MONITOR, json={"percentComplete": 5})),
        (("POST", JOBS), *polls(1)),
        (1.0,),
        S.RUNNING,
        raises="MissingStatusError",
    ),
    Case(
        "unreadable-body-retried",
        "POST",
        JOBS,
        (started(), Reply("GET", MONITOR, body="<html>502</html>"), status("Succeeded")),
        (("POST", JOBS), *polls(2)),
        (1.0, 0.5),
        S.SUCCEEDED,
        RESULT,
    ),
    Case(
        "safe-start-retried",
        "PUT",
        ITEM,
        (
            Reply("PUT", ITEM, status=503, headers={"Retry-After": "2"}),
            Reply("PUT", ITEM, lost="connect"),
            started("PUT", ITEM),
            status("Succeeded"),
            Reply("GET", ITEM, json={"id": "vs1"}),
        ),
        (("PUT", ITEM), ("PUT", ITEM), ("PUT", ITEM), *polls(1), ("GET", ITEM)),
        (2.0, 1.0, 1.0),
        S.SUCCEEDED,
        {"id": "vs1"},
    ),
    Case(
        "post-start-not-repeated",
        "POST",
        JOBS,
        (Reply("POST", JOBS, status=502),),
        (("POST", JOBS),),
        (),
        raises="StartRejectedError",
    ),
    Case(
        "post-start-lost",
        "POST",
        JOBS,
        (Reply("POST", JOBS, lost="connect"),),
        (("POST", JOBS),),
        (),
        raises="transport",
    ),
    Case(
        # The answer of a POST start that may have reached the service is lost: never
        # sent again, and the error says so.
        "post-start-dropped",
        "POST",
        JOBS,
        (Reply("POST", JOBS, lost="dropped"),),
        (("POST", JOBS),),
        (),
        raises="StartOutcomeUnknownError",
    ),
    Case(
        "start-rejected",
        "PUT",
        ITEM,
        (Reply("PUT", ITEM, status=409, json={"error": {"code": "Conflict"}}),),
        (("PUT", ITEM),),
        (),
        raises="StartRejectedError",
    ),
    Case(
        "done-at-once",
        "PUT",
        ITEM,
        (Reply("PUT", ITEM, status=201, json={"id": "vs1", "status": "Succeeded"}),),
        (("PUT", ITEM),),
        (),
        S.SUCCEEDED,
        {"id": "vs1", "status": "Succeeded"},
    ),
    Case(
        "location-polling",
        "POST",
        JOBS,
        (
            Reply("POST", JOBS, status=202, headers={"Location": "/results/1"}),
            Reply("GET", LOCATION, status=202),
            Reply("GET", LOCATION, json={"id": "r1"}),
        ),
        (("POST", JOBS), *polls(2, LOCATION)),
        (1.0, 1.0),
        S.SUCCEEDED,
        {"id": "r1"},
    ),
    Case(
        "resource-polling",
        "PUT",
        ITEM,
        (
            Reply("PUT", ITEM, status=201, json={"properties": {"provisioningState": "Creating"}}),
            Reply("GET", ITEM, json={"id": "x", "properties": {"provisioningState": "Succeeded"}}),
        ),
        (("PUT", ITEM), ("GET", ITEM)),
        (1.0,),
        S.SUCCEEDED,
        {"id": "x", "properties": {"provisioningState": "Succeeded"}},
    ),
    Case(
        "delete-with-a-monitor",
        "DELETE",
        ITEM,
        (started("DELETE", ITEM), status("Running"), status("Succeeded")),
        (("DELETE", ITEM), *polls(2)),
        (1.0, 1.0),
        S.SUCCEEDED,
        None,
    ),
]

ERRORS: dict[str, type[Exception]] = {
    error.__name__: error
    for error in (
        StartOutcomeUnknownError,
        OperationFailedError,
        OperationCanceledError,
        WaitTimeoutError,
        RetriesExhaustedError,
        PollRejectedError,
        MissingStatusError,
        StartRejectedError,
    )
}


@dataclass
class Outcome:
    """What one side did: requests, sleeps, state, value (or the error's name)."""

    requests: list[tuple[str, str]]
    sleeps: list[float]
    state: OperationState | None
    value: Any = None
    raises: str | None = None


def error_name(error: Exception) -> str:
    if isinstance(error, (requests.RequestException, httpx.TransportError)):
        return "transport"
    return type(error).__name__


def finish(outcome: Outcome, operation: Any) -> None:
    outcome.state = operation.state
    if outcome.raises is None:
        try:
            outcome.value = operation.value
        except (OperationFailedError, OperationCanceledError) as error:
            outcome.raises = error_name(error)


def run_sync(case: Case) -> Outcome:
    clock = FakeClock()
    with (
        responses.RequestsMock(assert_all_requests_are_fired=False) as mock,
        Pipeline(HOST, polling=POLICY, clock=clock, sleep=clock.sleep) as pipeline,
    ):
        for reply in case.replies:
            if reply.lost is not None:
                mock.add(reply.method, reply.url, body=LOST[reply.lost][0]("lost"))
            elif reply.json is not None:
                mock.add(
                    reply.method,
                    reply.url,
                    status=reply.status,
                    json=reply.json,
                    headers=reply.headers,
                )
            else:
                mock.add(
                    reply.method,
                    reply.url,
                    status=reply.status,
                    body=reply.body or "",
                    headers=reply.headers,
                )
        outcome = Outcome([], clock.sleeps, None)
        operation = None
        try:
            operation = Operation.start(pipeline, case.method, case.url)
            operation.wait_for_completion(case.interval, timeout=case.timeout)
        except Exception as error:  # noqa: BLE001 - the table names the expected error
            outcome.raises = error_name(error)
        if operation is not None:
            finish(outcome, operation)
        outcome.requests = [(c.request.method or "", c.request.url or "") for c in mock.calls]
    return outcome


async def run_async(case: Case) -> Outcome:
    clock = AsyncFakeClock()
    http = MockHttp()
    for reply in case.replies:
        lost = None if reply.lost is None else LOST[reply.lost][1]
        http.add(
            reply.method,
            reply.url,
            Answer(reply.status, reply.json, reply.body, reply.headers, lost),
        )
    outcome = Outcome([], clock.sleeps, None)
    async with AsyncPipeline(
        HOST, http.client(), polling=POLICY, clock=clock, sleep=clock.sleep
    ) as pipeline:
        operation = None
        try:
            operation = await AsyncOperation.start(pipeline, case.method, case.url)
            await operation.wait_for_completion(case.interval, timeout=case.timeout)
        except Exception as error:  # noqa: BLE001 - the table names the expected error
            outcome.raises = error_name(error)
        if operation is not None:
            finish(outcome, operation)
    outcome.requests = [(c.method, str(c.url)) for c in http.calls]
    return outcome


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_both_drivers_live_the_same_operation(case: Case) -> None:
    expected = Outcome(list(case.requests), list(case.sleeps), case.state, case.value, case.raises)
    if case.raises is not None and case.raises != "transport":
        assert case.raises in ERRORS
    sync = run_sync(case)
    assert sync == expected, "sync side"
    twin = asyncio.run(run_async(case))
    assert twin == expected, "async side"
