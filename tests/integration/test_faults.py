"""lrokit against the embedded service with faults injected, over real HTTP on 127.0.0.1.

The main test runs 200 operations on 8 threads while about 30 % of the polls fail (503 and 429
with Retry-After, dropped connections, truncated and non-JSON bodies) or come late. Every
operation must end with its correct outcome, the service must have created each exactly once,
and no request may go beyond the retry budget. Delays are milliseconds (policy floor/cap and
``retry-after-ms``), so the run takes a few seconds.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import requests

from lrokit import (
    ExponentialDelay,
    OperationCanceledError,
    OperationFailedError,
    OperationState,
    Pipeline,
    PollingPolicy,
    RetriesExhaustedError,
    StartOutcomeUnknownError,
)
from lrokit._cli import build_parser
from lrokit.demo import (
    API_VERSION,
    CreateVectorStoreOperation,
    DemoService,
    Fault,
    FaultPlan,
    RecordedRequest,
    VectorStore,
)

pytestmark = pytest.mark.integration

OPERATIONS = 200
WORKERS = 8
POLLS = 3
MAX_RETRIES = 8
START_PATH = f"vector_stores?{urlencode({'api-version': API_VERSION})}"
#: Faults that are failures (a slow answer is still a good answer).
FAILING = {f.value for f in Fault} - {Fault.SLOW.value}
#: Faults that a start survives: its headers arrive intact, and lrokit reads no body of a 202.
HARMLESS_ON_STARTS = {Fault.SLOW.value, Fault.TRUNCATED.value, Fault.INVALID.value}

PLAN = FaultPlan(
    unavailable=0.08,
    throttled=0.06,
    dropped=0.05,
    slow=0.03,
    truncated=0.04,
    invalid=0.04,
    retry_after=0.004,  # goes out as retry-after-ms: 4
    slow_seconds=0.02,
    seed=20240101,
    starts=True,
)


def fast_policy(max_retries: int = MAX_RETRIES) -> PollingPolicy:
    """Millisecond delays: strategy 2 ms doubling to 10 ms, jittered; cap 20 ms."""
    return PollingPolicy(
        strategy=ExponentialDelay(0.002, factor=2, max_delay=0.01, jitter=0.5),
        floor=0.001,
        cap=0.02,
        max_retries=max_retries,
        retry=ExponentialDelay(0.002, factor=2, max_delay=0.02, jitter=0.5),
    )


def expected_outcome(index: int) -> tuple[str, int]:
    """The name of operation ``index`` and the number of files it adds."""
    prefix = "fail" if index % 20 == 7 else "cancel" if index % 25 == 11 else "store"
    return f"{prefix}-{index:03d}", index % 4


def start(pipeline: Pipeline, name: str, files: int) -> CreateVectorStoreOperation:
    return CreateVectorStoreOperation.start(
        pipeline,
        "POST",
        START_PATH,
        json={"name": name, "file_ids": [f"file-{n}" for n in range(files)]},
        idempotent=True,
    )


class Pipelines:
    """One pipeline (one requests.Session) per worker thread; all closed at the end."""

    def __init__(self, endpoint: str, policy: PollingPolicy) -> None:
        self.endpoint, self.policy = endpoint, policy
        self.local = threading.local()
        self.lock = threading.Lock()
        self.all: list[Pipeline] = []

    def get(self) -> Pipeline:
        pipeline: Pipeline | None = getattr(self.local, "pipeline", None)
        if pipeline is None:
            pipeline = Pipeline(self.endpoint, polling=self.policy, request_timeout=5)
            self.local.pipeline = pipeline
            with self.lock:
                self.all.append(pipeline)
        return pipeline

    def close(self) -> None:
        for pipeline in self.all:
            pipeline.close()


@pytest.fixture
def faulty() -> Iterator[DemoService]:
    with DemoService(polls_to_complete=POLLS, retry_after=0.004, faults=PLAN) as service:
        yield service
    assert not service.running


@pytest.fixture
def pipelines(faulty: DemoService) -> Iterator[Pipelines]:
    pool = Pipelines(faulty.endpoint, fast_policy())
    yield pool
    pool.close()


def kind_of(request: RecordedRequest) -> str:
    path = urlsplit(request.path).path
    if request.method == "POST":
        return "start"
    return "poll" if path.startswith("/operations/") else "final"


def failed(request: RecordedRequest) -> bool:
    """Whether the client got no usable answer to ``request``."""
    if kind_of(request) == "start":
        return request.fault is not None and request.fault not in HARMLESS_ON_STARTS
    return request.fault in FAILING


def longest_fault_run(requests_: list[RecordedRequest]) -> int:
    """The most consecutive failed answers to one request (the same kind, no good answer)."""
    longest = run = 0
    for request in requests_:
        run = run + 1 if failed(request) else 0
        longest = max(longest, run)
    return longest


def test_200_operations_survive_injected_faults(faulty, pipelines, record_property) -> None:
    def one(index: int) -> tuple[int, Any]:
        name, files = expected_outcome(index)
        operation = start(pipelines.get(), name, files)
        operation.wait_for_completion(timeout=30)
        try:
            return index, operation.value
        except (OperationFailedError, OperationCanceledError) as outcome:
            return index, outcome

    began = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        results = dict(pool.map(one, range(OPERATIONS)))
    elapsed = time.monotonic() - began

    # Every operation ends with its correct value (or its correct failure).
    assert sorted(results) == list(range(OPERATIONS))
    for index, result in results.items():
        name, files = expected_outcome(index)
        if name.startswith("fail"):
            assert isinstance(result, OperationFailedError), name
            assert result.service_error is not None
            assert result.service_error.code == "VectorStoreCreationFailed"
        elif name.startswith("cancel"):
            assert isinstance(result, OperationCanceledError), name
        else:
            assert isinstance(result, VectorStore), (name, result)
            assert (result.name, result.file_counts.total) == (name, files)

    # No operation lost or duplicated: one record per name, all finished as asked.
    records = faulty.operations()
    assert len(records) == OPERATIONS
    by_name = {record.name: record for record in records}
    assert sorted(by_name) == sorted(expected_outcome(i)[0] for i in range(OPERATIONS))
    for record in records:
        wanted = {"fail": "Failed", "cancel": "Canceled"}.get(record.name.split("-")[0])
        assert record.status == (wanted or "Succeeded")
        assert record.polls == POLLS  # faulted polls were never counted by the service
        assert record.operation_id is not None

    # Requests per operation: exactly the good answers needed, plus the faults, and no
    # request beyond the retry budget.
    requests_ = faulty.requests
    per_operation: dict[str, list[RecordedRequest]] = {r.name: [] for r in records}
    job_names = {r.id: r.name for r in records}
    store_names = {r.store_id: r.name for r in records}
    for request in requests_:
        if request.method == "POST":
            name = json.loads(request.body)["name"]
        else:
            _, collection, ident = urlsplit(request.path).path.split("/")
            name = (job_names if collection == "operations" else store_names)[ident]
        per_operation[name].append(request)
    longest = 0
    for name, seen in per_operation.items():
        good = Counter(kind_of(r) for r in seen if not failed(r))
        finals = 0 if name.startswith(("fail", "cancel")) else 1
        if any(r.fault == Fault.DROPPED.value for r in seen if kind_of(r) == "start"):
            # A start whose answer was lost was processed; its repetition found it again.
            assert len({r.headers["operation-id"] for r in seen if kind_of(r) == "start"}) == 1
        assert good == Counter(start=1, poll=POLLS, final=finals), (name, good)
        for kind in ("start", "poll", "final"):
            longest = max(longest, longest_fault_run([r for r in seen if kind_of(r) == kind]))
    assert longest <= MAX_RETRIES
    logical = sum(2 + POLLS - name.startswith(("fail", "cancel")) for name in per_operation)
    assert len(requests_) <= logical * (MAX_RETRIES + 1)

    gets = [r for r in requests_ if r.method == "GET"]
    failed_gets = [r for r in gets if r.fault in FAILING]
    share = len(failed_gets) / len(gets)
    assert share >= 0.20, share
    faults = Counter(r.fault for r in requests_ if r.fault is not None)
    assert set(faults) == {f.value for f in Fault}  # every kind of fault happened
    # The figures, through pytest's own reporting: the captured output that `pytest -rA`
    # shows for passed tests, and a property of the test case in a JUnit XML report.
    summary = (
        f"fault injection: {OPERATIONS} operations on {WORKERS} threads in {elapsed:.2f} s;"
        f" {len(requests_)} requests for {logical} needed"
        f" (budget {logical * (MAX_RETRIES + 1)}); {len(failed_gets)}/{len(gets)} polls"
        f" failed ({share:.0%}); longest run of faults {longest} (max_retries"
        f" {MAX_RETRIES}); faults: {dict(sorted(faults.items()))}"
    )
    record_property("fault_injection", summary)
    print(summary)


# -- the fault modes one by one -----------------------------------------------------------------


def only(fault: Fault, **settings: Any) -> FaultPlan:
    return FaultPlan(**{fault.value: 1.0}, retry_after=0.25, slow_seconds=0.05, **settings)


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def created(service: DemoService, session: requests.Session, name: str = "x") -> str:
    """Start an operation (faults hit polls only) and return its monitor URL."""
    answer = session.post(service.endpoint + START_PATH, json={"name": name}, timeout=5)
    assert answer.status_code == 202
    return service.endpoint + answer.headers["Operation-Location"].lstrip("/")


@pytest.mark.parametrize(("fault", "code"), [(Fault.UNAVAILABLE, 503), (Fault.THROTTLED, 429)])
def test_busy_answers_carry_a_retry_after(session, fault, code) -> None:
    with DemoService(polls_to_complete=1, faults=only(fault)) as service:
        answer = session.get(created(service, session), timeout=5)
        assert answer.status_code == code
        assert answer.headers["retry-after-ms"] == "250"
        assert answer.json()["error"]["code"] == "ServiceBusy"
        assert [r.fault for r in service.requests] == [None, fault.value]
        assert service.operations()[0].polls == 0  # not processed


def test_a_dropped_connection_has_no_answer(session) -> None:
    with DemoService(polls_to_complete=1, faults=only(Fault.DROPPED)) as service:
        monitor = created(service, session)
        with pytest.raises(requests.ConnectionError):
            session.get(monitor, timeout=5)


def test_slow_answers_are_right_but_late(session) -> None:
    with DemoService(polls_to_complete=1, faults=only(Fault.SLOW)) as service:
        url = created(service, session)
        began = time.monotonic()
        answer = session.get(url, timeout=5)
        assert time.monotonic() - began >= 0.05
        assert answer.json()["status"] == "Succeeded"


@pytest.mark.parametrize("fault", [Fault.TRUNCATED, Fault.INVALID])
def test_broken_bodies(session, fault) -> None:
    with DemoService(polls_to_complete=1, faults=only(fault)) as service:
        answer = session.get(created(service, session), timeout=5)
        assert answer.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(answer.content)
        assert service.operations()[0].polls == 0


def test_draws_are_reproducible_and_follow_the_rates() -> None:
    plan = FaultPlan(unavailable=0.2, dropped=0.1, seed=5)
    draws = [plan.draw(f"operations:x:{n}") for n in range(5000)]
    assert draws == [plan.draw(f"operations:x:{n}") for n in range(5000)]
    assert draws != [FaultPlan(unavailable=0.2, dropped=0.1, seed=6).draw(f"operations:x:{n}")
                     for n in range(5000)]  # fmt: skip
    counts = Counter(draws)
    assert abs(counts[Fault.UNAVAILABLE] / 5000 - 0.2) < 0.03
    assert abs(counts[Fault.DROPPED] / 5000 - 0.1) < 0.03
    assert set(counts) == {Fault.UNAVAILABLE, Fault.DROPPED, None}
    assert plan.total == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"unavailable": 1.5}, "between 0 and 1"),
        ({"dropped": -0.1}, "between 0 and 1"),
        ({"unavailable": 0.6, "invalid": 0.6}, "more than 1"),
        ({"slow_seconds": -1}, ">= 0"),
    ],
)
def test_bad_plans_are_refused(settings, match) -> None:
    with pytest.raises(ValueError, match=match):
        FaultPlan(**settings)


def test_spread_shares_the_rate_evenly() -> None:
    plan = FaultPlan.spread(0.3, seed=1, starts=True)
    assert list(plan.rates().values()) == [pytest.approx(0.05)] * len(Fault)
    assert (plan.seed, plan.starts, plan.total) == (1, True, pytest.approx(0.3))


# -- lrokit and the faults ---------------------------------------------------------------------


@contextmanager
def served(
    faults: FaultPlan | None, *, polls: int = 1, max_retries: int = MAX_RETRIES
) -> Iterator[tuple[DemoService, Pipeline]]:
    """A service with ``faults`` and a pipeline with the fast policy, both closed after."""
    with (
        DemoService(polls_to_complete=polls, faults=faults) as service,
        Pipeline(service.endpoint, polling=fast_policy(max_retries)) as pipeline,
    ):
        yield service, pipeline


def test_the_budget_ends_in_a_typed_error_that_resumes() -> None:
    with served(only(Fault.UNAVAILABLE), polls=2, max_retries=3) as (service, pipeline):
        operation = start(pipeline, "budget", 1)
        with pytest.raises(RetriesExhaustedError) as info:
            operation.wait_for_completion(timeout=10)
        assert (info.value.status_code, info.value.failures) == (503, 4)
        assert len(service.requests) == 1 + 4
        service.faults = None  # the outage ends
        resumed = CreateVectorStoreOperation.rehydrate(pipeline, info.value.rehydration_token)
        resumed.wait_for_completion(timeout=10)
        assert resumed.value.name == "budget"
        assert len(service.operations()) == 1


def test_an_idempotent_start_whose_answers_are_lost_creates_one_operation() -> None:
    with served(only(Fault.DROPPED, starts=True), max_retries=2) as (service, pipeline):
        with pytest.raises(requests.ConnectionError):
            start(pipeline, "lost", 0)
        assert len(service.requests) == 3  # retried within the budget...
        assert len({r.headers["operation-id"] for r in service.requests}) == 1
        assert len(service.operations()) == 1  # ...and created once


def test_a_plain_post_start_is_not_repeated_when_its_answer_is_lost() -> None:
    with served(only(Fault.DROPPED, starts=True)) as (service, pipeline):
        operation = CreateVectorStoreOperation.prepare(
            pipeline, "POST", START_PATH, json={"name": "p"}
        )
        with pytest.raises(StartOutcomeUnknownError) as caught:
            operation.send_start()
        assert isinstance(caught.value.__cause__, requests.ConnectionError)
        assert operation.start_outcome_unknown
        with pytest.raises(StartOutcomeUnknownError):
            operation.wait_for_completion()  # waiting again does not send it again
        assert len(service.requests) == 1  # a second try could create a duplicate
        assert len(service.operations()) == 1


class Cancellable(CreateVectorStoreOperation):
    """The demo service cancels with POST {monitor}:cancel."""

    cancel_request = ("POST", "{monitor}:cancel")


def test_service_side_cancel_over_http() -> None:
    with served(None, polls=50) as (service, pipeline):
        operation = Cancellable.start(pipeline, "POST", START_PATH, json={"name": "c"})
        operation.update_status()
        assert operation.state is OperationState.RUNNING
        operation.cancel()
        assert operation.state is OperationState.CANCELED
        with pytest.raises(OperationCanceledError):
            _ = operation.value
        assert service.operations()[0].status == "Canceled"
        last = service.requests[-1]
        assert last.method == "POST"
        monitor_path = urlsplit(operation.core.polling_url or "").path
        assert last.path.startswith(f"{monitor_path}:cancel?api-version=")
        again = Cancellable.rehydrate(pipeline, operation.rehydration_token)
        assert again.state is OperationState.CANCELED


def test_cancel_after_completion_is_refused_by_the_service(session) -> None:
    with DemoService(polls_to_complete=1) as service:
        monitor = created(service, session)
        session.get(monitor, timeout=5)  # completes it
        answer = session.post(monitor.replace("?", ":cancel?"), timeout=5)
        assert answer.status_code == 409
        assert answer.json()["error"]["code"] == "OperationCompleted"


def test_serve_accepts_fault_flags() -> None:
    args = build_parser().parse_args(
        ["serve", "--faults", "0.3", "--fault-seed", "7", "--fault-starts", "--quiet"]
    )
    assert (args.faults, args.fault_seed, args.fault_starts) == (0.3, 7, True)
    assert build_parser().parse_args(["serve"]).faults == 0.0
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--faults", "1.5"])


def test_a_seeded_run_meets_the_same_faults() -> None:
    """Same names and seed: the same faults, whatever the thread timing."""

    def run() -> list[str | None]:
        plan = FaultPlan.spread(0.5, retry_after=0.001, slow_seconds=0.001, seed=3)
        with DemoService(polls_to_complete=2, retry_after=0.001, faults=plan) as service:
            with Pipeline(service.endpoint, polling=fast_policy(max_retries=20)) as pipeline:
                for name in ("a", "b", "c"):
                    start(pipeline, name, 0).wait_for_completion(timeout=10)
            return [r.fault for r in service.requests]

    first = run()
    assert first == run()
    assert any(first)
