"""A start reaches the service once, whatever happens to its answer (over real HTTP).

The matrix: POST and PUT, with and without ``idempotent=True``, through both drivers, for
a start whose wait is cancelled while it is in flight (the async task is cancelled; on the
sync side the wait's deadline cuts it), a ``wait_all`` / ``async_wait_all`` whose sibling
fails while the start is in flight, and a connection dropped after the request was sent.
Then the documented recovery (waiting again) runs. The service must count exactly one
creation; only a start that is safe to repeat (PUT, or an ``Operation-Id``) may be sent
again, and then as a safe repeat (same resource, same id). Every case is bounded: the
server's delays are fractions of a second and every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
import time
from typing import Any

import pytest

from hostile_server import HostileServer
from lrokit import (
    AsyncOperation,
    AsyncPipeline,
    Operation,
    OperationErrorGroup,
    OperationState,
    Pipeline,
    PollingPolicy,
    PollRejectedError,
    StartOutcomeUnknownError,
    WaitTimeoutError,
    async_wait_all,
    wait_all,
)

pytestmark = pytest.mark.integration

POLICY = PollingPolicy(interval=0.01, floor=0.0, max_retries=3, retry_backoff=0.01)
#: How long the server holds a start's answer in the "cancelled" and "sibling" cases.
HOLD = 0.5
_numbers = itertools.count()

SCENARIOS = ["cancelled", "sibling-failed", "dropped"]
MATRIX = [
    pytest.param(
        method, idempotent, scenario, id=f"{method}-{'id' if idempotent else 'plain'}-{scenario}"
    )
    for method in ("POST", "PUT")
    for idempotent in (False, True)
    for scenario in SCENARIOS
]


class Faults:
    """The server's misbehaviour on the first start of one route: hold it, or drop it."""

    def __init__(self, route: str, scenario: str) -> None:
        self.route = route
        self.scenario = scenario
        self.arrived = threading.Event()
        self._done = False

    def __call__(self, connection: socket.socket, method: str, path: str) -> bool:
        if path.split("?", 1)[0] != self.route or self._done:
            return True
        self._done = True
        self.arrived.set()
        if self.scenario == "dropped":
            return False  # received and counted, never answered
        time.sleep(HOLD)
        return True


def expect(server: HostileServer, route: str, safe: bool, operation: Any, recovery: Any) -> None:
    """The promise: one creation; a start not safe to repeat was sent once, and an
    operation whose start outcome is unknown says so instead of sending it again."""
    assert server.creations(route) == 1
    if isinstance(recovery, StartOutcomeUnknownError):
        assert not safe
        assert operation.start_outcome_unknown
        assert server.created[route] == 1
        assert recovery.operation is operation
    else:
        assert recovery is None, recovery
        assert operation.state is OperationState.SUCCEEDED
        if not safe:
            assert server.created[route] == 1


# -- sync ---------------------------------------------------------------------------------------


def _sync_recover(operation: Operation[Any]) -> BaseException | None:
    try:
        operation.wait_for_completion(timeout=5)
    except StartOutcomeUnknownError as error:
        return error
    return None


@pytest.mark.parametrize(("method", "idempotent", "scenario"), MATRIX)
def test_a_sync_start_reaches_the_service_once(method, idempotent, scenario) -> None:
    safe = method == "PUT" or idempotent
    route = f"/start/op-{next(_numbers)}"
    with HostileServer() as server, Pipeline(server.endpoint, polling=POLICY) as p:
        faults = server.on_start = Faults(route, scenario)
        operation = Operation.prepare(p, method, route.lstrip("/"), json={}, idempotent=idempotent)
        if scenario == "cancelled":
            # The sync twin of a cancelled task: the wait's deadline cuts the start.
            with pytest.raises((StartOutcomeUnknownError, WaitTimeoutError)) as first:
                operation.wait_for_completion(timeout=HOLD / 2)
            assert isinstance(first.value, WaitTimeoutError) is safe
        elif scenario == "sibling-failed":
            sibling = Operation.start(p, "POST", "start/fail")
            with pytest.raises(OperationErrorGroup) as group:
                wait_all([operation, sibling], timeout=5)
            assert [e.operation for e in group.value.exceptions] == [sibling]
            assert isinstance(group.value.exceptions[0], PollRejectedError)
        else:
            with pytest.raises(StartOutcomeUnknownError) if not safe else _nothing():
                operation.wait_for_completion(timeout=5)
        assert faults.arrived.is_set()
        recovery = _sync_recover(operation)
        expect(server, route, safe, operation, recovery)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        return None


# -- async --------------------------------------------------------------------------------------


async def _async_recover(operation: AsyncOperation[Any]) -> BaseException | None:
    try:
        await operation.wait_for_completion(timeout=5)
    except StartOutcomeUnknownError as error:
        return error
    return None


async def _async_case(server: HostileServer, method: str, idempotent: bool, scenario: str) -> None:
    safe = method == "PUT" or idempotent
    route = f"/start/op-{next(_numbers)}"
    faults = server.on_start = Faults(route, scenario)
    async with AsyncPipeline(server.endpoint, polling=POLICY) as p:
        operation = AsyncOperation.prepare(
            p, method, route.lstrip("/"), json={}, idempotent=idempotent
        )
        if scenario == "cancelled":
            task = asyncio.ensure_future(operation.wait_for_completion(timeout=5))
            for _ in range(200):  # until the start is at the service (at most 2 s)
                if faults.arrived.is_set():
                    break
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert operation.start_outcome_unknown is not safe
        elif scenario == "sibling-failed":
            sibling = await AsyncOperation.start(p, "POST", "start/fail")
            with pytest.raises(OperationErrorGroup) as group:
                await async_wait_all([operation, sibling], timeout=5)
            assert [e.operation for e in group.value.exceptions] == [sibling]
            # The start in flight was let get its answer: nothing is unknown.
            assert not operation.start_outcome_unknown
            assert operation.state is not OperationState.NOT_STARTED
        else:
            if safe:
                await operation.wait_for_completion(timeout=5)
            else:
                with pytest.raises(StartOutcomeUnknownError):
                    await operation.wait_for_completion(timeout=5)
        assert faults.arrived.is_set()
        recovery = await _async_recover(operation)
        expect(server, route, safe, operation, recovery)


@pytest.mark.parametrize(("method", "idempotent", "scenario"), MATRIX)
def test_an_async_start_reaches_the_service_once(method, idempotent, scenario) -> None:
    with HostileServer() as server:
        asyncio.run(_async_case(server, method, idempotent, scenario))
