"""The six usage patterns of the seed, in Python spelling, over real HTTP to the demo service.

The service completes each operation on its third status poll and asks for polls every two
seconds; the client's pipeline has a fake clock and sleep, so the delays are asserted rather
than waited for.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import timedelta

import msgspec
import pytest
import requests

from lrokit import (
    HookError,
    OperationCanceledError,
    OperationFailedError,
    OperationNotCompleteError,
    OperationState,
    PollEvent,
    StartRejectedError,
    StateChange,
    UntrustedOriginError,
)
from lrokit.demo import (
    API_VERSION,
    CreateVectorStoreOperation,
    DemoService,
    VectorStore,
    VectorStoreClient,
)

pytestmark = pytest.mark.integration

# The settings of the ``service`` fixture (conftest.py); checked in assert_full_run.
POLLS = 3
RETRY_AFTER = 2.0
NS, RUN, OK = OperationState.NOT_STARTED, OperationState.RUNNING, OperationState.SUCCEEDED
START = ("POST", f"/vector_stores?api-version={API_VERSION}")
MONITOR = re.compile(rf"/operations/[0-9a-f]{{32}}\?api-version={API_VERSION}\Z")


def seen(service: DemoService) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in service.requests]


def assert_full_run(service: DemoService, store: VectorStore) -> None:
    """The service saw exactly: the start, POLLS polls of one monitor, one final GET."""
    assert (service.polls_to_complete, service.retry_after) == (POLLS, RETRY_AFTER)
    requests_seen = seen(service)
    assert len(requests_seen) == 1 + POLLS + 1, requests_seen
    assert requests_seen[0] == START
    polls = requests_seen[1 : 1 + POLLS]
    assert all(method == "GET" for method, _ in polls)
    assert MONITOR.match(polls[0][1]), polls[0]
    assert len({path for _, path in polls}) == 1
    assert requests_seen[-1] == ("GET", f"/vector_stores/{store.id}?api-version={API_VERSION}")


def assert_store(store: object, name: str) -> None:
    assert isinstance(store, VectorStore)
    assert store.name == name
    assert store.status == "completed"
    assert store.id.startswith("vs_")


# -- the six patterns ------------------------------------------------------------------------


def test_pattern_1_start_and_return_when_completed(service, client, clock):
    store = client.create_vector_store("p1", wait_until_completed=True).value

    assert_store(store, "p1")
    # Exactly these requests and no other: start, three polls, the final resource.
    assert_full_run(service, store)
    assert json.loads(service.requests[0].body) == {"name": "p1", "file_ids": []}
    # The server's Retry-After (2 s) beats the default interval (1 s); no wait before the
    # final GET.
    assert clock.sleeps == [RETRY_AFTER] * POLLS


def test_pattern_2_wait_via_the_lro_subclient(service, client, clock):
    operation = client.create_vector_store("p2", wait_until_completed=False)

    assert isinstance(operation, CreateVectorStoreOperation)
    assert operation.state is RUN
    assert not operation.has_completed
    assert seen(service) == [START]
    with pytest.raises(OperationNotCompleteError):
        _ = operation.value

    assert operation.wait_for_completion() is operation
    store = operation.value

    assert operation.state is OK
    assert_store(store, "p2")
    assert_full_run(service, store)


@pytest.mark.parametrize(
    ("interval", "expected"),
    [
        pytest.param(timedelta(seconds=5), 5.0, id="longer-than-server-hint"),
        pytest.param(0.5, RETRY_AFTER, id="server-hint-wins"),
    ],
)
def test_pattern_3_custom_polling_interval(service, client, clock, interval, expected):
    operation = client.create_vector_store("p3", wait_until_completed=False)
    operation.wait_for_completion(polling_interval=interval)
    store = operation.value

    assert_store(store, "p3")
    assert clock.sleeps == [expected] * POLLS
    assert_full_run(service, store)


def test_pattern_4_manual_polling(service, client, clock):
    operation = client.create_vector_store("p4", wait_until_completed=False)
    updates = 0
    for _ in range(20):  # bounded: the service completes on its third poll
        if operation.has_completed:
            break
        clock.sleep(2.0, None)  # the caller's own delay (Task.Delay in the seed)
        assert operation.update_status() is not None
        updates += 1
    store = operation.value

    # Three status polls, then one request for the final resource.
    assert updates == POLLS + 1
    assert_store(store, "p4")
    assert_full_run(service, store)
    # Once completed, update_status makes no request.
    assert operation.update_status() is None
    assert len(service.requests) == POLLS + 2


def test_pattern_5_view_http_response_details(service, client, clock):
    operation = client.create_vector_store("p5", wait_until_completed=False)
    status_codes = [operation.get_raw_response().status_code]
    paths = [operation.get_raw_response().request.path_url]
    for _ in range(20):
        if operation.has_completed:
            break
        operation.update_status()
        response = operation.get_raw_response()
        status_codes.append(response.status_code)
        paths.append(response.request.path_url)
    store = operation.value

    assert status_codes == [202] + [200] * (POLLS + 1)
    assert paths == [path for _, path in seen(service)]
    assert_store(store, "p5")
    start = service.requests[0]
    assert start.method == "POST"
    assert operation.get_raw_response().json()["id"] == store.id


def test_pattern_6_rehydrate_in_another_process(service, client):
    operation = client.create_vector_store("p6", wait_until_completed=False)
    token = str(operation.rehydration_token)
    assert seen(service) == [START]

    # The second process gets only the endpoint and the token (on stdin). --max-delay 0
    # caps every delay, even the server's hint, so it polls without waiting.
    finished = subprocess.run(
        [
            sys.executable,
            "-m",
            "lrokit.demo._resume",
            service.endpoint,
            "-",
            "--max-delay",
            "0",
            "--json",
        ],
        input=token,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert finished.returncode == 0, finished.stderr
    report = json.loads(finished.stdout.strip().splitlines()[-1])
    assert report["state"] == "Succeeded"
    # Restoring fires no hooks; the second process saw only the final transition.
    assert report["transitions"] == [["Running", "Succeeded"]]
    store = msgspec.convert(report["value"], VectorStore)
    assert_store(store, "p6")
    assert_full_run(service, store)
    # The first process still has its own, unchanged view.
    assert operation.state is RUN


def test_pattern_6_resumed_process_reports_a_bad_token(service):
    finished = subprocess.run(
        [sys.executable, "-m", "lrokit.demo._resume", service.endpoint, "not-a-token", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert finished.returncode == 1
    report = json.loads(finished.stdout.strip().splitlines()[-1])
    assert report["error"]["type"] == "InvalidTokenError"
    assert service.requests == []


def test_rehydrate_in_process_then_wait(service, client, clock):
    token = str(client.create_vector_store("again", wait_until_completed=False).rehydration_token)

    resumed = CreateVectorStoreOperation.rehydrate(client, token)
    assert resumed.state is RUN
    assert seen(service) == [START]  # rehydrating sends nothing

    store = resumed.wait_for_completion().value
    assert_store(store, "again")
    assert_full_run(service, store)


def test_token_is_refused_by_a_client_of_another_service(service, client):
    token = str(
        client.create_vector_store("elsewhere", wait_until_completed=False).rehydration_token
    )
    with DemoService(polls_to_complete=1) as other, VectorStoreClient(other.endpoint) as stranger:
        with pytest.raises(UntrustedOriginError):
            CreateVectorStoreOperation.rehydrate(stranger, token)
        assert other.requests == []
    assert seen(service) == [START]


# -- outcomes ----------------------------------------------------------------------------------


def test_failed_store_raises_with_the_service_error(service, client):
    operation = client.create_vector_store("fail-on-purpose", wait_until_completed=True)

    assert operation.state is OperationState.FAILED
    assert operation.has_completed
    with pytest.raises(OperationFailedError) as info:
        _ = operation.value
    error = info.value
    assert not isinstance(error, OperationCanceledError)
    assert error.service_error is not None
    assert error.service_error.code == "VectorStoreCreationFailed"
    assert "fail-on-purpose" in (error.service_error.message or "")
    assert error.response.status_code == 200
    assert error.response.json()["status"] == "Failed"
    assert isinstance(error.rehydration_token, str)
    # A failed operation has no final resource to fetch.
    requests_seen = seen(service)
    assert len(requests_seen) == 1 + POLLS
    assert all(MONITOR.match(path) for _, path in requests_seen[1:])


def test_canceled_store_raises_canceled_error(service, client):
    operation = client.create_vector_store("cancel-me", wait_until_completed=True)

    assert operation.state is OperationState.CANCELED
    with pytest.raises(OperationCanceledError) as info:
        _ = operation.value
    assert not isinstance(info.value, OperationFailedError)
    assert info.value.service_error is not None
    assert info.value.service_error.code == "OperationCanceled"
    assert len(service.requests) == 1 + POLLS


def test_rejected_start_raises_with_the_service_error(service, client):
    with pytest.raises(StartRejectedError) as info:
        client.create_vector_store("   ", wait_until_completed=True)

    assert info.value.status_code == 400
    assert info.value.service_error is not None
    assert info.value.service_error.code == "InvalidName"
    assert seen(service) == [START]


# -- hooks over real HTTP ---------------------------------------------------------------------


def test_hooks_fire_not_started_running_succeeded(service, client):
    changes: list[tuple[OperationState, OperationState, OperationState]] = []
    entered: list[OperationState] = []
    polls: list[tuple[int, OperationState, str | None, float | None]] = []

    def on_change(change: StateChange[CreateVectorStoreOperation]) -> None:
        # The hook runs after the transition finished: the operation is already there.
        changes.append((change.previous, change.state, change.operation.state))

    def on_poll(event: PollEvent[CreateVectorStoreOperation]) -> None:
        status = event.status
        assert status is not None
        polls.append((event.attempt, event.state, status.raw_status, status.percent_complete))

    def subscribe(operation: CreateVectorStoreOperation) -> None:
        assert operation.state is NS
        operation.on_change(on_change)
        operation.on_enter(OK, lambda change: entered.append(change.state))
        operation.on_poll(on_poll)

    store = client.create_vector_store(
        "hooked", wait_until_completed=True, before_start=subscribe
    ).value

    assert_store(store, "hooked")
    assert changes == [(NS, RUN, RUN), (RUN, OK, OK)]
    assert entered == [OK]
    assert polls == [
        (0, RUN, "NotStarted", None),  # the 202 start response
        (1, RUN, "Running", 33.0),
        (2, RUN, "Running", 66.0),
        (3, RUN, "Succeeded", 100.0),  # monitor says Succeeded; final GET still pending
        (3, OK, "Succeeded", 100.0),  # the final GET
    ]


def test_a_raising_change_hook_does_not_corrupt_state(service, client, clock):
    operation = client.create_vector_store("fragile", wait_until_completed=False)
    attempts: list[int] = []

    def broken(change: StateChange[CreateVectorStoreOperation]) -> None:
        raise RuntimeError("bug in user code")

    operation.on_change(broken)
    operation.on_poll(lambda event: attempts.append(event.attempt))

    # The only change left is Running -> Succeeded, on the final GET.
    with pytest.raises(HookError) as info:
        operation.wait_for_completion()

    assert isinstance(info.value.errors[0], RuntimeError)
    assert operation.state is OK
    assert operation.has_completed
    assert attempts == [1, 2, 3, 3]  # the other hook still saw every response
    store = operation.value
    assert_store(store, "fragile")
    assert_full_run(service, store)
    # Waiting again is a no-op: no request repeated because of the error.
    operation.wait_for_completion()
    assert len(service.requests) == POLLS + 2


def test_a_hook_raising_on_every_poll_changes_nothing_but_the_errors(service, client):
    operation = client.create_vector_store("noisy", wait_until_completed=False)

    def broken(event: PollEvent[CreateVectorStoreOperation]) -> None:
        raise ValueError(f"poll {event.attempt}")

    operation.on_poll(broken)
    states = []
    for _ in range(20):
        if operation.has_completed:
            break
        with pytest.raises(HookError):
            operation.update_status()
        states.append(operation.state)

    assert states == [RUN] * POLLS + [OK]
    store = operation.value
    assert_store(store, "noisy")
    assert_full_run(service, store)


def test_session_is_the_callers(service):
    session = requests.Session()
    session.headers["x-demo-caller"] = "tests"
    with VectorStoreClient(
        service.endpoint, session, sleep=lambda seconds, cancel: False
    ) as client:
        assert client.pipeline.session is session
        client.create_vector_store("s", wait_until_completed=True)
    assert all(r.headers.get("x-demo-caller") == "tests" for r in service.requests)
    assert len(service.requests) == POLLS + 2
