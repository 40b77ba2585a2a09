"""lrokit.testing itself: the fake clocks, scripted services (through both drivers), operations
built already finished, and the pytest plugin (run in a pytest of its own, in a temporary
directory, through its installed entry point)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import responses

from lrokit import (
    AsyncOperation,
    AsyncPipeline,
    Operation,
    OperationCanceledError,
    OperationFailedError,
    OperationNotCompleteError,
    OperationState,
    Pipeline,
    PollingPolicy,
    PollRejectedError,
    ProtocolOptions,
    ServiceError,
    StatusVocabulary,
    WaitTimeoutError,
)
from lrokit.testing import (
    TEST_ENDPOINT,
    AsyncFakeClock,
    FakeClock,
    LroScript,
    Poll,
    canceled_operation,
    completed_operation,
    failed_operation,
    mock_transport,
)

S = OperationState
HOST = "https://svc.example.com"
STORES = f"{HOST}/stores?api-version=2"
ITEM = f"{HOST}/stores/s1?api-version=2"
POLICY = PollingPolicy(interval=1.0, floor=0.0, cap=60.0, max_retries=2, retry_backoff=0.5)


class Store(msgspec.Struct):
    id: str
    name: str


class CreateStore(Operation[Store]):
    value_type = Store


class AsyncCreateStore(AsyncOperation[Store]):
    value_type = Store
    token_kind = CreateStore.kind()


# -- FakeClock -------------------------------------------------------------------------------


def test_fake_clock_records_sleeps_and_moves_on_by_them() -> None:
    clock = FakeClock(start=10.0)
    assert clock() == 10.0
    assert clock.sleep(2.5, None) is False
    assert clock.sleep(0.0) is False
    clock.advance(1.0)
    assert (clock(), clock.sleeps, clock.slept) == (13.5, [2.5, 0.0], 2.5)
    with pytest.raises(AssertionError, match="-1"):
        clock.sleep(-1, None)
    with pytest.raises(AssertionError):
        clock.advance(-0.5)
    assert repr(clock) == "FakeClock(now=13.5, sleeps=[2.5, 0.0])"


def test_fake_clock_honours_cancel_events() -> None:
    clock = FakeClock()
    stop = threading.Event()
    stop.set()
    assert clock.sleep(5, stop) is True
    assert clock.sleeps == []  # a set event: nothing slept
    later = threading.Event()
    clock.cancel_after = (2, later)
    assert clock.sleep(1, later) is False
    assert clock.sleep(1, later) is True  # the second sleep is interrupted
    assert later.is_set()
    assert clock.sleeps == [1, 1]


def test_fake_clock_drives_a_pipelines_waits_and_deadlines() -> None:
    clock = FakeClock()
    script = LroScript.status_monitor(STORES, ["Running"])
    with (
        responses.RequestsMock() as rsps,
        Pipeline(HOST, polling=POLICY, clock=clock, sleep=clock.sleep) as pipeline,
    ):
        script.register(rsps)
        operation = Operation.start(pipeline, "POST", STORES)
        with pytest.raises(WaitTimeoutError, match=r"within 2\.5 s"):
            operation.wait_for_completion(timeout=2.5)
    assert clock.sleeps == [1.0, 1.0, 0.5]
    assert clock() == 1002.5


# -- AsyncFakeClock ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_fake_clock_wakes_concurrent_sleepers_in_time_order() -> None:
    clock = AsyncFakeClock(start=0.0)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds, None)
        woke.append((name, clock()))

    await asyncio.gather(sleeper("slow", 5), sleeper("quick", 1), sleeper("middle", 3))
    assert woke == [("quick", 1.0), ("middle", 3.0), ("slow", 5.0)]
    assert sorted(clock.sleeps) == [1, 3, 5]
    assert clock.slept == 9
    with pytest.raises(AssertionError):
        await clock.sleep(-1)


@pytest.mark.anyio
async def test_async_fake_clock_advance_wakes_due_sleepers_now() -> None:
    clock = AsyncFakeClock(start=0.0)
    clock.SETTLE_TURNS = 10_000  # the clock would not move on its own within this test
    task = asyncio.ensure_future(clock.sleep(4))
    await asyncio.sleep(0)
    clock.advance(3)
    await asyncio.sleep(0)
    assert not task.done()
    clock.advance(1)
    assert await task is False
    assert clock() == 4.0
    stop = asyncio.Event()
    stop.set()
    assert await clock.sleep(2, stop) is True
    assert clock.sleeps == [4]
    assert repr(clock) == "AsyncFakeClock(now=4.0, sleeps=[4])"


@pytest.mark.anyio
async def test_async_fake_clock_cancel_after() -> None:
    clock = AsyncFakeClock()
    stop = asyncio.Event()
    clock.cancel_after = (2, stop)
    assert await clock.sleep(1, stop) is False
    assert await clock.sleep(1, stop) is True
    assert stop.is_set()


# -- LroScript through both drivers ----------------------------------------------------------


def run_sync(script: LroScript, cls: Any, method: str, url: str) -> tuple[Any, list[float]]:
    """Start and wait with ``Operation`` over ``responses``; the value (or error) and sleeps."""
    clock = FakeClock()
    with (
        responses.RequestsMock() as rsps,
        Pipeline(HOST, polling=POLICY, clock=clock, sleep=clock.sleep) as pipeline,
    ):
        script.register(rsps)
        operation = cls.start(pipeline, method, url, json={"name": "docs"})
        operation.wait_for_completion()
        return outcome(operation), clock.sleeps


def run_async(script: LroScript, cls: Any, method: str, url: str) -> tuple[Any, list[float]]:
    """The same with ``AsyncOperation`` over the script's httpx transport."""
    clock = AsyncFakeClock()

    async def main() -> Any:
        async with AsyncPipeline(
            HOST, script.async_client(), polling=POLICY, clock=clock, sleep=clock.sleep
        ) as pipeline:
            operation = await cls.start(pipeline, method, url, json={"name": "docs"})
            await operation.wait_for_completion()
            return outcome(operation)

    return asyncio.run(main()), clock.sleeps


def outcome(operation: Any) -> Any:
    try:
        return operation.value
    except (OperationFailedError, OperationCanceledError) as error:
        return (type(error).__name__, error.service_error)


def both(build: Any, cls: tuple[Any, Any], method: str, url: str) -> tuple[Any, Any]:
    """Run a fresh script from ``build()`` through each driver; both must agree."""
    sync_script, async_script = build(), build()
    sync = run_sync(sync_script, cls[0], method, url)
    asynchronous = run_async(async_script, cls[1], method, url)
    assert sync == asynchronous
    sent = [(r.method, r.url) for r in sync_script.requests]
    assert sent == [(r.method, r.url) for r in async_script.requests]
    sync_script.assert_finished()
    return sync, sync_script


def test_status_monitor_post_reads_the_value_from_the_monitor() -> None:
    def build() -> LroScript:
        return LroScript.status_monitor(
            STORES,
            ["NotStarted", Poll("Running", percent_complete=50, retry_after=4), 503, "Succeeded"],
            result=Store("s1", "docs"),
            retry_after=2,
        )

    (value, sleeps), script = both(build, (CreateStore, AsyncCreateStore), "POST", STORES)
    assert value == Store("s1", "docs")
    assert sleeps == [2.0, 2.0, 4.0, 2.0]  # the start's and each answer's Retry-After
    start, *polls = script.requests
    assert (start.method, start.url, start.json()) == ("POST", STORES, {"name": "docs"})
    assert start.headers["content-type"] == "application/json"
    assert script.polling_url.endswith("?api-version=2")  # carried from the start
    assert script.final_url is None
    assert [r.url for r in polls] == [script.polling_url] * 4
    assert script.requests_to(script.polling_url) == polls
    assert script.requests_to(STORES, "POST") == [start]


def test_status_monitor_answers_are_what_a_service_sends() -> None:
    script = LroScript.status_monitor(
        STORES,
        ["Running", "Succeeded"],
        monitor_url="/ops/7",
        header="Azure-AsyncOperation",
        location="/stores/s1",
        retry_after="Wed, 21 Oct 2015 07:28:00 GMT",
        percent_complete=[40, None],
        result={"id": "s1"},
    )
    status, headers, body = script.respond("POST", STORES, {}, b"") or (0, {}, b"")
    assert (status, body) == (202, b"")
    assert headers == {
        "Azure-AsyncOperation": "/ops/7",
        "Location": "/stores/s1",
        "Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT",
    }
    monitor = f"{HOST}/ops/7?api-version=2"
    assert script.polling_url == monitor
    running = script.respond("GET", monitor, {}, b"")
    done = script.respond("GET", monitor, {}, b"")
    assert running is not None
    assert done is not None
    assert msgspec.json.decode(running[2]) == {"status": "Running", "percentComplete": 40}
    assert running[1]["Retry-After"] == "Wed, 21 Oct 2015 07:28:00 GMT"
    # A POST with a Location reads its value there, not in the monitor.
    assert msgspec.json.decode(done[2]) == {"status": "Succeeded"}
    assert "Retry-After" not in done[1]
    assert script.final_url == ITEM
    assert script.respond("GET", f"{HOST}/elsewhere", {}, b"") is None
    assert script.unserved() == [f"GET {ITEM}: final GET"]
    with pytest.raises(AssertionError, match="final GET"):
        script.assert_finished()


def test_status_monitor_put_fetches_the_original_url() -> None:
    def build() -> LroScript:
        return LroScript.status_monitor(
            ITEM, ["Running", "Succeeded"], method="PUT", result={"id": "s1", "name": "n"}
        )

    (value, sleeps), script = both(build, (CreateStore, AsyncCreateStore), "PUT", ITEM)
    assert value == Store("s1", "n")
    assert sleeps == [1.0, 1.0]  # no wait before the final GET
    assert script.final_url == ITEM
    assert [r.method for r in script.requests] == ["PUT", "GET", "GET", "GET"]
    assert script.requests[-1].url == ITEM


def test_status_monitor_failures_carry_the_error() -> None:
    def build() -> LroScript:
        return LroScript.status_monitor(
            STORES, ["Running", "Failed"], error=ServiceError("Quota", "out of quota")
        )

    ((value, _), _) = both(build, (Operation, AsyncOperation), "POST", STORES)
    assert value == ("OperationFailedError", ServiceError("Quota", "out of quota"))

    def canceled() -> LroScript:
        return LroScript.status_monitor(STORES, ["Canceled"])

    ((value, _), _) = both(canceled, (Operation, AsyncOperation), "POST", STORES)
    assert value == (
        "OperationCanceledError",
        ServiceError("OperationCanceled", "the operation was canceled"),
    )


def test_delete_has_no_value() -> None:
    def build() -> LroScript:
        return LroScript.status_monitor(ITEM, ["Running", "Succeeded"], method="DELETE")

    ((value, _), script) = both(build, (Operation, AsyncOperation), "DELETE", ITEM)
    assert value is None
    assert script.final_url is None


def test_location_polling() -> None:
    def build() -> LroScript:
        return LroScript.location(
            STORES, ["Running", Poll("Running", retry_after=3), "Succeeded"], result={"n": 1}
        )

    ((value, sleeps), script) = both(build, (Operation, AsyncOperation), "POST", STORES)
    assert value == {"n": 1}
    assert sleeps == [1.0, 1.0, 3.0]
    assert script.polling_url.startswith(f"{HOST}/lro-results/")
    assert script.respond("GET", script.polling_url, {}, b"") == (
        200,
        {"Content-Type": "application/json"},
        b'{"n":1}',
    )

    def failed() -> LroScript:
        return LroScript.location(STORES, ["Running", "Failed"], location_url="/results/9")

    ((value, _), script) = both(failed, (Operation, AsyncOperation), "POST", STORES)
    assert value == (
        "OperationFailedError",
        ServiceError("OperationFailed", "the operation failed"),
    )
    assert script.polling_url == f"{HOST}/results/9?api-version=2"

    def no_body() -> LroScript:
        return LroScript.location(STORES, ["Succeeded"])

    ((value, _), script) = both(no_body, (Operation, AsyncOperation), "POST", STORES)
    assert value is None
    assert script.respond("GET", script.polling_url, {}, b"") == (204, {}, b"")


def test_arm_resource_polling() -> None:
    def build() -> LroScript:
        return LroScript.resource(
            ITEM,
            ["Creating", "Updating", "Succeeded"],
            result={"id": "s1", "name": "n", "properties": {"size": 3}},
        )

    ((value, sleeps), script) = both(build, (Operation, AsyncOperation), "PUT", ITEM)
    assert value == {
        "id": "s1",
        "name": "n",
        "properties": {"size": 3, "provisioningState": "Succeeded"},
    }
    assert sleeps == [1.0, 1.0, 1.0]
    assert script.polling_url == ITEM
    start = script.requests[0]
    assert (start.method, start.json()) == ("PUT", {"name": "docs"})

    def failed() -> LroScript:
        return LroScript.resource(ITEM, ["Failed"], error={"code": "Conflict"})

    ((value, _), _) = both(failed, (Operation, AsyncOperation), "PUT", ITEM)
    assert value == ("OperationFailedError", ServiceError("Conflict"))
    with pytest.raises(TypeError, match="JSON object"):
        LroScript.resource(ITEM, ["Succeeded"], result=[1, 2])


def test_custom_vocabularies_and_bodies() -> None:
    words = StatusVocabulary({"working": S.RUNNING, "done": S.SUCCEEDED})

    class Job(Operation[Any]):
        protocol_options = ProtocolOptions(vocabulary=words)

    class AsyncJob(AsyncOperation[Any]):
        protocol_options = Job.protocol_options

    def build() -> LroScript:
        return LroScript.status_monitor(
            STORES,
            ["working", Poll("working", headers={"x-ms-request-id": "r2"}), "done"],
            vocabulary=words,
            result=[1, 2],
        )

    ((value, _), _) = both(build, (Job, AsyncJob), "POST", STORES)
    assert value == [1, 2]
    script = LroScript.status_monitor(
        STORES, [Poll("Succeeded", json={"status": "Succeeded", "result": "mine"})]
    )
    script.respond("POST", STORES, {}, b"")
    answer = script.respond("GET", script.polling_url, {}, b"")
    assert answer is not None
    assert msgspec.json.decode(answer[2]) == {"status": "Succeeded", "result": "mine"}


def test_bare_error_answers_are_retried_or_rejected() -> None:
    clock = FakeClock()
    script = LroScript.status_monitor(
        STORES, [Poll(503, retry_after=2), Poll(404, json={"error": {"code": "NotFound"}})]
    )
    with (
        responses.RequestsMock() as rsps,
        Pipeline(HOST, polling=POLICY, clock=clock, sleep=clock.sleep) as pipeline,
    ):
        script.register(rsps)
        operation = Operation.start(pipeline, "POST", STORES)
        with pytest.raises(PollRejectedError) as info:
            operation.wait_for_completion()
    assert info.value.status_code == 404
    assert info.value.service_error == ServiceError("NotFound")
    assert clock.sleeps == [1.0, 2.0]


def test_the_last_answer_repeats_and_urls_match_as_a_service_would() -> None:
    script = LroScript.status_monitor(f"{HOST}/stores?b=2&api-version=2", ["Running"])
    assert script.respond("POST", f"{HOST}/stores?api-version=2&b=2", {}, b"") is not None
    first = script.respond("GET", script.polling_url, {}, b"")
    assert first is not None
    shouted = script.polling_url.replace("svc.example.com", "SVC.example.COM")
    assert script.respond("GET", shouted, {}, b"") == first  # hosts are case-insensitive
    assert script.respond("GET", script.polling_url.replace("lro-", "LRO-"), {}, b"") is None
    assert len(script.requests) == 3  # a URL without an answer is not recorded
    assert script.unserved() == []


def test_a_script_that_never_ends_fails_the_wait_instead_of_looping() -> None:
    def build() -> LroScript:
        script = LroScript.status_monitor(STORES, ["Running", "Running"])
        script.repeat_limit = 3
        return script

    sync_script = build()
    with pytest.raises(AssertionError, match=r"requested 6 times, more than 2 scripted answers"):
        run_sync(sync_script, Operation, "POST", STORES)
    assert len(sync_script.requests) == 1 + 6
    async_script = build()
    with pytest.raises(AssertionError, match="or wait with a timeout"):
        run_async(async_script, AsyncOperation, "POST", STORES)
    assert len(async_script.requests) == 1 + 6


def test_register_uses_responses_default_mock_when_given_none() -> None:
    script = LroScript.status_monitor(STORES, ["Succeeded"], result=5)

    @responses.activate
    def run() -> Any:
        script.register()
        with Pipeline(HOST, polling=POLICY) as pipeline:
            operation = Operation.start(pipeline, "POST", STORES)
            operation.update_status()
            return operation.value

    assert run() == 5
    assert len(script.requests) == 2


def test_one_transport_serves_several_scripts_and_refuses_the_rest() -> None:
    one = LroScript.status_monitor(STORES, ["Succeeded"], result=1)
    two = LroScript.status_monitor(f"{HOST}/other?api-version=2", ["Succeeded"], result=2)
    clock = AsyncFakeClock()

    async def main() -> list[Any]:
        client = httpx.AsyncClient(transport=mock_transport(one, two))
        async with (
            client,
            AsyncPipeline(HOST, client, polling=POLICY, clock=clock, sleep=clock.sleep) as p,
        ):
            values = []
            for url in (STORES, f"{HOST}/other?api-version=2"):
                operation = await AsyncOperation.start(p, "POST", url)
                await operation.wait_for_completion()
                values.append(operation.value)
            with pytest.raises(AssertionError, match="no scripted answer to POST"):
                await AsyncOperation.start(p, "POST", f"{HOST}/unknown")
            return values

    assert asyncio.run(main()) == [1, 2]
    assert (len(one.requests), len(two.requests)) == (2, 2)


def test_scripts_refuse_what_they_cannot_mean() -> None:
    with pytest.raises(ValueError, match="at least one status"):
        LroScript.status_monitor(STORES, [])
    with pytest.raises(ValueError, match="one entry per status"):
        LroScript.status_monitor(STORES, ["Running", "Succeeded"], percent_complete=[1])
    assert "LroScript POST" in repr(LroScript.location(STORES, ["Succeeded"]))


def test_default_urls_are_stable_and_distinct() -> None:
    first = LroScript.status_monitor(STORES, ["Succeeded"]).polling_url
    assert first == LroScript.status_monitor(STORES, ["Succeeded"]).polling_url
    assert first != LroScript.status_monitor(ITEM, ["Succeeded"], method="PUT").polling_url
    assert first != LroScript.status_monitor(STORES, ["Succeeded"], method="PUT").polling_url


# -- finished operations -----------------------------------------------------------------------


def test_completed_operation_has_its_value_and_needs_no_request() -> None:
    operation = completed_operation(CreateStore, Store("s1", "docs"))
    assert isinstance(operation, CreateStore)
    assert (operation.state, operation.has_completed) == (S.SUCCEEDED, True)
    assert operation.value == Store("s1", "docs")
    assert operation.update_status() is None
    assert operation.wait_for_completion() is operation
    assert operation.status is not None
    assert operation.status.raw_status == "Succeeded"
    assert operation.pipeline.endpoint == TEST_ENDPOINT
    with pytest.raises(AssertionError, match="has no service"):
        operation.pipeline.send("GET", TEST_ENDPOINT)
    resumed = CreateStore.rehydrate(operation.pipeline, operation.rehydration_token)
    assert resumed.state is S.SUCCEEDED


def test_completed_operation_takes_the_final_json_and_a_pipeline() -> None:
    class Client:
        def __init__(self, pipeline: Pipeline) -> None:
            self.pipeline = pipeline

    with Pipeline(HOST) as pipeline:
        operation = completed_operation(
            CreateStore,
            payload={"id": "s1", "name": "docs", "extra": 1},
            pipeline=Client(pipeline),
            raw_status="done",
            method="PUT",
            url="stores/s1",
        )
        assert operation.pipeline is pipeline
        assert operation.core.initial_url == f"{HOST}/stores/s1"
        assert operation.core.method == "PUT"
    assert operation.value == Store("s1", "docs")
    assert operation.status is not None
    assert operation.status.raw_status == "done"
    assert completed_operation(Operation).value is None
    with pytest.raises(TypeError, match="not both"):
        completed_operation(Operation, 1, payload=1)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (None, ServiceError("OperationFailed", "the operation failed")),
        ("no quota", ServiceError(message="no quota")),
        ({"code": "Quota", "message": "no"}, ServiceError("Quota", "no")),
        (ServiceError("Quota"), ServiceError("Quota")),
    ],
)
def test_failed_operation_raises_its_error(error: Any, expected: ServiceError) -> None:
    operation = failed_operation(CreateStore, error)
    assert operation.state is S.FAILED
    with pytest.raises(OperationFailedError) as info:
        _ = operation.value
    assert info.value.service_error == expected
    assert operation.update_status() is None


def test_canceled_operation_raises_canceled() -> None:
    operation = canceled_operation(CreateStore, raw_status="Cancelled")
    assert operation.state is S.CANCELED
    with pytest.raises(OperationCanceledError) as info:
        _ = operation.value
    assert info.value.service_error == ServiceError(
        "OperationCanceled", "the operation was canceled"
    )


@pytest.mark.anyio
async def test_finished_async_operations() -> None:
    done = completed_operation(AsyncCreateStore, Store("s1", "docs"))
    assert isinstance(done.pipeline, AsyncPipeline)
    assert await done.update_status() is None
    assert await done.wait_for_completion() is done
    assert done.value == Store("s1", "docs")
    with pytest.raises(AssertionError, match="has no service"):
        await done.pipeline.send("GET", TEST_ENDPOINT)
    failed = failed_operation(AsyncCreateStore, "boom")
    with pytest.raises(OperationFailedError):
        _ = failed.value
    canceled = canceled_operation(AsyncOperation)
    with pytest.raises(OperationCanceledError):
        _ = canceled.value
    # Tokens cross sides as usual.
    resumed = CreateStore.rehydrate(completed_operation(CreateStore), done.rehydration_token)
    assert resumed.has_completed
    with pytest.raises(OperationNotCompleteError):
        _ = resumed.value


# -- the pytest plugin ---------------------------------------------------------------------------


def run_pytest(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


USER_TESTS = '''
    import msgspec
    from lrokit import Operation, Pipeline
    from lrokit.testing import FakeClock, LroScript

    class Store(msgspec.Struct):
        id: str

    class CreateStore(Operation[Store]):
        value_type = Store

    def create_store(pipeline: Pipeline, name: str) -> Store:
        """The SDK code under test."""
        operation = CreateStore.start(pipeline, "POST", "stores", json={"name": name})
        return operation.wait_for_completion().value

    def test_create_store(lrokit_pipeline, lrokit_responses, lrokit_clock, lrokit_endpoint):
        script = LroScript.status_monitor(
            lrokit_endpoint + "stores", ["Running", "Succeeded"], result={"id": "s1"}
        )
        script.register(lrokit_responses)
        assert create_store(lrokit_pipeline, "docs") == Store("s1")
        assert lrokit_clock.sleeps == EXPECTED_SLEEPS
        assert script.requests[0].json() == {"name": "docs"}

    def test_fixtures_are_new_per_test(lrokit_clock, lrokit_pipeline):
        assert lrokit_clock.sleeps == []
        assert lrokit_pipeline.clock is lrokit_clock
        assert isinstance(lrokit_clock, FakeClock)

    def test_async_clock(lrokit_async_clock):
        assert lrokit_async_clock() == 1000.0
'''


def test_the_plugin_fixtures_work_in_a_users_test_suite(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(USER_TESTS).replace("EXPECTED_SLEEPS", "[1.0, 1.0]")
    )
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_the_plugin_fixtures_can_be_overridden(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        textwrap.dedent(
            """
            import pytest
            from lrokit import PollingPolicy

            @pytest.fixture
            def lrokit_endpoint():
                return "https://my-service.example.org/"

            @pytest.fixture
            def lrokit_policy():
                return PollingPolicy(interval=5)
            """
        )
    )
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(USER_TESTS).replace("EXPECTED_SLEEPS", "[5.0, 5.0]")
        + "\ndef test_endpoint(lrokit_pipeline):\n"
        "    assert lrokit_pipeline.endpoint == 'https://my-service.example.org/'\n"
    )
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout


def test_only_the_responses_fixture_needs_responses(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        "import sys\n"
        "sys.modules['responses'] = None  # as if it were not installed\n"
        "sys.modules['httpx'] = None\n"
    )
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(
            """
            import lrokit.testing

            def test_clock_and_pipeline(lrokit_clock, lrokit_pipeline):
                assert lrokit_pipeline.clock is lrokit_clock

            def test_responses(lrokit_responses):
                pass
            """
        )
    )
    result = run_pytest(tmp_path)
    assert "1 passed, 1 error" in result.stdout, result.stdout + result.stderr
    assert "pip install 'lrokit[testing]'" in result.stdout


def test_the_plugin_can_be_turned_off(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text("def test_clock(lrokit_clock):\n    pass\n")
    result = run_pytest(tmp_path, "-p", "no:lrokit")
    assert "fixture 'lrokit_clock' not found" in result.stdout
