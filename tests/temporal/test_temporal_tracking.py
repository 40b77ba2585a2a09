"""Durable tracking on a real Temporal dev server: lrokit.temporal end to end.

Each test runs the demo service on 127.0.0.1 and a worker for it (in this process, on a
task queue of its own; in child processes for the SIGKILL test), starts operations with
the demo SDK client (one start request each, sent here) and tracks them with ``track``.
Every loop is bounded in time; every process a test starts is stopped by its PID.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from lrokit import (
    AsyncOperation,
    AsyncPipeline,
    InvalidTokenError,
    OperationCanceledError,
    OperationFailedError,
    OperationState,
    PollRejectedError,
    RehydrationToken,
    RetriesExhaustedError,
    TokenPolicy,
    TokenSigner,
    WaitCancelledError,
    WaitTimeoutError,
)
from lrokit.demo import (
    API_VERSION,
    CreateVectorStoreOperation,
    DemoService,
    FaultPlan,
    VectorStore,
    VectorStoreClient,
)

try:
    from temporalio.client import Client, WorkflowExecutionStatus

    from lrokit.temporal import Registry, TrackHandle, create_worker, track
    from lrokit.temporal._fleet_demo import WorkerProcess
except ImportError:  # the temporal_server fixture reports it (skip, or fail in CI)
    pass

pytestmark = pytest.mark.integration

#: Seconds any one scenario may take before it is failed.
SCENARIO_LIMIT = 60.0


class CancellableCreate(CreateVectorStoreOperation):
    """The demo operation with the demo service's cancel request."""

    cancel_request = ("POST", "{monitor}:cancel")


def _start(sdk: VectorStoreClient, name: str) -> CancellableCreate:
    return CancellableCreate.start(
        sdk, "POST", f"vector_stores?api-version={API_VERSION}", json={"name": name}
    )


class Stamps:
    """The arrival time of each request the service logged (its own clock)."""

    def __init__(self) -> None:
        self.lines: list[tuple[float, str]] = []

    def __call__(self, line: str) -> None:
        self.lines.append((time.monotonic(), line))

    def times(self, fragment: str) -> list[float]:
        return [at for at, line in self.lines if fragment in line]


def run_scenario(
    server: Any,
    service: DemoService,
    scenario: Callable[[Client, str, VectorStoreClient], Awaitable[None]],
    *,
    registry_client: Callable[[], VectorStoreClient] | None = None,
    sdk: VectorStoreClient | None = None,
    registry: Registry | None = None,
) -> None:
    """Run ``scenario(client, task_queue, sdk)`` with an in-process worker for ``service``
    (its registry: ``registry``, else the two sync demo classes)."""

    async def main() -> None:
        nonlocal registry
        client = await Client.connect(server.address)
        if registry is None:
            registry = Registry()
            factory = registry_client or (lambda: VectorStoreClient(service.endpoint))
            registry.register(CreateVectorStoreOperation, factory)
            registry.register(CancellableCreate, factory)
        task_queue = f"test-{uuid.uuid4().hex}"
        caller = sdk or VectorStoreClient(service.endpoint)
        try:
            async with create_worker(client, task_queue=task_queue, registry=registry):
                await asyncio.wait_for(scenario(client, task_queue, caller), SCENARIO_LIMIT)
        finally:
            caller.close()
            await registry.aclose()

    asyncio.run(main())


def test_value_is_decoded_and_state_is_queryable(temporal_server: Any) -> None:
    with DemoService(polls_to_complete=2, retry_after=0.2) as service:

        async def scenario(client: Client, queue: str, sdk: VectorStoreClient) -> None:
            operation = sdk.create_vector_store("docs", wait_until_completed=False)
            handle = await track(client, operation, task_queue=queue)
            running = await handle.state()
            assert running.tracking
            assert running.state == OperationState.RUNNING.value
            value = await handle.result()
            assert isinstance(value, VectorStore)
            assert value.name == "docs"
            assert value.status == "completed"
            done = await handle.state()
            assert (done.state, done.raw_status, done.percent_complete) == (
                "Succeeded",
                "Succeeded",
                100.0,
            )
            assert done.polls == 3  # two status polls and the final GET
            assert not done.tracking
            assert done.next_poll_at is None
            # The raw JSON, and another value type, on request.
            assert (await handle.result(value_type=dict))["name"] == "docs"

        run_scenario(temporal_server, service, scenario)
        assert [record.polls for record in service.operations()] == [2]


def test_async_operation_classes_poll_on_the_workers_event_loop(temporal_server: Any) -> None:
    class AsyncCreate(AsyncOperation[VectorStore]):
        value_type = VectorStore
        token_kind = CreateVectorStoreOperation.kind()  # resumes the sync class's tokens

    with DemoService(polls_to_complete=2, retry_after=0.2) as service:
        registry = Registry()
        registry.register(AsyncCreate, lambda: AsyncPipeline(service.endpoint))

        async def scenario(client: Client, queue: str, sdk: VectorStoreClient) -> None:
            operation = sdk.create_vector_store("async", wait_until_completed=False)
            handle = await track(client, operation, task_queue=queue)
            assert (await handle.result()).name == "async"

        run_scenario(temporal_server, service, scenario, registry=registry)
        assert [record.polls for record in service.operations()] == [2]


def test_failures_are_lrokit_errors_with_service_error_and_token(temporal_server: Any) -> None:
    with DemoService(polls_to_complete=1, retry_after=0.2) as service:

        async def scenario(client: Client, queue: str, sdk: VectorStoreClient) -> None:
            failing = sdk.create_vector_store("fail-1", wait_until_completed=False)
            canceled = sdk.create_vector_store("cancel-1", wait_until_completed=False)
            missing = CreateVectorStoreOperation.from_monitor(
                sdk, f"operations/nope?api-version={API_VERSION}"
            )
            failed_handle = await track(client, failing, task_queue=queue)
            canceled_handle = await track(client, canceled, task_queue=queue)
            missing_handle = await track(client, missing, task_queue=queue)
            with pytest.raises(OperationFailedError) as failed:
                await failed_handle.result()
            assert failed.value.service_error is not None
            assert failed.value.service_error.code == "VectorStoreCreationFailed"
            token = RehydrationToken.parse(failed.value.rehydration_token or "")
            assert token.fields.state == "Failed"
            with pytest.raises(OperationCanceledError) as was_canceled:
                await canceled_handle.result()
            assert was_canceled.value.service_error is not None
            with pytest.raises(PollRejectedError) as rejected:
                await missing_handle.result()
            assert rejected.value.status_code == 404
            assert rejected.value.service_error is not None
            assert rejected.value.service_error.code == "OperationNotFound"

        run_scenario(temporal_server, service, scenario)


def test_cancel_signal_cancels_at_the_service(temporal_server: Any) -> None:
    with DemoService(duration=60, retry_after=0.3) as service:

        async def scenario(client: Client, queue: str, sdk: VectorStoreClient) -> None:
            operation = _start(sdk, "to-cancel")
            handle = await track(client, operation, task_queue=queue)
            await handle.cancel()
            with pytest.raises(OperationCanceledError) as canceled:
                await handle.result()
            assert canceled.value.service_error is not None
            assert canceled.value.service_error.code == "OperationCanceled"

        run_scenario(temporal_server, service, scenario)
        assert [record.status for record in service.operations()] == ["Canceled"]
        assert sum(":cancel" in r.path for r in service.requests) == 1


def test_stop_then_resume_from_the_last_token(temporal_server: Any) -> None:
    with DemoService(polls_to_complete=4, retry_after=0.3) as service:

        async def scenario(client: Client, queue: str, sdk: VectorStoreClient) -> None:
            operation = sdk.create_vector_store("paused", wait_until_completed=False)
            handle = await track(client, operation, task_queue=queue)
            deadline = time.monotonic() + 20
            while (await handle.state()).polls < 1:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            await handle.stop()
            with pytest.raises(WaitCancelledError) as stopped:
                await handle.result()
            token = stopped.value.rehydration_token
            assert token is not None
            assert RehydrationToken.parse(token).fields.attempt >= 1
            polls_when_stopped = service.operations()[0].polls
            await asyncio.sleep(0.8)  # longer than the hint: no poll while stopped
            assert service.operations()[0].polls == polls_when_stopped
            resumed = await track(
                client, token, task_queue=queue, operation_type=CreateVectorStoreOperation
            )
            assert resumed.workflow_id == handle.workflow_id
            assert (await resumed.result()).name == "paused"

        run_scenario(temporal_server, service, scenario)
        assert len(service.operations()) == 1
        assert service.operations()[0].polls == 4


def test_retry_after_is_honoured_by_the_durable_timer(temporal_server: Any) -> None:
    stamps = Stamps()
    with DemoService(polls_to_complete=2, retry_after=2, log=stamps) as service:

        async def scenario(client: Client, queue: str, sdk: VectorStoreClient) -> None:
            operation = sdk.create_vector_store("slowly", wait_until_completed=False)
            handle = await track(client, operation, task_queue=queue, polling_interval=0.1)
            await handle.result()

        run_scenario(temporal_server, service, scenario)
    (started,) = stamps.times("POST /vector_stores")
    polls = stamps.times("GET /operations/")
    assert len(polls) == 2
    # No poll before the server's hint (2 s), although the interval asked for 0.1 s; the
    # service logs after answering, so its stamps are late if anything, never early.
    assert polls[0] - started >= 2.0 - 0.05
    assert polls[1] - polls[0] >= 2.0 - 0.05


def test_transient_faults_are_retried_after_the_hint_then_typed(temporal_server: Any) -> None:
    stamps = Stamps()
    faults = FaultPlan(unavailable=1.0, retry_after=1.0)
    with DemoService(polls_to_complete=1, retry_after=0.1, faults=faults, log=stamps) as service:

        async def scenario(client: Client, queue: str, sdk: VectorStoreClient) -> None:
            operation = sdk.create_vector_store("busy", wait_until_completed=False)
            handle = await track(client, operation, task_queue=queue, max_attempts=2)
            with pytest.raises(RetriesExhaustedError) as exhausted:
                await handle.result()
            assert exhausted.value.status_code == 503
            assert exhausted.value.failures == 2
            assert exhausted.value.rehydration_token is not None

        run_scenario(temporal_server, service, scenario)
    attempts = stamps.times("GET /operations/")
    assert len(attempts) == 2
    assert attempts[1] - attempts[0] >= 1.0 - 0.05  # Retry-After: 1 -> next_retry_delay


def test_deadline_ends_tracking_with_a_timeout_and_no_late_poll(temporal_server: Any) -> None:
    stamps = Stamps()
    with DemoService(duration=60, retry_after=0.4, log=stamps) as service:

        async def scenario(client: Client, queue: str, sdk: VectorStoreClient) -> None:
            operation = sdk.create_vector_store("never", wait_until_completed=False)
            began = time.monotonic()
            handle = await track(client, operation, task_queue=queue, timeout=1.5)
            with pytest.raises(WaitTimeoutError) as timed_out:
                await handle.result()
            assert time.monotonic() - began < 10
            assert timed_out.value.state is OperationState.RUNNING
            assert timed_out.value.rehydration_token is not None
            assert (await handle.state()).tracking is False

        run_scenario(temporal_server, service, scenario)
    (started,) = stamps.times("POST /vector_stores")
    polls = stamps.times("GET /operations/")
    assert polls
    assert all(at - started < 1.5 + 0.3 for at in polls)


def test_deadline_bounds_the_retries_of_a_faulty_poll(temporal_server: Any) -> None:
    stamps = Stamps()
    faults = FaultPlan(unavailable=1.0, retry_after=1.0)
    with DemoService(polls_to_complete=1, retry_after=0.1, faults=faults, log=stamps) as service:

        async def scenario(client: Client, queue: str, sdk: VectorStoreClient) -> None:
            operation = sdk.create_vector_store("flaky", wait_until_completed=False)
            handle = await track(client, operation, task_queue=queue, timeout=2.5, max_attempts=50)
            with pytest.raises(WaitTimeoutError):
                await handle.result()

        run_scenario(temporal_server, service, scenario)
    (started,) = stamps.times("POST /vector_stores")
    attempts = stamps.times("GET /operations/")
    assert 1 <= len(attempts) <= 3  # one a second, until the deadline
    assert all(at - started < 2.5 + 0.3 for at in attempts)


def test_tracking_twice_attaches_to_the_one_workflow(temporal_server: Any) -> None:
    with DemoService(polls_to_complete=3, retry_after=0.3) as service:

        async def scenario(client: Client, queue: str, sdk: VectorStoreClient) -> None:
            operation = sdk.create_vector_store("once", wait_until_completed=False)
            first = await track(client, operation, task_queue=queue)
            monitor = CreateVectorStoreOperation.from_monitor(sdk, operation.core.polling_url or "")
            second = await track(client, monitor, task_queue=queue)
            third = await track(
                client,
                str(operation.rehydration_token),
                task_queue=queue,
                operation_type=CreateVectorStoreOperation,
            )
            assert first.workflow_id == second.workflow_id == third.workflow_id
            runs = {(await h.workflow_handle.describe()).run_id for h in (first, second, third)}
            assert len(runs) == 1
            values = [await h.result() for h in (first, second, third)]
            assert len({v.id for v in values}) == 1

        run_scenario(temporal_server, service, scenario)
        # One tracker: exactly the polls one operation needs.
        assert [record.polls for record in service.operations()] == [3]


def test_continue_as_new_keeps_the_history_bounded(temporal_server: Any) -> None:
    with DemoService(polls_to_complete=5, retry_after=0.1) as service:

        async def scenario(client: Client, queue: str, sdk: VectorStoreClient) -> None:
            operation = sdk.create_vector_store("long", wait_until_completed=False)
            handle = await track(client, operation, task_queue=queue, max_polls_per_run=2)
            first_run = (await handle.workflow_handle.describe()).run_id
            assert (await handle.result()).name == "long"
            assert (await handle.state()).polls == 6
            old = client.get_workflow_handle(handle.workflow_id, run_id=first_run)
            assert (await old.describe()).status is WorkflowExecutionStatus.CONTINUED_AS_NEW

        run_scenario(temporal_server, service, scenario)


def test_credentials_stay_out_of_history_and_tokens_are_signed(temporal_server: Any) -> None:
    secret = secrets.token_hex(16)
    policy = TokenPolicy(signer=TokenSigner({"k1": secrets.token_bytes(32)}))
    with DemoService(polls_to_complete=2, retry_after=0.2) as service:

        def make_client() -> VectorStoreClient:
            return VectorStoreClient(
                service.endpoint, headers={"Authorization": f"Bearer {secret}"}, tokens=policy
            )

        async def scenario(client: Client, queue: str, sdk: VectorStoreClient) -> None:
            operation = sdk.create_vector_store("signed", wait_until_completed=False)
            handle = await track(client, operation, task_queue=queue)
            assert (await handle.result()).name == "signed"
            state = await handle.state()
            assert RehydrationToken.parse(state.token).signed
            history = (await handle.workflow_handle.fetch_history()).to_json()
            assert secret not in history
            assert "Authorization" not in history
            # A token without a valid signature is refused by the worker, typed.
            unsigned = VectorStoreClient(service.endpoint)
            other = unsigned.create_vector_store("unsigned", wait_until_completed=False)
            refused = await track(client, other, task_queue=queue)
            with pytest.raises(InvalidTokenError):
                await refused.result()
            unsigned.close()

        run_scenario(
            temporal_server,
            service,
            scenario,
            registry_client=make_client,
            sdk=make_client(),
        )
        polls = [r for r in service.requests if r.method == "GET"]
        assert polls
        assert all(r.headers.get("authorization") == f"Bearer {secret}" for r in polls)


def test_worker_killed_mid_poll_another_finishes_nothing_lost(temporal_server: Any) -> None:
    operations = 8
    faults = FaultPlan(slow=1.0, slow_seconds=1.5)  # every poll answers 1.5 s late
    with DemoService(polls_to_complete=2, retry_after=0.2, faults=faults) as service:
        env = {**os.environ, "LROKIT_DEMO_ENDPOINT": service.endpoint}
        queue = f"test-{uuid.uuid4().hex}"
        options = ["--sticky-timeout", "1"]
        first = WorkerProcess(
            temporal_server.address, queue, "lrokit.temporal.demo", env=env, options=options
        )
        second: WorkerProcess | None = None
        try:
            first.wait_ready()

            async def main() -> list[VectorStore]:
                client = await Client.connect(temporal_server.address)
                sdk = VectorStoreClient(service.endpoint)
                handles: list[TrackHandle[VectorStore]] = []
                for index in range(operations):
                    operation = sdk.create_vector_store(f"op-{index}", wait_until_completed=False)
                    handles.append(await track(client, operation, task_queue=queue, poll_timeout=3))
                sdk.close()
                deadline = time.monotonic() + 30
                while not any(r.method == "GET" for r in service.requests):
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.02)
                # A poll is in flight at the service (its answer is 1.5 s away): kill now.
                first.kill()
                nonlocal second
                second = WorkerProcess(
                    temporal_server.address, queue, "lrokit.temporal.demo", env=env, options=options
                )
                await asyncio.to_thread(second.wait_ready)
                return await asyncio.wait_for(
                    asyncio.gather(*(h.result() for h in handles)), SCENARIO_LIMIT
                )

            values = asyncio.run(main())
        finally:
            first.stop()
            if second is not None:
                second.stop()
        assert first.process.returncode == -9  # SIGKILL
        assert [v.name for v in values] == [f"op-{i}" for i in range(operations)]
        assert len({v.id for v in values}) == operations
        records = service.operations()
        assert len(records) == operations  # nothing created twice
        assert all(record.status == "Succeeded" for record in records)


def test_a_cancel_without_answer_is_sent_once_and_tracking_goes_on(temporal_server: Any) -> None:
    import requests
    from requests.adapters import HTTPAdapter

    sent: list[str] = []

    class LosesCancels(HTTPAdapter):
        """Sends everything but cancel requests, which get no answer."""

        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            if ":cancel" in (request.url or ""):
                sent.append(request.url)
                raise requests.ConnectionError(f"connection reset, url: {request.url}")
            return super().send(request, *args, **kwargs)

    with DemoService(polls_to_complete=3, retry_after=0.3) as service:

        def make_client() -> VectorStoreClient:
            session = requests.Session()
            session.mount("http://", LosesCancels())
            return VectorStoreClient(service.endpoint, session=session)

        async def scenario(client: Client, queue: str, sdk: VectorStoreClient) -> None:
            operation = _start(sdk, "lost-cancel")
            handle = await track(client, operation, task_queue=queue)
            await handle.cancel()
            assert (await handle.result()).name == "lost-cancel"
            state = await handle.state()
            assert state.note is not None
            assert "no answer" in state.note

        run_scenario(temporal_server, service, scenario, registry_client=make_client)
        assert len(sent) == 1  # not retried
        assert [record.status for record in service.operations()] == ["Succeeded"]


def test_run_worker_shuts_its_thread_pool_down_when_it_stops(
    temporal_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal
    from concurrent.futures import ThreadPoolExecutor

    from lrokit.temporal import _worker, run_worker

    pools: list[ThreadPoolExecutor] = []

    class Recorded(ThreadPoolExecutor):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            pools.append(self)

    monkeypatch.setattr(_worker, "ThreadPoolExecutor", Recorded)
    registry = Registry()
    registry.register(CreateVectorStoreOperation, lambda: VectorStoreClient("http://127.0.0.1:1/"))

    def ready() -> None:  # stop at once, as SIGTERM does
        asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGTERM)

    queue = f"test-{uuid.uuid4().hex}"
    asyncio.run(
        asyncio.wait_for(
            run_worker(temporal_server.address, task_queue=queue, registry=registry, ready=ready),
            SCENARIO_LIMIT,
        )
    )
    (pool,) = pools
    assert pool._shutdown  # no new work is taken: the pool was shut down
