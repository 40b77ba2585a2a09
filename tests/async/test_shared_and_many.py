"""Shared waiting (threads or tasks on one operation make one waiter's requests) and waiting on
many operations (``wait_all``/``as_completed`` on one thread by next-due time,
``async_wait_all``/``async_as_completed`` with a bound on requests in flight)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import Any

import pytest
import requests
import responses
from async_helpers import MockHttp

from lrokit import (
    AsyncOperation,
    AsyncPipeline,
    Operation,
    OperationErrorGroup,
    OperationState,
    Pipeline,
    PollingPolicy,
    PollRejectedError,
    ResponseView,
    WaitCancelledError,
    WaitResult,
    WaitTimeoutError,
    as_completed,
    async_as_completed,
    async_wait_all,
    wait_all,
)
from lrokit.testing import AsyncFakeClock, FakeClock

S = OperationState
HOST = "https://svc.example.com"
JOBS = f"{HOST}/jobs?api-version=1"


def monitor_url(number: int) -> str:
    return f"{HOST}/ops/{number}?api-version=1"


def answers(http: MockHttp, number: int, *words: str | int, retry_after: str | None = None) -> None:
    headers = {"Retry-After": retry_after} if retry_after else {}
    for word in words:
        if isinstance(word, int):
            http.add("GET", monitor_url(number), status=word)
        else:
            body: dict[str, Any] = {"status": word}
            if word == "Succeeded":
                body["result"] = {"n": number}
            http.add("GET", monitor_url(number), json=body, headers=headers)


def accepted(number: int, retry_after: str | None = None) -> ResponseView:
    """The start response of operation ``number`` (fed by hand: no start request)."""
    headers = {"Operation-Location": monitor_url(number)}
    if retry_after:
        headers["Retry-After"] = retry_after
    return ResponseView.build(202, headers, b"", JOBS)


def waits_running() -> int:
    """The tasks of async_wait_all / async_as_completed still running."""
    return sum(
        1 for t in asyncio.all_tasks() if t.get_coro().__qualname__ == "AsyncOperation._wait"
    )


def async_op(pipeline: AsyncPipeline, number: int, retry_after: str | None = None) -> Any:
    operation = AsyncOperation.prepare(pipeline, "POST", JOBS)
    operation.receive(accepted(number, retry_after))
    return operation


# -- shared waiting: tasks ------------------------------------------------------------------------


async def _polls_for(http: MockHttp, pipeline: AsyncPipeline, waiters: int) -> int:
    operation = async_op(pipeline, 1)
    answers(http, 1, "Running", "Running", "Running", "Succeeded")
    waits = [operation.wait_for_completion() for _ in range(waiters)]
    done = await asyncio.gather(*waits)
    assert all(d is operation for d in done)
    assert operation.value == {"n": 1}
    return http.calls_to(monitor_url(1))


@pytest.mark.anyio
async def test_two_tasks_make_the_requests_of_one(http, pipeline) -> None:
    assert await _polls_for(http, pipeline, 2) == 4
    other, clock = MockHttp(), AsyncFakeClock()
    async with AsyncPipeline(
        HOST, other.client(), polling=pipeline.polling, clock=clock, sleep=clock.sleep
    ) as single:
        assert await _polls_for(other, single, 1) == 4  # a single waiter's count


@pytest.mark.anyio
async def test_many_tasks_on_one_operation_still_make_one_waiters_requests(http, pipeline):
    assert await _polls_for(http, pipeline, 25) == 4


@pytest.mark.anyio
async def test_a_waiter_cancelled_mid_wait_leaves_the_other_polling(http, pipeline) -> None:
    operation = async_op(pipeline, 1)
    answers(http, 1, "Running", "Running", "Succeeded")
    first = asyncio.ensure_future(operation.wait_for_completion())
    second = asyncio.ensure_future(operation.wait_for_completion())
    await asyncio.sleep(0)
    first.cancel()
    await second
    with pytest.raises(asyncio.CancelledError):
        await first
    assert operation.state is S.SUCCEEDED
    assert http.calls_to(monitor_url(1)) == 3


@pytest.mark.anyio
async def test_an_error_that_ends_one_wait_ends_the_others(http, pipeline) -> None:
    operation = async_op(pipeline, 1)
    answers(http, 1, 404)
    results = await asyncio.gather(
        operation.wait_for_completion(),
        operation.wait_for_completion(),
        return_exceptions=True,
    )
    assert [type(r) for r in results] == [PollRejectedError, PollRejectedError]
    assert http.calls_to(monitor_url(1)) == 1  # not repeated by the second waiter


@pytest.mark.anyio
async def test_a_deadline_is_each_waiters_own(http, pipeline, clock) -> None:
    operation = async_op(pipeline, 1)
    answers(http, 1, "Running", "Running", "Succeeded")
    hurried, patient = await asyncio.gather(
        operation.wait_for_completion(timeout=0.5),
        operation.wait_for_completion(),
        return_exceptions=True,
    )
    assert isinstance(hurried, WaitTimeoutError)
    assert patient is operation
    assert operation.state is S.SUCCEEDED


# -- shared waiting: threads --------------------------------------------------------------------


def _sync_polls(waiters: int) -> int:
    monitor = monitor_url(1)
    with (
        responses.RequestsMock() as mock,
        Pipeline(HOST, polling=PollingPolicy(interval=0.01)) as pipeline,
    ):
        mock.post(JOBS, status=202, headers={"Operation-Location": monitor})
        for word in ("Running", "Running", "Running"):
            mock.get(monitor, json={"status": word})
        mock.get(monitor, json={"status": "Succeeded", "result": 1})
        operation = Operation.start(pipeline, "POST", JOBS)
        errors: list[BaseException] = []

        def wait() -> None:
            try:
                operation.wait_for_completion(timeout=5)
            except BaseException as error:  # noqa: BLE001 - reported below
                errors.append(error)

        threads = [threading.Thread(target=wait) for _ in range(waiters)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        assert not any(t.is_alive() for t in threads)
        assert errors == []
        assert operation.value == 1
        return sum(1 for c in mock.calls if c.request.url == monitor)


def test_threads_waiting_on_one_operation_make_the_requests_of_one() -> None:
    assert _sync_polls(1) == 4
    assert _sync_polls(2) == 4
    assert _sync_polls(6) == 4


def test_a_thread_waiting_for_its_turn_honours_its_deadline_and_event() -> None:
    with responses.RequestsMock(), Pipeline(HOST) as pipeline:
        operation = Operation.prepare(pipeline, "POST", JOBS)
        held, done = threading.Event(), threading.Event()

        def hold_the_turn() -> None:  # another thread's request in flight
            with operation._turn:
                held.set()
                done.wait(5)

        holder = threading.Thread(target=hold_the_turn)
        holder.start()
        try:
            held.wait(5)
            with pytest.raises(WaitTimeoutError):
                operation.wait_for_completion(timeout=0.05)
            stop = threading.Event()
            timer = threading.Timer(0.02, stop.set)
            timer.start()
            with pytest.raises(WaitCancelledError):
                operation.wait_for_completion(cancel=stop)
            timer.join()
        finally:
            done.set()
            holder.join(5)
        assert operation.state is S.NOT_STARTED


# -- many operations: sync, one thread ----------------------------------------------------------


def _sync_ops(mock: responses.RequestsMock, pipeline: Pipeline, hints: list[str]) -> list[Any]:
    ops = []
    for number, hint in enumerate(hints, start=1):
        operation = Operation.prepare(pipeline, "POST", JOBS)
        operation.receive(accepted(number, hint))
        mock.get(monitor_url(number), json={"status": "Running"}, headers={"Retry-After": hint})
        mock.get(monitor_url(number), json={"status": "Succeeded", "result": number})
        ops.append(operation)
    return ops


def test_as_completed_polls_by_next_due_time_from_one_thread() -> None:
    clock = FakeClock(0.0)
    with (
        responses.RequestsMock() as mock,
        Pipeline(HOST, polling=PollingPolicy(interval=0.5), clock=clock, sleep=clock.sleep) as p,
    ):
        ops = _sync_ops(mock, p, ["3", "1", "2"])
        threads = threading.active_count()
        order = [op.value for op in as_completed(ops)]
        assert threading.active_count() == threads  # no thread started
        polled = [int(c.request.url.split("/ops/")[1].split("?")[0]) for c in mock.calls]
    assert order == [2, 3, 1]
    assert polled == [2, 2, 3, 1, 3, 1]
    assert clock.sleeps == [1.0, 1.0, 1.0, 1.0, 2.0]  # only until the next due request


def test_as_completed_does_not_repeat_a_poll_another_waiter_made_while_it_queued() -> None:
    clock = FakeClock(0.0)
    with (
        responses.RequestsMock() as mock,
        Pipeline(HOST, polling=PollingPolicy(interval=0.5), clock=clock, sleep=clock.sleep) as p,
    ):
        (operation,) = _sync_ops(mock, p, ["1"])
        queue_for_turn = operation._take_turn

        def another_waiter_polls_first(wait: Any, mark: int | None) -> None:
            # Another thread's wait_for_completion polls while as_completed queues for the
            # turn: the operation's step count moves on before the turn is granted.
            queue_for_turn(wait, mark)
            operation._poll_once(wait)
            operation._steps += 1
            operation._take_turn = queue_for_turn  # only the first time

        operation._take_turn = another_waiter_polls_first
        finished = list(as_completed([operation]))
        assert finished == [operation]
        assert operation.value == 1
        assert len(mock.calls) == 2  # Running (the other waiter's), then Succeeded
    # The second poll waits the Retry-After of the other waiter's answer instead of being
    # sent right behind it.
    assert clock.sleeps == [1.0, 1.0]


def test_wait_all_returns_done_and_pending_at_the_deadline() -> None:
    clock = FakeClock(0.0)
    with (
        responses.RequestsMock() as mock,
        Pipeline(HOST, polling=PollingPolicy(interval=1), clock=clock, sleep=clock.sleep) as p,
    ):
        quick, slow = _sync_ops(mock, p, ["1", "9"])
        done = Operation.prepare(p, "PUT", f"{HOST}/done")
        mock.put(f"{HOST}/done", status=200, json={"status": "Succeeded"})
        done.send_start()
        result = wait_all([quick, slow, done, quick], timeout=5)
        assert isinstance(result, WaitResult)
        assert result == ([quick, done], [slow])
        assert clock.now == 5.0
        with pytest.raises(TimeoutError, match="1 of 1"):
            list(as_completed([slow], timeout=2))
        assert wait_all([slow]).done == [slow]  # resumable
        stop = threading.Event()
        stop.set()
        assert wait_all([Operation.rehydrate(p, slow.rehydration_token)], cancel=stop).pending


def test_as_completed_raises_an_operations_error_and_leaves_the_others() -> None:
    clock = FakeClock(0.0)
    with (
        responses.RequestsMock(assert_all_requests_are_fired=False) as mock,
        Pipeline(HOST, polling=PollingPolicy(interval=1), clock=clock, sleep=clock.sleep) as p,
    ):
        good, bad = _sync_ops(mock, p, ["2", "1"])
        mock.replace(responses.GET, monitor_url(2), status=404)
        with pytest.raises(PollRejectedError):
            list(as_completed([good, bad]))
        assert good.state is S.RUNNING
        assert list(as_completed([good])) == [good]


def test_prepared_operations_are_started_first() -> None:
    clock = FakeClock(0.0)
    with (
        responses.RequestsMock() as mock,
        Pipeline(HOST, polling=PollingPolicy(interval=1), clock=clock, sleep=clock.sleep) as p,
    ):
        mock.post(JOBS, status=202, headers={"Operation-Location": monitor_url(1)})
        mock.get(monitor_url(1), json={"status": "Succeeded", "result": 1})
        operation = Operation.prepare(p, "POST", JOBS)
        assert list(as_completed([operation])) == [operation]
        assert [c.request.method for c in mock.calls] == ["POST", "GET"]


# -- many operations: async ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_as_completed_yields_in_completion_order(http, pipeline, clock) -> None:
    ops = [async_op(pipeline, n, hint) for n, hint in ((1, "3"), (2, "1"), (3, "2"))]
    for number, hint in ((1, "3"), (2, "1"), (3, "2")):
        answers(http, number, "Running", "Succeeded", retry_after=hint)
    order = [op.value["n"] async for op in async_as_completed(ops)]
    assert order == [2, 3, 1]
    assert len(http.calls) == 6


class Counting:
    """A sender that counts the requests in flight at once."""

    transport_errors = (ConnectionError,)

    def __init__(self) -> None:
        self.in_flight = self.most = self.sent = 0

    async def send(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None,
        timeout: Any, **options: Any,
    ) -> ResponseView:  # fmt: skip
        self.sent += 1
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        for _ in range(3):
            await asyncio.sleep(0)
        self.in_flight -= 1
        return ResponseView.build(200, {}, b'{"status": "Succeeded", "result": 1}', url)

    async def aclose(self) -> None:
        pass


@pytest.mark.anyio
async def test_async_wait_all_bounds_the_requests_in_flight() -> None:
    sender = Counting()
    async with AsyncPipeline(HOST, sender, polling=PollingPolicy(interval=0)) as pipeline:
        ops = [async_op(pipeline, n) for n in range(40)]
        result = await async_wait_all(ops, max_in_flight=3)
    assert result.done == ops
    assert result.pending == []
    assert (sender.sent, sender.most) == (40, 3)
    with pytest.raises(ValueError, match="max_in_flight"):
        await async_wait_all(ops, max_in_flight=0)


@pytest.mark.anyio
async def test_async_wait_all_at_the_deadline_and_on_an_event(http, pipeline, clock) -> None:
    quick, slow = async_op(pipeline, 1, "1"), async_op(pipeline, 2, "9")
    answers(http, 1, "Running", "Succeeded", retry_after="1")
    answers(http, 2, "Running", retry_after="9")
    result = await async_wait_all([quick, slow], timeout=5)
    assert result == WaitResult([quick], [slow])
    with pytest.raises(TimeoutError, match="1 of 1"):
        async for _ in async_as_completed([slow], timeout=1):
            pass
    stop = asyncio.Event()
    stop.set()
    assert (await async_wait_all([slow], cancel=stop)).pending == [slow]
    assert [op async for op in async_as_completed([slow], cancel=stop)] == []


@pytest.mark.anyio
async def test_an_error_cancels_the_other_waits_and_leaves_them_resumable(http, pipeline):
    good, bad = async_op(pipeline, 1, "5"), async_op(pipeline, 2, "1")
    answers(http, 1, "Succeeded")
    answers(http, 2, 404)
    with pytest.raises(OperationErrorGroup) as caught:
        await async_wait_all([good, bad])
    assert [type(e) for e in caught.value.exceptions] == [PollRejectedError]
    assert caught.value.exceptions[0].operation is bad
    assert waits_running() == 0  # no wait left running
    assert good.state is S.RUNNING
    assert http.calls_to(monitor_url(1)) == 0
    assert (await async_wait_all([good])).done == [good]


@pytest.mark.anyio
async def test_cancelling_async_wait_all_cancels_every_wait(http) -> None:
    async with AsyncPipeline(HOST, http.client(), polling=PollingPolicy(interval=30)) as p:
        ops = [async_op(p, n) for n in range(5)]
        task = asyncio.ensure_future(async_wait_all(ops))
        await asyncio.sleep(0.01)
        assert waits_running() == 5
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert waits_running() == 0
        assert all(op.state is S.RUNNING for op in ops)
        assert http.calls == []


@pytest.mark.anyio
async def test_leaving_async_as_completed_early_cancels_the_rest(http, pipeline, clock):
    ops = [async_op(pipeline, n, str(n)) for n in (1, 2, 3)]
    for number in (1, 2, 3):
        answers(http, number, "Succeeded")
    completions = async_as_completed(ops)
    async for operation in completions:
        assert operation is ops[0]
        break
    await completions.aclose()
    assert waits_running() == 0
    assert [op.state for op in ops] == [S.SUCCEEDED, S.RUNNING, S.RUNNING]


def test_a_clock_is_not_needed_for_an_empty_wait() -> None:
    assert list(as_completed([])) == []
    assert wait_all([]) == WaitResult([], [])

    async def empty() -> WaitResult[Any]:
        assert [op async for op in async_as_completed([])] == []
        return await async_wait_all([])

    assert asyncio.run(empty()) == WaitResult([], [])


@pytest.mark.anyio
async def test_the_limiter_is_first_come_first_served_and_survives_cancellation() -> None:
    from lrokit._async import Limiter

    limiter = Limiter(1)
    assert limiter.try_take()
    assert not limiter.try_take()
    order: list[str] = []

    async def queued(name: str) -> None:
        await limiter.take()
        order.append(name)
        limiter.give()

    first = asyncio.ensure_future(queued("first"))
    dropped = asyncio.ensure_future(queued("dropped"))
    last = asyncio.ensure_future(queued("last"))
    await asyncio.sleep(0)
    dropped.cancel()
    await asyncio.sleep(0)
    limiter.give()
    await asyncio.gather(first, last)
    assert order == ["first", "last"]
    assert dropped.cancelled()
    assert limiter.try_take()  # every place came back
    limiter.give()
    assert limiter.free == 1


def test_a_request_that_runs_into_the_deadline_ends_as_completed_with_a_timeout() -> None:
    clock = FakeClock(0.0)
    policy = PollingPolicy(interval=1, max_retries=0)
    with (
        responses.RequestsMock() as mock,
        Pipeline(HOST, polling=policy, clock=clock, sleep=clock.sleep) as pipeline,
    ):
        operation = Operation.prepare(pipeline, "POST", JOBS)
        operation.receive(accepted(1))

        def late(request: Any) -> Any:
            clock.now += 10  # the request ran past the deadline
            raise requests.ReadTimeout("late")

        mock.add_callback(responses.GET, monitor_url(1), callback=late)
        with pytest.raises(TimeoutError, match="1 of 1"):
            list(as_completed([operation], timeout=3))
        assert wait_all([operation], timeout=3).pending == [operation]
        assert operation.state is S.RUNNING
