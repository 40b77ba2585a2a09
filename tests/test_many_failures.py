"""wait_all and async_wait_all report every failure, each naming its operation (issue 14,
item 5): several operations failing in the same turn used to surface as one error and
asyncio's "Task exception was never retrieved" for the others."""

from __future__ import annotations

import asyncio
import gc
import logging

import httpx
import pytest
import responses

from lrokit import (
    AsyncOperation,
    AsyncPipeline,
    LroError,
    Operation,
    OperationErrorGroup,
    Pipeline,
    PollingPolicy,
    PollRejectedError,
    StartRejectedError,
    async_wait_all,
    wait_all,
)
from lrokit.testing import AsyncFakeClock, FakeClock

HOST = "https://svc.example.com/"
POLICY = PollingPolicy(interval=1.0, floor=0.0)


class Gate:
    """Holds the polls of the "bad" operations until all three are in flight, then lets
    them fail at once: the failures of one turn."""

    def __init__(self) -> None:
        self.waiting = 0
        self.open = asyncio.Event()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and "bad" in request.url.path:
            self.waiting += 1
            if self.waiting == 3:
                self.open.set()
            await self.open.wait()
        return _answer(request)


def _answer(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if request.method != "GET":
        if "rejected" in path:
            return httpx.Response(400, json={"error": {"code": "BadRequest"}})
        return httpx.Response(202, headers={"Operation-Location": f"{HOST}mon{path}"})
    if "good" in path:
        return httpx.Response(200, json={"status": "Running"})
    return httpx.Response(404, json={"error": {"code": "Gone"}})


@pytest.mark.anyio
async def test_async_wait_all_reports_every_failure_of_the_same_turn(caplog) -> None:
    caplog.set_level(logging.ERROR, logger="asyncio")
    clock = AsyncFakeClock(0.0)
    client = httpx.AsyncClient(transport=httpx.MockTransport(Gate()))
    async with AsyncPipeline(HOST, client, polling=POLICY, clock=clock, sleep=clock.sleep) as p:
        bad = [await AsyncOperation.start(p, "POST", f"bad{n}") for n in range(3)]
        good = await AsyncOperation.start(p, "POST", "good")
        with pytest.raises(OperationErrorGroup) as caught:
            await async_wait_all([bad[0], good, bad[1], bad[2]])
        rejected = AsyncOperation.prepare(p, "POST", "rejected")
        with pytest.raises(OperationErrorGroup) as start_caught:
            await async_wait_all([rejected, good])
    await client.aclose()
    group = caught.value
    assert isinstance(group, LroError)
    errors = group.exceptions
    assert [e.operation for e in errors] == bad  # all three, in the order given
    assert [type(e) for e in errors] == [PollRejectedError] * 3
    assert all(e.operation_id == e.operation.core.operation_id for e in errors)
    assert all(op.core.operation_id in str(group) for op in bad)  # the message names each
    (start_error,) = start_caught.value.exceptions
    assert isinstance(start_error, StartRejectedError)
    assert start_error.operation is rejected  # though a rejected start has no token
    gc.collect()
    assert "never retrieved" not in caplog.text


def test_wait_all_reports_the_failure_in_a_group_naming_the_operation() -> None:
    clock = FakeClock(0.0)
    with (
        responses.RequestsMock() as mock,
        Pipeline(HOST, polling=POLICY, clock=clock, sleep=clock.sleep) as p,
    ):
        mock.post(HOST + "rejected", status=400, json={"error": {"code": "BadRequest"}})
        rejected = Operation.prepare(p, "POST", "rejected")
        with pytest.raises(OperationErrorGroup) as caught:
            wait_all([rejected])
    (error,) = caught.value.exceptions
    assert isinstance(error, StartRejectedError)
    assert error.operation is rejected  # though a rejected start has no token
    assert error.rehydration_token is None
    with pytest.raises(LroError):  # the group is an LroError too
        raise caught.value


def test_the_group_splits_by_kind() -> None:
    group = OperationErrorGroup(
        "2 of 2 operations failed",
        [PollRejectedError("a", status_code=404), StartRejectedError("b", status_code=400)],
    )
    starts, rest = group.split(StartRejectedError)  # what except* StartRejectedError does
    assert isinstance(starts, OperationErrorGroup)
    assert [type(e) for e in starts.exceptions] == [StartRejectedError]
    assert rest is not None
    assert [type(e) for e in rest.exceptions] == [PollRejectedError]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_the_group_is_an_exception_group() -> None:
    group = OperationErrorGroup("x", [PollRejectedError("a", status_code=404)])
    assert isinstance(group, Exception)
    assert asyncio.iscoroutinefunction(async_wait_all)
