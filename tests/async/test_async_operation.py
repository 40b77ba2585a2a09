"""AsyncOperation beyond the twin table: single requests, prepare, rehydration and tokens that
cross sides, coroutine hooks, poll_iter, stopping and cancelling waits, service-side cancel,
the sender protocol. HTTP goes through ``MockHttp`` (httpx's MockTransport), time through
the fake clock, except where a test checks real prompt wake-ups (< 0.1 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Mapping
from typing import Any

import httpx
import msgspec
import pytest
import responses
from async_helpers import MockHttp

from lrokit import (
    AsyncOperation,
    AsyncPipeline,
    AsyncSender,
    CancelRejectedError,
    HookError,
    HttpxSender,
    InvalidTokenError,
    LroError,
    Operation,
    OperationCanceledError,
    OperationState,
    Pipeline,
    PollEvent,
    PollingPolicy,
    PollUpdate,
    ResponseView,
    StateChange,
    TokenPolicy,
    TokenSigner,
    UntrustedOriginError,
    WaitCancelledError,
    WaitTimeoutError,
)
from lrokit._async_pipeline import default_async_sleep
from lrokit._urls import with_params
from lrokit.testing import AsyncFakeClock, LroScript, Poll

pytestmark = pytest.mark.anyio

S = OperationState
HOST = "https://svc.example.com"
JOBS = f"{HOST}/jobs?api-version=1"
MONITOR = f"{HOST}/ops/1?api-version=1"
ITEM = f"{HOST}/items/1?api-version=1"
CANCEL = f"{HOST}/ops/1:cancel?api-version=1"


class VectorStore(msgspec.Struct):
    id: str
    name: str


class CreateVectorStore(Operation[VectorStore]):
    """A sync LRO subclient."""

    value_type = VectorStore


class AsyncCreateVectorStore(AsyncOperation[VectorStore]):
    """Its async twin: the same token kind, so tokens resume on either side."""

    value_type = VectorStore
    token_kind = CreateVectorStore.kind()


def monitor(http: MockHttp, *answers: str | int) -> None:
    for answer in answers:
        if isinstance(answer, int):
            http.add("GET", MONITOR, status=answer)
        else:
            body: dict[str, Any] = {"status": answer, "percentComplete": 50}
            if answer == "Succeeded":
                body = {"status": answer, "result": {"id": "vs1", "name": "docs"}}
            http.add("GET", MONITOR, json=body)


async def start_job(http: MockHttp, pipeline: AsyncPipeline, cls: Any = AsyncOperation) -> Any:
    http.add("POST", JOBS, status=202, headers={"Operation-Location": "/ops/1"})
    return await cls.start(pipeline, "POST", "jobs", params={"api-version": "1"})


async def scripted_job(serve: Any, *statuses: str | int) -> Any:
    """``start_job`` then ``monitor(http, *statuses)``, as one lrokit.testing script served
    by its own pipeline (the ``serve`` fixture)."""
    script = LroScript.status_monitor(
        JOBS, statuses, monitor_url="/ops/1", result={"id": "vs1", "name": "docs"}
    )
    return await AsyncOperation.start(serve(script), "POST", "jobs", params={"api-version": "1"})


# -- single requests ------------------------------------------------------------------------


async def test_update_status_makes_exactly_one_request_per_call(http, pipeline, clock) -> None:
    operation = await start_job(http, pipeline)
    monitor(http, "Running", "Succeeded")
    first = await operation.update_status()
    assert isinstance(first, httpx.Response)
    assert first is operation.get_raw_response()
    assert (len(http.calls), operation.state) == (2, S.RUNNING)
    await operation.update_status()
    assert (len(http.calls), operation.state) == (3, S.SUCCEEDED)
    assert await operation.update_status() is None
    assert len(http.calls) == 3
    assert clock.sleeps == []
    assert operation.value == {"id": "vs1", "name": "docs"}


async def test_the_start_request_carries_its_body_and_headers(http, pipeline) -> None:
    http.add("POST", JOBS, status=202, headers={"Operation-Location": "/ops/1"})
    monitor(http, "Succeeded")
    operation = await AsyncOperation.start(
        pipeline,
        "POST",
        "jobs",
        params={"api-version": "1"},
        json={"name": "docs"},
        headers={"Authorization": "Bearer start-only"},
        operation_headers={"x-ms-client-request-id": "req-1"},
    )
    await operation.wait_for_completion()
    start, poll = http.calls
    assert start.content == b'{"name":"docs"}'
    assert start.headers["content-type"] == "application/json"
    assert start.headers["authorization"] == "Bearer start-only"
    assert "authorization" not in poll.headers
    assert {c.headers["x-ms-client-request-id"] for c in http.calls} == {"req-1"}


async def test_prepare_sends_nothing_and_hooks_see_the_first_transition(http, pipeline) -> None:
    http.add("POST", JOBS, status=202, headers={"Operation-Location": MONITOR})
    operation = AsyncOperation.prepare(pipeline, "POST", JOBS)
    assert operation.state is S.NOT_STARTED
    assert http.calls == []
    changes: list[tuple[OperationState, OperationState]] = []
    operation.on_change(lambda c: changes.append((c.previous, c.state)))
    response = await operation.send_start()
    assert response.status_code == 202
    assert changes == [(S.NOT_STARTED, S.RUNNING)]
    with pytest.raises(LroError, match="no start request left"):
        await operation.send_start()
    assert len(http.calls) == 1


async def test_update_status_sends_a_pending_start_first(http, pipeline) -> None:
    http.add("POST", JOBS, status=202, headers={"Operation-Location": MONITOR})
    operation = AsyncOperation.prepare(pipeline, "POST", JOBS)
    response = await operation.update_status()
    assert response.request.method == "POST"
    assert operation.state is S.RUNNING


async def test_a_foreign_url_is_refused_without_a_request(http, pipeline) -> None:
    with pytest.raises(UntrustedOriginError):
        await AsyncOperation.start(pipeline, "POST", "https://evil.example.net/jobs")
    assert http.calls == []


async def test_from_response_and_receive_make_no_request(http, pipeline) -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(http.handler)) as client:
        http.add("PUT", ITEM, status=201, json={"properties": {"provisioningState": "Creating"}})
        response = await client.put(ITEM, json={})
    operation = AsyncOperation.from_response(pipeline, response)
    assert (operation.core.method, operation.state) == ("PUT", S.RUNNING)
    operation.receive(ResponseView.build(200, None, b'{"properties": {"provisioningState": "x"}}'))
    assert len(http.calls) == 1
    view = ResponseView.build(202, {"Location": "/results/1"}, b"", JOBS)
    by_view = AsyncOperation.from_response(pipeline, view, method="POST")
    assert by_view.core.next_request_url == f"{HOST}/results/1?api-version=1"
    with pytest.raises(ValueError, match="method"):
        AsyncOperation.from_response(pipeline, view)


# -- tokens: the same on both sides ------------------------------------------------------------


async def test_a_sync_token_resumes_on_the_async_side_and_back(http, pipeline, clock) -> None:
    with responses.RequestsMock() as mock, Pipeline(HOST) as sync_pipeline:
        mock.post(JOBS, status=202, headers={"Operation-Location": MONITOR})
        sync_operation = CreateVectorStore.start(sync_pipeline, "POST", JOBS)
        token = str(sync_operation.rehydration_token)
    monitor(http, "Running")
    resumed = AsyncCreateVectorStore.rehydrate(pipeline, token)
    assert (resumed.state, http.calls) == (S.RUNNING, [])
    await resumed.update_status()
    back_token = str(resumed.rehydration_token)
    assert msgspec.json.decode(msgspec.json.encode(resumed.rehydration_token.fields))["k"] == (
        CreateVectorStore.kind()
    )
    with responses.RequestsMock() as mock, Pipeline(HOST) as sync_pipeline:
        mock.get(MONITOR, json={"status": "Succeeded", "result": {"id": "vs1", "name": "n"}})
        again = CreateVectorStore.rehydrate(sync_pipeline, back_token)
        assert again.core.attempt == resumed.core.attempt
        again.wait_for_completion(0.001)
        assert again.value == VectorStore("vs1", "n")


async def test_plain_twins_share_a_kind_and_other_kinds_are_refused(http, pipeline) -> None:
    assert AsyncOperation.kind() == Operation.kind()
    operation = await start_job(http, pipeline)
    with Pipeline(HOST) as sync_pipeline:
        assert Operation.rehydrate(sync_pipeline, operation.rehydration_token).state is S.RUNNING
        with pytest.raises(InvalidTokenError, match="CreateVectorStore"):
            CreateVectorStore.rehydrate(sync_pipeline, operation.rehydration_token)

    class Unrelated(AsyncOperation[Any]):
        pass

    assert Unrelated.kind().endswith("Unrelated")  # token_kind is not inherited
    with pytest.raises(InvalidTokenError):
        Unrelated.rehydrate(pipeline, operation.rehydration_token)


async def test_signed_tokens_and_not_started_tokens_cross_sides(http, clock) -> None:
    signer = TokenSigner({"k1": b"0123456789abcdef0123456789abcdef"})
    tokens = TokenPolicy(signer=signer)
    async with AsyncPipeline(
        HOST, http.client(), tokens=tokens, clock=clock, sleep=clock.sleep
    ) as p:
        prepared = AsyncOperation.prepare(p, "PUT", ITEM, json={"name": "x"})
        token = str(prepared.rehydration_token)  # NotStarted: a PUT may be sent again
    with responses.RequestsMock() as mock, Pipeline(HOST, tokens=tokens) as sync_pipeline:
        mock.put(ITEM, status=201, json={"id": "done", "status": "Succeeded"})
        restored = Operation.rehydrate(sync_pipeline, token, json={"name": "x"})
        assert restored.state is S.NOT_STARTED
        restored.wait_for_completion()
        assert mock.calls[0].request.body == b'{"name": "x"}'
        assert restored.value == {"id": "done", "status": "Succeeded"}
        other = TokenPolicy(signer=TokenSigner({"k1": b"another key, 32 bytes long......"}))
        with Pipeline(HOST, tokens=other) as stranger, pytest.raises(InvalidTokenError):
            Operation.rehydrate(stranger, token, json=None)


# -- hooks ---------------------------------------------------------------------------------------


async def test_coroutine_hooks_are_awaited_after_the_transition_in_order(serve) -> None:
    operation = await scripted_job(serve, "Running", "Succeeded")
    seen: list[str] = []

    async def on_poll(event: PollEvent[Any]) -> None:
        await asyncio.sleep(0)
        seen.append(f"poll {event.state.value} turn-free={not operation._busy}")

    def plain(change: StateChange[Any]) -> None:
        seen.append(f"plain {change.state.value}")

    async def on_enter(change: StateChange[Any]) -> None:
        # A coroutine hook may make requests itself: it runs outside the turn.
        assert await change.operation.update_status() is None
        seen.append(f"enter {change.state.value}")

    operation.on_poll(on_poll)
    operation.on_change(plain)
    operation.on_enter(S.SUCCEEDED, on_enter)
    await operation.wait_for_completion()
    assert seen == [
        "poll Running turn-free=True",
        "plain Succeeded",
        "poll Succeeded turn-free=True",
        "enter Succeeded",
    ]


async def test_errors_of_plain_and_coroutine_hooks_are_one_hook_error(serve) -> None:
    operation = await scripted_job(serve, "Succeeded")

    def plain(change: Any) -> None:
        raise RuntimeError("plain")

    async def awaited(change: Any) -> None:
        raise ValueError("awaited")

    operation.on_change(plain)
    operation.on_change(awaited)
    with pytest.raises(HookError) as info:
        await operation.wait_for_completion()
    assert [type(e) for e in info.value.errors] == [RuntimeError, ValueError]
    assert operation.state is S.SUCCEEDED  # the transition stood


async def test_hooks_of_manual_driving_wait_for_flush(http, pipeline) -> None:
    operation = await start_job(http, pipeline)
    seen: list[OperationState] = []

    async def hook(change: Any) -> None:
        seen.append(change.state)

    operation.on_change(hook)
    operation.fire("cancel")
    assert seen == []  # fire() makes no I/O and awaits nothing
    await operation.flush_hooks()
    assert seen == [S.CANCELED]
    with pytest.raises(OperationCanceledError):
        _ = operation.value


def test_the_sync_driver_refuses_coroutine_hooks(recwarn) -> None:
    with responses.RequestsMock() as mock, Pipeline(HOST) as pipeline:
        mock.post(JOBS, status=202, headers={"Operation-Location": MONITOR})
        mock.get(MONITOR, json={"status": "Running"})
        operation = Operation.start(pipeline, "POST", JOBS)

        async def coroutine_hook(event: Any) -> None:
            raise AssertionError("never run")

        with pytest.raises(TypeError, match="coroutine function"):
            operation.on_poll(coroutine_hook)

        def returns_a_coroutine(event: Any) -> Any:
            return coroutine_hook(event)

        operation.on_poll(returns_a_coroutine)  # an awaitable, returned anyway
        with pytest.raises(HookError) as info:
            operation.update_status()
        assert isinstance(info.value.errors[0], TypeError)
        assert "cannot await" in str(info.value.errors[0])
        assert operation.state is S.RUNNING
    assert not [w for w in recwarn if "never awaited" in str(w.message)]


# -- poll_iter --------------------------------------------------------------------------------


async def test_poll_iter_yields_each_status_until_terminal(serve, clock) -> None:
    script = LroScript.status_monitor(
        JOBS,
        [
            Poll("InProgress", percent_complete=10),
            Poll(503, retry_after=3),
            Poll("InProgress", percent_complete=80),
            "Succeeded",
        ],
        monitor_url=MONITOR,
    )
    operation = AsyncOperation.prepare(serve(script), "POST", JOBS)
    updates = [u async for u in operation.poll_iter(2)]
    assert all(isinstance(u, PollUpdate) for u in updates)
    assert [(u.state, u.raw_status, u.percent_complete) for u in updates] == [
        (S.RUNNING, None, None),  # the start: 202 without a body
        (S.RUNNING, "InProgress", 10.0),
        (S.RUNNING, None, None),  # the 503: a transient fault, the state unchanged
        (S.RUNNING, "InProgress", 80.0),
        (S.SUCCEEDED, "Succeeded", None),
    ]
    assert [u.next_delay.seconds if u.next_delay else None for u in updates] == [
        2.0,
        2.0,
        3.0,
        2.0,
        None,
    ]
    assert clock.sleeps == [2.0, 2.0, 3.0, 2.0]
    assert updates[-1].has_completed
    assert isinstance(updates[-1].response, httpx.Response)


async def test_leaving_poll_iter_stops_polling(http, pipeline) -> None:
    operation = await start_job(http, pipeline)
    monitor(http, "Running", "Running", "Running", "Succeeded")
    async with contextlib.aclosing(operation.poll_iter()) as updates:
        async for update in updates:
            if update.raw_status == "Running":
                break
    assert http.calls_to(MONITOR) == 1
    await operation.wait_for_completion()  # resumable
    assert http.calls_to(MONITOR) == 4


def test_sync_poll_iter_yields_the_same_updates() -> None:
    with (
        responses.RequestsMock() as mock,
        Pipeline(HOST, polling=PollingPolicy(interval=0.001)) as pipeline,
    ):
        mock.post(JOBS, status=202, headers={"Operation-Location": MONITOR})
        mock.get(MONITOR, json={"status": "Running", "percentComplete": 40})
        mock.get(MONITOR, json={"status": "Succeeded", "result": 7})
        operation = Operation.prepare(pipeline, "POST", JOBS)
        updates = list(operation.poll_iter())
        assert [(u.state, u.raw_status, u.percent_complete) for u in updates] == [
            (S.RUNNING, None, None),
            (S.RUNNING, "Running", 40.0),
            (S.SUCCEEDED, "Succeeded", None),
        ]
        assert operation.value == 7
        for update in operation.poll_iter():
            raise AssertionError(f"nothing is left to poll, yet {update}")


# -- stopping the wait: deadline, event, task cancellation ----------------------------------------


async def test_an_event_stops_the_wait_and_leaves_it_resumable(http, pipeline, clock) -> None:
    operation = await start_job(http, pipeline)
    monitor(http, "Running", "Succeeded")
    stop = asyncio.Event()
    clock.cancel_after = (2, stop)
    with pytest.raises(WaitCancelledError) as info:
        await operation.wait_for_completion(cancel=stop)
    assert info.value.state is S.RUNNING
    assert info.value.rehydration_token is not None
    assert http.calls_to(MONITOR) == 1
    clock.cancel_after = None
    await operation.wait_for_completion()
    assert operation.state is S.SUCCEEDED


async def test_cancelling_the_task_mid_sleep_stops_at_once_and_stays_resumable(http) -> None:
    async with AsyncPipeline(HOST, http.client(), polling=PollingPolicy(interval=30)) as p:
        operation = await start_job(http, p)
        task = asyncio.ensure_future(operation.wait_for_completion())
        await asyncio.sleep(0.01)
        started = asyncio.get_running_loop().time()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert asyncio.get_running_loop().time() - started < 0.1
        assert operation.state is S.RUNNING
        assert http.calls_to(MONITOR) == 0
        monitor(http, "Succeeded")
        await operation.update_status()  # the turn was given back
        assert operation.state is S.SUCCEEDED


class Stalled:
    """A sender whose polls hang until released: a request in flight to cancel."""

    transport_errors = (ConnectionError,)

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.sent: list[tuple[str, str, Any]] = []

    async def send(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None,
        timeout: Any, **options: Any,
    ) -> ResponseView:  # fmt: skip
        self.sent.append((method, url, timeout))
        if method == "POST":
            return ResponseView.build(202, {"Operation-Location": MONITOR}, b"", url)
        await self.release.wait()
        return ResponseView.build(200, {}, b'{"status": "Succeeded", "result": 1}', url)

    async def aclose(self) -> None:
        pass


async def test_cancelling_the_task_mid_request_leaves_the_state_as_before() -> None:
    sender = Stalled()
    assert isinstance(sender, AsyncSender)
    async with AsyncPipeline(HOST, sender, polling=PollingPolicy(interval=0)) as pipeline:
        operation = await AsyncOperation.start(pipeline, "POST", JOBS)
        token = str(operation.rehydration_token)
        task = asyncio.ensure_future(operation.wait_for_completion())
        while len(sender.sent) < 2:
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert operation.state is S.RUNNING
        assert str(operation.rehydration_token) == token
        sender.release.set()
        await operation.wait_for_completion()
        assert operation.value == 1
        assert [m for m, _, _ in sender.sent] == ["POST", "GET", "GET"]


async def test_a_deadline_bounds_the_request_in_flight() -> None:
    sender = Stalled()
    sender.release.set()
    clock = AsyncFakeClock()
    async with AsyncPipeline(
        HOST,
        sender,
        polling=PollingPolicy(interval=2),
        request_timeout=(1.0, 60.0),
        clock=clock,
        sleep=clock.sleep,
    ) as pipeline:
        operation = await AsyncOperation.start(pipeline, "POST", JOBS)
        await operation.wait_for_completion(timeout=10)
    assert [t for _, _, t in sender.sent] == [(1.0, 60.0), (1.0, 8.0)]


async def test_a_real_event_interrupts_a_real_sleep_promptly(http) -> None:
    async with AsyncPipeline(HOST, http.client(), polling=PollingPolicy(interval=10)) as p:
        operation = await start_job(http, p)
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.02, stop.set)
        started = asyncio.get_running_loop().time()
        with pytest.raises(WaitCancelledError):
            await operation.wait_for_completion(cancel=stop)
        assert asyncio.get_running_loop().time() - started < 1.0
    assert await default_async_sleep(0.001, None) is False
    assert await default_async_sleep(0.001, asyncio.Event()) is False
    done = asyncio.Event()
    done.set()
    assert await default_async_sleep(5, done) is True


async def test_timeout_error_carries_the_last_status(serve, clock) -> None:
    operation = await scripted_job(serve, "Running")
    with pytest.raises(WaitTimeoutError) as info:
        await operation.wait_for_completion(polling_interval=2, timeout=3)
    assert info.value.status is not None
    assert info.value.status.raw_status == "Running"
    assert clock.sleeps == [2.0, 1.0]


# -- service-side cancel --------------------------------------------------------------------------


class CancellableJob(AsyncOperation[Any]):
    cancel_request = ("POST", "{monitor}:cancel")


async def test_service_side_cancel(http, pipeline) -> None:
    operation = await start_job(http, pipeline, CancellableJob)
    changes: list[OperationState] = []
    operation.on_change(lambda c: changes.append(c.state))
    http.add("POST", CANCEL, status=409, json={"error": {"code": "TooLate"}})
    with pytest.raises(CancelRejectedError):
        await operation.cancel()
    http.replace("POST", CANCEL, json={"status": "Canceled"})
    response = await operation.cancel()
    assert response.status_code == 200
    assert operation.state is S.CANCELED
    assert changes == [S.CANCELED]


# -- the sender protocol and the pipeline -----------------------------------------------------


async def test_a_pipeline_wraps_an_httpx_client_and_keeps_the_callers_client_open(http) -> None:
    client = http.client()
    pipeline = AsyncPipeline(HOST, client)
    assert isinstance(pipeline.sender, HttpxSender)
    assert pipeline.pipeline is pipeline
    await pipeline.aclose()
    assert not client.is_closed
    await client.aclose()
    owned = AsyncPipeline(HOST)
    assert isinstance(owned.sender, HttpxSender)
    await owned.aclose()
    assert owned.sender.client.is_closed  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="either"):
        HttpxSender(client, timeout=3)


async def test_httpx_sender_does_not_follow_redirects_and_maps_timeouts(http) -> None:
    http.add("GET", MONITOR, status=302, headers={"Location": "https://evil.example.net/"})
    sender = HttpxSender(http.client())
    view = await sender.send("GET", MONITOR, headers={}, body=None, timeout=(2.0, 9.0))
    assert view.status_code == 302
    assert view.headers.get("location") == "https://evil.example.net/"
    timeout = http.calls[0].extensions["timeout"]
    assert (timeout["connect"], timeout["read"]) == (2.0, 9.0)
    assert len(http.calls) == 1


def test_with_params_appends_to_the_query() -> None:
    assert with_params("https://h/x", None) == "https://h/x"
    assert with_params("https://h/x", {"api-version": "1"}) == "https://h/x?api-version=1"
    assert with_params("https://h/x?a=1", {"b": "2 3"}) == "https://h/x?a=1&b=2+3"


def test_an_async_operation_needs_no_event_loop_to_be_built() -> None:
    pipeline = AsyncPipeline(HOST, Stalled())
    operation = AsyncOperation.prepare(pipeline, "PUT", ITEM)
    assert operation.state is S.NOT_STARTED
    assert threading.active_count() >= 1  # nothing was started
